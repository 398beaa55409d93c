//! The frames a browser decodes, and keys through a listen and a notify.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| notif::fuzzing::wire_frames(data));

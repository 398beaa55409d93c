//! A client's bytes, in pieces, through the WebSocket connection's reader.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| notif::fuzzing::Ws::read(data));

//! Event ids and tab ids, bare and as the Last-Event-ID header and query.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| notif::fuzzing::event_id(data));

//! Header lines through the WebSocket handshake check.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| notif::fuzzing::Ws::handshake(data));

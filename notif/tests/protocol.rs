//! RFC 6455 over a raw socket: what notif answers to each frame a client may or may not send,
//! and that a refused client leaves nothing behind (tests run with no resume window, so a tab
//! whose connection ends is gone).
mod common;

use std::time::Duration;

use common::TestServer;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

const FIN: u8 = 0x80;
const CONTINUATION: u8 = 0x0;
const TEXT: u8 = 0x1;
const BINARY: u8 = 0x2;
const CLOSE: u8 = 0x8;
const PING: u8 = 0x9;
const PONG: u8 = 0xA;

/// A client frame with first byte `first` (FIN, RSV and opcode), masked as clients must.
fn masked(first: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [0x37, 0xfa, 0x21, 0x3d];
    let mut out = vec![first];
    match payload.len() {
        n if n < 126 => out.push(0x80 | n as u8),
        n => {
            out.push(0x80 | 126);
            out.extend_from_slice(&u16::try_from(n).unwrap().to_be_bytes());
        }
    }
    out.extend_from_slice(&mask);
    out.extend(payload.iter().zip(mask.iter().cycle()).map(|(b, m)| b ^ m));
    out
}

fn close(code: u16, reason: &[u8]) -> Vec<u8> {
    masked(FIN | CLOSE, &[&code.to_be_bytes()[..], reason].concat())
}

/// The next frame from the server, `(first byte, payload)`; `None` once the connection ended.
async fn frame(socket: &mut TcpStream) -> Option<(u8, Vec<u8>)> {
    let read = async {
        let mut head = [0u8; 2];
        socket.read_exact(&mut head).await.ok()?;
        let len = match head[1] {
            126 => usize::from(socket.read_u16().await.ok()?),
            127 => usize::try_from(socket.read_u64().await.ok()?).ok()?,
            short => usize::from(short),
        };
        let mut payload = vec![0u8; len];
        socket.read_exact(&mut payload).await.ok()?;
        Some((head[0], payload))
    };
    tokio::time::timeout(Duration::from_secs(5), read)
        .await
        .expect("a frame or the end within 5 s")
}

/// A tab's connection, past its hello.
async fn open(server: &TestServer) -> TcpStream {
    let mut socket = TcpStream::connect(server.addr).await.unwrap();
    socket
        .write_all(&common::ws_upgrade_request("alice"))
        .await
        .unwrap();
    let head = response_head(&mut socket).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let (first, hello) = frame(&mut socket).await.unwrap();
    assert_eq!(first, FIN | TEXT);
    assert!(String::from_utf8(hello).unwrap().contains("\"hello\""));
    socket
}

/// An HTTP response's head, up to its blank line.
async fn response_head(socket: &mut TcpStream) -> String {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.push(socket.read_u8().await.unwrap());
    }
    String::from_utf8(head).unwrap()
}

/// The code of the server's close frame, skipping what comes before it (heartbeat pings).
async fn close_code(socket: &mut TcpStream) -> Option<u16> {
    loop {
        let (first, payload) = frame(socket).await.expect("a close frame before the end");
        if first == FIN | CLOSE {
            return payload
                .get(..2)
                .map(|code| u16::from_be_bytes([code[0], code[1]]));
        }
        assert_ne!(first & 0x0F, TEXT, "no frame but the close: {payload:?}");
    }
}

/// Whether the server closed the connection (within 5 s), once it heard our close too.
async fn ended(socket: &mut TcpStream) -> bool {
    let _ = socket.write_all(&masked(FIN | CLOSE, &[])).await;
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), socket.read_to_end(&mut rest)).await;
    // A reset ends it too.
    matches!(read, Ok(Ok(_)) | Ok(Err(_)))
}

/// What a refused client could have changed in the hub.
fn state(server: &TestServer) -> [u64; 7] {
    let m = server.hub.metrics();
    [
        m.tabs,
        m.connected,
        m.listens,
        m.keys,
        m.identities,
        m.replay_frames,
        m.deliveries,
    ]
}

/// Opens a tab, sends `frames`, and returns the close code the server answered with, once the
/// connection ended and the tab is gone as if it had never been.
async fn answer_to(server: &TestServer, frames: &[u8]) -> Option<u16> {
    let before = state(server);
    let mut socket = open(server).await;
    assert_eq!(server.hub.metrics().connected, 1);
    socket.write_all(frames).await.unwrap();
    let code = close_code(&mut socket).await;
    assert!(ended(&mut socket).await, "the server closes the connection");
    common::eventually("the tab is gone", || state(server) == before).await;
    code
}

#[tokio::test]
async fn forbidden_close_codes_are_answered_with_a_protocol_error() {
    let server = TestServer::start().await;
    for code in [1005, 1006, 1015, 999, 0, 1004, 1016, 2000, 2999, 5000] {
        assert_eq!(
            answer_to(&server, &close(code, b"")).await,
            Some(1002),
            "close code {code}"
        );
    }
}

#[tokio::test]
async fn allowed_close_codes_are_echoed() {
    let server = TestServer::start().await;
    for code in [1000, 1001, 1003, 1007, 1014, 3000, 4999] {
        assert_eq!(
            answer_to(&server, &close(code, "done ✓".as_bytes())).await,
            Some(code)
        );
    }
    assert_eq!(
        answer_to(&server, &masked(FIN | CLOSE, &[])).await,
        None,
        "a close without a code is echoed without one"
    );
}

#[tokio::test]
async fn a_close_reason_that_is_not_utf8_is_answered_with_invalid_payload() {
    let server = TestServer::start().await;
    assert_eq!(answer_to(&server, &close(1000, b"caf\xc3")).await, Some(1007));
}

#[tokio::test]
async fn broken_frames_are_answered_with_a_protocol_error() {
    let server = TestServer::start().await;
    let mut unmasked = masked(FIN | PING, b"");
    unmasked[1] &= 0x7F;
    let two_fragments_then_a_new_message = [
        masked(TEXT, b"a"),
        masked(CONTINUATION, b"b"),
        masked(FIN | BINARY, b"c"),
    ]
    .concat();
    for (what, frames) in [
        ("a continuation with no message", masked(FIN | CONTINUATION, b"x")),
        (
            "a new message inside a fragmented one",
            two_fragments_then_a_new_message,
        ),
        ("an unmasked frame", unmasked),
        ("a reserved bit", masked(FIN | 0x40 | TEXT, b"")),
        ("an unknown opcode", masked(FIN | 0x3, b"")),
        ("a fragmented ping", masked(PING, b"")),
        ("a 126-byte ping", masked(FIN | PING, &[0; 126])),
        ("a one-byte close", masked(FIN | CLOSE, b"x")),
    ] {
        assert_eq!(answer_to(&server, &frames).await, Some(1002), "{what}");
    }
}

/// PROTOCOL.md caps a client's message at 4 KiB: counted over all its fragments, a message is
/// cut at the header of the fragment that crosses the cap, before the server reads on.
#[tokio::test]
async fn a_4_mib_message_in_1_kib_fragments_is_cut_with_too_big_after_4_kib() {
    let server = TestServer::start().await;
    let before = state(&server);
    let mut socket = open(&server).await;
    let fragment = |first| masked(first, &[b'm'; 1024]);
    for sent in 0..4096 {
        let first = if sent == 0 { TEXT } else { CONTINUATION };
        if socket.write_all(&fragment(first)).await.is_err() {
            panic!("cut before its close frame, after {sent} fragments");
        }
        if sent < 4 {
            // Up to 4 KiB: read and dropped, nothing answered.
            let early = tokio::time::timeout(Duration::from_millis(20), frame(&mut socket)).await;
            assert!(early.is_err(), "nothing answered to fragment {sent}: {early:?}");
        } else {
            assert_eq!(
                close_code(&mut socket).await,
                Some(1009),
                "after the 5th fragment"
            );
            break;
        }
    }
    assert!(ended(&mut socket).await);
    common::eventually("the tab is gone", || state(&server) == before).await;
    assert_eq!(server.metrics().await["notif_tabs"], 0, "as /metrics reads");
}

#[tokio::test]
async fn a_sec_websocket_key_that_is_not_16_bytes_is_refused_before_any_tab() {
    let server = TestServer::start().await;
    let before = server.hub.metrics();
    let good = String::from_utf8(common::ws_upgrade_request("alice")).unwrap();
    for bad in [
        "AAAAAAAAAAAAAAAAAAAA",
        "not base64 at all",
        "dGhlIHNhbXBsZSBub25jZQ",
    ] {
        let request = good.replace("dGhlIHNhbXBsZSBub25jZQ==", bad);
        let mut socket = TcpStream::connect(server.addr).await.unwrap();
        socket.write_all(request.as_bytes()).await.unwrap();
        let head = response_head(&mut socket).await;
        assert!(head.starts_with("HTTP/1.1 400"), "{bad}: {head}");
        let mut body = vec![0u8; 64];
        let n = socket.read(&mut body).await.unwrap();
        assert!(
            String::from_utf8_lossy(&body[..n]).contains("Sec-WebSocket-Key"),
            "the reason is given"
        );
    }
    assert_eq!(server.hub.metrics(), before, "no tab was opened");
    assert_eq!(server.hub.metrics().tabs, 0);
}

#[tokio::test]
async fn a_ping_is_answered_with_a_pong_carrying_its_payload_and_data_is_dropped() {
    let server = TestServer::start().await;
    let mut socket = open(&server).await;
    for payload in [&b""[..], b"x", &[0xA5; 125]] {
        // Data before it is read and dropped: the pong is the only answer.
        let frames = [masked(FIN | TEXT, b"ignored"), masked(FIN | PING, payload)].concat();
        socket.write_all(&frames).await.unwrap();
        assert_eq!(frame(&mut socket).await, Some((FIN | PONG, payload.to_vec())));
    }
    assert_eq!(server.hub.metrics().connected, 1);
}

#[tokio::test]
async fn the_close_handshake_completes_either_way() {
    let server = TestServer::start().await;
    // The client starts it: its close is echoed, then the server ends the connection.
    let mut socket = open(&server).await;
    socket.write_all(&close(1000, b"bye")).await.unwrap();
    assert_eq!(close_code(&mut socket).await, Some(1000));
    let mut rest = Vec::new();
    let end = tokio::time::timeout(Duration::from_secs(5), socket.read_to_end(&mut rest)).await;
    assert!(matches!(end, Ok(Ok(0))), "a clean end: {end:?}");
    common::eventually("the tab is gone", || server.hub.metrics().tabs == 0).await;

    // The server starts it (a sign-out): a bye, a close, and the end once the client echoes it.
    let mut socket = open(&server).await;
    server.hub.disconnect_identity(&Some("alice".into()));
    let (first, bye) = frame(&mut socket).await.unwrap();
    assert_eq!(first, FIN | TEXT);
    assert!(String::from_utf8(bye).unwrap().contains("\"bye\""));
    assert_eq!(frame(&mut socket).await, Some((FIN | CLOSE, vec![])));
    socket.write_all(&masked(FIN | CLOSE, &[])).await.unwrap();
    let end = tokio::time::timeout(Duration::from_secs(5), socket.read_to_end(&mut rest)).await;
    assert!(matches!(end, Ok(Ok(0))), "a clean end: {end:?}");
    common::eventually("the tab is gone", || server.hub.metrics().tabs == 0).await;
}

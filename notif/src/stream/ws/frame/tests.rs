use super::*;

/// A client frame: masked, as browsers send them.
fn client(first: u8, payload: &[u8]) -> Vec<u8> {
    masked(first, payload, [0x12, 0x34, 0x56, 0x78])
}

/// A frame whose first byte is `first`, carrying `payload` masked with `mask`.
pub(super) fn masked(first: u8, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
    let mut out = vec![first];
    match payload.len() {
        n if n < 126 => out.push(0x80 | n as u8),
        n => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
    }
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}

const FIN: u8 = 0x80;
const PING: u8 = OpCode::Ping as u8;
const PONG: u8 = OpCode::Pong as u8;
const CLOSE: u8 = OpCode::Close as u8;
const TEXT: u8 = OpCode::Text as u8;
const BINARY: u8 = OpCode::Binary as u8;
const CONTINUATION: u8 = OpCode::Continuation as u8;

/// What an inbox that read `bytes` answers, frame by frame, up to its first error.
fn read_all(bytes: &[u8], max: usize) -> Vec<Result<Incoming, ProtocolError>> {
    let mut inbox = Inbox::new(max);
    inbox.extend(bytes);
    let mut got = Vec::new();
    loop {
        match inbox.next() {
            Ok(Some(frame)) => got.push(Ok(frame)),
            Ok(None) => return got,
            Err(error) => {
                got.push(Err(error));
                return got;
            }
        }
    }
}

fn first(bytes: &[u8]) -> Result<Option<Incoming>, ProtocolError> {
    let mut inbox = Inbox::new(4096);
    inbox.extend(bytes);
    inbox.next()
}

fn close(code: u16, reason: &[u8]) -> Vec<u8> {
    client(FIN | CLOSE, &[&code.to_be_bytes()[..], reason].concat())
}

#[test]
fn header_lengths_follow_the_payload() {
    for (len, header) in [(0, 2), (125, 2), (126, 4), (65535, 4), (65536, 10)] {
        let mut out = Vec::new();
        put(&mut out, OpCode::Text, &vec![b'a'; len]);
        assert_eq!(out.len(), header + len, "{len}-byte payload");
        assert_eq!(out[0], 0x81);
    }
    let mut out = Vec::new();
    put_close(&mut out, Some(1000));
    assert_eq!(out, [0x88, 2, 0x03, 0xE8]);
}

#[test]
fn control_frames_are_read_once_whole() {
    let ping = client(FIN | PING, b"hi");
    for cut in 0..ping.len() {
        assert_eq!(first(&ping[..cut]), Ok(None), "cut at {cut}");
    }
    let mut two = ping.clone();
    two.extend(client(FIN | CLOSE, &1001u16.to_be_bytes()));
    assert_eq!(
        read_all(&two, 4096),
        [
            Ok(Incoming::Ping(b"hi".to_vec())),
            Ok(Incoming::Close(Some(1001)))
        ]
    );
    assert_eq!(first(&client(FIN | CLOSE, &[])), Ok(Some(Incoming::Close(None))));
    assert_eq!(
        first(&client(FIN | PONG, b"x")),
        Ok(None),
        "a pong of ours is skipped"
    );
    assert_eq!(
        first(&client(FIN | PONG, &300u64.to_be_bytes())),
        Ok(Some(Incoming::Acknowledged(300))),
        "the pong to a ping that asked for an acknowledgement"
    );
    let mut text_then_ping = client(FIN | TEXT, &[b'a'; 300]);
    text_then_ping.extend(&ping);
    assert_eq!(
        read_all(&text_then_ping, 4096),
        [Ok(Incoming::Ping(b"hi".to_vec()))],
        "data is read and dropped"
    );
}

#[test]
fn broken_frames_are_protocol_errors() {
    let mut unmasked = client(FIN | PING, b"");
    unmasked[1] &= 0x7F;
    assert_eq!(first(&unmasked), Err(ProtocolError::Unmasked));
    assert_eq!(first(&client(0xC0 | TEXT, b"")), Err(ProtocolError::ReservedBits));
    assert_eq!(first(&client(PING, b"")), Err(ProtocolError::FragmentedControl));
    assert_eq!(first(&client(FIN | 3, b"")), Err(ProtocolError::UnknownOpcode(3)));
    assert_eq!(
        first(&client(FIN | 0xB, b"")),
        Err(ProtocolError::UnknownOpcode(0xB))
    );
    assert_eq!(
        first(&client(FIN | PING, &[0; 126])),
        Err(ProtocolError::ControlTooLong)
    );
    for error in [
        ProtocolError::Unmasked,
        ProtocolError::ReservedBits,
        ProtocolError::FragmentedControl,
        ProtocolError::UnknownOpcode(3),
        ProtocolError::ControlTooLong,
    ] {
        assert_eq!(error.close_code(), PROTOCOL_ERROR, "{error}");
    }
}

#[test]
fn forbidden_close_codes_and_payloads_are_refused() {
    for code in [0, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, u16::MAX] {
        let error = first(&close(code, b"")).unwrap_err();
        assert_eq!(error, ProtocolError::BadCloseCode(code));
        assert_eq!(error.close_code(), PROTOCOL_ERROR);
    }
    for code in [1000, 1001, 1002, 1003, 1007, 1011, 1014, 3000, 3999, 4000, 4999] {
        assert_eq!(
            first(&close(code, "bye ✓".as_bytes())),
            Ok(Some(Incoming::Close(Some(code))))
        );
    }
    let error = first(&close(1000, b"\xff\xfe")).unwrap_err();
    assert_eq!(
        (error, error.close_code()),
        (ProtocolError::BadCloseReason, INVALID_PAYLOAD)
    );
    assert_eq!(
        first(&client(FIN | CLOSE, b"x")),
        Err(ProtocolError::BadClosePayload)
    );
}

#[test]
fn fragments_must_continue_a_message_and_a_message_must_end_first() {
    assert_eq!(
        first(&client(FIN | CONTINUATION, b"x")),
        Err(ProtocolError::UnexpectedContinuation)
    );
    // A message in three fragments, a ping between two of them.
    let mut message = client(TEXT, b"a");
    message.extend(client(FIN | PING, b"p"));
    message.extend(client(CONTINUATION, b"b"));
    message.extend(client(FIN | CONTINUATION, b"c"));
    message.extend(client(FIN | BINARY, b"d"));
    assert_eq!(read_all(&message, 4096), [Ok(Incoming::Ping(b"p".to_vec()))]);

    let mut interrupted = client(TEXT, b"a");
    interrupted.extend(client(FIN | BINARY, b"b"));
    assert_eq!(
        read_all(&interrupted, 4096),
        [Err(ProtocolError::ExpectedContinuation)]
    );
    assert_eq!(ProtocolError::ExpectedContinuation.close_code(), PROTOCOL_ERROR);
    let mut ended = client(FIN | TEXT, b"a");
    ended.extend(client(FIN | CONTINUATION, b"b"));
    assert_eq!(
        read_all(&ended, 4096),
        [Err(ProtocolError::UnexpectedContinuation)]
    );
}

#[test]
fn a_message_is_capped_over_all_its_fragments_at_the_header_that_crosses_the_cap() {
    assert_eq!(first(&client(FIN | TEXT, &[0; 200])), Ok(None), "under the cap");
    let mut inbox = Inbox::new(100);
    inbox.extend(&client(FIN | TEXT, &[0; 200])[..4]);
    let error = inbox.next().unwrap_err();
    assert_eq!(error, ProtocolError::MessageTooBig { bytes: 200, max: 100 });
    assert_eq!(error.close_code(), TOO_BIG);

    // Four fragments of 25 bytes fill the cap; the fifth's header crosses it.
    let mut fragments = client(TEXT, &[0; 25]);
    for _ in 0..3 {
        fragments.extend(client(CONTINUATION, &[0; 25]));
    }
    let mut inbox = Inbox::new(100);
    inbox.extend(&fragments);
    assert_eq!(inbox.next(), Ok(None));
    assert!(!inbox.is_idle(), "a message is in progress");
    inbox.extend(&client(CONTINUATION, &[0; 25])[..2]);
    assert_eq!(
        inbox.next(),
        Err(ProtocolError::MessageTooBig { bytes: 125, max: 100 })
    );

    let huge = [FIN | TEXT, 0x80 | 127, 0xFF, 0, 0, 0, 0, 0, 0, 0];
    assert!(matches!(first(&huge), Err(ProtocolError::MessageTooBig { .. })));
}

#[test]
fn a_whole_message_leaves_the_inbox_idle() {
    let mut inbox = Inbox::new(4096);
    inbox.extend(&client(TEXT, b"a"));
    assert_eq!(inbox.next(), Ok(None));
    assert!(!inbox.is_idle());
    inbox.extend(&client(FIN | CONTINUATION, b"b"));
    assert_eq!(inbox.next(), Ok(None));
    assert!(inbox.is_idle());
}

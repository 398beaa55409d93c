//! WebSocket framing (RFC 6455), server side: unmasked frames out, masked frames in. The
//! server only sends text, ping, pong and close; of what a client sends only control frames
//! matter, so reading keeps nothing but those it must answer. Client data is read, checked
//! against the framing rules and the size cap, and dropped.

/// Opcodes (RFC 6455 §5.2). The values are the wire's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum OpCode {
    Continuation = 0x0,
    Text = 0x1,
    Binary = 0x2,
    Close = 0x8,
    Ping = 0x9,
    Pong = 0xA,
}

impl OpCode {
    fn from_bits(bits: u8) -> Result<Self, ProtocolError> {
        Ok(match bits {
            0x0 => OpCode::Continuation,
            0x1 => OpCode::Text,
            0x2 => OpCode::Binary,
            0x8 => OpCode::Close,
            0x9 => OpCode::Ping,
            0xA => OpCode::Pong,
            // 0x3–0x7 and 0xB–0xF are reserved, and no extension defines them.
            other => return Err(ProtocolError::UnknownOpcode(other)),
        })
    }

    fn is_control(self) -> bool {
        self as u8 & 0x8 != 0
    }
}

/// Close codes the server sends (RFC 6455 §7.4.1).
pub(super) const PROTOCOL_ERROR: u16 = 1002;
pub(super) const INVALID_PAYLOAD: u16 = 1007;
pub(super) const TOO_BIG: u16 = 1009;

/// Whether `code` may be sent in a close frame (RFC 6455 §7.4 and IANA's registry): 1000–1003,
/// 1007–1014 and the ranges for libraries and applications, 3000–4999. Not 1004 (reserved),
/// 1005, 1006 and 1015 (only ever reported locally), nor unassigned codes.
pub(super) fn close_code_is_allowed(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// How a client broke the protocol: the connection ends with [`close_code`](Self::close_code).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(super) enum ProtocolError {
    #[error("a reserved bit is set, and no extension was negotiated")]
    ReservedBits,
    #[error("a client frame is not masked")]
    Unmasked,
    #[error("a control frame is fragmented")]
    FragmentedControl,
    #[error("a control frame's payload is over 125 bytes")]
    ControlTooLong,
    #[error("unknown opcode {0:#x}")]
    UnknownOpcode(u8),
    #[error("a continuation frame with no message in progress")]
    UnexpectedContinuation,
    #[error("a new message began before the fragmented one in progress ended")]
    ExpectedContinuation,
    #[error("close code {0} may not be sent (RFC 6455 §7.4)")]
    BadCloseCode(u16),
    #[error("a close reason is not UTF-8")]
    BadCloseReason,
    #[error("a close payload of one byte (a code takes two)")]
    BadClosePayload,
    #[error("a client message of at least {bytes} bytes, over the {max} allowed")]
    MessageTooBig { bytes: u64, max: usize },
}

impl ProtocolError {
    /// The close code that answers it.
    pub fn close_code(&self) -> u16 {
        match self {
            ProtocolError::BadCloseReason => INVALID_PAYLOAD,
            ProtocolError::MessageTooBig { .. } => TOO_BIG,
            _ => PROTOCOL_ERROR,
        }
    }
}

/// Appends one final, unmasked frame.
pub(super) fn put(out: &mut Vec<u8>, opcode: OpCode, payload: &[u8]) {
    put_header(out, opcode, payload.len());
    out.extend_from_slice(payload);
}

/// Appends the header of a final, unmasked frame of `len` bytes; the payload must follow.
pub(super) fn put_header(out: &mut Vec<u8>, opcode: OpCode, len: usize) {
    out.reserve(len + 10);
    out.push(0x80 | opcode as u8);
    if len < 126 {
        out.push(len as u8);
    } else if let Ok(len) = u16::try_from(len) {
        out.push(126);
        out.extend_from_slice(&len.to_be_bytes());
    } else {
        out.push(127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
}

/// A close frame carrying `code`.
pub(super) fn put_close(out: &mut Vec<u8>, code: Option<u16>) {
    match code {
        Some(code) => put(out, OpCode::Close, &code.to_be_bytes()),
        None => put(out, OpCode::Close, &[]),
    }
}

/// A frame from a client that asks for an answer.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Incoming {
    /// Answer with a pong carrying this payload.
    Ping(Vec<u8>),
    /// The client closes, with its status code (an allowed one) if it gave one.
    Close(Option<u16>),
    /// A pong to a ping that asked for frames up to this number: the client has them.
    Acknowledged(u64),
}

/// A client's bytes not read yet, and where its messages are: frames are checked against the
/// message they continue, so this outlives any one frame.
#[derive(Debug, Default)]
pub(super) struct Inbox {
    bytes: Vec<u8>,
    /// Bytes so far of the fragmented data message in progress, if one is.
    message: Option<usize>,
    /// Largest data message a client may send, in bytes, over all its fragments.
    max: usize,
}

impl Inbox {
    /// An inbox for messages up to `max` bytes.
    pub fn new(max: usize) -> Self {
        Inbox {
            bytes: Vec::new(),
            message: None,
            max,
        }
    }

    pub fn extend(&mut self, bytes: &[u8]) {
        self.bytes.extend_from_slice(bytes);
    }

    /// Nothing buffered and no message in progress: nothing to keep.
    pub fn is_idle(&self) -> bool {
        self.bytes.is_empty() && self.message.is_none()
    }

    /// The next frame to answer among the bytes read: `Ok(None)` until one is whole. Frames
    /// that need no answer (pongs, data) are consumed on the way.
    pub fn next(&mut self) -> Result<Option<Incoming>, ProtocolError> {
        let mut used = 0;
        let next = loop {
            match parse(&self.bytes[used..], &mut self.message, self.max) {
                Ok(Some((frame, len))) => {
                    used += len;
                    if frame.is_some() {
                        break Ok(frame);
                    }
                }
                other => break other.map(|_| None),
            }
        };
        self.bytes.drain(..used);
        next
    }
}

/// Parses the first frame in `buf` against the `message` in progress: `Ok(None)` until it is
/// whole, else the frame if it needs an answer, and its length. `message` moves on only once a
/// frame is whole, so calling again with more bytes is safe. A frame is refused as soon as its
/// header shows it is: a client cannot make the server read what will be thrown away.
fn parse(
    buf: &[u8],
    message: &mut Option<usize>,
    max: usize,
) -> Result<Option<(Option<Incoming>, usize)>, ProtocolError> {
    let [b0, b1, ..] = *buf else { return Ok(None) };
    if b0 & 0x70 != 0 {
        // No extension was negotiated: reserved bits must be clear.
        return Err(ProtocolError::ReservedBits);
    }
    if b1 & 0x80 == 0 {
        return Err(ProtocolError::Unmasked);
    }
    let (opcode, fin) = (OpCode::from_bits(b0 & 0x0F)?, b0 & 0x80 != 0);
    let short_len = b1 & 0x7F;
    if opcode.is_control() {
        if !fin {
            return Err(ProtocolError::FragmentedControl);
        }
        if short_len > 125 {
            return Err(ProtocolError::ControlTooLong);
        }
    } else {
        match (opcode, *message) {
            (OpCode::Continuation, None) => return Err(ProtocolError::UnexpectedContinuation),
            (OpCode::Text | OpCode::Binary, Some(_)) => return Err(ProtocolError::ExpectedContinuation),
            _ => {}
        }
    }
    let (len, mut at) = match short_len {
        126 => match buf.get(2..4) {
            Some(b) => (u64::from(u16::from_be_bytes([b[0], b[1]])), 4),
            None => return Ok(None),
        },
        127 => match buf.get(2..10) {
            Some(b) => (u64::from_be_bytes(b.try_into().unwrap_or_default()), 10),
            None => return Ok(None),
        },
        n => (u64::from(n), 2),
    };
    // The message this frame belongs to, so far: a data frame adds to it.
    let so_far = message.unwrap_or(0) as u64;
    let total = if opcode.is_control() {
        len
    } else {
        so_far.saturating_add(len)
    };
    let len = match usize::try_from(len) {
        Ok(len) if total <= max as u64 => len,
        _ => return Err(ProtocolError::MessageTooBig { bytes: total, max }),
    };
    let Some(mask) = buf.get(at..at + 4) else {
        return Ok(None);
    };
    let mask = [mask[0], mask[1], mask[2], mask[3]];
    at += 4;
    let Some(payload) = buf.get(at..at + len) else {
        return Ok(None);
    };
    let unmasked = || -> Vec<u8> { payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]).collect() };
    let frame = match opcode {
        OpCode::Ping => Some(Incoming::Ping(unmasked())),
        OpCode::Pong => <[u8; 8]>::try_from(&*unmasked())
            .ok()
            .map(|seq| Incoming::Acknowledged(u64::from_be_bytes(seq))),
        OpCode::Close => Some(Incoming::Close(close_code(&unmasked())?)),
        OpCode::Continuation | OpCode::Text | OpCode::Binary => {
            // `total` is at most `max`, a `usize`.
            *message = (!fin).then_some(total as usize);
            None
        }
    };
    Ok(Some((frame, at + len)))
}

/// The code of a close frame's payload, if it has one, once checked.
fn close_code(payload: &[u8]) -> Result<Option<u16>, ProtocolError> {
    match *payload {
        [] => Ok(None),
        [_] => Err(ProtocolError::BadClosePayload),
        [hi, lo, ref reason @ ..] => {
            let code = u16::from_be_bytes([hi, lo]);
            if !close_code_is_allowed(code) {
                return Err(ProtocolError::BadCloseCode(code));
            }
            std::str::from_utf8(reason).map_err(|_| ProtocolError::BadCloseReason)?;
            Ok(Some(code))
        }
    }
}

#[cfg(test)]
mod tests {
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
}

#[cfg(test)]
pub(super) mod properties {
    use proptest::prelude::*;

    use super::*;

    /// Everything an inbox answers to `chunks` fed one after another, up to its first error.
    fn read_in(chunks: &[&[u8]], max: usize) -> (Vec<Incoming>, Option<ProtocolError>) {
        let mut inbox = Inbox::new(max);
        let mut got = Vec::new();
        for chunk in chunks {
            inbox.extend(chunk);
            loop {
                match inbox.next() {
                    Ok(Some(frame)) => got.push(frame),
                    Ok(None) => break,
                    Err(error) => return (got, Some(error)),
                }
            }
        }
        (got, None)
    }

    /// Bytes that are often frames: a valid masked header with a random opcode and flags,
    /// then a payload, or raw noise.
    pub(in crate::stream::ws) fn frames() -> impl Strategy<Value = Vec<u8>> {
        let frame = (
            any::<u8>(),
            prop::collection::vec(any::<u8>(), 0..300),
            any::<[u8; 4]>(),
        )
            .prop_map(|(first, payload, mask)| super::tests::masked(first & 0x8F, &payload, mask));
        let piece = prop_oneof![4 => frame, 1 => prop::collection::vec(any::<u8>(), 0..20)];
        prop::collection::vec(piece, 0..8).prop_map(|pieces| pieces.concat())
    }

    proptest! {
        #[test]
        fn any_bytes_give_frames_or_an_error_and_parse_consumes_at_most_what_it_has(
            bytes in prop::collection::vec(any::<u8>(), 0..600),
        ) {
            let mut message = None;
            if let Ok(Some((_, used))) = parse(&bytes, &mut message, 4096) {
                prop_assert!(used <= bytes.len());
            }
            let _ = read_in(&[&bytes], 4096);
        }

        #[test]
        fn chunked_feeding_reads_what_whole_feeding_reads(
            bytes in frames(),
            cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..6),
            max in prop_oneof![Just(4096usize), 0usize..400],
        ) {
            let mut at: Vec<usize> = cuts.iter().map(|i| i.index(bytes.len() + 1)).collect();
            at.sort_unstable();
            let mut chunks = Vec::new();
            let mut from = 0;
            for to in at.into_iter().chain([bytes.len()]) {
                chunks.push(&bytes[from..to]);
                from = to;
            }
            prop_assert_eq!(read_in(&chunks, max), read_in(&[&bytes], max));
        }
    }
}

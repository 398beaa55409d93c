//! WebSocket framing (RFC 6455), server side: unmasked frames out, masked frames in. The
//! server only sends text, ping and close; clients only send control frames, so reading
//! keeps nothing but the control frames it must answer.

/// The opcodes the server writes or answers.
pub(super) const TEXT: u8 = 0x1;
pub(super) const CLOSE: u8 = 0x8;
pub(super) const PING: u8 = 0x9;
pub(super) const PONG: u8 = 0xA;

/// Close codes (RFC 6455 §7.4.1).
pub(super) const PROTOCOL_ERROR: u16 = 1002;
pub(super) const TOO_BIG: u16 = 1009;

/// Appends one final, unmasked frame.
pub(super) fn put(out: &mut Vec<u8>, opcode: u8, payload: &[u8]) {
    put_header(out, opcode, payload.len());
    out.extend_from_slice(payload);
}

/// Appends the header of a final, unmasked frame of `len` bytes; the payload must follow.
pub(super) fn put_header(out: &mut Vec<u8>, opcode: u8, len: usize) {
    out.reserve(len + 10);
    out.push(0x80 | opcode);
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
        Some(code) => put(out, CLOSE, &code.to_be_bytes()),
        None => put(out, CLOSE, &[]),
    }
}

/// A frame read from a client.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Incoming {
    /// Answer with a pong carrying this payload.
    Ping(Vec<u8>),
    /// The client closes, with its status code if it gave one.
    Close(Option<u16>),
    /// A pong to a ping that asked for frames up to this number: the client has them.
    Acknowledged(u64),
    /// Anything else (other pongs, data): nothing to do.
    Ignored,
}

/// Why a client's frames end the connection; the close code to send.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Violation(pub u16);

/// Parses the first frame in `buf`: `Ok(None)` until it is whole, else the frame and its length.
/// `max` caps a frame's payload: clients have nothing to say but control frames.
pub(super) fn parse(buf: &[u8], max: usize) -> Result<Option<(Incoming, usize)>, Violation> {
    let [b0, b1, ..] = *buf else { return Ok(None) };
    if b0 & 0x70 != 0 {
        // No extension was negotiated: reserved bits must be clear.
        return Err(Violation(PROTOCOL_ERROR));
    }
    if b1 & 0x80 == 0 {
        // Client frames are always masked.
        return Err(Violation(PROTOCOL_ERROR));
    }
    let (opcode, fin) = (b0 & 0x0F, b0 & 0x80 != 0);
    let (len, mut at) = match b1 & 0x7F {
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
    let control = opcode & 0x8 != 0;
    if control && (!fin || len > 125) || !matches!(opcode, 0x0..=0x2 | CLOSE | PING | PONG) {
        return Err(Violation(PROTOCOL_ERROR));
    }
    let len = match usize::try_from(len) {
        Ok(len) if len <= max => len,
        _ => return Err(Violation(TOO_BIG)),
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
        PING => Incoming::Ping(unmasked()),
        PONG => match <[u8; 8]>::try_from(&*unmasked()) {
            Ok(seq) => Incoming::Acknowledged(u64::from_be_bytes(seq)),
            Err(_) => Incoming::Ignored,
        },
        CLOSE => match *unmasked() {
            [] => Incoming::Close(None),
            [hi, lo, ..] => Incoming::Close(Some(u16::from_be_bytes([hi, lo]))),
            [_] => return Err(Violation(PROTOCOL_ERROR)),
        },
        _ => Incoming::Ignored,
    };
    Ok(Some((frame, at + len)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client frame: masked, as browsers send them.
    fn client(first: u8, payload: &[u8]) -> Vec<u8> {
        let mask = [0x12, 0x34, 0x56, 0x78];
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

    #[test]
    fn header_lengths_follow_the_payload() {
        for (len, header) in [(0, 2), (125, 2), (126, 4), (65535, 4), (65536, 10)] {
            let mut out = Vec::new();
            put(&mut out, TEXT, &vec![b'a'; len]);
            assert_eq!(out.len(), header + len, "{len}-byte payload");
            assert_eq!(out[0], 0x81);
        }
        let mut out = Vec::new();
        put_close(&mut out, Some(1000));
        assert_eq!(out, [0x88, 2, 0x03, 0xE8]);
    }

    #[test]
    fn control_frames_are_read_once_whole() {
        let ping = client(0x80 | PING, b"hi");
        for cut in 0..ping.len() {
            assert_eq!(parse(&ping[..cut], 4096), Ok(None), "cut at {cut}");
        }
        let mut two = ping.clone();
        two.extend(client(0x80 | CLOSE, &1001u16.to_be_bytes()));
        let (first, used) = parse(&two, 4096).unwrap().unwrap();
        assert_eq!((first, used), (Incoming::Ping(b"hi".to_vec()), ping.len()));
        let (second, _) = parse(&two[used..], 4096).unwrap().unwrap();
        assert_eq!(second, Incoming::Close(Some(1001)));
        assert_eq!(
            parse(&client(0x80 | CLOSE, &[]), 4096).unwrap().unwrap().0,
            Incoming::Close(None)
        );
        assert_eq!(
            parse(&client(0x80 | PONG, b"x"), 4096).unwrap().unwrap().0,
            Incoming::Ignored
        );
        assert_eq!(
            parse(&client(0x80 | PONG, &300u64.to_be_bytes()), 4096)
                .unwrap()
                .unwrap()
                .0,
            Incoming::Acknowledged(300),
            "the pong to a ping that asked for an acknowledgement"
        );
        let text = client(0x80 | TEXT, &[b'a'; 300]);
        assert_eq!(
            parse(&text, 4096).unwrap().unwrap(),
            (Incoming::Ignored, text.len())
        );
    }

    #[test]
    fn broken_or_oversized_frames_are_violations() {
        let mut unmasked = client(0x80 | PING, b"");
        unmasked[1] &= 0x7F;
        assert_eq!(parse(&unmasked, 4096), Err(Violation(PROTOCOL_ERROR)));
        assert_eq!(
            parse(&client(0xC0 | TEXT, b""), 4096),
            Err(Violation(PROTOCOL_ERROR)),
            "RSV1"
        );
        assert_eq!(
            parse(&client(PING, b""), 4096),
            Err(Violation(PROTOCOL_ERROR)),
            "fragmented ping"
        );
        assert_eq!(
            parse(&client(0x83, b""), 4096),
            Err(Violation(PROTOCOL_ERROR)),
            "opcode 3"
        );
        assert_eq!(
            parse(&client(0x80 | CLOSE, b"x"), 4096),
            Err(Violation(PROTOCOL_ERROR))
        );
        assert_eq!(
            parse(&client(0x80 | TEXT, &[0; 200]), 100),
            Err(Violation(TOO_BIG))
        );
        let huge = [0x81, 0x80 | 127, 0xFF, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(parse(&huge, 4096), Err(Violation(TOO_BIG)));
    }
}

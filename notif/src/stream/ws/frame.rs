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
mod tests;

#[cfg(test)]
pub(super) mod properties;

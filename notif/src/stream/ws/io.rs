//! One WebSocket connection's socket and framing: notification frames encoded in place into
//! one output buffer, written out as the socket takes them, and the client's control frames
//! read back. [`Link`](super::link::Link) shares it between the connection's task and the
//! notify passes that write to it directly.
use std::{
    io,
    pin::Pin,
    task::{Context, Poll},
};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::frame::{self, Incoming, Violation};
use crate::{client_id::hex, hub::Outgoing, wire::encode_ws, ClientId, EVENT_BYE};

/// Largest message a client may send: it has nothing to say but control frames.
const MAX_CLIENT_MESSAGE: usize = 4096;
/// Bytes read per call. On the stack: an idle connection keeps no read buffer.
const READ_CHUNK: usize = 512;
/// Every this many frames of a tab, a ping follows the frame in the same write, asking the
/// client to acknowledge frames up to its number (the pong carries it back): a busy tab's
/// replay buffer then keeps at most about this many frames. An idle one is asked by the
/// heartbeat's ping (`Link::beat`). Which frames, varies by tab (its random id): tabs that got
/// the same notifications do not all answer at once.
const ACKNOWLEDGE_EVERY: u64 = 64;
/// Output capacity kept between writes: enough for typical frames without an allocation each;
/// a burst's larger buffer is given back.
const KEPT_OUT: usize = 1024;

/// What a notification frame starts with, before its id (`EVENT_NOTIF`'s frame: a unit test
/// compares the two encodings).
const PREFIX: &[u8] = b"{\"event\":\"notif\",\"id\":\"";
/// What follows a notification frame's id.
const DATA: &[u8] = b"\",\"data\":";

/// `n` in decimal, written at the end of `buf`.
fn decimal(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[at..];
        }
    }
}

/// What reading from the client came to.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Read {
    /// Answer with a pong carrying this payload.
    Ping(Vec<u8>),
    /// The client closes, with its status code if it gave one.
    Close(Option<u16>),
    /// The client has every frame up to this number.
    Acknowledged(u64),
    /// The client broke the protocol: close with this code.
    Violation(u16),
    /// The connection is gone (end of stream or an error).
    Gone,
}

/// The socket and what goes through it.
pub(super) struct Io<S> {
    /// `None` once the connection's task ended: the socket is closed.
    stream: Option<S>,
    /// The tab's id as it is written (big-endian), for the id of each notification frame. Not
    /// the frames' whole prefix, kept encoded: that would be a 64-byte allocation per tab.
    client: [u8; 16],
    /// Encoded frames; the first `sent` bytes are written.
    pub out: Vec<u8>,
    sent: u32,
    /// Part of a client frame. Boxed: it is rarely anything, and a `Vec` inline would take
    /// the link out of the 128-byte class (see the size test).
    #[expect(clippy::box_collection, reason = "8 bytes in every link instead of 24")]
    inbox: Option<Box<Vec<u8>>>,
    /// Something was written since the heartbeat last looked.
    pub wrote: bool,
    /// A bye or close is in `out`: nothing may follow it.
    pub ending: bool,
    failed: bool,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Io<S> {
    /// The socket of `client`, who already sent `read` (parsed before anything is read).
    pub fn new(stream: S, client: ClientId, read: &[u8]) -> Self {
        Io {
            stream: Some(stream),
            client: client.to_bytes(),
            out: Vec::new(),
            sent: 0,
            inbox: (!read.is_empty()).then(|| Box::new(read.to_vec())),
            wrote: false,
            ending: false,
            failed: false,
        }
    }

    /// Open, not ending, and with nothing of its own still to write: a frame may go out now.
    pub fn is_free(&self) -> bool {
        self.stream.is_some() && !self.ending && !self.failed && self.out.is_empty()
    }

    /// Closes the socket and gives back its buffers.
    pub fn close(&mut self) {
        self.stream = None;
        self.out = Vec::new();
        self.inbox = None;
    }

    /// Encodes a queued frame.
    pub fn queue(&mut self, frame: Outgoing) {
        let text = match frame {
            Outgoing::Notif { seq, data } => {
                // What `encode_ws` writes, in place: this runs once per delivery.
                let mut digits = [0u8; 20];
                let seq_digits = decimal(seq, &mut digits);
                let client = hex(&self.client);
                let len = PREFIX.len() + client.len() + 1 + seq_digits.len() + DATA.len() + data.len() + 1;
                frame::put_header(&mut self.out, frame::TEXT, len);
                for part in [PREFIX, &client, b".", seq_digits, DATA, data.as_bytes(), b"}"] {
                    self.out.extend_from_slice(part);
                }
                if seq.wrapping_add(u64::from(self.client[15])) % ACKNOWLEDGE_EVERY == 0 {
                    self.put_ping(Some(seq));
                }
                return;
            }
            Outgoing::Bye(reason) => {
                self.ending = true;
                let bye = serde_json::to_string(&crate::Bye { reason }).unwrap_or_default();
                encode_ws(EVENT_BYE, None, &bye)
            }
        };
        self.put(frame::TEXT, text.as_bytes());
    }

    pub fn put(&mut self, opcode: u8, payload: &[u8]) {
        frame::put(&mut self.out, opcode, payload);
    }

    /// A ping; with `acknowledge`, one asking the client to acknowledge the frames up to that
    /// number: its payload is the number (8 bytes, big-endian), which the pong carries back
    /// (`Incoming::Acknowledged`).
    pub fn put_ping(&mut self, acknowledge: Option<u64>) {
        match acknowledge {
            Some(seq) => self.put(frame::PING, &seq.to_be_bytes()),
            None => self.put(frame::PING, &[]),
        }
    }

    /// Ends the stream with a close frame; nothing follows it.
    pub fn put_close(&mut self, code: Option<u16>) {
        frame::put_close(&mut self.out, code);
        self.ending = true;
    }

    /// Writes whatever is encoded.
    pub fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.failed {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        let Some(stream) = self.stream.as_mut() else {
            return Poll::Ready(Err(io::ErrorKind::NotConnected.into()));
        };
        while (self.sent as usize) < self.out.len() {
            match Pin::new(&mut *stream).poll_write(cx, &self.out[self.sent as usize..]) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(0)) => return self.fail(io::ErrorKind::WriteZero.into()),
                Poll::Ready(Ok(n)) => {
                    // `out` holds at most a batch of capped frames: far under 4 GiB.
                    self.sent += n as u32;
                    self.wrote = true;
                }
                Poll::Ready(Err(e)) => return self.fail(e),
            }
        }
        self.out.clear();
        self.sent = 0;
        if self.out.capacity() > KEPT_OUT {
            self.out = Vec::new();
        }
        match Pin::new(stream).poll_flush(cx) {
            Poll::Ready(Err(e)) => self.fail(e),
            other => other,
        }
    }

    /// Gives the output buffer back if everything in it is written: a connection with nothing
    /// to send keeps none (the next frame allocates one again). Called after the hello and
    /// after an idle connection's ping, so an idle stream does not hold its hello's buffer.
    pub fn release(&mut self) {
        if self.out.is_empty() {
            self.out = Vec::new();
        }
    }

    fn fail(&mut self, e: io::Error) -> Poll<io::Result<()>> {
        self.failed = true;
        Poll::Ready(Err(e))
    }

    /// The next control frame the client sent.
    pub fn poll_read(&mut self, cx: &mut Context<'_>) -> Poll<Read> {
        loop {
            let inbox = self.inbox.as_deref().map_or(&[][..], Vec::as_slice);
            match frame::parse(inbox, MAX_CLIENT_MESSAGE) {
                Err(Violation(code)) => return Poll::Ready(Read::Violation(code)),
                Ok(Some((frame, used))) => {
                    if let Some(inbox) = &mut self.inbox {
                        inbox.drain(..used);
                        if inbox.is_empty() {
                            self.inbox = None;
                        }
                    }
                    match frame {
                        Incoming::Ping(payload) => return Poll::Ready(Read::Ping(payload)),
                        Incoming::Close(code) => return Poll::Ready(Read::Close(code)),
                        Incoming::Acknowledged(seq) => return Poll::Ready(Read::Acknowledged(seq)),
                        Incoming::Ignored => continue,
                    }
                }
                Ok(None) => {}
            }
            let Some(stream) = self.stream.as_mut() else {
                return Poll::Ready(Read::Gone);
            };
            let mut chunk = [0u8; READ_CHUNK];
            let mut buf = ReadBuf::new(&mut chunk);
            match Pin::new(stream).poll_read(cx, &mut buf) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(())) if !buf.filled().is_empty() => {
                    self.inbox.get_or_insert_default().extend_from_slice(buf.filled())
                }
                Poll::Ready(_) => return Poll::Ready(Read::Gone),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::EVENT_NOTIF;
    use std::sync::Arc;

    #[test]
    fn notification_frames_are_encode_ws_text_frames() {
        let client = ClientId::random();
        let (ours, _theirs) = tokio::io::duplex(64);
        let mut io = Io::new(ours, client, &[]);
        for (seq, data) in [(0, "{}".to_owned()), (u64::MAX, "x".repeat(200))] {
            io.out.clear();
            io.queue(Outgoing::Notif {
                seq,
                data: Arc::from(data.as_str()),
            });
            let text = encode_ws(EVENT_NOTIF, Some(format_args!("{client}.{seq}")), &data);
            let mut want = Vec::new();
            frame::put(&mut want, frame::TEXT, text.as_bytes());
            // Then, for some frames, a ping (the test below).
            assert_eq!(io.out[..want.len()], want, "seq {seq}");
        }
    }

    #[test]
    fn every_64th_frame_is_followed_by_a_ping_asking_for_an_acknowledgement() {
        let frame = |seq| Outgoing::Notif {
            seq,
            data: Arc::from("{}"),
        };
        let mut firsts = std::collections::HashSet::new();
        for _ in 0..8 {
            let (ours, _theirs) = tokio::io::duplex(64);
            let mut io = Io::new(ours, ClientId::random(), &[]);
            let mut asked = Vec::new();
            for seq in 1..=128 {
                io.out.clear();
                io.queue(frame(seq));
                let ping = [[0x89, 8].as_slice(), &seq.to_be_bytes()].concat();
                if io.out.ends_with(&ping) {
                    asked.push(seq);
                }
            }
            assert_eq!(asked.len(), 2, "{asked:?}");
            assert_eq!(asked[1], asked[0] + 64);
            firsts.insert(asked[0]);
        }
        assert!(firsts.len() > 1, "tabs are asked at different frames");
    }
}

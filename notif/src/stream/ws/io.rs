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

use super::frame::{self, Inbox, Incoming, OpCode, ProtocolError};
use crate::{hex::hex, hub::Outgoing, wire::encode_ws, TabId, EVENT_BYE};

/// Largest message a client may send, over all its fragments: it has nothing to say but control
/// frames.
pub(super) const MAX_CLIENT_MESSAGE: usize = 4096;
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

/// Why nothing more can be read from the client.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Unreadable {
    /// The client broke the protocol: close with the error's code.
    Broken(ProtocolError),
    /// The connection is gone (end of stream or an error).
    Gone,
}

/// The socket and what goes through it.
pub(super) struct Io<S> {
    /// `None` once the connection's task ended: the socket is closed.
    stream: Option<S>,
    /// The tab's id as it is written (big-endian), for the id of each notification frame. Not
    /// the frames' whole prefix, kept encoded: that would be a 64-byte allocation per tab.
    tab_id: [u8; 16],
    /// Encoded frames; the first `sent` bytes are written.
    pub out: Vec<u8>,
    sent: u32,
    /// Part of a client frame, or a client message in progress. Boxed: it is rarely anything,
    /// and inline it would take the link out of the 128-byte class (see the size test).
    inbox: Option<Box<Inbox>>,
    /// Something was written since the heartbeat last looked.
    pub wrote: bool,
    /// A bye or close is in `out`: nothing may follow it.
    pub ending: bool,
    failed: bool,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Io<S> {
    /// The socket of tab `tab_id`, whose peer already sent `read` (parsed before anything is read).
    pub fn new(stream: S, tab_id: TabId, read: &[u8]) -> Self {
        Io {
            stream: Some(stream),
            tab_id: tab_id.to_bytes(),
            out: Vec::new(),
            sent: 0,
            inbox: (!read.is_empty()).then(|| {
                let mut inbox = Box::new(Inbox::new(MAX_CLIENT_MESSAGE));
                inbox.extend(read);
                inbox
            }),
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
        match frame {
            Outgoing::Notif { seq, data, .. } => self.put_notif(seq, &data),
            Outgoing::Bye(reason) => {
                self.ending = true;
                let bye = serde_json::to_string(&crate::Bye { reason }).unwrap_or_default();
                self.put(OpCode::Text, encode_ws(EVENT_BYE, None, &bye).as_bytes());
            }
        }
    }

    /// Encodes notification `seq` of this tab (queued, or replayed on a resume).
    pub fn put_notif(&mut self, seq: u64, data: &str) {
        // What `encode_ws` writes, in place: this runs once per delivery.
        let mut digits = [0u8; 20];
        let seq_digits = decimal(seq, &mut digits);
        let tab_id = hex(&self.tab_id);
        let len = PREFIX.len() + tab_id.len() + 1 + seq_digits.len() + DATA.len() + data.len() + 1;
        frame::put_header(&mut self.out, OpCode::Text, len);
        for part in [PREFIX, &tab_id, b".", seq_digits, DATA, data.as_bytes(), b"}"] {
            self.out.extend_from_slice(part);
        }
        if seq.wrapping_add(u64::from(self.tab_id[15])) % ACKNOWLEDGE_EVERY == 0 {
            self.put_ping(Some(seq));
        }
    }

    pub fn put(&mut self, opcode: OpCode, payload: &[u8]) {
        frame::put(&mut self.out, opcode, payload);
    }

    /// A ping; with `acknowledge`, one asking the client to acknowledge the frames up to that
    /// number: its payload is the number (8 bytes, big-endian), which the pong carries back
    /// (`Incoming::Acknowledged`).
    pub fn put_ping(&mut self, acknowledge: Option<u64>) {
        match acknowledge {
            Some(seq) => self.put(OpCode::Ping, &seq.to_be_bytes()),
            None => self.put(OpCode::Ping, &[]),
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

    /// The next frame the client sent that needs an answer.
    pub fn poll_read(&mut self, cx: &mut Context<'_>) -> Poll<Result<Incoming, Unreadable>> {
        loop {
            if let Some(inbox) = self.inbox.as_deref_mut() {
                let next = inbox.next();
                if inbox.is_idle() {
                    self.inbox = None;
                }
                match next {
                    Ok(Some(frame)) => return Poll::Ready(Ok(frame)),
                    Ok(None) => {}
                    Err(error) => return Poll::Ready(Err(Unreadable::Broken(error))),
                }
            }
            let Some(stream) = self.stream.as_mut() else {
                return Poll::Ready(Err(Unreadable::Gone));
            };
            let mut chunk = [0u8; READ_CHUNK];
            let mut buf = ReadBuf::new(&mut chunk);
            match Pin::new(stream).poll_read(cx, &mut buf) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(())) if !buf.filled().is_empty() => self
                    .inbox
                    .get_or_insert_with(|| Box::new(Inbox::new(MAX_CLIENT_MESSAGE)))
                    .extend(buf.filled()),
                Poll::Ready(_) => return Poll::Ready(Err(Unreadable::Gone)),
            }
        }
    }
}

/// A client that sends `bytes` cut in pieces of the sizes in `cuts` (taken in turn), then ends;
/// what is written to it is dropped. The reader then sees the cuts a network could make.
#[cfg(any(test, feature = "fuzzing"))]
pub(super) struct Scripted {
    bytes: Vec<u8>,
    cuts: Vec<usize>,
    at: usize,
    turn: usize,
}

#[cfg(any(test, feature = "fuzzing"))]
impl Scripted {
    pub fn new(bytes: Vec<u8>, cuts: Vec<usize>) -> Self {
        Scripted {
            bytes,
            cuts,
            at: 0,
            turn: 0,
        }
    }
}

#[cfg(any(test, feature = "fuzzing"))]
impl AsyncRead for Scripted {
    fn poll_read(self: Pin<&mut Self>, _: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let cut = match this.cuts.get(this.turn % this.cuts.len().max(1)) {
            Some(&cut) => cut.max(1),
            None => usize::MAX,
        };
        this.turn += 1;
        let n = cut.min(buf.remaining()).min(this.bytes.len() - this.at);
        buf.put_slice(&this.bytes[this.at..this.at + n]);
        this.at += n;
        Poll::Ready(Ok(()))
    }
}

#[cfg(any(test, feature = "fuzzing"))]
impl AsyncWrite for Scripted {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod properties;

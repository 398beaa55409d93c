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
mod tests {
    use super::*;
    use crate::{hub::Stamp, EVENT_NOTIF};
    use std::sync::Arc;

    #[test]
    fn notification_frames_are_encode_ws_text_frames() {
        let tab_id = TabId::random();
        let (ours, _theirs) = tokio::io::duplex(64);
        let mut io = Io::new(ours, tab_id, &[]);
        for (seq, data) in [(0, "{}".to_owned()), (u64::MAX, "x".repeat(200))] {
            io.out.clear();
            io.queue(Outgoing::Notif {
                seq,
                data: Arc::from(data.as_str()),
                at: Stamp::now(),
            });
            let text = encode_ws(EVENT_NOTIF, Some(format_args!("{tab_id}.{seq}")), &data);
            let mut want = Vec::new();
            frame::put(&mut want, OpCode::Text, text.as_bytes());
            // Then, for some frames, a ping (the test below).
            assert_eq!(io.out[..want.len()], want, "seq {seq}");
        }
    }

    #[test]
    fn every_64th_frame_is_followed_by_a_ping_asking_for_an_acknowledgement() {
        let frame = |seq| Outgoing::Notif {
            seq,
            data: Arc::from("{}"),
            at: Stamp::now(),
        };
        let mut firsts = std::collections::HashSet::new();
        for _ in 0..8 {
            let (ours, _theirs) = tokio::io::duplex(64);
            let mut io = Io::new(ours, TabId::random(), &[]);
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

    /// Everything `io` reads until it can read no more.
    pub(super) fn read_to_end<S: AsyncRead + AsyncWrite + Unpin>(
        io: &mut Io<S>,
    ) -> (Vec<Incoming>, Unreadable) {
        let mut got = Vec::new();
        let mut cx = Context::from_waker(std::task::Waker::noop());
        loop {
            match io.poll_read(&mut cx) {
                Poll::Ready(Ok(frame)) => got.push(frame),
                Poll::Ready(Err(end)) => return (got, end),
                Poll::Pending => return (got, Unreadable::Gone),
            }
        }
    }

    #[test]
    fn an_idle_reader_keeps_no_inbox_and_one_inside_a_message_keeps_it() {
        use tokio::io::AsyncWriteExt;
        let mask = [0u8; 4];
        let frame =
            |first: u8, payload: &[u8]| [&[first, 0x80 | payload.len() as u8][..], &mask, payload].concat();
        let (ours, mut theirs) = tokio::io::duplex(4096);
        let mut io = Io::new(ours, TabId::random(), &frame(0x89, b"early"));
        assert!(io.inbox.is_some(), "what hyper read past the handshake");
        let mut cx = Context::from_waker(std::task::Waker::noop());
        assert_eq!(
            io.poll_read(&mut cx),
            Poll::Ready(Ok(Incoming::Ping(b"early".to_vec())))
        );
        assert!(io.inbox.is_none());

        let mut write = |bytes: Vec<u8>| {
            futures::executor::block_on(theirs.write_all(&bytes)).unwrap();
        };
        write(frame(0x01, b"a"));
        assert!(io.poll_read(&mut cx).is_pending());
        assert!(io.inbox.is_some(), "a text message is in progress");
        write(frame(0x80, b"b"));
        assert!(io.poll_read(&mut cx).is_pending());
        assert!(io.inbox.is_none(), "the message ended");
        write(frame(0x80, b"c"));
        assert_eq!(
            io.poll_read(&mut cx),
            Poll::Ready(Err(Unreadable::Broken(ProtocolError::UnexpectedContinuation)))
        );
    }

    #[test]
    fn a_fragmented_message_is_cut_once_it_passes_4_kib() {
        let mask = [0u8; 4];
        let fragment = |first: u8| [&[first, 0x80 | 126, 4, 0][..], &mask, &[b'a'; 1024]].concat();
        let mut bytes = fragment(0x01);
        for _ in 0..4095 {
            bytes.extend(fragment(0x00));
        }
        let total = bytes.len();
        let mut io = Io::new(Scripted::new(bytes, vec![READ_CHUNK]), TabId::random(), &[]);
        let (frames, end) = read_to_end(&mut io);
        assert!(frames.is_empty());
        assert_eq!(
            end,
            Unreadable::Broken(ProtocolError::MessageTooBig {
                bytes: 5 * 1024,
                max: MAX_CLIENT_MESSAGE
            })
        );
        let read = io.stream.as_ref().unwrap().at;
        assert!(
            read <= 4 * 1032 + READ_CHUNK,
            "{read} of {total} bytes read: 4 KiB and the chunk with the next header at most"
        );
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::{tests::read_to_end, *};

    proptest! {
        #[test]
        fn the_socket_reads_what_an_inbox_reads_whatever_the_cuts(
            bytes in frame::properties::frames(),
            cuts in prop::collection::vec(0usize..700, 0..6),
        ) {
            let mut inbox = Inbox::new(MAX_CLIENT_MESSAGE);
            inbox.extend(&bytes);
            let mut whole = Vec::new();
            let end = loop {
                match inbox.next() {
                    Ok(Some(frame)) => whole.push(frame),
                    Ok(None) => break Unreadable::Gone,
                    Err(error) => break Unreadable::Broken(error),
                }
            };
            let mut io = Io::new(Scripted::new(bytes, cuts), TabId::random(), &[]);
            prop_assert_eq!(read_to_end(&mut io), (whole, end));
        }
    }
}

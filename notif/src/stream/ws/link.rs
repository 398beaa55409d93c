//! One WebSocket connection, shared by its task and by every notify pass that queues a frame for
//! its tab. A notify pass writes straight to the socket when the socket is free and has nothing
//! pending; otherwise the frame stays queued and the connection's task writes it. Frames leave a
//! tab's queue only under this lock, and in order, so whoever writes keeps them in order.
use std::{
    io,
    pin::Pin,
    sync::{Mutex, MutexGuard, TryLockError},
    task::{Context, Poll, Waker},
};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::frame::{self, Incoming, Violation};
use crate::{
    client_id::hex,
    hub::{queue::Direct, Outgoing},
    stream::WRITE_BATCH,
    wire::encode_ws,
    ClientId, EVENT_BYE,
};

/// Largest message a client may send: it has nothing to say but control frames.
const MAX_CLIENT_MESSAGE: usize = 4096;
/// Bytes read per call. On the stack: an idle connection keeps no read buffer.
const READ_CHUNK: usize = 512;
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
    out: Vec<u8>,
    sent: u32,
    /// Part of a client frame. Boxed: it is rarely anything, and a `Vec` inline would take
    /// the link out of the 128-byte class (see the size test).
    #[expect(clippy::box_collection, reason = "8 bytes in every link instead of 24")]
    inbox: Option<Box<Vec<u8>>>,
    /// Something was written since the heartbeat last looked.
    wrote: bool,
    /// A bye or close is in `out`: nothing may follow it.
    pub ending: bool,
    failed: bool,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Io<S> {
    /// Encodes a queued frame.
    pub fn queue(&mut self, frame: Outgoing) {
        let text = match frame {
            Outgoing::Notif { seq, data } => {
                // What `encode_ws` writes, in place: this runs once per delivery.
                let mut digits = [0u8; 20];
                let seq = decimal(seq, &mut digits);
                let client = hex(&self.client);
                let len = PREFIX.len() + client.len() + 1 + seq.len() + DATA.len() + data.len() + 1;
                frame::put_header(&mut self.out, frame::TEXT, len);
                for part in [PREFIX, &client, b".", seq, DATA, data.as_bytes(), b"}"] {
                    self.out.extend_from_slice(part);
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

/// The connection, shared with the tab's queue (see [`Direct`]).
pub(super) struct Link<S> {
    io: Mutex<Io<S>>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Link<S> {
    pub fn new(stream: S, client: ClientId) -> Self {
        Link {
            io: Mutex::new(Io {
                stream: Some(stream),
                client: client.to_bytes(),
                out: Vec::new(),
                sent: 0,
                inbox: None,
                wrote: false,
                ending: false,
                failed: false,
            }),
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, Io<S>> {
        // Nothing panics under the lock; a poisoned one is still consistent.
        self.io.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Closes the socket. The link itself lives on with the tab's queue until the tab goes.
    pub fn shut(&self) {
        let mut io = self.lock();
        io.stream = None;
        io.out = Vec::new();
        io.inbox = None;
    }

    /// The socket if it is free to write to now: not locked by its task or another pass, open,
    /// and with nothing of its own still to write.
    fn free(&self) -> Option<MutexGuard<'_, Io<S>>> {
        let io = match self.io.try_lock() {
            Ok(io) => io,
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(TryLockError::WouldBlock) => return None,
        };
        let free = io.stream.is_some() && !io.ending && !io.failed && io.out.is_empty();
        free.then_some(io)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Direct<Outgoing> for Link<S> {
    fn drain(&self, pop: &mut dyn FnMut() -> Option<Outgoing>) -> bool {
        // If busy, the task is writing or reading: it takes the frame after.
        let Some(mut io) = self.free() else {
            return false;
        };
        let mut taken = 0;
        while taken < WRITE_BATCH && !io.ending {
            let Some(frame) = pop() else { break };
            io.queue(frame);
            taken += 1;
        }
        // A waker that does nothing: if the socket is full, the task is woken and writes the
        // rest with its own waker, which replaces this one.
        let written = matches!(
            io.poll_flush(&mut Context::from_waker(Waker::noop())),
            Poll::Ready(Ok(()))
        );
        written && !io.ending && taken < WRITE_BATCH
    }

    fn beat(&self) -> bool {
        // A connection that is busy, closing or still writing is not idle: no ping needed.
        let Some(mut io) = self.free() else {
            return true;
        };
        if std::mem::take(&mut io.wrote) {
            return true;
        }
        io.put(frame::PING, &[]);
        let written = matches!(
            io.poll_flush(&mut Context::from_waker(Waker::noop())),
            Poll::Ready(Ok(()))
        );
        // The ping itself is not traffic: an idle connection gets one at every tick.
        io.wrote = false;
        io.release();
        written
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ByeReason, EVENT_NOTIF};
    use std::sync::Arc;
    use tokio::io::AsyncReadExt;

    fn notif(seq: u64) -> Outgoing {
        Outgoing::Notif {
            seq,
            data: Arc::from("{}"),
        }
    }

    #[test]
    fn notification_frames_are_encode_ws_text_frames() {
        let client = ClientId::random();
        let (ours, _theirs) = tokio::io::duplex(64);
        let link = Link::new(ours, client);
        let mut io = link.lock();
        for (seq, data) in [(0, "{}".to_owned()), (u64::MAX, "x".repeat(200))] {
            io.out.clear();
            io.queue(Outgoing::Notif {
                seq,
                data: Arc::from(data.as_str()),
            });
            let text = encode_ws(EVENT_NOTIF, Some(format_args!("{client}.{seq}")), &data);
            let mut want = Vec::new();
            frame::put(&mut want, frame::TEXT, text.as_bytes());
            assert_eq!(io.out, want, "seq {seq}");
        }
    }

    #[tokio::test]
    async fn a_free_socket_takes_frames_directly_and_a_full_one_leaves_them_to_its_task() {
        let (ours, mut theirs) = tokio::io::duplex(128);
        let link = Link::new(ours, ClientId::random());
        let mut frames = vec![notif(1)].into_iter();
        assert!(
            link.drain(&mut || frames.next()),
            "written in full: nothing to wake"
        );
        let mut got = [0u8; 128];
        let n = theirs.read(&mut got).await.unwrap();
        assert_eq!(got[0], 0x81, "a final text frame");
        assert!(std::str::from_utf8(&got[2..n]).unwrap().contains(".1\""));

        // 128 bytes of room: a batch of frames does not fit, the rest waits in `out`.
        let mut frames = (2..6).map(notif);
        assert!(
            !link.drain(&mut || frames.next()),
            "the task must finish the write"
        );
        assert!(
            !link.drain(&mut || Some(notif(9))),
            "nothing jumps a pending write"
        );
        let mut all = Vec::new();
        let reader = tokio::spawn(async move {
            let mut buf = [0u8; 1024];
            while let Ok(n) = theirs.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                all.extend_from_slice(&buf[..n]);
            }
            all
        });
        std::future::poll_fn(|cx| link.lock().poll_flush(cx))
            .await
            .unwrap();
        link.shut();
        let all = String::from_utf8_lossy(&reader.await.unwrap()).into_owned();
        let seqs: Vec<usize> = (2..6).map(|s| all.find(&format!(".{s}\"")).unwrap()).collect();
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "in order: {all}");
        assert!(!all.contains(".9\""), "frame 9 stayed queued for the task");
    }

    #[tokio::test]
    async fn frames_leave_the_queue_only_under_the_connections_lock() {
        let (ours, _theirs) = tokio::io::duplex(4096);
        let link = Link::new(ours, ClientId::random());
        let mut left = vec![notif(2), notif(1)];
        let mut pop = || {
            // What keeps frames in order: nobody else can take or write one meanwhile.
            assert!(
                link.io.try_lock().is_err(),
                "popped without holding the connection"
            );
            left.pop()
        };
        assert!(link.drain(&mut pop));
        assert!(left.is_empty());

        let held = link.lock();
        let mut popped = false;
        assert!(!link.drain(&mut || {
            popped = true;
            None
        }));
        assert!(!popped, "a busy connection leaves its frames to its task");
        drop(held);
    }

    #[tokio::test]
    async fn a_bye_leaves_the_rest_to_the_task_and_nothing_follows_it() {
        let (ours, _theirs) = tokio::io::duplex(1024);
        let link = Link::new(ours, ClientId::random());
        let mut frames = vec![Outgoing::Bye(ByeReason::Disconnected), notif(1)].into_iter();
        assert!(!link.drain(&mut || frames.next()));
        assert!(frames.next().is_some(), "the frame after the bye was not taken");
        assert!(link.lock().ending);
        assert!(!link.drain(&mut || Some(notif(2))));
    }

    #[tokio::test]
    async fn a_beat_pings_an_idle_socket_every_time_and_one_that_wrote_not_at_all() {
        let (ours, mut theirs) = tokio::io::duplex(256);
        let link = Link::new(ours, ClientId::random());
        // What is written is in the pipe before the write returns: no waiting for it.
        fn written(read: impl std::future::Future<Output = io::Result<usize>>) -> usize {
            futures::FutureExt::now_or_never(read)
                .expect("bytes were written")
                .unwrap()
        }
        let mut got = [0u8; 256];
        for _ in 0..2 {
            assert!(link.beat(), "written at once");
            let n = written(theirs.read(&mut got));
            assert_eq!(&got[..n], [0x89, 0x00], "an empty ping, and only that");
            assert_eq!(link.lock().out.capacity(), 0, "an idle link keeps no buffer");
        }
        assert!(link.drain(&mut || None), "nothing to write");
        assert!(link.drain(&mut {
            let mut one = Some(notif(1));
            move || one.take()
        }));
        let n = written(theirs.read(&mut got));
        assert_eq!(got[0], 0x81);
        assert!(link.lock().out.capacity() > 0, "a busy link keeps its buffer");
        assert!(link.beat(), "traffic since the last beat: no ping");
        assert!(link.beat(), "now idle for a whole tick: a ping");
        let n2 = written(theirs.read(&mut got));
        assert_eq!(&got[..n2], [0x89, 0x00], "after the frame of {n} bytes");

        // A connection whose task is still writing a frame the socket could not take whole.
        link.lock().put(frame::TEXT, &[b'x'; 400]);
        let _ = link.lock().poll_flush(&mut Context::from_waker(Waker::noop()));
        assert!(!link.drain(&mut || None), "still writing its own");
        assert!(link.beat(), "a connection still writing is not idle");
        // The frame alone comes out: a text frame with a 16-bit length, then its 400 bytes.
        let mut rest = [0u8; 404];
        let (flushed, read) = tokio::join!(
            std::future::poll_fn(|cx| link.lock().poll_flush(cx)),
            theirs.read_exact(&mut rest)
        );
        flushed.unwrap();
        read.unwrap();
        assert_eq!(rest[..2], [0x81, 126]);
        assert!(
            futures::FutureExt::now_or_never(theirs.read(&mut got)).is_none(),
            "no ping after it"
        );
    }

    /// A link lives as long as its tab, one per idle stream: kept in jemalloc's 128-byte class
    /// (its `Arc` adds 16 bytes of counts).
    #[test]
    fn a_link_over_an_upgraded_connection_fits_128_bytes_with_its_counts() {
        type Upgraded = hyper_util::rt::TokioIo<hyper::upgrade::Upgraded>;
        let size = std::mem::size_of::<Link<Upgraded>>() + 16;
        assert!(size <= 128, "{size} bytes");
    }
}

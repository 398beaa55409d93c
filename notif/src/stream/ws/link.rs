//! One WebSocket connection, shared by its task and by every notify pass that queues a frame for
//! its tab. A notify pass writes straight to the socket when the socket is free and has nothing
//! pending; otherwise the frame stays queued and the connection's task writes it. Frames leave a
//! tab's queue only under this lock, and in order, so whoever writes keeps them in order.
use std::{
    sync::{Mutex, MutexGuard, TryLockError},
    task::{Context, Poll, Waker},
};

use tokio::io::{AsyncRead, AsyncWrite};

use super::{io::Io, open_tab::WRITE_BATCH};
use crate::{
    hub::{queue::Direct, Outgoing},
    TabId,
};

/// The connection, shared with the tab's queue (see [`Direct`]).
pub(super) struct Link<S> {
    io: Mutex<Io<S>>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Link<S> {
    /// A link to `stream`, whose client already sent `read`.
    pub fn new(stream: S, tab_id: TabId, read: &[u8]) -> Self {
        Link {
            io: Mutex::new(Io::new(stream, tab_id, read)),
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, Io<S>> {
        // Nothing panics under the lock; a poisoned one is still consistent.
        self.io.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Closes the socket. The link itself lives on with the tab's queue until the tab goes.
    pub fn shut(&self) {
        self.lock().close();
    }

    /// The socket if it is free to write to now: not locked by its task or another pass, open,
    /// and with nothing of its own still to write.
    fn free(&self) -> Option<MutexGuard<'_, Io<S>>> {
        let io = match self.io.try_lock() {
            Ok(io) => io,
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(TryLockError::WouldBlock) => return None,
        };
        io.is_free().then_some(io)
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

    fn beat(&self, acknowledge: Option<u64>) -> bool {
        // A connection that is busy, closing or still writing is not idle: no ping needed.
        let Some(mut io) = self.free() else {
            return true;
        };
        if std::mem::take(&mut io.wrote) {
            return true;
        }
        // A busy connection is asked with its frames instead (`Io::queue`).
        io.put_ping(acknowledge);
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
    use crate::stream::ws::frame;
    use crate::ByeReason;
    use std::{io, sync::Arc};
    use tokio::io::AsyncReadExt;

    fn notif(seq: u64) -> Outgoing {
        Outgoing::Notif {
            seq,
            data: Arc::from("{}"),
            at: crate::hub::Stamp::now(),
        }
    }

    #[tokio::test]
    async fn a_free_socket_takes_frames_directly_and_a_full_one_leaves_them_to_its_task() {
        let (ours, mut theirs) = tokio::io::duplex(128);
        let link = Link::new(ours, TabId::random(), &[]);
        let mut frames = vec![notif(1)].into_iter();
        assert!(
            link.drain(&mut || frames.next()),
            "written in full: nothing to wake"
        );
        let mut got = [0u8; 128];
        let n = theirs.read(&mut got).await.unwrap();
        assert_eq!(got[0], 0x81, "a final text frame");
        // Its payload alone: for some tab ids, a ping follows frame 1 (`Io::queue`).
        let text = &got[2..2 + usize::from(got[1])];
        assert!(n >= text.len() + 2);
        assert!(std::str::from_utf8(text).unwrap().contains(".1\""));

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
        let link = Link::new(ours, TabId::random(), &[]);
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
        let link = Link::new(ours, TabId::random(), &[]);
        let mut frames = vec![Outgoing::Bye(ByeReason::Disconnected), notif(1)].into_iter();
        assert!(!link.drain(&mut || frames.next()));
        assert!(frames.next().is_some(), "the frame after the bye was not taken");
        assert!(link.lock().ending);
        assert!(!link.drain(&mut || Some(notif(2))));
    }

    #[tokio::test]
    async fn a_beat_pings_an_idle_socket_every_time_and_one_that_wrote_not_at_all() {
        let (ours, mut theirs) = tokio::io::duplex(256);
        let link = Link::new(ours, TabId::random(), &[]);
        // What is written is in the pipe before the write returns: no waiting for it.
        fn written(read: impl std::future::Future<Output = io::Result<usize>>) -> usize {
            futures::FutureExt::now_or_never(read)
                .expect("bytes were written")
                .unwrap()
        }
        let mut got = [0u8; 256];
        for _ in 0..2 {
            assert!(link.beat(None), "written at once");
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
        assert!(link.beat(None), "traffic since the last beat: no ping");
        assert!(link.beat(None), "now idle for a whole tick: a ping");
        let n2 = written(theirs.read(&mut got));
        assert_eq!(&got[..n2], [0x89, 0x00], "after the frame of {n} bytes");
        assert!(link.drain(&mut {
            let mut one = Some(notif(2));
            move || one.take()
        }));
        written(theirs.read(&mut got));
        assert!(link.beat(Some(2)), "traffic since the last beat: no ping");
        assert!(
            futures::FutureExt::now_or_never(theirs.read(&mut got)).is_none(),
            "nothing written"
        );
        assert!(link.beat(Some(2)), "idle for a whole tick: a ping");
        let n3 = written(theirs.read(&mut got));
        assert_eq!(
            &got[..n3],
            [0x89, 0x08, 0, 0, 0, 0, 0, 0, 0, 2],
            "a ping carrying the number to acknowledge"
        );

        // A connection whose task is still writing a frame the socket could not take whole.
        link.lock().put(frame::OpCode::Text, &[b'x'; 400]);
        let _ = link.lock().poll_flush(&mut Context::from_waker(Waker::noop()));
        assert!(!link.drain(&mut || None), "still writing its own");
        assert!(link.beat(None), "a connection still writing is not idle");
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
    /// (its `Arc` adds 16 bytes of counts), over a TCP socket or any other upgraded connection.
    #[test]
    fn a_link_fits_128_bytes_with_its_counts() {
        type Upgraded = hyper_util::rt::TokioIo<hyper::upgrade::Upgraded>;
        for size in [
            std::mem::size_of::<Link<Upgraded>>(),
            std::mem::size_of::<Link<tokio::net::TcpStream>>(),
        ] {
            assert!(size + 16 <= 128, "{size} bytes and 16 of counts");
        }
    }
}

//! A tab's outgoing frames: a bounded queue with one producer side (the hub, under its lock)
//! and one consumer (the tab's connection). tokio's `mpsc` would do, but it allocates a block
//! of 32 slots per channel up front (~1.3 KiB per idle tab); this queue allocates nothing until
//! a frame is queued and gives back a burst's memory once drained.
//!
//! A connection may also take its frames itself, from whichever task queued them ([`Direct`]):
//! a notify pass then writes to the socket at once instead of waking one task per tab.
use std::{
    collections::VecDeque,
    future::poll_fn,
    sync::{Arc, Mutex, MutexGuard, OnceLock},
    task::{Context, Poll, Waker},
};

/// Capacity kept by an emptied queue; a larger one (left by a burst) is released.
const KEPT_CAPACITY: usize = 8;

struct Shared<T> {
    state: Mutex<QueueState<T>>,
    direct: OnceLock<Arc<dyn Direct<T>>>,
}

/// A connection that writes its queued frames from the task that queued them.
pub(crate) trait Direct<T>: Send + Sync {
    /// Takes frames with `pop` and writes them out. False when the connection's own task must
    /// carry on (the socket is busy or full, the stream ends, or `pop` may hold more): it is woken.
    fn drain(&self, pop: &mut dyn FnMut() -> Option<T>) -> bool;

    /// A heartbeat: writes a ping unless something was written since the last one; with
    /// `acknowledge`, a ping asking the client to acknowledge every frame up to that number
    /// (all of them written before it). False when the connection's own task must finish the
    /// write: it is woken.
    fn beat(&self, acknowledge: Option<u64>) -> bool;
}

struct QueueState<T> {
    frames: VecDeque<T>,
    /// Either side went away.
    closed: bool,
    /// The connection was told to look at the queue since it last looked (frames a [`Direct`]
    /// connection took meanwhile leave it set: the next look finds the queue empty).
    notified: bool,
    /// The connection's task, waiting for `notified`. Kept here, under the queue's lock, rather
    /// than in the waiting future: that future lives in every idle connection's task.
    waker: Option<Waker>,
}

impl<T> Shared<T> {
    fn lock(&self) -> MutexGuard<'_, QueueState<T>> {
        // Nothing can panic while the lock is held; a poisoned queue is still consistent.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn close(&self) {
        self.set_and_wake(|state| state.closed = true);
    }

    /// Tells the connection to look at the queue: wakes it if it waits, else it looks next time.
    fn notify(&self) {
        self.set_and_wake(|state| state.notified = true);
    }

    /// Changes the state under the lock, then wakes the waiting connection outside it.
    fn set_and_wake(&self, change: impl FnOnce(&mut QueueState<T>)) {
        let waker = {
            let mut state = self.lock();
            change(&mut state);
            state.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    fn pop(&self) -> Result<T, TryRecvError> {
        let mut state = self.lock();
        match state.frames.pop_front() {
            Some(frame) => {
                if state.frames.is_empty() && state.frames.capacity() > KEPT_CAPACITY {
                    state.frames.shrink_to(KEPT_CAPACITY);
                }
                Ok(frame)
            }
            None if state.closed => Err(TryRecvError::Closed),
            None => Err(TryRecvError::Empty),
        }
    }
}

/// Why a frame was not queued.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum TrySendError {
    Full,
    Closed,
}

/// Why no frame was taken.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum TryRecvError {
    Empty,
    Closed,
}

/// The hub's side.
pub(crate) struct Sender<T> {
    shared: Arc<Shared<T>>,
    cap: usize,
}

/// The connection's side.
pub(crate) struct Receiver<T> {
    shared: Arc<Shared<T>>,
}

/// A queue holding at most `cap` frames.
pub(crate) fn channel<T>(cap: usize) -> (Sender<T>, Receiver<T>) {
    let shared = Arc::new(Shared {
        state: Mutex::new(QueueState {
            frames: VecDeque::new(),
            closed: false,
            notified: false,
            waker: None,
        }),
        direct: OnceLock::new(),
    });
    (
        Sender {
            shared: shared.clone(),
            cap: cap.max(1),
        },
        Receiver { shared },
    )
}

impl<T> Sender<T> {
    #[cfg(test)]
    pub fn try_send(&self, frame: T) -> Result<(), TrySendError> {
        self.push(frame)?;
        self.shared.notify();
        Ok(())
    }

    /// Queues `frame` without waking the connection. Returns a [`Wake`] if the queue was
    /// empty: [`Wake::finish`] then writes it (and whatever joins it meanwhile) or wakes the
    /// connection. If frames were already waiting, whoever sends them sends this one too: under
    /// load, a tab's frames pile up and go out in one write.
    pub fn push_quiet(&self, frame: T) -> Result<Option<Wake<T>>, TrySendError> {
        let was_empty = self.push(frame)?;
        Ok(was_empty.then(|| Wake {
            shared: self.shared.clone(),
        }))
    }

    /// The connection's heartbeat, if it writes directly (see [`Beat`]), asking the client to
    /// acknowledge the frames numbered up to `acknowledge`, all queued already.
    pub fn beat(&self, acknowledge: Option<u64>) -> Option<Beat<T>> {
        self.shared.direct.get().is_some().then(|| Beat {
            shared: self.shared.clone(),
            acknowledge,
        })
    }

    /// Queues `frame` as the last one, past the cap if need be (one slot more: a `bye` must
    /// reach a tab cut off for a full queue), then closes the queue and wakes the connection.
    pub fn push_last(&self, frame: T) {
        self.shared.set_and_wake(|state| {
            if !state.closed {
                state.frames.push_back(frame);
                state.closed = true;
            }
            state.notified = true;
        });
    }

    /// Queues `frame`; true if it is the only one.
    fn push(&self, frame: T) -> Result<bool, TrySendError> {
        let mut state = self.shared.lock();
        if state.closed {
            return Err(TrySendError::Closed);
        }
        if state.frames.len() >= self.cap {
            return Err(TrySendError::Full);
        }
        state.frames.push_back(frame);
        Ok(state.frames.len() == 1)
    }
}

/// A frame queued by [`Sender::push_quiet`] that still has to be sent on its way.
pub(crate) struct Wake<T> {
    shared: Arc<Shared<T>>,
}

impl<T> Wake<T> {
    /// Writes the queued frames from this task if the connection allows it, else wakes it.
    pub fn finish(self) {
        if let Some(direct) = self.shared.direct.get() {
            if direct.drain(&mut || self.shared.pop().ok()) {
                return;
            }
        }
        self.shared.notify();
    }

    /// [`finish`](Self::finish), showing `seen` each frame taken to be written, before it is.
    /// Another function rather than a no-op `seen` in `finish`: most wakes go without.
    pub fn finish_seen(self, seen: &mut dyn FnMut(&T)) {
        if let Some(direct) = self.shared.direct.get() {
            let mut pop = || {
                let frame = self.shared.pop().ok()?;
                seen(&frame);
                Some(frame)
            };
            if direct.drain(&mut pop) {
                return;
            }
        }
        self.shared.notify();
    }
}

/// A direct connection's heartbeat, held by the hub's clock outside the hub's lock.
pub(crate) struct Beat<T> {
    shared: Arc<Shared<T>>,
    acknowledge: Option<u64>,
}

impl<T> Beat<T> {
    /// Pings the connection from this task, or wakes its task to finish the write.
    pub fn send(self) {
        let Some(direct) = self.shared.direct.get() else {
            return;
        };
        // A ping asking for frames up to a number must follow them on the socket: the frames
        // still queued go first, and if they cannot all go now there is no ping this time.
        let ready = self.acknowledge.is_none() || direct.drain(&mut || self.shared.pop().ok());
        if !ready || !direct.beat(self.acknowledge) {
            self.shared.notify();
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        self.shared.close();
    }
}

impl<T> Receiver<T> {
    /// The next frame, waiting for one; `None` once the sender is gone and the queue drained.
    pub async fn recv(&mut self) -> Option<T> {
        loop {
            match self.try_recv() {
                Ok(frame) => return Some(frame),
                Err(TryRecvError::Closed) => return None,
                Err(TryRecvError::Empty) => self.ready().await,
            }
        }
    }

    /// A frame if one is queued now.
    pub fn try_recv(&mut self) -> Result<T, TryRecvError> {
        self.shared.pop()
    }

    /// Resolves once a frame is queued or the sender is gone (frames may have been taken
    /// meanwhile by a [`Direct`] connection: `try_recv` says what is left).
    pub async fn ready(&self) {
        poll_fn(|cx| self.poll_ready(cx)).await
    }

    /// [`ready`](Self::ready) as a poll function: a connection's task waits with it without
    /// keeping a waiter in its future.
    pub fn poll_ready(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut state = self.shared.lock();
        if !state.frames.is_empty() || state.closed || state.notified {
            state.notified = false;
            return Poll::Ready(());
        }
        // Checked and registered under the queue's lock: a push and wake cannot fall between.
        match &mut state.waker {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            slot => *slot = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    /// From now on, whoever queues a frame with [`Sender::push_quiet`] lets `direct` write it.
    pub fn set_direct(&self, direct: Arc<dyn Direct<T>>) {
        let _ = self.shared.direct.set(direct);
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        self.shared.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_arrive_in_order_then_none_after_the_sender_is_gone() {
        let (tx, mut rx) = channel(3);
        tx.try_send(1).unwrap();
        tx.try_send(2).unwrap();
        tx.try_send(3).unwrap();
        assert_eq!(tx.try_send(4), Err(TrySendError::Full), "bounded");
        assert_eq!(rx.recv().await, Some(1));
        tx.try_send(4).unwrap();
        drop(tx);
        assert_eq!(rx.recv().await, Some(2));
        assert_eq!(rx.try_recv(), Ok(3));
        assert_eq!(rx.recv().await, Some(4));
        assert_eq!(rx.recv().await, None);
    }

    #[test]
    fn a_wake_before_the_wait_is_kept_once_and_a_look_at_the_queue_uses_it() {
        use futures::FutureExt;
        let (tx, mut rx) = channel(4);
        assert_eq!(rx.ready().now_or_never(), None, "nothing queued: waits");
        // Queued and woken with nobody waiting, then taken (as a direct write would): the wake
        // is kept, so the next wait returns at once, and only that one.
        tx.push_quiet(1)
            .unwrap()
            .expect("the first frame asks for a wake")
            .finish();
        assert_eq!(rx.try_recv(), Ok(1));
        assert_eq!(rx.ready().now_or_never(), Some(()));
        assert_eq!(rx.ready().now_or_never(), None);
        // A wait that finds frames clears the kept wake with it.
        tx.try_send(2).unwrap();
        assert_eq!(rx.ready().now_or_never(), Some(()));
        assert_eq!(rx.try_recv(), Ok(2));
        assert_eq!(rx.ready().now_or_never(), None);
        drop(tx);
        assert_eq!(
            rx.ready().now_or_never(),
            Some(()),
            "a closed queue is ready for good"
        );
        assert_eq!(rx.ready().now_or_never(), Some(()));
    }

    /// A connection that records what it was asked to write, in order.
    #[derive(Default)]
    struct Recording(Mutex<Vec<String>>);

    impl Direct<u64> for Recording {
        fn drain(&self, pop: &mut dyn FnMut() -> Option<u64>) -> bool {
            while let Some(frame) = pop() {
                self.0.lock().unwrap().push(format!("frame {frame}"));
            }
            true
        }
        fn beat(&self, acknowledge: Option<u64>) -> bool {
            self.0.lock().unwrap().push(format!("ping {acknowledge:?}"));
            true
        }
    }

    #[test]
    fn a_ping_asking_for_an_acknowledgement_follows_the_frames_still_queued() {
        let (tx, rx) = channel(8);
        let recording = Arc::new(Recording::default());
        rx.set_direct(recording.clone());
        // Queued by a pass whose writes have not run yet.
        let pending = tx.push_quiet(1).unwrap();
        tx.push_quiet(2).unwrap();
        tx.beat(Some(2)).expect("a direct connection beats").send();
        tx.beat(None).unwrap().send();
        assert_eq!(
            *recording.0.lock().unwrap(),
            ["frame 1", "frame 2", "ping Some(2)", "ping None"]
        );
        pending.expect("the first frame asked for a wake").finish();
        assert_eq!(recording.0.lock().unwrap().len(), 4, "nothing left to write");
    }

    #[tokio::test]
    async fn a_waiting_receiver_wakes_and_a_dropped_receiver_closes() {
        let (tx, mut rx) = channel(2);
        let waiting = tokio::spawn(async move { (rx.recv().await, rx) });
        tokio::task::yield_now().await;
        tx.try_send(7).unwrap();
        let (got, rx) = waiting.await.unwrap();
        assert_eq!(got, Some(7));
        drop(rx);
        assert_eq!(tx.try_send(8), Err(TrySendError::Closed));
    }
}

//! Frames a notify pass queued, sent on their way once the hub's lock is released: writes do not
//! hold up the hub. A small pass is written before `notify` returns. Larger ones join a backlog
//! that at most one task per runtime worker works through, oldest pass first. Under load, passes
//! wait there while frames pile up in the tabs' queues, and whoever reaches a tab writes
//! everything queued for it in one go (a tab with frames already waiting gets no second
//! [`Wake`]): the busier the server, the more frames per write.
//!
//! One write in 16 of a pass is timed for `notif_notify_to_write_seconds` (`metrics/latency.rs`):
//! from the notify of its oldest frame to the write's return.
use std::{
    collections::VecDeque,
    sync::{Arc, Mutex, MutexGuard},
};

use super::{
    metrics::{Latency, Sampler, Stamp},
    queue::Wake,
    state::{Outgoing, Wakes},
};

/// Passes up to this many frames write them before `notify` returns.
const WRITTEN_INLINE: usize = 32;

#[derive(Default)]
pub(crate) struct Writes {
    backlog: Arc<Mutex<Backlog>>,
    latency: Latency,
}

#[derive(Default)]
struct Backlog {
    /// Each with which of its writes are timed.
    passes: VecDeque<(Wakes, Sampler)>,
    /// Tasks working through `passes`.
    writers: usize,
}

fn lock_backlog(backlog: &Mutex<Backlog>) -> MutexGuard<'_, Backlog> {
    backlog.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Sends one wake on its way; if `timed`, counts the time since its oldest frame was notified.
fn finish(wake: Wake<Outgoing>, timed: bool, latency: &Latency) {
    if !timed {
        return wake.finish();
    }
    let mut oldest = None;
    wake.finish_seen(&mut |frame| {
        oldest = oldest.or(frame.stamp());
    });
    // Nothing taken: the connection's task takes the frames, and times them (`stream/mod.rs`).
    if let Some(at) = oldest {
        latency.observe(at);
    }
}

fn finish_all(wakes: Wakes, sampler: Sampler, latency: &Latency) {
    for (index, wake) in wakes.into_iter().enumerate() {
        finish(wake, sampler.samples(index), latency);
    }
}

impl Writes {
    /// Counting the time from notify to write in `latency`.
    pub fn new(latency: Latency) -> Self {
        Writes {
            backlog: Default::default(),
            latency,
        }
    }

    /// Writes a pass's frames (or wakes their connections), now or soon; `at` is when the pass
    /// was notified.
    pub fn send(&self, wakes: Wakes, at: Stamp) {
        let sampler = Sampler::new(at);
        if wakes.len() <= WRITTEN_INLINE {
            return finish_all(wakes, sampler, &self.latency);
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return finish_all(wakes, sampler, &self.latency);
        };
        let mut backlog = lock_backlog(&self.backlog);
        backlog.passes.push_back((wakes, sampler));
        if backlog.writers < runtime.metrics().num_workers() {
            backlog.writers += 1;
            drop(backlog);
            // The guard goes into the task's future: dropped unpolled, it still gives its place back.
            runtime.spawn(write(Writer {
                backlog: self.backlog.clone(),
                latency: self.latency.clone(),
                finished: false,
            }));
        }
    }
}

/// A writer task's place: one dropped unfinished (its runtime shut down) leaves room for another.
struct Writer {
    backlog: Arc<Mutex<Backlog>>,
    latency: Latency,
    finished: bool,
}

impl Drop for Writer {
    fn drop(&mut self) {
        if !self.finished {
            lock_backlog(&self.backlog).writers -= 1;
        }
    }
}

/// Works through the backlog until it is empty.
async fn write(mut writer: Writer) {
    loop {
        let (pass, sampler) = {
            let mut backlog = lock_backlog(&writer.backlog);
            match backlog.passes.pop_front() {
                Some(pass) => pass,
                None => {
                    // Under the lock that queues passes: none is left without a writer.
                    backlog.writers -= 1;
                    backlog.passes.shrink_to(4);
                    writer.finished = true;
                    return;
                }
            }
        };
        for (index, wake) in pass.into_iter().enumerate() {
            finish(wake, sampler.samples(index), &writer.latency);
            // Thousands of sockets take a while: let other tasks in meanwhile.
            tokio::task::consume_budget().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::hub::{queue, Outgoing};

    /// `n` tabs' queues, each with one frame just pushed: their receivers and the pass's wakes.
    fn pass(
        n: usize,
    ) -> (
        Vec<queue::Sender<Outgoing>>,
        Vec<queue::Receiver<Outgoing>>,
        Wakes,
    ) {
        let (senders, receivers): (Vec<_>, Vec<_>) = (0..n).map(|_| queue::channel(4)).unzip();
        let frame = || Outgoing::Notif {
            seq: 1,
            data: Arc::from("{}"),
            at: Stamp::now(),
        };
        let wakes = senders
            .iter()
            .map(|tx| {
                tx.push_quiet(frame())
                    .unwrap()
                    .expect("an empty queue gives a wake")
            })
            .collect();
        (senders, receivers, wakes)
    }

    fn writers(writes: &Writes) -> usize {
        lock_backlog(&writes.backlog).writers
    }

    #[tokio::test]
    async fn a_small_pass_is_sent_at_once_a_large_one_by_a_writer_that_stops_when_done() {
        let writes = Writes::default();
        let (_tx, receivers, wakes) = pass(WRITTEN_INLINE);
        writes.send(wakes, Stamp::now());
        assert_eq!(writers(&writes), 0, "no task for a small pass");
        for rx in &receivers {
            // Woken already: resolves without anything else running.
            futures::FutureExt::now_or_never(rx.ready()).expect("woken before send returned");
        }

        let (_tx, receivers, wakes) = pass(WRITTEN_INLINE + 1);
        writes.send(wakes, Stamp::now());
        assert_eq!(writers(&writes), 1, "one writer on a one-worker runtime");
        let (_tx2, receivers2, wakes2) = pass(WRITTEN_INLINE + 1);
        writes.send(wakes2, Stamp::now());
        assert_eq!(writers(&writes), 1, "the second pass waits for the same writer");
        for rx in receivers.iter().chain(&receivers2) {
            tokio::time::timeout(std::time::Duration::from_secs(5), rx.ready())
                .await
                .expect("the writer woke every tab");
        }
        while writers(&writes) > 0 {
            tokio::task::yield_now().await;
        }
        assert!(lock_backlog(&writes.backlog).passes.is_empty());
    }

    #[test]
    fn a_writer_dropped_with_its_runtime_leaves_room_for_the_next() {
        let writes = Writes::default();
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let (_tx, _rx, wakes) = pass(WRITTEN_INLINE + 1);
        runtime.block_on(async { writes.send(wakes, Stamp::now()) });
        assert_eq!(writers(&writes), 1);
        drop(runtime);
        assert_eq!(writers(&writes), 0, "the unfinished writer gave its place back");

        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let (_tx, receivers, wakes) = pass(WRITTEN_INLINE + 1);
        runtime.block_on(async {
            writes.send(wakes, Stamp::now());
            for rx in &receivers {
                rx.ready().await;
            }
        });
    }

    /// A connection that takes every frame at once.
    struct Taking;

    impl queue::Direct<Outgoing> for Taking {
        fn drain(&self, pop: &mut dyn FnMut() -> Option<Outgoing>) -> bool {
            while pop().is_some() {}
            true
        }
        fn beat(&self, _: Option<u64>) -> bool {
            true
        }
    }

    #[test]
    fn one_write_in_sixteen_of_a_pass_is_timed() {
        let latency = Latency::default();
        let writes = Writes::new(latency.clone());
        let (_tx, receivers, wakes) = pass(WRITTEN_INLINE);
        for rx in &receivers {
            rx.set_direct(Arc::new(Taking));
        }
        writes.send(wakes, Stamp::now());
        assert_eq!(latency.count(), 2, "32 writes");
    }
}

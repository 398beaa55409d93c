//! Frames a notify pass queued, sent on their way once the hub's lock is released: writes do not
//! hold up the hub. A small pass is written before `notify` returns. Larger ones join a backlog
//! that at most one task per runtime worker works through, oldest pass first. Under load, passes
//! wait there while frames pile up in the tabs' queues, and whoever reaches a tab writes
//! everything queued for it in one go (a tab with frames already waiting gets no second
//! [`Wake`]): the busier the server, the more frames per write.
use std::{
    collections::VecDeque,
    sync::{Arc, Mutex, MutexGuard},
};

use super::{queue::Wake, state::Wakes};

/// Passes up to this many frames write them before `notify` returns.
const WRITTEN_INLINE: usize = 32;

#[derive(Default)]
pub(crate) struct Writes {
    backlog: Arc<Mutex<Backlog>>,
}

#[derive(Default)]
struct Backlog {
    passes: VecDeque<Wakes>,
    /// Tasks working through `passes`.
    writers: usize,
}

fn lock(backlog: &Mutex<Backlog>) -> MutexGuard<'_, Backlog> {
    backlog.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Writes {
    /// Writes a pass's frames (or wakes their connections), now or soon.
    pub fn send(&self, wakes: Wakes) {
        if wakes.len() <= WRITTEN_INLINE {
            return wakes.into_iter().for_each(Wake::finish);
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return wakes.into_iter().for_each(Wake::finish);
        };
        let mut backlog = lock(&self.backlog);
        backlog.passes.push_back(wakes);
        if backlog.writers < runtime.metrics().num_workers() {
            backlog.writers += 1;
            drop(backlog);
            // The guard goes into the task's future: dropped unpolled, it still gives its place back.
            runtime.spawn(write(Writer {
                backlog: self.backlog.clone(),
                finished: false,
            }));
        }
    }
}

/// A writer task's place: one dropped unfinished (its runtime shut down) leaves room for another.
struct Writer {
    backlog: Arc<Mutex<Backlog>>,
    finished: bool,
}

impl Drop for Writer {
    fn drop(&mut self) {
        if !self.finished {
            lock(&self.backlog).writers -= 1;
        }
    }
}

/// Works through the backlog until it is empty.
async fn write(mut writer: Writer) {
    loop {
        let pass = {
            let mut backlog = lock(&writer.backlog);
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
        for wake in pass {
            wake.finish();
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
        lock(&writes.backlog).writers
    }

    #[tokio::test]
    async fn a_small_pass_is_sent_at_once_a_large_one_by_a_writer_that_stops_when_done() {
        let writes = Writes::default();
        let (_tx, receivers, wakes) = pass(WRITTEN_INLINE);
        writes.send(wakes);
        assert_eq!(writers(&writes), 0, "no task for a small pass");
        for rx in &receivers {
            // Woken already: resolves without anything else running.
            futures::FutureExt::now_or_never(rx.ready()).expect("woken before send returned");
        }

        let (_tx, receivers, wakes) = pass(WRITTEN_INLINE + 1);
        writes.send(wakes);
        assert_eq!(writers(&writes), 1, "one writer on a one-worker runtime");
        let (_tx2, receivers2, wakes2) = pass(WRITTEN_INLINE + 1);
        writes.send(wakes2);
        assert_eq!(writers(&writes), 1, "the second pass waits for the same writer");
        for rx in receivers.iter().chain(&receivers2) {
            tokio::time::timeout(std::time::Duration::from_secs(5), rx.ready())
                .await
                .expect("the writer woke every tab");
        }
        while writers(&writes) > 0 {
            tokio::task::yield_now().await;
        }
        assert!(lock(&writes.backlog).passes.is_empty());
    }

    #[test]
    fn a_writer_dropped_with_its_runtime_leaves_room_for_the_next() {
        let writes = Writes::default();
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let (_tx, _rx, wakes) = pass(WRITTEN_INLINE + 1);
        runtime.block_on(async { writes.send(wakes) });
        assert_eq!(writers(&writes), 1);
        drop(runtime);
        assert_eq!(writers(&writes), 0, "the unfinished writer gave its place back");

        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let (_tx, receivers, wakes) = pass(WRITTEN_INLINE + 1);
        runtime.block_on(async {
            writes.send(wakes);
            for rx in &receivers {
                rx.ready().await;
            }
        });
    }
}

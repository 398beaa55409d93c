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
        let runtime = match tokio::runtime::Handle::try_current() {
            Ok(runtime) if wakes.len() > WRITTEN_INLINE => runtime,
            _ => return wakes.into_iter().for_each(Wake::finish),
        };
        let mut backlog = lock(&self.backlog);
        backlog.passes.push_back(wakes);
        if backlog.writers < runtime.metrics().num_workers() {
            backlog.writers += 1;
            drop(backlog);
            runtime.spawn(write(self.backlog.clone()));
        }
    }
}

/// Works through the backlog until it is empty.
async fn write(backlog: Arc<Mutex<Backlog>>) {
    /// A writer dropped unfinished (its runtime shut down) leaves room for another.
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
    let mut writer = Writer {
        backlog,
        finished: false,
    };
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

//! One heartbeat clock per hub. Every WebSocket connection waits on it instead of owning a
//! timer: an idle connection then holds no timer entry of its own (one `Notified` in its task),
//! and a busy connection's loop polls no timer after each write.
use std::{
    sync::{
        atomic::{AtomicUsize, Ordering::Relaxed},
        Arc, OnceLock,
    },
    time::Duration,
};

use tokio::sync::{futures::Notified, Notify};

/// Waiters are spread over this many `Notify`s: polling a pending `Notified` takes its
/// `Notify`'s lock, and every connection polls its own after each write, so one lock for all
/// would be a point of contention on a multi-core server.
const SHARDS: usize = 16;

/// The hub's clock: ticks every `period` while the hub lives.
pub(crate) struct Heartbeat {
    period: Duration,
    /// The clock task holds these weakly: dropping the hub stops it.
    ticks: Arc<[Notify]>,
    next_shard: AtomicUsize,
    started: OnceLock<()>,
}

impl Heartbeat {
    pub fn new(period: Duration) -> Self {
        Heartbeat {
            period: period.max(Duration::from_millis(1)),
            ticks: (0..SHARDS).map(|_| Notify::new()).collect(),
            next_shard: AtomicUsize::new(0),
            started: OnceLock::new(),
        }
    }

    /// Resolves at the next tick. Counts as waiting from the moment it is created, so a tick
    /// between creation and the first poll is not missed. Starts the clock on first use (on the
    /// caller's runtime).
    pub fn next(&self) -> Notified<'_> {
        self.started.get_or_init(|| {
            let (ticks, period) = (Arc::downgrade(&self.ticks), self.period);
            tokio::spawn(async move {
                let mut clock = tokio::time::interval(period);
                clock.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                clock.tick().await;
                loop {
                    clock.tick().await;
                    let Some(ticks) = ticks.upgrade() else { break };
                    ticks.iter().for_each(Notify::notify_waiters);
                }
            });
        });
        let shard = self.next_shard.fetch_add(1, Relaxed) % SHARDS;
        self.ticks[shard].notified()
    }
}

#[cfg(test)]
mod tests {
    use std::pin::pin;

    use tokio::time::{sleep, timeout};

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn every_waiter_wakes_at_each_tick_and_the_clock_stops_with_its_owner() {
        let beat = Heartbeat::new(Duration::from_secs(15));
        // More waiters than shards: every shard is woken.
        let waiters: Vec<_> = (0..SHARDS + 2).map(|_| beat.next()).collect();
        // Created before the tick at 15 s, polled after it: still woken.
        sleep(Duration::from_secs(16)).await;
        for waiter in waiters {
            waiter.await;
        }
        {
            let mut third = pin!(beat.next());
            assert!(
                timeout(Duration::from_secs(13), third.as_mut()).await.is_err(),
                "no tick before 30 s"
            );
            assert!(
                timeout(Duration::from_secs(2), third).await.is_ok(),
                "a tick at 30 s"
            );
        }

        let metrics = tokio::runtime::Handle::current().metrics();
        assert_eq!(metrics.num_alive_tasks(), 1, "the clock runs");
        drop(beat);
        sleep(Duration::from_secs(60)).await;
        assert_eq!(metrics.num_alive_tasks(), 0, "no clock once the hub is gone");
    }
}

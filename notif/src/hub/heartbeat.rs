//! One heartbeat clock per hub. Every WebSocket connection waits on it instead of owning a
//! timer: an idle connection then holds no timer entry of its own (one `Notified` in its task),
//! and a busy connection's loop polls no timer after each write.
use std::{
    sync::{Arc, OnceLock, Weak},
    time::Duration,
};

use tokio::sync::{futures::Notified, Notify};

/// The hub's clock: ticks every `period` while any hub handle lives.
pub(crate) struct Heartbeat {
    period: Duration,
    tick: Arc<Notify>,
    started: OnceLock<()>,
}

impl Heartbeat {
    pub fn new(period: Duration) -> Self {
        Heartbeat {
            period: period.max(Duration::from_millis(1)),
            tick: Arc::new(Notify::new()),
            started: OnceLock::new(),
        }
    }

    /// Resolves at the next tick. Counts as waiting from the moment it is created, so a tick
    /// between creation and the first poll is not missed. Starts the clock on first use (on the
    /// caller's runtime); the clock stops once `owner` (the hub) is dropped.
    pub fn next<T: Send + Sync + 'static>(&self, owner: Weak<T>) -> Notified<'_> {
        self.started.get_or_init(|| {
            let (tick, period) = (Arc::downgrade(&self.tick), self.period);
            tokio::spawn(async move {
                let mut clock = tokio::time::interval(period);
                clock.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                clock.tick().await;
                loop {
                    clock.tick().await;
                    let (Some(tick), Some(_hub)) = (tick.upgrade(), owner.upgrade()) else {
                        break;
                    };
                    tick.notify_waiters();
                }
            });
        });
        self.tick.notified()
    }
}

#[cfg(test)]
mod tests {
    use std::pin::pin;

    use tokio::time::{sleep, timeout};

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn every_waiter_wakes_at_each_tick_and_the_clock_stops_with_its_owner() {
        let owner = Arc::new(());
        let beat = Heartbeat::new(Duration::from_secs(15));
        let first = beat.next(Arc::downgrade(&owner));
        let second = beat.next(Arc::downgrade(&owner));
        // Created before the tick at 15 s, polled after it: still woken.
        sleep(Duration::from_secs(16)).await;
        first.await;
        second.await;
        let mut third = pin!(beat.next(Arc::downgrade(&owner)));
        assert!(
            timeout(Duration::from_secs(13), third.as_mut()).await.is_err(),
            "no tick before 30 s"
        );
        assert!(
            timeout(Duration::from_secs(2), third).await.is_ok(),
            "a tick at 30 s"
        );

        drop(owner);
        let after = beat.next(Weak::<()>::new());
        assert!(
            timeout(Duration::from_secs(60), after).await.is_err(),
            "no tick once the hub is gone"
        );
    }
}

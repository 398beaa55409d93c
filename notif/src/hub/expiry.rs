//! Tabs waiting out their resume window. Every window has the same length, so deadlines come in
//! the order tabs closed: one queue and one sweeping task per hub, instead of a task and a timer
//! per closed tab (which a crowd leaving at once would spawn by the thousand).
use std::collections::VecDeque;

use tokio::time::Instant;

use super::Hub;
use crate::{Identity, TabId};

/// A closed tab to forget at `deadline`, unless it was reattached since (its epoch moved on).
struct Due {
    deadline: Instant,
    tab_id: TabId,
    epoch: u32,
}

#[derive(Default)]
pub(crate) struct Expiries {
    queue: VecDeque<Due>,
    /// A sweeping task is running; it stops once the queue is empty.
    sweeping: bool,
}

impl Expiries {
    /// Queues an expiry; returns whether a sweeping task must be started.
    pub fn push(&mut self, deadline: Instant, tab_id: TabId, epoch: u32) -> bool {
        self.queue.push_back(Due {
            deadline,
            tab_id,
            epoch,
        });
        !std::mem::replace(&mut self.sweeping, true)
    }

    /// The sweeping task ended without emptying the queue.
    pub fn stopped(&mut self) {
        self.sweeping = false;
    }

    /// Takes every expiry due at `now`; then the next deadline, or `None` when nothing is left
    /// (the sweeper stops).
    pub fn take_due(&mut self, now: Instant) -> (Vec<(TabId, u32)>, Option<Instant>) {
        let mut due = Vec::new();
        while let Some(front) = self.queue.front().filter(|d| d.deadline <= now) {
            due.push((front.tab_id, front.epoch));
            self.queue.pop_front();
        }
        let next = self.queue.front().map(|d| d.deadline);
        if next.is_none() {
            self.sweeping = false;
            // A crowd's worth of entries is not kept once they are gone.
            self.queue.shrink_to_fit();
        }
        (due, next)
    }
}

impl<I: Identity> Hub<I> {
    /// Connection `conn` of `tab_id` ended: forget the tab once its resume window has passed,
    /// unless a new connection resumes it first.
    pub(crate) fn closed(&self, tab_id: TabId, conn: u32) {
        let window = self.inner.config.resume_window;
        let Some(epoch) = self.state().detach(tab_id, conn) else {
            return;
        };
        if window.is_zero() {
            self.state().expire(tab_id, epoch);
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            // No runtime left (process exit): nothing will read the tables again.
            return;
        };
        let deadline = Instant::now() + window;
        if self.expiries().push(deadline, tab_id, epoch) {
            // The guard goes into the task's future: dropped unpolled, it still lets the next
            // close start a sweeper.
            let sweeping = Sweeping {
                hub: self.clone(),
                finished: false,
            };
            runtime.spawn(sweep_expiries(sweeping, deadline));
        }
    }

    fn expiries(&self) -> std::sync::MutexGuard<'_, Expiries> {
        self.inner
            .expiries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A sweeper's place: one dropped unfinished (its runtime shut down) lets the next close start
/// another.
struct Sweeping<I: Identity> {
    hub: Hub<I>,
    finished: bool,
}

impl<I: Identity> Drop for Sweeping<I> {
    fn drop(&mut self) {
        if !self.finished {
            self.hub.expiries().stopped();
        }
    }
}

/// Forgets closed tabs as their windows pass, until none is waiting.
async fn sweep_expiries<I: Identity>(mut sweeping: Sweeping<I>, first: Instant) {
    let mut next = first;
    loop {
        tokio::time::sleep_until(next).await;
        let hub = &sweeping.hub;
        let (due, after) = hub.expiries().take_due(Instant::now());
        if !due.is_empty() {
            let mut state = hub.state();
            for (tab_id, epoch) in due {
                state.expire(tab_id, epoch);
            }
        }
        match after {
            Some(deadline) => next = deadline,
            None => {
                sweeping.finished = true;
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::hub::{
        tests::{hub, Chat},
        Config,
    };

    /// A hub keeping closed tabs for 30 s.
    fn hub_with_window() -> Hub<Option<String>> {
        hub(Config {
            resume_window: Duration::from_secs(30),
            ..Config::default()
        })
    }

    #[test]
    fn expiries_come_out_in_deadline_order_and_the_sweeper_stops_when_none_are_left() {
        let start = Instant::now();
        let at = |s| start + Duration::from_secs(s);
        let (a, b) = (TabId::random(), TabId::random());
        let mut expiries = Expiries::default();
        assert!(expiries.push(at(30), a, 1), "the first expiry starts a sweeper");
        assert!(!expiries.push(at(31), b, 4), "one sweeper at a time");
        assert_eq!(expiries.take_due(at(29)), (vec![], Some(at(30))));
        assert_eq!(expiries.take_due(at(30)), (vec![(a, 1)], Some(at(31))));
        assert_eq!(expiries.take_due(at(40)), (vec![(b, 4)], None));
        assert!(
            expiries.push(at(70), a, 2),
            "a new sweeper once the last one stopped"
        );
    }

    #[test]
    fn a_sweeper_dropped_with_its_runtime_lets_the_next_close_start_another() {
        let hub = hub_with_window();
        let runtime = |paused| {
            tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .start_paused(paused)
                .build()
                .unwrap()
        };
        let gone = runtime(false);
        gone.block_on(async {
            let (tab_id, rx) = hub.open(None);
            drop(rx);
            hub.closed(tab_id, 0);
        });
        // The sweeper it spawned never ran.
        drop(gone);
        runtime(true).block_on(async {
            let (tab_id, rx) = hub.open(None);
            drop(rx);
            hub.closed(tab_id, 0);
            tokio::time::sleep(Duration::from_secs(31)).await;
            assert_eq!(hub.metrics().tabs, 0, "both windows passed: both tabs are gone");
        });
    }

    #[tokio::test(start_paused = true)]
    async fn a_closed_tab_is_kept_for_its_window_then_freed() {
        let hub = hub_with_window();
        let (tab_id, rx) = hub.open(None);
        hub.listen::<Chat>(tab_id, &None, &"k".into()).await.unwrap();
        drop(rx);
        hub.closed(tab_id, 0);
        tokio::time::sleep(Duration::from_secs(29)).await;
        let kept = hub.metrics();
        assert_eq!((kept.tabs, kept.connected, kept.listens, kept.keys), (1, 0, 1, 1));
        tokio::time::sleep(Duration::from_secs(2)).await;
        let gone = hub.metrics();
        assert_eq!(
            (gone.tabs, gone.listens, gone.keys, gone.identities),
            (0, 0, 0, 0)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn tabs_closed_at_different_times_expire_each_at_its_own_deadline_unless_resumed() {
        let hub = hub_with_window();
        let (first, rx) = hub.open(None);
        drop(rx);
        hub.closed(first, 0);
        tokio::time::sleep(Duration::from_secs(10)).await;
        let (second, rx) = hub.open(None);
        drop(rx);
        hub.closed(second, 0);
        let (third, rx) = hub.open(None);
        drop(rx);
        hub.closed(third, 0);
        // The third comes back within its window: its pending expiry must not end it.
        let (resumed, _rx) = hub
            .resume(third, None, &None, 0, None)
            .await
            .map_err(|_| "resume")
            .unwrap();
        tokio::time::sleep(Duration::from_secs(21)).await;
        assert_eq!(
            hub.metrics().tabs,
            2,
            "the first is gone at 30 s, the others stay"
        );
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert_eq!(
            hub.metrics().tabs,
            1,
            "the second is gone at 40 s; the resumed one stays"
        );
        hub.closed(third, resumed.conn);
        tokio::time::sleep(Duration::from_secs(31)).await;
        assert_eq!(hub.metrics().tabs, 0);
    }
}

//! One heartbeat clock per hub. At each tick the clock pings every idle WebSocket connection
//! itself, as a notify pass writes frames: a connection holds no timer and no waiter of its own
//! (either would be in every idle connection's task), and only a connection whose socket is
//! full is woken to finish the write. A connection that wrote since the last tick gets no ping,
//! unless its tab keeps frames for a resume: that ping asks the client to acknowledge them (a
//! WebSocket pong carries the ping's payload back), and the tab then forgets them.
use std::{sync::OnceLock, time::Duration};

use super::Hub;
use crate::Identity;

/// The hub's clock: its period, and whether it runs.
pub(crate) struct Heartbeat {
    period: Duration,
    started: OnceLock<()>,
}

impl Heartbeat {
    pub fn new(period: Duration) -> Self {
        Heartbeat {
            period: period.max(Duration::from_millis(1)),
            started: OnceLock::new(),
        }
    }
}

impl<I: Identity> Hub<I> {
    /// Starts the hub's heartbeat clock on the caller's runtime, once. It holds the hub weakly:
    /// dropping the hub stops it.
    pub(crate) fn start_heartbeat(&self) {
        let heartbeat = &self.inner.heartbeat;
        heartbeat.started.get_or_init(|| {
            self.spawn_clock(heartbeat.period, |hub| async move {
                // Collected under the lock, sent outside it: writes never hold up the hub.
                let beats = hub.state().beats();
                for beat in beats {
                    beat.send();
                    // Thousands of sockets take a while: let other tasks in meanwhile.
                    tokio::task::consume_budget().await;
                }
            });
        });
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed},
        Arc,
    };

    use futures::FutureExt;
    use tokio::time::sleep;

    use super::*;
    use crate::{
        hub::{queue::Direct, tests::hub, Outgoing},
        Config,
    };

    /// A connection that counts its heartbeats and says whether its socket took them.
    #[derive(Default)]
    struct Counting {
        beats: AtomicUsize,
        full: AtomicBool,
    }

    impl Direct<Outgoing> for Counting {
        fn drain(&self, _: &mut dyn FnMut() -> Option<Outgoing>) -> bool {
            false
        }
        fn beat(&self, _: Option<u64>) -> bool {
            self.beats.fetch_add(1, Relaxed);
            !self.full.load(Relaxed)
        }
    }

    #[tokio::test(start_paused = true)]
    async fn each_tick_beats_every_direct_connection_and_the_clock_stops_with_its_hub() {
        let hub = hub(Config {
            heartbeat: Duration::from_secs(15),
            // No re-validation clock beside the heartbeat's: the test counts tasks.
            revalidate: Duration::ZERO,
            ..Config::default()
        });
        let mut tabs = Vec::new();
        for direct in [true, true, false] {
            let (_, rx) = hub.open(None);
            let counting = Arc::new(Counting::default());
            if direct {
                rx.set_direct(counting.clone());
            }
            tabs.push((rx, counting));
        }
        hub.start_heartbeat();
        hub.start_heartbeat();
        let beats = |tabs: &[(_, Arc<Counting>)]| -> Vec<usize> {
            tabs.iter().map(|(_, c)| c.beats.load(Relaxed)).collect()
        };
        sleep(Duration::from_secs(14)).await;
        assert_eq!(beats(&tabs), [0, 0, 0], "no tick before 15 s");
        sleep(Duration::from_secs(2)).await;
        assert_eq!(beats(&tabs), [1, 1, 0], "one clock, each direct connection once");
        assert_eq!(
            tabs[0].0.ready().now_or_never(),
            None,
            "a beat taken is no wake-up"
        );

        // A socket that could not take the whole ping: its task is woken to finish it.
        tabs[1].1.full.store(true, Relaxed);
        sleep(Duration::from_secs(15)).await;
        assert_eq!(beats(&tabs), [2, 2, 0]);
        assert_eq!(tabs[0].0.ready().now_or_never(), None);
        assert_eq!(
            tabs[1].0.ready().now_or_never(),
            Some(()),
            "woken to finish the write"
        );

        let metrics = tokio::runtime::Handle::current().metrics();
        assert_eq!(metrics.num_alive_tasks(), 1, "the clock runs");
        drop(hub);
        sleep(Duration::from_secs(60)).await;
        assert_eq!(metrics.num_alive_tasks(), 0, "no clock once the hub is gone");
    }
}

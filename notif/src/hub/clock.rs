//! A hub's periodic tasks (the heartbeat, session re-validation): each on the runtime that
//! started it, holding the hub weakly so that dropping the hub stops them.
use std::{future::Future, sync::Arc, time::Duration};

use super::Hub;
use crate::Identity;

impl<I: Identity> Hub<I> {
    /// Runs `tick` every `period` (first after one period) for as long as the hub lives.
    pub(super) fn spawn_clock<F, Fut>(&self, period: Duration, tick: F)
    where
        F: Fn(Hub<I>) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send,
    {
        let hub = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            let mut clock = tokio::time::interval(period);
            clock.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            clock.tick().await;
            loop {
                clock.tick().await;
                let Some(inner) = hub.upgrade() else { break };
                tick(Hub { inner }).await;
            }
        });
    }
}

//! Which key channels this node subscribes to: a key's from its first local listener on; off
//! again only once it has had none for `Config::unsubscribe_after`. A key whose last tab moved
//! away often gains one again at once (tabs move in and out during a rolling restart), and a
//! subscription kept without a break keeps the numbers heard on it meaningful: a number skipped
//! is a message lost (`receive.rs`), whereas after unsubscribing and subscribing again, a
//! message of the earlier stretch still under way would make the next one look like a loss.
use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use tokio::sync::oneshot;

use super::{key_channel, Cluster};
use crate::{
    hub::{key_id::KeyId, Hub},
    Identity,
};

/// Keys without local listeners, still subscribed, and until when.
#[derive(Default)]
pub(super) struct Lingering(Mutex<HashMap<KeyId, Instant>>);

impl Lingering {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<KeyId, Instant>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl<I: Identity> Cluster<I> {
    /// Subscribes to keys that gained their first listener (at once if still subscribed); keys
    /// that lost their last stay subscribed for `linger`. Called with the hub's lock held, so
    /// the backplane sees changes in order.
    pub fn sync(
        &self,
        changed: Vec<KeyId>,
        still_listened: impl Fn(&KeyId) -> bool,
        linger: Duration,
    ) -> Vec<oneshot::Receiver<()>> {
        let mut confirmations = Vec::new();
        let mut lingering = self.lingering.lock();
        for key in changed {
            if !still_listened(&key) {
                lingering.insert(key, Instant::now() + linger);
            } else if lingering.remove(&key).is_some() {
                // Never unsubscribed: in effect already.
                let (done, confirmed) = oneshot::channel();
                let _ = done.send(());
                confirmations.push(confirmed);
            } else {
                self.forget_heard_on(&key_channel(&key));
                confirmations.push(self.backplane.subscribe(key_channel(&key)));
            }
        }
        confirmations
    }

    /// Unsubscribes from the keys without listeners whose time is up. Called with the hub's
    /// lock held.
    fn unsubscribe_idle(&self, now: Instant, still_listened: impl Fn(&KeyId) -> bool) {
        self.lingering.lock().retain(|key, until| {
            if *until > now {
                return true;
            }
            if !still_listened(key) {
                self.backplane.unsubscribe(key_channel(key));
                self.forget_heard_on(&key_channel(key));
            }
            false
        });
    }
}

impl<I: Identity> Hub<I> {
    /// Starts unsubscribing from keys whose last listener left `Config::unsubscribe_after` ago.
    pub(super) fn start_unsubscribing(&self) {
        let period = (self.inner.config.unsubscribe_after / 2).max(Duration::from_millis(50));
        self.spawn_clock(period, |hub| async move {
            if let Some(cluster) = &hub.inner.cluster {
                let state = hub.state();
                cluster.unsubscribe_idle(Instant::now(), |key| state.has_key(key));
            }
        });
    }
}

//! The hub's tables under their lock, and what releasing the lock does: bring the backplane's
//! subscriptions in line with the keys that changed, then write the frames the changes queued
//! (presence).
use super::{state::State, Hub};
use crate::Identity;

/// The hub's tables, locked. Dropping it brings backplane subscriptions in line with the keys
/// that gained their first or lost their last listener, still under the lock, so subscribes and
/// unsubscribes reach the backplane in the order the tables changed.
pub(super) struct Locked<'a, I: Identity> {
    hub: &'a Hub<I>,
    guard: Option<std::sync::MutexGuard<'a, State<I>>>,
}

impl<I: Identity> Locked<'_, I> {
    /// Releases the lock; returns the subscriptions to wait for before a listen may return.
    pub(super) fn release(mut self) -> Vec<tokio::sync::oneshot::Receiver<()>> {
        self.sync()
    }

    fn sync(&mut self) -> Vec<tokio::sync::oneshot::Receiver<()>> {
        let Some(mut state) = self.guard.take() else {
            return Vec::new();
        };
        let changed = std::mem::take(&mut state.changes);
        let wakes = std::mem::take(&mut state.wakes);
        let (queued, lagged) = std::mem::take(&mut state.presence_tally);
        let subscriptions = match &self.hub.inner.cluster {
            Some(cluster) if !changed.is_empty() => {
                let linger = self.hub.inner.config.unsubscribe_after;
                cluster.sync(changed, |key| state.has_key(key), linger)
            }
            _ => Vec::new(),
        };
        drop(state);
        if queued > 0 || lagged > 0 {
            let counters = &self.hub.inner.counters;
            super::Counters::add(&counters.deliveries, queued);
            super::Counters::add(&counters.drops, lagged);
            super::Counters::add(&counters.lagged, lagged);
        }
        if !wakes.is_empty() {
            self.hub.inner.writes.send(wakes, super::Stamp::now());
        }
        subscriptions
    }
}

impl<I: Identity> std::ops::Deref for Locked<'_, I> {
    type Target = State<I>;
    fn deref(&self) -> &State<I> {
        self.guard.as_ref().expect("locked")
    }
}

impl<I: Identity> std::ops::DerefMut for Locked<'_, I> {
    fn deref_mut(&mut self) -> &mut State<I> {
        self.guard.as_mut().expect("locked")
    }
}

impl<I: Identity> Drop for Locked<'_, I> {
    fn drop(&mut self) {
        self.sync();
    }
}

impl<I: Identity> Hub<I> {
    pub(super) fn state(&self) -> Locked<'_, I> {
        // A panic while holding the lock leaves tables that are still consistent enough to serve.
        let guard = self
            .inner
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        Locked {
            hub: self,
            guard: Some(guard),
        }
    }
}

//! Stream connections open now: how many from each remote address (capped, so one client
//! cannot hold a server's every file descriptor), and how many in all (a graceful shutdown
//! waits until every stream took its `bye` and closed).
use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Mutex,
    },
};

use tokio::sync::Notify;

use super::Hub;
use crate::{Identity, StreamRefused};

#[derive(Default)]
pub(crate) struct Connections {
    per_address: Mutex<HashMap<IpAddr, u32>>,
    open: AtomicUsize,
    all_closed: Notify,
}

/// One open stream connection's place in the counts, given back when it drops.
pub(crate) struct Slot<I: Identity> {
    pub hub: Hub<I>,
    address: Option<IpAddr>,
}

impl<I: Identity> Hub<I> {
    /// Counts a stream connection from `address` (unknown when the server does not say),
    /// unless that address holds as many as `Config::max_streams_per_address` already.
    pub(crate) fn connection_slot(&self, address: Option<IpAddr>) -> Result<Slot<I>, StreamRefused> {
        let connections = &self.inner.connections;
        if let Some(ip) = address {
            let cap = self.inner.config.max_streams_per_address;
            let mut per_address = lock(&connections.per_address);
            // Looked up before inserting: a refused address leaves no entry behind.
            if per_address.get(&ip).map_or(0, |open| *open as usize) >= cap {
                return Err(StreamRefused::TooManyStreams { cap });
            }
            *per_address.entry(ip).or_default() += 1;
        }
        connections.open.fetch_add(1, Ordering::Relaxed);
        Ok(Slot {
            hub: self.clone(),
            address,
        })
    }

    /// Stream connections open now.
    #[cfg(test)]
    pub(crate) fn open_connections(&self) -> usize {
        self.inner.connections.open.load(Ordering::Acquire)
    }

    /// Resolves once no stream connection is open.
    pub(crate) async fn connections_closed(&self) {
        let connections = &self.inner.connections;
        loop {
            let closed = connections.all_closed.notified();
            let mut closed = std::pin::pin!(closed);
            // Registered before the count is read: a close in between still wakes this.
            closed.as_mut().enable();
            if connections.open.load(Ordering::Acquire) == 0 {
                return;
            }
            closed.await;
        }
    }
}

impl<I: Identity> Drop for Slot<I> {
    fn drop(&mut self) {
        let connections = &self.hub.inner.connections;
        if let Some(ip) = self.address {
            let mut per_address = lock(&connections.per_address);
            if let Some(open) = per_address.get_mut(&ip) {
                *open -= 1;
                if *open == 0 {
                    per_address.remove(&ip);
                    if per_address.is_empty() {
                        // A crowd of addresses does not keep its table once gone.
                        per_address.shrink_to_fit();
                    }
                }
            }
        }
        if connections.open.fetch_sub(1, Ordering::AcqRel) == 1 {
            connections.all_closed.notify_waiters();
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::{hub::tests::hub, Config};

    #[tokio::test]
    async fn an_address_holds_at_most_its_cap_and_closing_frees_a_place() {
        let hub = hub(Config {
            max_streams_per_address: 2,
            ..Config::default()
        });
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let first = hub.connection_slot(Some(a)).unwrap();
        let _second = hub.connection_slot(Some(a)).unwrap();
        assert_eq!(
            hub.connection_slot(Some(a)).err(),
            Some(StreamRefused::TooManyStreams { cap: 2 })
        );
        let _other = hub.connection_slot(Some(b)).unwrap();
        let _unknown = hub.connection_slot(None).unwrap();
        assert_eq!(hub.open_connections(), 4);
        drop(first);
        assert!(hub.connection_slot(Some(a)).is_ok());
    }

    #[tokio::test]
    async fn the_wait_for_every_connection_ends_with_the_last_one() {
        let hub = hub(Config::default());
        hub.connections_closed().await;
        let slots: Vec<_> = (0..3).map(|_| hub.connection_slot(None).unwrap()).collect();
        let waiting = tokio::spawn({
            let hub = hub.clone();
            async move { hub.connections_closed().await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished());
        drop(slots);
        tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("the wait ends")
            .unwrap();
        assert!(lock(&hub.inner.connections.per_address).is_empty());
    }
}

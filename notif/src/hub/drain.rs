//! A node leaving a cluster: after [`Hub::shutdown`] its tabs have their `bye` but stay, so
//! that the nodes their browsers reconnect to can take them over (`cluster/moves.rs`), until
//! every one has moved or expired, or the drain period is over.
use std::time::Duration;

use super::Hub;
use crate::Identity;

/// How often a draining node looks whether any tab is left.
const POLL: Duration = Duration::from_millis(50);

impl<I: Identity> Hub<I> {
    /// Resolves once a node shutting down may exit: at once without a backplane; with one, when
    /// no tab is left here (each moved to another node or expired) or `Config::drain` has
    /// passed since this was called. [`serve`](crate::serve)'s graceful shutdown awaits it
    /// after every stream closed.
    pub async fn drained(&self) {
        if self.inner.cluster.is_none() {
            return;
        }
        let drain = self.inner.config.drain();
        let left = async {
            while self.metrics().tabs > 0 {
                tokio::time::sleep(POLL).await;
            }
        };
        if tokio::time::timeout(drain, left).await.is_err() {
            tracing::info!(
                tabs = self.metrics().tabs,
                "notif: drain period over; the tabs left start over"
            );
        }
    }
}

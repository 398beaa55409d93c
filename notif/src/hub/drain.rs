//! A node leaving a cluster: after [`Hub::shutdown`] its tabs have their `bye` but stay, so
//! that the nodes their browsers reconnect to can take them over (`cluster/moves.rs`), until
//! every one has moved or expired, or the drain period is over.
use std::time::Duration;

use super::Hub;
use crate::Identity;

/// How often a draining node looks whether any tab is left.
const POLL: Duration = Duration::from_millis(50);

/// How long a node stays once its last tab moved: a browser whose new node's hello was lost
/// on the way reconnects naming this node again, which passes it on to where the tab went.
const GRACE: Duration = Duration::from_secs(1);

/// Longest wait for the backplane to send what this node published last.
const FLUSH: Duration = Duration::from_secs(2);

impl<I: Identity> Hub<I> {
    /// Resolves once a node shutting down may exit: at once without a backplane; with one, when
    /// no tab is left here (each moved to another node or expired) and a second has passed, or
    /// `Config::drain` has passed since this was called; then once the backplane has sent what
    /// this node published. [`serve`](fn@crate::serve)'s graceful shutdown awaits it after every
    /// stream closed.
    pub async fn drained(&self) {
        let Some(cluster) = &self.inner.cluster else {
            return;
        };
        let drain = self.inner.config.drain();
        let left = async {
            while self.state().tab_count() > 0 {
                tokio::time::sleep(POLL).await;
            }
            tokio::time::sleep(GRACE).await;
        };
        if tokio::time::timeout(drain, left).await.is_err() && self.state().tab_count() > 0 {
            tracing::info!(
                tabs = self.state().tab_count(),
                "notif: drain period over; the tabs left start over"
            );
        }
        if tokio::time::timeout(FLUSH, cluster.flushed()).await.is_err() {
            tracing::warn!("notif: exiting with notifications not yet sent to the other nodes");
        }
    }
}

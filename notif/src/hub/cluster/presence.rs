//! Presence across nodes. Each node tells the others, on a key's channel, when an identity has
//! its first tab on the key there or loses its last (`Joined`, `Left`); a node that starts
//! tracking a key asks the others for who they have (`Sync`, answered with `Snapshot`). Nodes
//! say they are alive every `Config::node_heartbeat`; one silent for `Config::node_timeout` is
//! gone, and everyone it had leaves, everywhere. One heard from again is asked for its lists.
//! After an outage of the backplane every node sends its lists and asks for the others'.
use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Weak},
    time::Instant,
};

use serde::{Deserialize, Serialize};

use super::{key_channel, Body, Cluster, NodeId, Origin, Outbound, Poster};
use crate::{
    hub::{key_id::KeyId, Hub, Inner},
    Identity,
};

/// The channel nodes say they are alive on: apart from the control channel, whose messages are
/// checked for gaps in order, while these are read as they arrive.
const ALIVE: &str = "notif:alive";

/// Nodes remembered as gone, to know one heard from again.
const GONE_REMEMBERED: usize = 1024;

/// What a node says about presence on a key. Identities and public forms are JSON.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum PresenceNews {
    /// The identity's first tab on the key there.
    Joined { identity: String, public: String },
    /// The identity's last tab on the key there stopped listening.
    Left { identity: String },
    /// Everyone shown on the key there, replacing what it said before.
    Snapshot { members: Vec<(String, String)> },
    /// Asks every node with presence on the key for its `Snapshot`.
    Sync,
}

impl Poster {
    /// Publishes `news` on `key`'s channel; returns its stamp.
    pub fn presence(&self, key: &KeyId, news: PresenceNews) -> Origin {
        let body = Body::Presence {
            key: key.as_str().to_owned(),
            news,
        };
        match serde_json::to_vec(&body) {
            Ok(body) => self.post(Outbound {
                channel: key_channel(key),
                body,
            }),
            Err(_) => Origin::HERE,
        }
    }
}

/// When each other node was last heard from, and which were given up for gone.
#[derive(Default)]
pub(crate) struct Liveness {
    last: HashMap<NodeId, Instant>,
    gone: VecDeque<NodeId>,
}

impl Liveness {
    /// `node` was heard from now; returns whether it had been given up for gone.
    fn heard(&mut self, node: NodeId) -> bool {
        self.last.insert(node, Instant::now());
        match self.gone.iter().position(|n| *n == node) {
            Some(at) => {
                self.gone.remove(at);
                true
            }
            None => false,
        }
    }

    /// The nodes silent for longer than `timeout`, now given up for gone.
    fn silent(&mut self, timeout: std::time::Duration) -> Vec<NodeId> {
        let now = Instant::now();
        let silent: Vec<NodeId> = self
            .last
            .iter()
            .filter(|(_, at)| now.duration_since(**at) > timeout)
            .map(|(node, _)| *node)
            .collect();
        for node in &silent {
            self.last.remove(node);
            if self.gone.len() == GONE_REMEMBERED {
                self.gone.pop_front();
            }
            self.gone.push_back(*node);
        }
        silent
    }

    fn is_gone(&self, node: NodeId) -> bool {
        self.gone.contains(&node)
    }
}

impl<I: Identity> Cluster<I> {
    fn liveness(&self) -> std::sync::MutexGuard<'_, Liveness> {
        self.liveness.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn alive_channel() -> &'static str {
        ALIVE
    }

    /// The other nodes heard from within `Config::node_timeout`.
    pub(super) fn live_nodes(&self) -> Vec<NodeId> {
        self.liveness().last.keys().copied().collect()
    }
}

impl<I: Identity> Hub<I> {
    /// Says this node is alive every heartbeat, and gives up on nodes silent too long.
    pub(super) fn start_heartbeats(&self) {
        let inner = Arc::downgrade(&self.inner);
        let every = self.inner.config.node_heartbeat;
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                if !beat(&inner) {
                    return;
                }
            }
        });
    }

    /// Something arrived from `node`: it is alive. One given up for gone is asked again for
    /// who it has.
    pub(super) fn heard_from(&self, cluster: &Cluster<I>, node: NodeId) {
        if cluster.liveness().heard(node) {
            tracing::info!(%node, "notif: a node given up for gone is back; asking for its presence");
            self.sync_presence(cluster, false);
        }
    }

    /// What a node said about presence on a key, applied in order.
    pub(super) fn apply_presence(&self, cluster: &Cluster<I>, origin: Origin, key: &str, news: PresenceNews) {
        if cluster.liveness().is_gone(origin.node) {
            // Read before the node was given up, applied after: what it had is gone with it.
            return;
        }
        let key = KeyId::from_id(key);
        let mut state = self.state();
        match news {
            PresenceNews::Joined { identity, public } => {
                state.heard_joined(&key, origin.node, identity.into(), public.into(), origin)
            }
            PresenceNews::Left { identity } => state.heard_left(&key, origin.node, &identity, origin),
            PresenceNews::Snapshot { members } => state.heard_snapshot(&key, origin.node, members, origin),
            PresenceNews::Sync => {
                if let Some(members) = state.presence_here_on(&key) {
                    cluster
                        .poster()
                        .presence(&key, PresenceNews::Snapshot { members });
                }
            }
        }
    }

    /// Sends the other nodes who this node has on every key with presence (when `own`), and
    /// asks them for theirs.
    pub(super) fn sync_presence(&self, cluster: &Cluster<I>, own: bool) {
        let state = self.state();
        let poster = cluster.poster();
        for (key, members) in state.presence_here() {
            if own {
                poster.presence(&key, PresenceNews::Snapshot { members });
            }
            poster.presence(&key, PresenceNews::Sync);
        }
    }

    /// Asks the other nodes who they have on `key`, once this node receives its channel.
    pub(in crate::hub) fn ask_presence(&self, key: &KeyId) {
        if let Some(cluster) = &self.inner.cluster {
            cluster.poster().presence(key, PresenceNews::Sync);
        }
    }
}

/// One heartbeat: say alive, give up on the silent. `false` once the hub is gone.
fn beat<I: Identity>(inner: &Weak<Inner<I>>) -> bool {
    let Some(inner) = inner.upgrade() else {
        return false;
    };
    let hub = Hub { inner };
    let Some(cluster) = &hub.inner.cluster else {
        return false;
    };
    if let Ok(body) = serde_json::to_vec(&Body::Alive) {
        cluster.post(Outbound {
            channel: ALIVE.into(),
            body,
        });
    }
    let silent = cluster.liveness().silent(hub.inner.config.node_timeout);
    if !silent.is_empty() {
        let mut state = hub.state();
        for node in silent {
            // A node that drained and exited had nobody left: only one that still showed
            // identities (killed, or cut off) is worth a warning.
            match state.node_gone(node) {
                0 => tracing::debug!(%node, "notif: a node went silent"),
                shown => tracing::warn!(%node, shown, "notif: a node went silent; its presence is gone"),
            }
        }
    }
    true
}

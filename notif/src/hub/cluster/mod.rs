//! The hub's side of a backplane: what crosses between nodes, what this node publishes and
//! which channels it subscribes to. What it does with what arrives is in `receive`; calls to
//! the node holding a tab in `calls`; tabs moving from node to node in `moves`; the messages
//! themselves in `body`, and their numbering in `poster`.
use std::{
    collections::HashMap,
    future::Future,
    marker::PhantomData,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex,
    },
};

mod body;
mod calls;
mod moves;
mod node;
mod poster;
mod presence;
mod receive;
mod remote_topic;
mod subscriptions;

use body::{Body, WireExclude};
pub(crate) use node::{NodeId, Origin};
pub(crate) use poster::{Outbound, Poster};
pub(crate) use presence::{Liveness, PresenceNews};
use remote_topic::{RemoteTopic, Typed};

use super::{key_id::KeyId, Exclude};
use crate::{Backplane, Identity, Topic};

/// The channel every node subscribes to, for identity operations.
const CONTROL: &str = "notif:ctl";

/// Prefix of a key's channel; the rest is its id.
const KEY_CHANNEL: &str = "notif:k:";

/// Prefix of a node's own channel, where calls to it and answers to its calls arrive.
const NODE_CHANNEL: &str = "notif:n:";

fn key_channel(key: &KeyId) -> String {
    format!("{KEY_CHANNEL}{}", key.as_str())
}

fn node_channel(node: NodeId) -> String {
    format!("{NODE_CHANNEL}{node}")
}

/// The key ids of dropped channels; `None` (any) if one was not a key's channel.
fn lost_keys(channels: Option<Vec<String>>) -> Option<Vec<String>> {
    channels?
        .iter()
        .map(|channel| channel.strip_prefix(KEY_CHANNEL).map(str::to_owned))
        .collect()
}

pub(crate) struct Cluster<I: Identity> {
    node: NodeId,
    backplane: Arc<dyn Backplane>,
    topics: Mutex<HashMap<&'static str, Arc<dyn RemoteTopic<I>>>>,
    up: AtomicBool,
    missed: AtomicBool,
    /// Numbers and publishes this node's messages; a clone is held by the tables, which
    /// announce presence changes.
    poster: Poster,
    /// When each other node was last heard alive.
    pub(super) liveness: Mutex<Liveness>,
    /// The number of the latest message applied from each other node.
    applied: Mutex<HashMap<NodeId, u64>>,
    /// Per channel this node subscribes to, the number of the last message heard there from
    /// each other node: a message whose `prev` differs shows one was lost on the way.
    heard: Mutex<HashMap<String, Vec<(NodeId, u64)>>>,
    calls: calls::Pending,
    moved: moves::Moved,
    lingering: subscriptions::Lingering,
    pub outages: AtomicU64,
    pub received: AtomicU64,
    pub dropped: AtomicU64,
    pub forwarded: AtomicU64,
    pub moved_in: AtomicU64,
    pub moved_out: AtomicU64,
    pub gaps: AtomicU64,
}

impl<I: Identity> Cluster<I> {
    pub fn new(backplane: Arc<dyn Backplane>) -> Self {
        let node = NodeId::random();
        Cluster {
            node,
            poster: Poster::new(node, backplane.clone()),
            backplane,
            topics: Mutex::default(),
            up: AtomicBool::new(false),
            missed: AtomicBool::new(false),
            liveness: Mutex::default(),
            applied: Mutex::default(),
            heard: Mutex::default(),
            calls: calls::Pending::default(),
            moved: moves::Moved::default(),
            lingering: subscriptions::Lingering::default(),
            outages: AtomicU64::new(0),
            received: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            forwarded: AtomicU64::new(0),
            moved_in: AtomicU64::new(0),
            moved_out: AtomicU64::new(0),
            gaps: AtomicU64::new(0),
        }
    }

    pub fn node(&self) -> NodeId {
        self.node
    }

    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// Resolves once the backplane has sent what this node published (see
    /// [`Backplane::flushed`]).
    pub fn flushed(&self) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send>> {
        self.backplane.flushed()
    }

    /// Remembers how to deliver `T`'s events arriving from other nodes.
    pub fn register<T: Topic<Identity = I>>(&self) {
        let mut topics = self.topics.lock().unwrap_or_else(|e| e.into_inner());
        topics
            .entry(T::NAME)
            .or_insert_with(|| Arc::new(Typed::<T>(PhantomData)));
    }

    /// Whether this node can deliver events of the topic named `topic` from other nodes.
    fn knows(&self, topic: &str) -> bool {
        let topics = self.topics.lock().unwrap_or_else(|e| e.into_inner());
        topics.contains_key(topic)
    }

    fn encode(body: &Body) -> Option<Vec<u8>> {
        serde_json::to_vec(body)
            .map_err(|error| tracing::warn!(%error, "notif: could not encode a message for other nodes"))
            .ok()
    }

    /// Numbers and publishes an encoded message; returns its stamp.
    pub fn post(&self, outbound: Outbound) -> Origin {
        self.poster.post(outbound)
    }

    /// What publishes this node's messages, numbered, for the tables to hold.
    pub fn poster(&self) -> &Poster {
        &self.poster
    }

    /// The number of this node's latest message.
    fn last_posted(&self) -> u64 {
        self.poster.last()
    }
}

impl<I: Identity> Cluster<I> {
    /// Records message `origin` heard on `channel`, which followed that origin's message `prev`
    /// there; returns whether one was lost in between (a message heard before from that origin
    /// there, and it is not `prev`).
    fn missed_before(&self, channel: &str, origin: Origin, prev: u64) -> bool {
        let mut heard = self.heard.lock().unwrap_or_else(|e| e.into_inner());
        let Some(origins) = heard.get_mut(channel) else {
            heard.insert(channel.to_owned(), vec![(origin.node, origin.seq)]);
            return false;
        };
        match origins.iter_mut().find(|(node, _)| *node == origin.node) {
            Some((_, last)) => {
                let missed = prev != 0 && prev > *last;
                *last = (*last).max(origin.seq);
                missed
            }
            None => {
                origins.push((origin.node, origin.seq));
                false
            }
        }
    }

    /// Forgets what was heard on `channel`: no reference for what comes after subscribing.
    fn forget_heard_on(&self, channel: &str) {
        self.heard
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(channel);
    }

    /// Forgets what was heard: after an outage every tab with listens starts over anyway.
    fn forget_heard(&self) {
        *self.heard.lock().unwrap_or_else(|e| e.into_inner()) = HashMap::new();
    }

    fn publish(&self, channel: String, body: Body) {
        if let Some(body) = Self::encode(&body) {
            self.post(Outbound { channel, body });
        }
    }

    /// A notification for the other nodes' listeners of `key`, to [`post`](Self::post).
    pub fn notify_message(
        &self,
        key: &KeyId,
        topic: &str,
        key_json: &str,
        event: String,
        exclude: &Exclude<I>,
    ) -> Option<Outbound> {
        let exclude = match exclude {
            Exclude::Nobody => WireExclude::Nobody,
            Exclude::Tab(tab_id) => WireExclude::Tab(tab_id.to_string()),
            Exclude::Identity(identity) => {
                WireExclude::Identity(serde_json::to_string(identity).unwrap_or_default())
            }
        };
        let body = Body::Notify {
            topic: topic.into(),
            key: key_json.into(),
            event,
            exclude,
        };
        Some(Outbound {
            channel: key_channel(key),
            body: Self::encode(&body)?,
        })
    }

    /// A message for every tab of `identity` on the other nodes, to [`post`](Self::post).
    pub fn send_message(&self, topic: &str, identity: &I, key_json: &str, message: &str) -> Option<Outbound> {
        let identity = serde_json::to_string(identity).unwrap_or_default();
        let body = Body::Send {
            topic: topic.into(),
            identity,
            key: key_json.into(),
            message: message.into(),
        };
        Some(Outbound {
            channel: CONTROL.into(),
            body: Self::encode(&body)?,
        })
    }

    pub fn publish_unlisten_identity(&self, topic: &str, identity: &I, key_json: &str) {
        let identity = serde_json::to_string(identity).unwrap_or_default();
        self.publish(
            CONTROL.into(),
            Body::UnlistenIdentity {
                topic: topic.into(),
                identity,
                key: key_json.into(),
            },
        );
    }

    pub fn publish_disconnect(&self, identity: &I) {
        let identity = serde_json::to_string(identity).unwrap_or_default();
        self.publish(CONTROL.into(), Body::Disconnect { identity });
    }

    /// Tells the other nodes which of this node's publishes were dropped. A dropped identity
    /// operation (control channel) could have concerned any tab: then it says "any".
    fn publish_lost(&self, channels: Option<Vec<String>>) {
        self.publish(
            CONTROL.into(),
            Body::Lost {
                keys: lost_keys(channels),
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropped_key_channels_name_their_keys_and_anything_else_means_any() {
        let key = KeyId::from_json("chat", "\"k\"");
        let keys = lost_keys(Some(vec![key_channel(&key)])).unwrap();
        assert_eq!(keys, [key.as_str()]);
        assert_eq!(
            KeyId::from_id(&keys[0]),
            key,
            "the receiving node finds the same key"
        );
        assert_eq!(lost_keys(Some(vec![key_channel(&key), CONTROL.into()])), None);
        assert_eq!(lost_keys(None), None);
    }
}

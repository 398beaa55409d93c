//! The hub's side of a backplane: what crosses between nodes, what this node publishes and
//! which channels it subscribes to. What it does with what arrives is in `receive`.
use std::{
    collections::HashMap,
    future::Future,
    marker::PhantomData,
    pin::Pin,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex,
    },
};

use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

mod receive;

use super::{key_id::KeyId, Exclude, Hub};
use crate::{Backplane, ClientId, Identity, Topic};

/// The channel every node subscribes to, for identity operations.
const CONTROL: &str = "notif:ctl";

/// Prefix of a key's channel; the rest is its id.
const KEY_CHANNEL: &str = "notif:k:";

fn key_channel(key: &KeyId) -> String {
    format!("{KEY_CHANNEL}{}", key.as_str())
}

/// The key ids of dropped channels; `None` (any) if one was not a key's channel.
fn lost_keys(channels: Option<Vec<String>>) -> Option<Vec<String>> {
    channels?
        .iter()
        .map(|channel| channel.strip_prefix(KEY_CHANNEL).map(str::to_owned))
        .collect()
}

/// What crosses nodes. Keys, events and messages travel as the JSON text their node made, so
/// every node derives the same key ids from them.
#[derive(Serialize, Deserialize)]
struct Envelope {
    origin: String,
    #[serde(flatten)]
    body: Body,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
enum Body {
    Notify {
        topic: String,
        key: String,
        event: String,
        exclude: WireExclude,
    },
    Send {
        topic: String,
        identity: String,
        key: String,
        message: String,
    },
    UnlistenIdentity {
        topic: String,
        identity: String,
        key: String,
    },
    Disconnect {
        identity: String,
    },
    /// The origin dropped publishes for these keys (ids; `None`: any key or identity operation):
    /// listeners elsewhere may have missed them.
    Lost {
        keys: Option<Vec<String>>,
    },
}

#[derive(Serialize, Deserialize)]
enum WireExclude {
    Nobody,
    Client(String),
    Identity(String),
}

type Delivery<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// A topic as a node receiving its events knows it: by name, types restored from JSON.
trait RemoteTopic<I: Identity>: Send + Sync {
    fn deliver<'a>(
        &'a self,
        hub: &'a Hub<I>,
        key: &'a str,
        event: &'a str,
        exclude: Exclude<I>,
    ) -> Delivery<'a>;
}

struct Typed<T>(PhantomData<fn() -> T>);

impl<T: Topic> RemoteTopic<T::Identity> for Typed<T> {
    fn deliver<'a>(
        &'a self,
        hub: &'a Hub<T::Identity>,
        key: &'a str,
        event: &'a str,
        exclude: Exclude<T::Identity>,
    ) -> Delivery<'a> {
        Box::pin(async move {
            match serde_json::from_str::<T::Event>(event) {
                Ok(event) => {
                    if let Err(error) = hub
                        .deliver::<T>(&KeyId::from_json(T::NAME, key), key, &event, exclude)
                        .await
                    {
                        tracing::warn!(%error, topic = T::NAME, "notif: a notification from another node was not delivered");
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, topic = T::NAME, "notif: undecodable event from another node")
                }
            }
        })
    }
}

pub(crate) struct Cluster<I: Identity> {
    node: String,
    backplane: Arc<dyn Backplane>,
    topics: Mutex<HashMap<&'static str, Arc<dyn RemoteTopic<I>>>>,
    up: AtomicBool,
    missed: AtomicBool,
    pub outages: AtomicU64,
    pub received: AtomicU64,
    pub dropped: AtomicU64,
}

impl<I: Identity> Cluster<I> {
    pub fn new(backplane: Arc<dyn Backplane>) -> Self {
        Cluster {
            node: ClientId::random().to_string(),
            backplane,
            topics: Mutex::default(),
            up: AtomicBool::new(false),
            missed: AtomicBool::new(false),
            outages: AtomicU64::new(0),
            received: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        }
    }

    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// Remembers how to deliver `T`'s events arriving from other nodes.
    pub fn register<T: Topic<Identity = I>>(&self) {
        let mut topics = self.topics.lock().unwrap_or_else(|e| e.into_inner());
        topics
            .entry(T::NAME)
            .or_insert_with(|| Arc::new(Typed::<T>(PhantomData)));
    }

    /// Subscribes to keys that gained their first listener, unsubscribes from those that lost
    /// their last. Called with the hub's lock held, so the backplane sees changes in order.
    pub fn sync(
        &self,
        changed: Vec<KeyId>,
        still_listened: impl Fn(&KeyId) -> bool,
    ) -> Vec<oneshot::Receiver<()>> {
        let mut confirmations = Vec::new();
        for key in changed {
            if still_listened(&key) {
                confirmations.push(self.backplane.subscribe(key_channel(&key)));
            } else {
                self.backplane.unsubscribe(key_channel(&key));
            }
        }
        confirmations
    }

    fn publish(&self, channel: String, body: Body) {
        let envelope = Envelope {
            origin: self.node.clone(),
            body,
        };
        match serde_json::to_vec(&envelope) {
            Ok(payload) => self.backplane.publish(channel, payload),
            Err(error) => tracing::warn!(%error, "notif: could not encode a message for other nodes"),
        }
    }

    pub fn publish_notify(
        &self,
        key: &KeyId,
        topic: &str,
        key_json: &str,
        event: String,
        exclude: &Exclude<I>,
    ) {
        let exclude = match exclude {
            Exclude::Nobody => WireExclude::Nobody,
            Exclude::Client(client) => WireExclude::Client(client.to_string()),
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
        self.publish(key_channel(key), body);
    }

    pub fn publish_send(&self, topic: &str, identity: &I, key_json: &str, message: &str) {
        let identity = serde_json::to_string(identity).unwrap_or_default();
        let body = Body::Send {
            topic: topic.into(),
            identity,
            key: key_json.into(),
            message: message.into(),
        };
        self.publish(CONTROL.into(), body);
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

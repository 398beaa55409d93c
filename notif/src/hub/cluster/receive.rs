//! The hub's side of a backplane, receiving: what it does with what other nodes publish, with
//! its own connection's state, and when it falls behind.
//!
//! Two tasks. One reads what arrives and answers at once what needs no order: calls to this
//! node and the answers to its own (a listen must not wait behind a backlog of notifications),
//! except a tab being handed over and its answer. The other applies everything else one message
//! at a time, in the order Redis gave it: notifications of one key keep their order per tab, and
//! a tab is handed over between two messages (`moves.rs`).
use std::sync::{atomic::Ordering, Arc, Weak};

use tokio::sync::mpsc;

use super::{
    calls::{Call, Reply},
    lost_keys, node, node_channel, Body, Cluster, Origin, WireExclude, CONTROL, KEY_CHANNEL, NODE_CHANNEL,
};
use crate::{
    backplane::{BackplaneEvent, LostChannels},
    hub::{key_id::KeyId, Exclude, Hub, Inner},
    ByeReason, Identity,
};

impl<I: Identity> Hub<I> {
    /// Starts receiving from the backplane: the control channel, then whatever arrives.
    pub(in crate::hub) fn start_cluster(&self) {
        let Some(cluster) = &self.inner.cluster else {
            return;
        };
        let (events, received) = mpsc::unbounded_channel();
        cluster.backplane.start(events);
        drop(cluster.backplane.subscribe(CONTROL.into()));
        drop(cluster.backplane.subscribe(node_channel(cluster.node)));
        drop(cluster.backplane.subscribe(Cluster::<I>::alive_channel().into()));
        tokio::spawn(receive(Arc::downgrade(&self.inner), received));
        self.start_unsubscribing();
        self.start_heartbeats();
    }

    /// A message to apply in order: checked for a gap before it, counted as applied (a tab
    /// handed over names the last message applied from each node), then applied.
    async fn apply_in_order(&self, cluster: &Cluster<I>, message: Message) {
        let Message {
            channel,
            origin,
            prev,
            body,
        } = message;
        if !channel.starts_with(NODE_CHANNEL) && cluster.missed_before(&channel, origin, prev) {
            // Redis delivers at most once: a message of this origin on this channel never came.
            cluster.gaps.fetch_add(1, Ordering::Relaxed);
            let keys = channel.strip_prefix(KEY_CHANNEL).map(|key| vec![key.to_owned()]);
            let tabs = self.reset_listeners(keys);
            tracing::warn!(
                channel = channel.as_str(),
                node = %origin.node,
                tabs,
                "notif: a message from another node was lost on the way; reset the tabs that missed it"
            );
        }
        {
            let mut applied = cluster.applied.lock().unwrap_or_else(|e| e.into_inner());
            let last = applied.entry(origin.node).or_default();
            *last = (*last).max(origin.seq);
        }
        self.apply(cluster, origin, body).await;
    }

    /// What a message from another node does here.
    async fn apply(&self, cluster: &Cluster<I>, origin: Origin, body: Body) {
        let identity = |json: &str| serde_json::from_str::<I>(json).ok();
        match body {
            Body::Notify {
                topic,
                key,
                event,
                exclude,
            } => {
                let remote = cluster
                    .topics
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(topic.as_str())
                    .cloned();
                let Some(remote) = remote else { return };
                let exclude = match exclude {
                    WireExclude::Nobody => Exclude::Nobody,
                    WireExclude::Tab(tab_id) => match tab_id.parse() {
                        Ok(tab_id) => Exclude::Tab(tab_id),
                        Err(_) => Exclude::Nobody,
                    },
                    WireExclude::Identity(json) => match identity(&json) {
                        Some(identity) => Exclude::Identity(identity),
                        None => return,
                    },
                };
                remote.deliver(self, &key, &event, exclude, origin).await;
            }
            Body::Send {
                topic,
                identity: who,
                key,
                message,
            } => {
                if let Some(who) = identity(&who) {
                    self.send_local(&topic, &who, &key, &message, origin);
                }
            }
            Body::UnlistenIdentity {
                topic,
                identity: who,
                key,
            } => {
                if let Some(who) = identity(&who) {
                    self.unlisten_identity_local(&who, &KeyId::from_json(&topic, &key));
                }
            }
            Body::Disconnect { identity: who } => {
                if let Some(who) = identity(&who) {
                    self.disconnect_identity_local(&who);
                }
            }
            Body::Call { id, from, call } => match from.parse() {
                Ok(from) => self.answer_call(cluster, from, id, call),
                Err(_) => tracing::warn!("notif: a call from another node names no node"),
            },
            Body::Reply { id, reply } => cluster.answered(id, reply),
            Body::Presence { key, news } => self.apply_presence(cluster, origin, &key, news),
            // Counted as it arrived (`receive`).
            Body::Alive => {}
            Body::Lost { keys } => {
                let tabs = self.reset_listeners(keys);
                if tabs > 0 {
                    tracing::warn!(
                        tabs,
                        "notif: another node dropped notifications; reset the tabs that may have missed them"
                    );
                }
            }
        }
    }

    /// Messages for `keys` (`None`: for any) were lost on the way from another node: end the
    /// tabs listening on them, so they come back with `recovered: false`, listen again and
    /// refetch. A tab that started listening after the loss is reset too (harmless; nodes
    /// share no clock). Returns how many tabs were ended.
    fn reset_listeners(&self, keys: Option<Vec<String>>) -> usize {
        let mut state = self.state();
        let mut tabs = match keys {
            None => state.listening_tabs(),
            Some(keys) => keys
                .iter()
                .flat_map(|key| state.tabs_listening_on(&KeyId::from_id(key)))
                .collect(),
        };
        tabs.sort_unstable();
        tabs.dedup();
        let ended = tabs.len();
        for tab_id in tabs {
            state.end(tab_id, ByeReason::Resync);
        }
        ended
    }
}

/// A message from another node, decoded.
struct Message {
    channel: String,
    origin: Origin,
    prev: u64,
    body: Body,
}

impl Message {
    /// The message on `channel`, unless it is this node's own (delivered here already) or not a
    /// message at all.
    fn decode<I: Identity>(cluster: &Cluster<I>, channel: String, payload: &[u8]) -> Option<Message> {
        let Some((origin, prev, body)) = node::unframe(payload) else {
            tracing::warn!("notif: undecodable message from another node");
            return None;
        };
        if origin.node == cluster.node {
            return None;
        }
        let Ok(body) = serde_json::from_slice::<Body>(body) else {
            tracing::warn!("notif: undecodable message from another node");
            return None;
        };
        cluster.received.fetch_add(1, Ordering::Relaxed);
        Some(Message {
            channel,
            origin,
            prev,
            body,
        })
    }

    /// Whether it must be applied in order with the others: all but calls to this node and the
    /// answers to its own, a hand-over and its answer excepted.
    fn in_order(&self) -> bool {
        match &self.body {
            Body::Call { call, .. } => matches!(call, Call::Take { .. }),
            Body::Reply { reply, .. } => matches!(reply, Reply::Taken { .. }),
            Body::Alive => false,
            _ => true,
        }
    }
}

/// What the ordered task takes, in the order it arrived.
enum Ordered {
    Message(Message),
    /// The connection's state (`Up`, `Down`, `Lost`).
    Event(BackplaneEvent),
}

/// Reads the backplane: answers calls and answers at once, passes the rest on in order.
async fn receive<I: Identity>(hub: Weak<Inner<I>>, mut events: mpsc::UnboundedReceiver<BackplaneEvent>) {
    let (ordered, to_apply) = mpsc::unbounded_channel();
    tokio::spawn(apply_in_order(hub.clone(), to_apply));
    while let Some(event) = events.recv().await {
        let Some(inner) = hub.upgrade() else { return };
        let hub = Hub { inner };
        let Some(cluster) = &hub.inner.cluster else { return };
        let next = match event {
            BackplaneEvent::Message { channel, payload } => match Message::decode(cluster, channel, &payload)
            {
                Some(message) if !message.in_order() => {
                    hub.heard_from(cluster, message.origin.node);
                    hub.apply(cluster, message.origin, message.body).await;
                    continue;
                }
                Some(message) => {
                    hub.heard_from(cluster, message.origin.node);
                    Ordered::Message(message)
                }
                None => continue,
            },
            BackplaneEvent::Down => {
                // Calls waiting will get no answer: they fail now, not after their timeout.
                cluster.fail_calls();
                Ordered::Event(BackplaneEvent::Down)
            }
            other => Ordered::Event(other),
        };
        if ordered.send(next).is_err() {
            return;
        }
    }
}

/// Applies messages one at a time, in order.
async fn apply_in_order<I: Identity>(hub: Weak<Inner<I>>, mut incoming: mpsc::UnboundedReceiver<Ordered>) {
    while let Some(next) = incoming.recv().await {
        let Some(inner) = hub.upgrade() else { return };
        let hub = Hub { inner };
        let Some(cluster) = &hub.inner.cluster else { return };
        if incoming.len() >= hub.inner.config.backplane_backlog {
            for event in hub.fall_behind(cluster, next, &mut incoming) {
                handle(&hub, cluster, Ordered::Event(event)).await;
            }
        } else {
            handle(&hub, cluster, next).await;
        }
    }
}

impl<I: Identity> Hub<I> {
    /// Other nodes got `backlog` messages ahead: drop every message waiting (this one included)
    /// and reset the tabs on their keys, rather than queue without bound. Returns the events
    /// that are not messages (connection state), to handle in order.
    fn fall_behind(
        &self,
        cluster: &Cluster<I>,
        first: Ordered,
        incoming: &mut mpsc::UnboundedReceiver<Ordered>,
    ) -> Vec<BackplaneEvent> {
        let mut channels = LostChannels::default();
        let mut kept = Vec::new();
        let mut dropped = 0u64;
        for next in std::iter::once(first).chain(std::iter::from_fn(|| incoming.try_recv().ok())) {
            match next {
                Ordered::Message(message) => {
                    dropped += 1;
                    channels.add(message.channel);
                }
                Ordered::Event(other) => kept.push(other),
            }
        }
        cluster.dropped.fetch_add(dropped, Ordering::Relaxed);
        let tabs = self.reset_listeners(lost_keys(channels.take().flatten()));
        tracing::error!(
            dropped,
            tabs,
            "notif: fell behind the other nodes; dropped their messages and reset the tabs they were for"
        );
        kept
    }
}

/// One message or event from the backplane, in order.
async fn handle<I: Identity>(hub: &Hub<I>, cluster: &Cluster<I>, next: Ordered) {
    let event = match next {
        Ordered::Message(message) => return hub.apply_in_order(cluster, message).await,
        Ordered::Event(event) => event,
    };
    match event {
        BackplaneEvent::Message { .. } => {}
        BackplaneEvent::Up => {
            cluster.up.store(true, Ordering::Relaxed);
            tracing::info!("notif: backplane up");
            if cluster.missed.swap(false, Ordering::Relaxed) {
                // Tabs with listens may have missed notifications from other nodes.
                let tabs = hub.reset_listeners(None);
                tracing::warn!(
                    tabs,
                    "notif: backplane back; reset the tabs that may have missed notifications"
                );
                // Presence may have changed anywhere meanwhile: lists are exchanged again.
                hub.sync_presence(cluster, true);
            }
        }
        BackplaneEvent::Lost { channels } => cluster.publish_lost(channels),
        BackplaneEvent::Down => {
            if cluster.up.swap(false, Ordering::Relaxed) {
                cluster.outages.fetch_add(1, Ordering::Relaxed);
                tracing::error!("notif: backplane down; delivering locally only until it returns");
            }
            cluster.missed.store(true, Ordering::Relaxed);
            cluster.forget_heard();
        }
    }
}

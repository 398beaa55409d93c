//! The hub's side of a backplane, receiving: what it does with what other nodes publish, with
//! its own connection's state, and when it falls behind.
use std::sync::{atomic::Ordering, Arc, Weak};

use tokio::sync::mpsc;

use super::{lost_keys, node, node_channel, Body, Cluster, WireExclude, CONTROL};
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
        tokio::spawn(receive(Arc::downgrade(&self.inner), received));
    }

    async fn apply(&self, cluster: &Cluster<I>, payload: &[u8]) {
        let Some((origin, body)) = node::unframe(payload) else {
            tracing::warn!("notif: undecodable message from another node");
            return;
        };
        if origin.node == cluster.node {
            return; // delivered locally already
        }
        let Ok(body) = serde_json::from_slice::<Body>(body) else {
            tracing::warn!("notif: undecodable message from another node");
            return;
        };
        cluster.received.fetch_add(1, Ordering::Relaxed);
        {
            let mut applied = cluster.applied.lock().unwrap_or_else(|e| e.into_inner());
            let last = applied.entry(origin.node).or_default();
            *last = (*last).max(origin.seq);
        }
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
                    WireExclude::Client(client) => match client.parse() {
                        Ok(client) => Exclude::Client(client),
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
        for client in tabs {
            state.end(client, ByeReason::Resync);
        }
        ended
    }
}

async fn receive<I: Identity>(hub: Weak<Inner<I>>, mut events: mpsc::UnboundedReceiver<BackplaneEvent>) {
    // One message at a time, in order: notifications of one key keep their order per tab.
    while let Some(event) = events.recv().await {
        let Some(inner) = hub.upgrade() else { return };
        let hub = Hub { inner };
        let Some(cluster) = &hub.inner.cluster else { return };
        if events.len() >= hub.inner.config.backplane_backlog {
            for event in hub.fall_behind(cluster, event, &mut events) {
                handle(&hub, cluster, event).await;
            }
        } else {
            handle(&hub, cluster, event).await;
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
        first: BackplaneEvent,
        events: &mut mpsc::UnboundedReceiver<BackplaneEvent>,
    ) -> Vec<BackplaneEvent> {
        let mut channels = LostChannels::default();
        let mut kept = Vec::new();
        let mut dropped = 0u64;
        for event in std::iter::once(first).chain(std::iter::from_fn(|| events.try_recv().ok())) {
            match event {
                BackplaneEvent::Message { channel, .. } => {
                    dropped += 1;
                    channels.add(channel);
                }
                other => kept.push(other),
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

/// One event from the backplane, in order.
async fn handle<I: Identity>(hub: &Hub<I>, cluster: &Cluster<I>, event: BackplaneEvent) {
    match event {
        BackplaneEvent::Message { payload, .. } => hub.apply(cluster, &payload).await,
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
            }
        }
        BackplaneEvent::Lost { channels } => cluster.publish_lost(channels),
        BackplaneEvent::Down => {
            if cluster.up.swap(false, Ordering::Relaxed) {
                cluster.outages.fetch_add(1, Ordering::Relaxed);
                tracing::error!("notif: backplane down; delivering locally only until it returns");
            }
            cluster.missed.store(true, Ordering::Relaxed);
            cluster.fail_calls();
        }
    }
}

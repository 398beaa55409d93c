//! The hub's side of a backplane, receiving: what it does with what other nodes publish, with
//! its own connection's state, and when it falls behind.
use std::sync::{atomic::Ordering, Arc, Weak};

use tokio::sync::mpsc;

use super::{lost_keys, Body, Cluster, Envelope, WireExclude, CONTROL};
use crate::{
    backplane::BackplaneEvent,
    hub::{state::KeyId, Exclude, Hub, Inner},
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
        tokio::spawn(receive(Arc::downgrade(&self.inner), received));
    }

    async fn apply(&self, cluster: &Cluster<I>, payload: &[u8]) {
        let Ok(envelope) = serde_json::from_slice::<Envelope>(payload) else {
            tracing::warn!("notif: undecodable message from another node");
            return;
        };
        if envelope.origin == cluster.node {
            return; // delivered locally already
        }
        cluster.received.fetch_add(1, Ordering::Relaxed);
        let identity = |json: &str| serde_json::from_str::<I>(json).ok();
        match envelope.body {
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
                remote.deliver(self, &key, &event, exclude).await;
            }
            Body::Send {
                topic,
                identity: who,
                key,
                message,
            } => {
                if let Some(who) = identity(&who) {
                    self.send_local(&topic, &who, &key, &message);
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
            Body::Lost { keys } => self.reset_listeners(keys),
        }
    }

    /// Another node dropped publishes for `keys` (`None`: for any): end the tabs listening on
    /// them, so they come back with `recovered: false`, listen again and refetch. A tab that
    /// started listening after the loss is reset too (harmless; nodes share no clock).
    fn reset_listeners(&self, keys: Option<Vec<String>>) {
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
        if !tabs.is_empty() {
            tracing::warn!(
                tabs = tabs.len(),
                "notif: another node dropped notifications; resetting tabs that may have missed them"
            );
        }
        for client in tabs {
            state.end(client, Some(ByeReason::Resync));
        }
    }

    /// After an outage, tabs with listens may have missed notifications from other nodes: end
    /// them, so they come back with `recovered: false`, listen again and refetch.
    fn resync(&self) {
        let mut state = self.state();
        let tabs = state.listening_tabs();
        tracing::warn!(
            tabs = tabs.len(),
            "notif: backplane back; resetting tabs that may have missed notifications"
        );
        for client in tabs {
            state.end(client, Some(ByeReason::Resync));
        }
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

/// Most channels named when messages are dropped; past it, every listening tab is reset.
const MAX_DROPPED_LISTED: usize = 1024;

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
        let mut channels = std::collections::HashSet::new();
        let mut kept = Vec::new();
        let (mut dropped, mut any) = (0u64, false);
        for event in std::iter::once(first).chain(std::iter::from_fn(|| events.try_recv().ok())) {
            match event {
                BackplaneEvent::Message { channel, .. } => {
                    dropped += 1;
                    if !any && channels.len() == MAX_DROPPED_LISTED {
                        any = true;
                    }
                    if !any {
                        channels.insert(channel);
                    }
                }
                other => kept.push(other),
            }
        }
        cluster.dropped.fetch_add(dropped, Ordering::Relaxed);
        tracing::error!(
            dropped,
            "notif: fell behind the other nodes; dropped their messages and resetting the tabs they were for"
        );
        self.reset_listeners(lost_keys((!any).then(|| channels.into_iter().collect())));
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
                hub.resync();
            }
        }
        BackplaneEvent::Lost { channels } => cluster.publish_lost(channels),
        BackplaneEvent::Down => {
            if cluster.up.swap(false, Ordering::Relaxed) {
                cluster.outages.fetch_add(1, Ordering::Relaxed);
                tracing::error!("notif: backplane down; delivering locally only until it returns");
            }
            cluster.missed.store(true, Ordering::Relaxed);
        }
    }
}

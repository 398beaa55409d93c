//! A tab moving to the node it reconnected to. The browser names the node that held its tab;
//! the new node (B) asks the old one (A) what the tab listens on, subscribes to those keys and
//! starts keeping what arrives for the tab (with each message's origin and number), then asks A
//! to hand the tab over. A does so in the order of its messages: it removes the tab and answers
//! with the frames the browser missed and, for every node, the number of the last message it
//! applied (its own included). B keeps what it kept past those numbers, in order, and drops the
//! rest: A delivered them.
//!
//! Why nothing is lost or delivered twice: Redis orders every publish. A message before the
//! hand-over request reached A first (A subscribes the tab's keys), so A delivered it and its
//! number is at most A's cut; a message after it reached B (subscribed before it asked), and
//! its number is past the cut, since A had applied nothing of that origin past it. A node's own
//! notifications are numbered as they are queued, under its tables' lock, so its cut is exact.
use std::{
    collections::{HashMap, VecDeque},
    sync::{atomic::Ordering, Arc, Mutex},
    time::{Duration, Instant},
};

use super::{
    calls::{refused, Call, Refusal, Reply, CALL_TIMEOUT},
    Cluster, NodeId,
};
use crate::{
    hub::{
        key_id::KeyId,
        queue,
        state::{Outgoing, ResumeRefused, Resumed},
        Credentials, Hub,
    },
    Identity, TabId,
};

/// Tries before a move whose tab keeps changing its listens gives up.
const TRIES: usize = 3;

/// Tabs that moved from here, and where to: calls still naming this node follow them. Kept for
/// one resume window: by then the browser names the new node.
#[derive(Default)]
pub(super) struct Moved {
    to: Mutex<MovedTabs>,
}

/// Where each tab went, and when, oldest first.
type MovedTabs = (HashMap<TabId, NodeId>, VecDeque<(Instant, TabId)>);

impl<I: Identity> Cluster<I> {
    pub(super) fn moved_to(&self, tab_id: TabId) -> Option<NodeId> {
        let moved = self.moved.to.lock().unwrap_or_else(|e| e.into_inner());
        moved.0.get(&tab_id).copied()
    }

    fn record_move(&self, tab_id: TabId, to: NodeId, keep: Duration) {
        let mut moved = self.moved.to.lock().unwrap_or_else(|e| e.into_inner());
        let (to_node, order) = &mut *moved;
        let now = Instant::now();
        while let Some(&(at, old)) = order.front() {
            if now.duration_since(at) < keep {
                break;
            }
            order.pop_front();
            to_node.remove(&old);
        }
        to_node.insert(tab_id, to);
        order.push_back((now, tab_id));
    }

    /// The number of the last message applied from each node, this one included.
    fn cut(&self) -> Vec<(String, u64)> {
        let applied = self.applied.lock().unwrap_or_else(|e| e.into_inner());
        applied
            .iter()
            .map(|(node, seq)| (node.to_string(), *seq))
            .chain([(self.node.to_string(), self.last_posted())])
            .collect()
    }
}

impl<I: Identity> Hub<I> {
    /// What a tab held here listens on, for a node it is moving to.
    pub(super) fn describe(&self, tab_id: TabId, identity: &I) -> Reply {
        let state = self.state();
        match state.owner(tab_id) {
            None => refused(Refusal::UnknownTab),
            Some(owner) if owner != identity => refused(Refusal::ForeignTab),
            Some(_) => Reply::Described {
                keys: state
                    .listens_of(tab_id)
                    .iter()
                    .map(|k| k.as_str().to_owned())
                    .collect(),
            },
        }
    }

    /// Hands a tab over to node `to`, whose browser saw frames up to `seen` and which listens on
    /// `keys` for it already; forgets it here. Runs in the order of this node's messages.
    pub(super) fn hand_over(
        &self,
        cluster: &Cluster<I>,
        tab_id: TabId,
        identity: &I,
        seen: u64,
        keys: &[String],
        to: NodeId,
    ) -> Reply {
        let mut state = self.state();
        match state.owner(tab_id) {
            None => return refused(Refusal::UnknownTab),
            Some(owner) if owner != identity => return refused(Refusal::ForeignTab),
            Some(_) => {}
        }
        if !state
            .listens_of(tab_id)
            .iter()
            .all(|key| keys.iter().any(|k| k == key.as_str()))
        {
            return refused(Refusal::Changed);
        }
        let Some((seq, frames)) = state.missed(tab_id, seen) else {
            return refused(Refusal::Gone);
        };
        let listens = state
            .listens_of(tab_id)
            .iter()
            .map(|k| k.as_str().to_owned())
            .collect();
        // Under the tables' lock: no notification of this node is between being numbered and
        // being queued, so the cut is exact.
        let cut = cluster.cut();
        state.forget(tab_id);
        drop(state);
        cluster.record_move(tab_id, to, self.inner.config.resume_window);
        cluster.moved_out.fetch_add(1, Ordering::Relaxed);
        Reply::Taken {
            seq,
            frames: frames.iter().map(|f| f.to_string()).collect(),
            keys: listens,
            cut,
        }
    }

    /// Resumes here the tab `tab_id` that node `from` holds, as `identity`, whose browser saw
    /// its frames up to `seen`. `Gone` (start a new tab) when the move cannot be made: the old
    /// node is unreachable or gone, forgot the tab or its missed frames, or holds a topic this
    /// node does not know.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn move_in(
        &self,
        tab_id: TabId,
        identity: &I,
        seen: u64,
        from: NodeId,
        tx: queue::Sender<Outgoing>,
        credentials: Option<Credentials>,
    ) -> Result<Resumed, ResumeRefused> {
        let cluster = self.inner.cluster.as_ref().ok_or(ResumeRefused::Gone)?;
        let who = serde_json::to_string(identity).map_err(|_| ResumeRefused::Gone)?;
        for _ in 0..TRIES {
            let call = Call::Describe {
                tab_id: tab_id.to_string(),
                identity: who.clone(),
            };
            let keys = match cluster.call(from, call).await {
                Ok(Reply::Described { keys }) => keys,
                Ok(Reply::Refused {
                    refusal: Refusal::ForeignTab,
                }) => return Err(ResumeRefused::Foreign),
                _ => return Err(ResumeRefused::Gone),
            };
            let keys: Vec<KeyId> = keys.iter().map(|k| KeyId::from_id(k)).collect();
            if !keys.iter().all(|key| cluster.knows(key.topic())) {
                tracing::warn!("notif: a tab listens on a topic this node has not registered (Hub::with_topic); it starts over");
                return Err(ResumeRefused::Gone);
            }
            let mut appearances = Vec::with_capacity(keys.len());
            for key in &keys {
                appearances.push(self.appearance(key, identity).await);
            }
            // Listening here first, keeping what arrives for the tab until it is handed over.
            let (subscriptions, new_presence) = {
                let mut state = self.state();
                let cap = self.inner.config.replay_capacity;
                let Some(new_presence) = state.arriving(tab_id, identity.clone(), &keys, appearances, cap)
                else {
                    return Err(ResumeRefused::Gone);
                };
                (state.release(), new_presence)
            };
            let subscribed = async {
                for subscription in subscriptions {
                    let _ = subscription.await;
                }
            };
            if tokio::time::timeout(CALL_TIMEOUT, subscribed).await.is_err() {
                self.state().abandon_arrival(tab_id);
                return Err(ResumeRefused::Gone);
            }
            for key in &new_presence {
                self.ask_presence(key);
            }
            let call = Call::Take {
                tab_id: tab_id.to_string(),
                identity: who.clone(),
                seen,
                keys: keys.iter().map(|k| k.as_str().to_owned()).collect(),
            };
            match cluster.call(from, call).await {
                Ok(Reply::Taken {
                    seq,
                    frames,
                    keys: kept,
                    cut,
                }) => {
                    let cut: HashMap<NodeId, u64> = cut
                        .iter()
                        .filter_map(|(node, seq)| Some((node.parse().ok()?, *seq)))
                        .collect();
                    let kept: Vec<KeyId> = kept.iter().map(|k| KeyId::from_id(k)).collect();
                    let frames: Vec<Arc<str>> = frames.into_iter().map(Arc::from).collect();
                    let arrived = self.state().arrive(
                        tab_id,
                        seq,
                        frames,
                        &kept,
                        |node| cut.get(&node).copied().unwrap_or(0),
                        tx,
                        credentials,
                    );
                    return match arrived {
                        Some(resumed) => {
                            cluster.moved_in.fetch_add(1, Ordering::Relaxed);
                            Ok(resumed)
                        }
                        None => Err(ResumeRefused::Gone),
                    };
                }
                Ok(Reply::Refused {
                    refusal: Refusal::Changed,
                }) => self.state().abandon_arrival(tab_id),
                Ok(Reply::Refused {
                    refusal: Refusal::ForeignTab,
                }) => {
                    self.state().abandon_arrival(tab_id);
                    return Err(ResumeRefused::Foreign);
                }
                _ => {
                    self.state().abandon_arrival(tab_id);
                    return Err(ResumeRefused::Gone);
                }
            }
        }
        Err(ResumeRefused::Gone)
    }
}

//! Calls to the node holding a tab. A listen, an unlisten or a caller check that reached another
//! node (a load balancer sends each request anywhere) is carried out where the tab is and
//! answered as it would be there. The browser names its tab's node in every call (it learnt it
//! from the hello), so finding it is one message to that node's channel and one back; a node
//! the tab moved away from passes the call on to where it went.
use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicU64, Ordering},
        Mutex,
    },
    time::Duration,
};

use tokio::sync::oneshot;

mod messages;

pub(super) use messages::{refused, Call, Refusal, Reply};

use super::{node_channel, Body, Cluster, NodeId};
use crate::{
    hub::{key_id::KeyId, Hub},
    Identity, ListenError, TabId,
};

/// How long a call waits for its answer: a node that does not answer by then is taken for gone.
pub(super) const CALL_TIMEOUT: Duration = Duration::from_secs(2);

/// Why a call got no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CallFailed {
    /// The backplane is down: nothing reaches another node.
    Down,
    /// No answer in time (the node is gone, or the backplane went down meanwhile).
    Timeout,
}

impl From<CallFailed> for ListenError {
    fn from(_: CallFailed) -> Self {
        ListenError::Unreachable
    }
}

/// Calls waiting for their answers.
#[derive(Default)]
pub(super) struct Pending {
    next: AtomicU64,
    waiting: Mutex<HashMap<u64, oneshot::Sender<Reply>>>,
}

impl Pending {
    fn waiting(&self) -> std::sync::MutexGuard<'_, HashMap<u64, oneshot::Sender<Reply>>> {
        self.waiting.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl<I: Identity> Cluster<I> {
    /// Asks node `to` and waits for its answer.
    pub(super) async fn call(&self, to: NodeId, call: Call) -> Result<Reply, CallFailed> {
        if !self.is_up() {
            return Err(CallFailed::Down);
        }
        let id = self.calls.next.fetch_add(1, Ordering::Relaxed);
        let (answer, answered) = oneshot::channel();
        self.calls.waiting().insert(id, answer);
        if !matches!(call, Call::Present { .. }) {
            // `notif_calls_forwarded_total` counts calls for tabs, not presence questions.
            self.forwarded.fetch_add(1, Ordering::Relaxed);
        }
        let from = self.node.to_string();
        self.publish(node_channel(to), Body::Call { id, from, call });
        let reply = tokio::time::timeout(CALL_TIMEOUT, answered).await;
        self.calls.waiting().remove(&id);
        match reply {
            Ok(Ok(reply)) => Ok(reply),
            _ => Err(CallFailed::Timeout),
        }
    }

    /// Who listens on `key` on every other node heard from lately (identity JSON, tabs),
    /// asked all at once; `None` if one of them did not answer.
    pub(in crate::hub) async fn present_elsewhere(&self, key: &KeyId) -> Option<Vec<(String, u64)>> {
        let nodes = self.live_nodes();
        let calls = nodes.into_iter().map(|node| {
            self.call(
                node,
                Call::Present {
                    key: key.as_str().to_owned(),
                },
            )
        });
        let mut all = Vec::new();
        for reply in futures::future::join_all(calls).await {
            match reply {
                Ok(Reply::Present { identities }) => all.extend(identities),
                _ => return None,
            }
        }
        Some(all)
    }

    /// An answer arrived.
    pub(super) fn answered(&self, id: u64, reply: Reply) {
        if let Some(answer) = self.calls.waiting().remove(&id) {
            let _ = answer.send(reply);
        }
    }

    /// The backplane went down: calls waiting will not be answered; they fail now.
    pub(super) fn fail_calls(&self) {
        self.calls.waiting().clear();
    }

    pub(super) fn reply(&self, to: NodeId, id: u64, reply: Reply) {
        self.publish(node_channel(to), Body::Reply { id, reply });
    }
}

impl<I: Identity> Hub<I> {
    /// The node to carry a call about `tab_id` to: the one the caller names, when the tab is not
    /// here and that node is another. `None`: handle it here.
    pub(crate) fn holder(&self, tab_id: TabId, named: Option<&str>) -> Option<NodeId> {
        let cluster = self.inner.cluster.as_ref()?;
        let node: NodeId = named?.parse().ok()?;
        if node == cluster.node() || self.state().owner(tab_id).is_some() {
            return None;
        }
        Some(node)
    }

    fn cluster_call_parts(&self, tab_id: TabId, identity: &I) -> Option<(&Cluster<I>, String, String)> {
        let cluster = self.inner.cluster.as_ref()?;
        Some((cluster, tab_id.to_string(), serde_json::to_string(identity).ok()?))
    }

    /// Listens `tab_id`, held by `node`, on `key` there. Returns once it is registered there.
    pub(crate) async fn listen_at(
        &self,
        node: NodeId,
        tab_id: TabId,
        identity: &I,
        key: &KeyId,
    ) -> Result<(), ListenError> {
        self.key_call_at(node, tab_id, identity, key, true).await
    }

    /// Stops `tab_id`, held by `node`, listening on `key` there.
    pub(crate) async fn unlisten_at(
        &self,
        node: NodeId,
        tab_id: TabId,
        identity: &I,
        key: &KeyId,
    ) -> Result<(), ListenError> {
        self.key_call_at(node, tab_id, identity, key, false).await
    }

    /// A listen (or an unlisten) of `tab_id` on `key`, carried out by `node`.
    async fn key_call_at(
        &self,
        node: NodeId,
        tab_id: TabId,
        identity: &I,
        key: &KeyId,
        listen: bool,
    ) -> Result<(), ListenError> {
        let (cluster, tab_id, identity) = self
            .cluster_call_parts(tab_id, identity)
            .ok_or(ListenError::UnknownTab)?;
        let key_id = key.as_str().to_owned();
        let call = match listen {
            true => Call::Listen {
                tab_id,
                identity,
                key: key_id,
            },
            false => Call::Unlisten {
                tab_id,
                identity,
                key: key_id,
            },
        };
        match cluster.call(node, call).await? {
            Reply::Done => Ok(()),
            Reply::Refused { refusal } => Err(refusal.error(key.topic())),
            _ => Err(ListenError::UnknownTab),
        }
    }

    /// Whether `tab_id`, held by `node`, belongs to `identity`.
    pub(crate) async fn owns_at(&self, node: NodeId, tab_id: TabId, identity: &I) -> bool {
        let Some((cluster, tab_id, identity)) = self.cluster_call_parts(tab_id, identity) else {
            return false;
        };
        matches!(
            cluster.call(node, Call::Owns { tab_id, identity }).await,
            Ok(Reply::Owns { owns: true })
        )
    }

    /// A call from node `from`: carried out here if the tab is here, passed on if it moved to
    /// another node, refused otherwise. A listen waits for its subscriptions in a task of its
    /// own; everything else is answered at once, in the order messages arrive.
    pub(super) fn answer_call(&self, cluster: &Cluster<I>, from: NodeId, id: u64, call: Call) {
        if let Call::Present { key } = &call {
            let identities = self.identities_on_json(&KeyId::from_id(key));
            cluster.reply(from, id, Reply::Present { identities });
            return;
        }
        let Ok(tab_id) = call.tab_id().parse::<TabId>() else {
            cluster.reply(from, id, refused(Refusal::UnknownTab));
            return;
        };
        if self.state().owner(tab_id).is_none() {
            if let Some(to) = cluster.moved_to(tab_id) {
                let from = from.to_string();
                cluster.publish(node_channel(to), Body::Call { id, from, call });
                return;
            }
        }
        let identity = |json: &str| serde_json::from_str::<I>(json).ok();
        let reply = match call {
            Call::Listen {
                identity: who, key, ..
            } => {
                let key = KeyId::from_id(&key);
                let (Some(who), true) = (identity(&who), cluster.knows(key.topic())) else {
                    let refusal = match identity(&who) {
                        None => Refusal::ForeignTab,
                        Some(_) => Refusal::UnknownTopic,
                    };
                    cluster.reply(from, id, refused(refusal));
                    return;
                };
                let hub = self.clone();
                tokio::spawn(async move {
                    let reply = match hub.listen_key(tab_id, &who, key).await {
                        Ok(()) => Reply::Done,
                        Err(error) => refused(Refusal::of(&error)),
                    };
                    if let Some(cluster) = &hub.inner.cluster {
                        cluster.reply(from, id, reply);
                    }
                });
                return;
            }
            Call::Unlisten {
                identity: who, key, ..
            } => match identity(&who) {
                Some(who) => match self.state().unlisten(tab_id, &who, &KeyId::from_id(&key)) {
                    Ok(_) => Reply::Done,
                    Err(error) => refused(Refusal::of(&error)),
                },
                None => refused(Refusal::ForeignTab),
            },
            Call::Owns { identity: who, .. } => Reply::Owns {
                owns: identity(&who).is_some_and(|who| self.state().owner(tab_id) == Some(&who)),
            },
            Call::Describe { identity: who, .. } => match identity(&who) {
                Some(who) => self.describe(tab_id, &who),
                None => refused(Refusal::ForeignTab),
            },
            Call::Take {
                identity: who,
                seen,
                keys,
                ..
            } => match identity(&who) {
                Some(who) => self.hand_over(cluster, tab_id, &who, seen, &keys, from),
                None => refused(Refusal::ForeignTab),
            },
            // Answered above.
            Call::Present { .. } => return,
        };
        cluster.reply(from, id, reply);
    }
}

//! Presence in the tables: for each key of a topic with presence that has listeners here, the
//! identities listening on it here and, with several nodes, those other nodes said they have.
//! An identity shown on no node before sends `join` to the key's tabs here, one shown on no node
//! any more sends `leave`; a tab that listens gets the whole list. The frames are queued under
//! the tables' lock, in the order the tables changed, and numbered like notifications (so a
//! resume replays them). Identities are compared across nodes by their JSON.
use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
};

use super::{Delivered, State};
use crate::{
    hub::{
        cluster::{NodeId, Origin, PresenceNews},
        key_id::KeyId,
        shrink::shrink,
        Stamp,
    },
    wire::encode_presence,
    Identity, TabId,
};

/// Most identities a `present` list names: past it the list is cut (docs/PROTOCOL.md).
pub(crate) const PRESENT_LISTED: usize = 1000;

/// How an identity appears on keys of a topic with presence, computed before its listen takes
/// the lock.
#[derive(Debug, Clone)]
pub(crate) struct Appearance {
    /// The identity as JSON: how nodes name it, and the order of lists and pages.
    pub order: Arc<str>,
    /// What other listeners see (`Presence::public` as JSON); `None`: counted, never shown.
    pub public: Option<Arc<str>>,
}

/// An identity listening on a key here.
struct Here {
    /// Its tabs listening on the key here.
    tabs: u32,
    public: Option<Arc<str>>,
}

/// An identity shown on a key by other nodes.
struct Elsewhere {
    public: Arc<str>,
    nodes: Vec<NodeId>,
}

/// Who is on one key, by identity JSON.
#[derive(Default)]
pub(super) struct KeyPresence {
    here: HashMap<Arc<str>, Here>,
    elsewhere: HashMap<Arc<str>, Elsewhere>,
}

impl KeyPresence {
    fn shown_here(&self, identity: &str) -> bool {
        self.here.get(identity).is_some_and(|h| h.public.is_some())
    }
}

impl<I: Identity> State<I> {
    /// `tab_id` of `identity` now listens on `key`, a key with presence: if it is the identity's
    /// first tab on any node, the key's other tabs get `join`; if its first here, the other
    /// nodes are told. Returns whether the key had no presence here before (the other nodes'
    /// lists are then to be asked for, once subscribed).
    pub fn joined(&mut self, tab_id: TabId, key: &KeyId, appearance: Appearance) -> bool {
        let new_key = !self.presence.contains_key(key);
        let presence = self.presence.entry(key.clone()).or_default();
        if let Some(here) = presence.here.get_mut(&appearance.order) {
            here.tabs += 1;
            return new_key;
        }
        let Appearance { order, public } = appearance;
        let elsewhere = presence.elsewhere.contains_key(&order);
        presence.here.insert(
            order.clone(),
            Here {
                tabs: 1,
                public: public.clone(),
            },
        );
        let Some(public) = public else {
            return new_key;
        };
        let origin = self.announce(
            key,
            PresenceNews::Joined {
                identity: order.to_string(),
                public: public.to_string(),
            },
        );
        if !elsewhere {
            self.send_to_key(key, "join", &public, Some(tab_id), origin);
        }
        new_key
    }

    /// A tab of `identity` stopped listening on `key`: if it was the identity's last here, the
    /// other nodes are told, and if it is on no other node, the key's remaining tabs get `leave`.
    pub(super) fn left(&mut self, identity: &I, key: &KeyId) {
        let Some(presence) = self.presence.get_mut(key) else {
            return;
        };
        let Ok(order) = serde_json::to_string(identity) else {
            return;
        };
        let Some(here) = presence.here.get_mut(order.as_str()) else {
            return;
        };
        here.tabs -= 1;
        if here.tabs > 0 {
            return;
        }
        let here = presence.here.remove(order.as_str()).expect("just found");
        let elsewhere = presence.elsewhere.contains_key(order.as_str());
        if presence.here.is_empty() {
            // No tab here listens any more: what the other nodes have is of no use here.
            self.presence.remove(key);
            shrink(&mut self.presence);
        } else {
            shrink(&mut presence.here);
        }
        if let Some(public) = here.public {
            let origin = self.announce(key, PresenceNews::Left { identity: order });
            if !elsewhere {
                self.send_to_key(key, "leave", &public, None, origin);
            }
        }
    }

    /// Node `node` says `identity` is on `key` there, shown as `public`.
    pub fn heard_joined(
        &mut self,
        key: &KeyId,
        node: NodeId,
        identity: Arc<str>,
        public: Arc<str>,
        origin: Origin,
    ) {
        let Some(presence) = self.presence.get_mut(key) else {
            return;
        };
        let shown_here = presence.shown_here(&identity);
        match presence.elsewhere.get_mut(&identity) {
            Some(elsewhere) => {
                if !elsewhere.nodes.contains(&node) {
                    elsewhere.nodes.push(node);
                }
            }
            None => {
                presence.elsewhere.insert(
                    identity,
                    Elsewhere {
                        public: public.clone(),
                        nodes: vec![node],
                    },
                );
                if !shown_here {
                    self.send_to_key(key, "join", &public, None, origin);
                }
            }
        }
    }

    /// Node `node` says `identity` left `key` there.
    pub fn heard_left(&mut self, key: &KeyId, node: NodeId, identity: &str, origin: Origin) {
        let Some(presence) = self.presence.get_mut(key) else {
            return;
        };
        let Some(elsewhere) = presence.elsewhere.get_mut(identity) else {
            return;
        };
        elsewhere.nodes.retain(|n| *n != node);
        if !elsewhere.nodes.is_empty() {
            return;
        }
        let public = presence.elsewhere.remove(identity).expect("just found").public;
        if !presence.shown_here(identity) {
            self.send_to_key(key, "leave", &public, None, origin);
        }
    }

    /// Node `node` says who it has on `key`, all of them: what it said before is replaced.
    pub fn heard_snapshot(
        &mut self,
        key: &KeyId,
        node: NodeId,
        members: Vec<(String, String)>,
        origin: Origin,
    ) {
        let Some(presence) = self.presence.get(key) else {
            return;
        };
        let said: HashSet<&str> = members.iter().map(|(identity, _)| identity.as_str()).collect();
        let gone: Vec<Arc<str>> = presence
            .elsewhere
            .iter()
            .filter(|(identity, e)| e.nodes.contains(&node) && !said.contains(&***identity))
            .map(|(identity, _)| identity.clone())
            .collect();
        for identity in gone {
            self.heard_left(key, node, &identity, origin);
        }
        for (identity, public) in members {
            self.heard_joined(key, node, identity.into(), public.into(), origin);
        }
    }

    /// Node `node` is gone: every identity it had leaves. Returns how many (key, identity)
    /// pairs it had.
    pub fn node_gone(&mut self, node: NodeId) -> usize {
        let had: Vec<(KeyId, Arc<str>)> = self
            .presence
            .iter()
            .flat_map(|(key, presence)| {
                presence
                    .elsewhere
                    .iter()
                    .filter(|(_, e)| e.nodes.contains(&node))
                    .map(move |(identity, _)| (key.clone(), identity.clone()))
            })
            .collect();
        let gone = had.len();
        for (key, identity) in had {
            self.heard_left(&key, node, &identity, Origin::HERE);
        }
        gone
    }

    /// The keys with presence here, with who is shown on each here (identity and public form).
    pub fn presence_here(&self) -> Vec<(KeyId, Vec<(String, String)>)> {
        self.presence
            .iter()
            .map(|(key, presence)| (key.clone(), Self::shown_members(presence)))
            .collect()
    }

    /// Who is shown on `key` here, if it has presence here.
    pub fn presence_here_on(&self, key: &KeyId) -> Option<Vec<(String, String)>> {
        self.presence.get(key).map(Self::shown_members)
    }

    fn shown_members(presence: &KeyPresence) -> Vec<(String, String)> {
        presence
            .here
            .iter()
            .filter_map(|(identity, here)| Some((identity.to_string(), here.public.as_deref()?.to_owned())))
            .collect()
    }

    /// Sends `tab_id` everyone shown on `key`, here and on other nodes (in the order of their
    /// identities, at most [`PRESENT_LISTED`]), if the key has presence.
    pub fn send_present(&mut self, tab_id: TabId, key: &KeyId) {
        let Some(presence) = self.presence.get(key) else {
            return;
        };
        let mut shown: Vec<(&Arc<str>, &Arc<str>)> = presence
            .here
            .iter()
            .filter_map(|(identity, here)| Some((identity, here.public.as_ref()?)))
            .chain(
                presence
                    .elsewhere
                    .iter()
                    .filter(|(identity, _)| !presence.shown_here(identity))
                    .map(|(identity, elsewhere)| (identity, &elsewhere.public)),
            )
            .collect();
        shown.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let mut list = String::from("[");
        for (n, (_, public)) in shown.iter().take(PRESENT_LISTED).enumerate() {
            if n > 0 {
                list.push(',');
            }
            list.push_str(public);
        }
        list.push(']');
        let data: Arc<str> = encode_presence(key.topic(), key.key_json(), "present", &list).into();
        let mut wakes = std::mem::take(&mut self.wakes);
        let delivered = self.deliver(tab_id, Some(key), &data, Origin::HERE, Stamp::now(), &mut wakes);
        self.wakes.append(&mut wakes);
        match delivered {
            Delivered::Queued => self.presence_tally.0 += 1,
            Delivered::Lagged => self.presence_tally.1 += 1,
            Delivered::Skipped => {}
        }
    }

    /// Tells the other nodes, if any, numbered as the frames it causes here are queued.
    fn announce(&self, key: &KeyId, news: PresenceNews) -> Origin {
        match &self.poster {
            Some(poster) => poster.presence(key, news),
            None => Origin::HERE,
        }
    }

    /// Queues a `join` or `leave` for every tab on `key` but `except`.
    fn send_to_key(
        &mut self,
        key: &KeyId,
        change: &str,
        public: &str,
        except: Option<TabId>,
        origin: Origin,
    ) {
        let data: Arc<str> = encode_presence(key.topic(), key.key_json(), change, public).into();
        let mut wakes = std::mem::take(&mut self.wakes);
        let except = |tab, _: &I| Some(tab) == except;
        let (queued, lagged) = self.deliver_to_key(key, except, &data, origin, Stamp::now(), &mut wakes);
        self.wakes.append(&mut wakes);
        self.presence_tally.0 += queued;
        self.presence_tally.1 += lagged;
    }

    /// The distinct identities listening on `key` here, each with its tabs there.
    pub fn identities_on(&self, key: &KeyId) -> Vec<(I, usize)> {
        self.listeners(key, |_, _| false)
            .into_iter()
            .map(|(identity, tabs)| (identity, tabs.len()))
            .collect()
    }
}

#[cfg(test)]
mod tests;

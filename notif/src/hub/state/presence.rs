//! Presence in the tables: for each key of a topic with presence, the identities listening on
//! it here and how other listeners see them. An identity's first tab to listen sends `join` to
//! the key's other tabs, its last tab to stop sends `leave`; a tab that listens gets the whole
//! list. The frames are queued under the tables' lock, in the order the tables changed, and
//! numbered like notifications (so a resume replays them).
use std::{collections::HashMap, sync::Arc};

use super::State;
use crate::{
    hub::{cluster::Origin, key_id::KeyId, shrink::shrink},
    wire::encode_presence,
    Identity, TabId,
};

/// Most identities a `present` list names: past it the list is cut (docs/PROTOCOL.md).
pub(crate) const PRESENT_LISTED: usize = 1000;

/// How an identity appears on keys of a topic with presence, computed before its listen takes
/// the lock.
#[derive(Debug, Clone)]
pub(crate) struct Appearance {
    /// The identity as JSON: the order of lists and pages.
    pub order: Arc<str>,
    /// What other listeners see (`Presence::public` as JSON); `None`: counted, never shown.
    pub public: Option<Arc<str>>,
}

/// An identity listening on a key with presence.
struct Member {
    /// Its tabs listening on the key here.
    tabs: u32,
    appearance: Appearance,
}

/// The identities listening on one key with presence.
pub(super) struct KeyPresence<I> {
    members: HashMap<I, Member>,
}

impl<I> Default for KeyPresence<I> {
    fn default() -> Self {
        KeyPresence {
            members: HashMap::new(),
        }
    }
}

impl<I: Identity> State<I> {
    /// `client` of `identity` now listens on `key`, a key with presence: if it is the identity's
    /// first tab there, the key's other tabs get `join`.
    pub fn joined(&mut self, client: TabId, identity: &I, key: &KeyId, appearance: Appearance) {
        let members = &mut self.presence.entry(key.clone()).or_default().members;
        if let Some(member) = members.get_mut(identity) {
            member.tabs += 1;
            return;
        }
        let public = appearance.public.clone();
        members.insert(identity.clone(), Member { tabs: 1, appearance });
        if let Some(public) = public {
            self.send_to_key(key, "join", &public, Some(client));
        }
    }

    /// A tab of `identity` stopped listening on `key`: if it was the identity's last there, the
    /// key's remaining tabs get `leave`.
    pub(super) fn left(&mut self, identity: &I, key: &KeyId) {
        let Some(presence) = self.presence.get_mut(key) else {
            return;
        };
        let Some(member) = presence.members.get_mut(identity) else {
            return;
        };
        member.tabs -= 1;
        if member.tabs > 0 {
            return;
        }
        let member = presence.members.remove(identity).expect("just found");
        if presence.members.is_empty() {
            self.presence.remove(key);
            shrink(&mut self.presence);
        } else {
            shrink(&mut presence.members);
        }
        if let Some(public) = member.appearance.public {
            self.send_to_key(key, "leave", &public, None);
        }
    }

    /// Sends `client` everyone shown on `key` (in the order of their identities, at most
    /// [`PRESENT_LISTED`]), if the key has presence.
    pub fn send_present(&mut self, client: TabId, key: &KeyId) {
        let Some(presence) = self.presence.get(key) else {
            return;
        };
        let mut shown: Vec<&Appearance> = presence
            .members
            .values()
            .map(|m| &m.appearance)
            .filter(|a| a.public.is_some())
            .collect();
        shown.sort_unstable_by(|a, b| a.order.cmp(&b.order));
        let mut list = String::from("[");
        for (n, appearance) in shown.iter().take(PRESENT_LISTED).enumerate() {
            if n > 0 {
                list.push(',');
            }
            list.push_str(appearance.public.as_deref().unwrap_or("null"));
        }
        list.push(']');
        let data: Arc<str> = encode_presence(key.topic(), key.key_json(), "present", &list).into();
        let mut wakes = std::mem::take(&mut self.wakes);
        self.deliver(client, Some(key), &data, Origin::HERE, &mut wakes);
        self.wakes.append(&mut wakes);
    }

    /// Queues a `join` or `leave` for every tab on `key` but `except`.
    fn send_to_key(&mut self, key: &KeyId, change: &str, public: &str, except: Option<TabId>) {
        let data: Arc<str> = encode_presence(key.topic(), key.key_json(), change, public).into();
        let mut wakes = std::mem::take(&mut self.wakes);
        self.deliver_to_key(key, |tab, _| Some(tab) == except, &data, Origin::HERE, &mut wakes);
        self.wakes.append(&mut wakes);
    }

    /// The distinct identities listening on `key` here, each with its tabs there.
    pub fn identities_on(&self, key: &KeyId) -> Vec<(I, usize)> {
        if let Some(presence) = self.presence.get(key) {
            return presence
                .members
                .iter()
                .map(|(identity, member)| (identity.clone(), member.tabs as usize))
                .collect();
        }
        self.listeners(key, |_, _| false)
            .into_iter()
            .map(|(identity, tabs)| (identity, tabs.len()))
            .collect()
    }
}

//! The hub's tables: tabs by id, listeners by key, tabs by identity. Plain data behind one
//! mutex; every method is synchronous so the lock is never held across an `.await`.
use std::{collections::HashMap, sync::Arc};

mod arrival;
mod delivery;
mod presence;
#[cfg(test)]
mod presence_properties;

use super::id_map::{IdMap, IdSet};
pub(crate) use super::tab::{Delivered, Outgoing, Wakes};
use super::{
    cluster::Poster,
    key_id::KeyId,
    listeners::Listeners,
    queue,
    replay::Replay,
    revalidate::Credentials,
    shrink::{push_tight, shrink, trim},
    tab::Tab,
    Metrics,
};
use crate::{ByeReason, Identity, ListenError, StreamRefused, TabId};
pub(crate) use presence::Appearance;
use presence::KeyPresence;

/// Why a tab cannot be resumed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ResumeRefused {
    /// The tab belongs to another identity: refuse the request.
    Foreign,
    /// The tab is gone or its missed frames are: start a new tab (`recovered: false`).
    Gone,
}

/// A resumed tab: its connection number and the frames to replay.
pub(crate) struct Resumed {
    pub conn: u32,
    pub frames: Vec<(u64, Arc<str>)>,
}

pub(crate) struct State<I> {
    tabs: IdMap<Tab<I>>,
    keys: HashMap<KeyId, Listeners>,
    /// Tabs per identity: usually one or a few, so a vector.
    identities: HashMap<I, Vec<TabId>>,
    listens: usize,
    /// What `identify` read of the request that opened each tab, to run it again; beside the
    /// tabs rather than in them, so a tab whose request carried none costs nothing more.
    credentials: IdMap<Credentials>,
    /// Keys that gained their first or lost their last listener since last drained: the
    /// backplane subscriptions to update.
    pub changes: Vec<KeyId>,
    /// Keys of topics with presence: who listens on them.
    presence: HashMap<KeyId, KeyPresence>,
    /// Frames queued by changes to the tables (presence), to write once the lock is released.
    pub wakes: Wakes,
    /// With several nodes, what announces presence changes to the others.
    pub poster: Option<Poster>,
    /// Tabs being cut off for lagging (they get no more frames), the order to end them in,
    /// and whether a loop is at it (`cut_off`).
    lagging: IdSet,
    to_cut: Vec<TabId>,
    cutting_off: bool,
    /// Presence frames queued, and tabs they cut off, since last counted (on release).
    pub presence_tally: (u64, u64),
}

impl<I> Default for State<I> {
    fn default() -> Self {
        State {
            tabs: IdMap::default(),
            keys: HashMap::new(),
            identities: HashMap::new(),
            listens: 0,
            credentials: IdMap::default(),
            changes: Vec::new(),
            presence: HashMap::new(),
            wakes: Vec::new(),
            poster: None,
            lagging: IdSet::default(),
            to_cut: Vec::new(),
            cutting_off: false,
            presence_tally: (0, 0),
        }
    }
}

impl<I: Identity> State<I> {
    /// Makes room for one more tab of `identity`, at most `cap`: at the cap, its oldest tab
    /// waiting out its resume window is forgotten (if it comes back, it starts over); if every
    /// one is connected, the new tab is refused.
    pub fn make_room(&mut self, identity: &I, cap: usize) -> Result<(), StreamRefused> {
        let tab_ids = self.identities.get(identity).map_or(&[][..], Vec::as_slice);
        if tab_ids.len() < cap {
            return Ok(());
        }
        let oldest_detached = tab_ids
            .iter()
            .find(|c| self.tabs.get(c).is_some_and(|t| t.tx.is_none()))
            .copied();
        match oldest_detached {
            Some(tab_id) => {
                self.remove(tab_id);
                Ok(())
            }
            None => Err(StreamRefused::TooManyTabs { cap }),
        }
    }

    pub fn open(
        &mut self,
        identity: I,
        credentials: Option<Credentials>,
        tx: queue::Sender<Outgoing>,
        replay: usize,
    ) -> TabId {
        let mut tab_id = TabId::random();
        while self.tabs.contains_key(&tab_id) {
            tab_id = TabId::random();
        }
        push_tight(self.identities.entry(identity.clone()).or_default(), tab_id);
        self.tabs.insert(
            tab_id,
            Tab {
                identity,
                tx: Some(tx),
                listens: Vec::new(),
                seq: 0,
                replay: Replay::new(replay),
                conn: 0,
                epoch: 0,
                arrival: None,
            },
        );
        if let Some(credentials) = credentials {
            self.credentials.insert(tab_id, credentials);
        }
        tab_id
    }

    /// Attaches a new connection to an existing tab that missed at most what its replay
    /// buffer holds. A connection still attached (its end not yet noticed) is replaced.
    pub fn resume(
        &mut self,
        tab_id: TabId,
        identity: &I,
        seen: u64,
        tx: queue::Sender<Outgoing>,
        credentials: Option<Credentials>,
    ) -> Result<Resumed, ResumeRefused> {
        let tab = self.tabs.get_mut(&tab_id).ok_or(ResumeRefused::Gone)?;
        if &tab.identity != identity {
            return Err(ResumeRefused::Foreign);
        }
        let frames = tab.replay.since(seen, tab.seq).ok_or(ResumeRefused::Gone)?;
        tab.tx = Some(tx);
        tab.conn = tab.conn.wrapping_add(1);
        tab.epoch = tab.epoch.wrapping_add(1);
        // Re-validated from now on with this request's session (a new sign-in's cookie, say).
        match credentials {
            Some(credentials) => self.credentials.insert(tab_id, credentials),
            None => self.credentials.remove(&tab_id),
        };
        Ok(Resumed {
            conn: tab.conn,
            frames,
        })
    }

    /// Marks the tab's stream as ended, if `conn` is still the attached connection; returns
    /// the epoch an expiry must match.
    pub fn detach(&mut self, tab_id: TabId, conn: u32) -> Option<u32> {
        let tab = self.tabs.get_mut(&tab_id).filter(|t| t.conn == conn)?;
        tab.tx = None;
        tab.epoch = tab.epoch.wrapping_add(1);
        Some(tab.epoch)
    }

    /// Ends `tab_id`'s connection with a `bye` but keeps the tab, detached, so the node its
    /// browser reconnects to can take it over; it expires as any detached tab does.
    pub fn say_bye(&mut self, tab_id: TabId, reason: ByeReason) {
        if let Some(tx) = self.tabs.get_mut(&tab_id).and_then(|t| t.tx.take()) {
            tx.push_last(Outgoing::Bye(reason));
        }
    }

    /// Forgets a detached tab whose window passed, unless it was reattached since.
    pub fn expire(&mut self, tab_id: TabId, epoch: u32) {
        if self
            .tabs
            .get(&tab_id)
            .is_some_and(|t| t.tx.is_none() && t.epoch == epoch)
        {
            self.remove(tab_id);
        }
    }

    /// Ends a tab now: its connection, if any, gets what is queued, then `bye`, then the end.
    pub fn end(&mut self, tab_id: TabId, reason: ByeReason) {
        if let Some(tx) = self.tabs.get(&tab_id).and_then(|t| t.tx.as_ref()) {
            tx.push_last(Outgoing::Bye(reason));
        }
        self.remove(tab_id);
    }

    fn remove(&mut self, tab_id: TabId) {
        let Some(tab) = self.tabs.remove(&tab_id) else {
            return;
        };
        self.credentials.remove(&tab_id);
        self.listens -= tab.listens.len();
        for key in &tab.listens {
            self.drop_listener(key, tab_id, &tab.identity);
        }
        if let Some(tabs) = self.identities.get_mut(&tab.identity) {
            tabs.retain(|c| *c != tab_id);
            trim(tabs);
            if tabs.is_empty() {
                self.identities.remove(&tab.identity);
            }
        }
        shrink(&mut self.tabs);
        shrink(&mut self.credentials);
        shrink(&mut self.identities);
        shrink(&mut self.keys);
    }

    fn drop_listener(&mut self, key: &KeyId, tab_id: TabId, identity: &I) {
        if let Some(listeners) = self.keys.get_mut(key) {
            listeners.remove(tab_id);
            if listeners.is_empty() {
                self.keys.remove(key);
                self.changes.push(key.clone());
            }
        }
        self.left(identity, key);
    }

    fn owned_tab(&mut self, tab_id: TabId, identity: &I) -> Result<&mut Tab<I>, ListenError> {
        let tab = self.tabs.get_mut(&tab_id).ok_or(ListenError::UnknownTab)?;
        if &tab.identity != identity {
            return Err(ListenError::ForeignTab);
        }
        Ok(tab)
    }

    /// Returns whether the tab was not listening yet.
    pub fn listen(
        &mut self,
        tab_id: TabId,
        identity: &I,
        key: KeyId,
        cap: usize,
    ) -> Result<bool, ListenError> {
        let tab = self.owned_tab(tab_id, identity)?;
        if tab.listens.contains(&key) {
            return Ok(false);
        }
        if tab.listens.len() >= cap {
            return Err(ListenError::TooManyListens { cap });
        }
        push_tight(&mut tab.listens, key.clone());
        let listeners = self.keys.entry(key.clone()).or_default();
        if listeners.is_empty() {
            self.changes.push(key);
        }
        listeners.insert(tab_id);
        self.listens += 1;
        Ok(true)
    }

    /// Returns whether the tab was listening.
    pub fn unlisten(&mut self, tab_id: TabId, identity: &I, key: &KeyId) -> Result<bool, ListenError> {
        let tab = self.owned_tab(tab_id, identity)?;
        let Some(at) = tab.listens.iter().position(|k| k == key) else {
            return Ok(false);
        };
        tab.listens.swap_remove(at);
        trim(&mut tab.listens);
        self.listens -= 1;
        self.drop_listener(key, tab_id, identity);
        Ok(true)
    }

    /// Whether connection `conn` of `tab_id` is still the one attached.
    pub fn is_attached(&self, tab_id: TabId, conn: u32) -> bool {
        self.tabs
            .get(&tab_id)
            .is_some_and(|t| t.conn == conn && t.tx.is_some())
    }

    /// Every connected tab with its connection, identity and credentials, for re-validation.
    pub fn connected_credentials(&self) -> Vec<(TabId, u32, I, Option<Credentials>)> {
        self.tabs
            .iter()
            .filter(|(_, t)| t.tx.is_some())
            .map(|(c, t)| (*c, t.conn, t.identity.clone(), self.credentials.get(c).cloned()))
            .collect()
    }

    /// The identity owning `tab_id`, if the tab is known here.
    pub fn owner(&self, tab_id: TabId) -> Option<&I> {
        self.tabs.get(&tab_id).map(|t| &t.identity)
    }

    /// The keys `tab_id` listens on.
    pub fn listens_of(&self, tab_id: TabId) -> &[KeyId] {
        self.tabs.get(&tab_id).map_or(&[], |t| &t.listens)
    }

    /// The number of `tab_id`'s latest frame and every frame after `seen`, if it still has
    /// them all.
    pub fn missed(&self, tab_id: TabId, seen: u64) -> Option<(u64, Vec<Arc<str>>)> {
        let tab = self.tabs.get(&tab_id)?;
        let frames = tab.replay.since(seen, tab.seq)?;
        Some((tab.seq, frames.into_iter().map(|(_, data)| data).collect()))
    }

    /// Forgets a tab without a `bye`: it went on elsewhere (a connection still attached here
    /// ends).
    pub fn forget(&mut self, tab_id: TabId) {
        self.remove(tab_id);
    }

    pub fn has_key(&self, key: &KeyId) -> bool {
        self.keys.contains_key(key)
    }

    /// Tabs listening on at least one key.
    pub fn listening_tabs(&self) -> Vec<TabId> {
        self.tabs
            .iter()
            .filter(|(_, t)| !t.listens.is_empty())
            .map(|(c, _)| *c)
            .collect()
    }

    /// Tabs listening on `key`.
    pub fn tabs_listening_on(&self, key: &KeyId) -> Vec<TabId> {
        self.keys
            .get(key)
            .map(|tab_ids| tab_ids.iter().collect())
            .unwrap_or_default()
    }

    pub fn tabs_of(&self, identity: &I) -> Vec<TabId> {
        self.identities
            .get(identity)
            .map(|tabs| tabs.to_vec())
            .unwrap_or_default()
    }

    /// The heartbeats of the connected tabs whose connection writes directly. A tab that keeps
    /// frames for a resume asks its client to acknowledge them, up to its latest.
    pub fn beats(&self) -> Vec<queue::Beat<Outgoing>> {
        self.tabs
            .values()
            .filter_map(|tab| {
                let acknowledge = (!tab.replay.is_empty()).then_some(tab.seq);
                tab.tx.as_ref()?.beat(acknowledge)
            })
            .collect()
    }

    /// `tab_id` has every frame up to `seq`: its replay buffer forgets them.
    pub fn acknowledge(&mut self, tab_id: TabId, seq: u64) {
        if let Some(tab) = self.tabs.get_mut(&tab_id) {
            tab.replay.acknowledge(seq, tab.seq);
        }
    }

    /// How many tabs are held here, connected or not.
    pub fn tab_count(&self) -> usize {
        self.tabs.len()
    }

    pub fn tab_ids(&self) -> Vec<TabId> {
        self.tabs.keys().copied().collect()
    }

    pub fn metrics(&self) -> Metrics {
        Metrics {
            tabs: self.tabs.len() as u64,
            connected: self.tabs.values().filter(|t| t.tx.is_some()).count() as u64,
            listens: self.listens as u64,
            keys: self.keys.len() as u64,
            identities: self.identities.len() as u64,
            replay_frames: self.tabs.values().map(|t| t.replay.len() as u64).sum(),
            ..Metrics::default()
        }
    }
}

//! Delivering in the tables: who listens on a key (grouped by identity for `prepare`), frames
//! queued to a key's tabs or to one tab, and tabs cut off when their queue is full.
use std::{collections::HashMap, sync::Arc};

use super::{Delivered, State, Wakes};
use crate::{
    hub::{
        cluster::Origin,
        key_id::KeyId,
        shrink::{shrink, trim},
        Stamp,
    },
    ByeReason, Identity, TabId,
};

impl<I: Identity> State<I> {
    /// Listeners of `key`, grouped by identity, leaving out `excluded`.
    pub fn listeners(&self, key: &KeyId, excluded: impl Fn(TabId, &I) -> bool) -> Vec<(I, Vec<TabId>)> {
        let Some(tab_ids) = self.keys.get(key) else {
            return Vec::new();
        };
        let mut groups: HashMap<&I, Vec<TabId>> = HashMap::new();
        for tab_id in tab_ids {
            if let Some(tab) = self.tabs.get(&tab_id) {
                if !excluded(tab_id, &tab.identity) {
                    groups.entry(&tab.identity).or_default().push(tab_id);
                }
            }
        }
        groups.into_iter().map(|(i, c)| (i.clone(), c)).collect()
    }

    /// One identity among `key`'s listeners not `excluded`: for `prepare` when every listener
    /// gets the same message.
    pub fn any_listener(&self, key: &KeyId, excluded: impl Fn(TabId, &I) -> bool) -> Option<I> {
        self.keys.get(key)?.iter().find_map(|tab_id| {
            let tab = self.tabs.get(&tab_id)?;
            (!excluded(tab_id, &tab.identity)).then(|| tab.identity.clone())
        })
    }

    /// Queues `data` for every tab listening on `key` now, minus `excluded`, in one pass over
    /// the key's listeners; returns how many were queued and how many cut off.
    pub fn deliver_to_key(
        &mut self,
        key: &KeyId,
        excluded: impl Fn(TabId, &I) -> bool,
        data: &Arc<str>,
        origin: Origin,
        at: Stamp,
        wakes: &mut Wakes,
    ) -> (u64, u64) {
        let (mut queued, mut lagging) = (0, Vec::new());
        let Some(tab_ids) = self.keys.get(key) else {
            return (0, 0);
        };
        for tab_id in tab_ids {
            let Some(tab) = self.tabs.get_mut(&tab_id) else {
                continue;
            };
            if excluded(tab_id, &tab.identity) || (!self.lagging.is_empty() && self.lagging.contains(&tab_id))
            {
                continue;
            }
            match tab.push(data, origin, at, wakes) {
                Delivered::Queued => queued += 1,
                Delivered::Lagged => lagging.push(tab_id),
                Delivered::Skipped => {}
            }
        }
        let lagged = lagging.len() as u64;
        self.cut_off(lagging);
        (queued, lagged)
    }

    /// Ends tabs whose queue is full. Ending one can send presence frames (its identity
    /// leaves), which can fill other queues: those are ended by the same loop, not by a call
    /// inside a call, so a crowd's cascade cannot overflow the stack.
    fn cut_off(&mut self, lagging: impl IntoIterator<Item = TabId>) {
        for tab_id in lagging {
            if self.lagging.insert(tab_id) {
                self.to_cut.push(tab_id);
            }
        }
        if self.cutting_off {
            return;
        }
        self.cutting_off = true;
        while let Some(tab_id) = self.to_cut.pop() {
            self.end(tab_id, ByeReason::Lagged);
            self.lagging.remove(&tab_id);
        }
        self.cutting_off = false;
        shrink(&mut self.lagging);
        trim(&mut self.to_cut);
    }

    /// Queues `data` for `tab_id` if it still listens on `key` (`None`: no key, always).
    pub fn deliver(
        &mut self,
        tab_id: TabId,
        key: Option<&KeyId>,
        data: &Arc<str>,
        origin: Origin,
        at: Stamp,
        wakes: &mut Wakes,
    ) -> Delivered {
        let Some(tab) = self.tabs.get_mut(&tab_id) else {
            return Delivered::Skipped;
        };
        if key.is_some_and(|k| !tab.listens.contains(k))
            || (!self.lagging.is_empty() && self.lagging.contains(&tab_id))
        {
            return Delivered::Skipped;
        }
        let delivered = tab.push(data, origin, at, wakes);
        if let Delivered::Lagged = delivered {
            self.cut_off([tab_id]);
        }
        delivered
    }
}

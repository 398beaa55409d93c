//! The tabs listening on one key, in a table sized for what it holds: most keys have one
//! listener or a few (a user's own key, a small room), and a hash set's smallest table has four
//! slots and its control bytes (96 bytes for one tab).
use std::collections::hash_set;

use super::id_map::IdSet;
use super::shrink::{push_exact_up_to, trim};
use crate::TabId;

/// Beyond this many listeners a key keeps them in a set, so a tab leaving a crowd is not a
/// scan of the crowd.
const FEW: usize = 32;

/// The tabs listening on one key.
pub(super) enum Listeners {
    /// Up to [`FEW`], in a vector with room for just them.
    Few(Vec<TabId>),
    /// More, in a set.
    Many(IdSet),
}

impl Default for Listeners {
    fn default() -> Self {
        Listeners::Few(Vec::new())
    }
}

impl Listeners {
    /// Adds `tab_id`, which must not be listening yet (a tab's own list of keys says so).
    pub fn insert(&mut self, tab_id: TabId) {
        match self {
            Listeners::Few(few) if few.len() < FEW => {
                debug_assert!(!few.contains(&tab_id), "listening twice");
                push_exact_up_to(few, tab_id, FEW);
            }
            Listeners::Few(few) => {
                let mut many: IdSet = few.drain(..).collect();
                many.insert(tab_id);
                *self = Listeners::Many(many);
            }
            Listeners::Many(many) => {
                many.insert(tab_id);
            }
        }
    }

    /// Removes `tab_id`, giving back room a crowd left.
    pub fn remove(&mut self, tab_id: TabId) {
        match self {
            Listeners::Few(few) => {
                if let Some(at) = few.iter().position(|c| *c == tab_id) {
                    few.swap_remove(at);
                    trim(few);
                }
            }
            Listeners::Many(many) => {
                many.remove(&tab_id);
                // Back to a vector well below the switch, so a key at the edge does not flip.
                if many.len() < FEW / 2 {
                    *self = Listeners::Few(many.drain().collect());
                } else {
                    super::shrink::shrink(many);
                }
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        match self {
            Listeners::Few(few) => few.is_empty(),
            Listeners::Many(many) => many.is_empty(),
        }
    }

    pub fn iter(&self) -> Iter<'_> {
        match self {
            Listeners::Few(few) => Iter::Few(few.iter()),
            Listeners::Many(many) => Iter::Many(many.iter()),
        }
    }
}

/// The tabs listening on a key, in no particular order.
pub(super) enum Iter<'a> {
    Few(std::slice::Iter<'a, TabId>),
    Many(hash_set::Iter<'a, TabId>),
}

impl Iterator for Iter<'_> {
    type Item = TabId;

    fn next(&mut self) -> Option<TabId> {
        match self {
            Iter::Few(few) => few.next().copied(),
            Iter::Many(many) => many.next().copied(),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match self {
            Iter::Few(few) => few.size_hint(),
            Iter::Many(many) => many.size_hint(),
        }
    }
}

impl<'a> IntoIterator for &'a Listeners {
    type Item = TabId;
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn ids(n: usize) -> Vec<TabId> {
        (0..n).map(|_| TabId::random()).collect()
    }

    fn members(listeners: &Listeners) -> BTreeSet<TabId> {
        listeners.iter().collect()
    }

    #[test]
    fn a_key_holds_room_for_just_its_few_listeners_and_a_set_for_a_crowd() {
        let tab_ids = ids(100);
        let mut listeners = Listeners::default();
        listeners.insert(tab_ids[0]);
        assert!(matches!(&listeners, Listeners::Few(few) if few.capacity() == 1));
        for &tab_id in &tab_ids[1..FEW] {
            listeners.insert(tab_id);
        }
        assert!(matches!(&listeners, Listeners::Few(few) if few.capacity() == FEW));
        for &tab_id in &tab_ids[FEW..] {
            listeners.insert(tab_id);
        }
        assert!(matches!(listeners, Listeners::Many(_)));
        assert_eq!(members(&listeners), tab_ids.iter().copied().collect());

        // The crowd leaves: still a set at half the switch, a vector below it, trimmed as it
        // empties.
        for &tab_id in &tab_ids[FEW / 2..] {
            listeners.remove(tab_id);
        }
        assert!(matches!(listeners, Listeners::Many(_)));
        listeners.remove(tab_ids[FEW / 2 - 1]);
        assert!(matches!(&listeners, Listeners::Few(few) if few.capacity() == FEW / 2 - 1));
        for &tab_id in &tab_ids[2..FEW / 2 - 1] {
            listeners.remove(tab_id);
        }
        assert!(matches!(&listeners, Listeners::Few(few) if few.capacity() <= 4));
        assert_eq!(members(&listeners), tab_ids[..2].iter().copied().collect());
        listeners.remove(tab_ids[50]);
        assert_eq!(listeners.iter().count(), 2, "removing a stranger changes nothing");
        listeners.remove(tab_ids[0]);
        listeners.remove(tab_ids[1]);
        assert!(listeners.is_empty());
    }
}

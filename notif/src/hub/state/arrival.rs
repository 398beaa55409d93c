//! A tab arriving from another node, in the tables: listening here before it is handed over,
//! keeping what arrives, then settled with what the old node gave (see `cluster/moves.rs`).
use std::sync::Arc;

use super::{push_tight, Appearance, Resumed, State};
use crate::{
    hub::{
        cluster::NodeId,
        key_id::KeyId,
        queue,
        replay::Replay,
        revalidate::Credentials,
        tab::{Arrival, Outgoing, Tab},
    },
    Identity, TabId,
};

impl<I: Identity> State<I> {
    /// Registers `tab_id`, about to move here, listening on `keys` (appearing on those with
    /// presence as `appearances` say) and keeping what arrives for it (at most `cap` frames).
    /// Returns the keys whose presence is new here (to ask the other nodes about); `None` if a
    /// tab of that id is here already.
    pub fn arriving(
        &mut self,
        tab_id: TabId,
        identity: I,
        keys: &[KeyId],
        appearances: Vec<Option<Appearance>>,
        cap: usize,
    ) -> Option<Vec<KeyId>> {
        if self.tabs.contains_key(&tab_id) {
            return None;
        }
        push_tight(self.identities.entry(identity.clone()).or_default(), tab_id);
        self.tabs.insert(
            tab_id,
            Tab {
                identity: identity.clone(),
                tx: None,
                listens: Vec::new(),
                seq: 0,
                replay: Replay::new(cap),
                conn: 0,
                epoch: 0,
                arrival: Some(Box::new(Arrival {
                    frames: Vec::new(),
                    cap,
                    overflowed: false,
                })),
            },
        );
        let mut new_presence = Vec::new();
        for (key, appearance) in keys.iter().zip(appearances) {
            // No cap here: the tab held these on its old node.
            let new = self.listen(tab_id, &identity, key.clone(), usize::MAX) == Ok(true);
            if let (true, Some(appearance)) = (new, appearance) {
                if self.joined(tab_id, key, appearance) {
                    new_presence.push(key.clone());
                }
            }
        }
        Some(new_presence)
    }

    /// The move of `tab_id` failed: forget what was set up for it.
    pub fn abandon_arrival(&mut self, tab_id: TabId) {
        if self.tabs.get(&tab_id).is_some_and(|t| t.arrival.is_some()) {
            self.remove(tab_id);
        }
    }

    /// Settles `tab_id`'s move: its latest frame was `seq` on the old node, which gave the
    /// `frames` its browser missed and listened on `kept`; of what arrived meanwhile, a frame
    /// is the tab's if its number is past `cut` of its origin. Attaches connection `tx`.
    /// `None` if the move was abandoned or kept more than it could.
    #[allow(clippy::too_many_arguments)]
    pub fn arrive(
        &mut self,
        tab_id: TabId,
        seq: u64,
        frames: Vec<Arc<str>>,
        kept: &[KeyId],
        cut: impl Fn(NodeId) -> u64,
        tx: queue::Sender<Outgoing>,
        credentials: Option<Credentials>,
    ) -> Option<Resumed> {
        let tab = self.tabs.get_mut(&tab_id)?;
        let arrival = tab.arrival.take()?;
        if arrival.overflowed || frames.len() as u64 > seq {
            self.remove(tab_id);
            return None;
        }
        // The old node's frames first, numbered as it numbered them, then what it did not
        // deliver, numbered on.
        let first = seq + 1 - frames.len() as u64;
        let mut replay: Vec<(u64, Arc<str>)> = (first..).zip(frames).collect();
        tab.seq = seq;
        for (_, data) in &replay {
            tab.replay.push(data);
        }
        for (origin, data) in arrival.frames {
            if origin.seq > cut(origin.node) {
                tab.seq += 1;
                tab.replay.push(&data);
                replay.push((tab.seq, data));
            }
        }
        tab.tx = Some(tx);
        tab.conn = 1;
        tab.epoch = tab.epoch.wrapping_add(1);
        // Listens dropped on the old node while this one subscribed are dropped here too.
        let dropped: Vec<KeyId> = tab
            .listens
            .iter()
            .filter(|k| !kept.contains(k))
            .cloned()
            .collect();
        let identity = tab.identity.clone();
        for key in &dropped {
            let _ = self.unlisten(tab_id, &identity, key);
        }
        if let Some(credentials) = credentials {
            self.credentials.insert(tab_id, credentials);
        }
        Some(Resumed {
            conn: 1,
            frames: replay,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::{cluster::Origin, state::Wakes, Stamp};

    fn key(name: &str) -> KeyId {
        KeyId::from_json("chat", &format!("\"{name}\""))
    }

    fn from(node: NodeId, seq: u64) -> Origin {
        Origin { node, seq }
    }

    /// What arrived during the move is kept only past each origin's cut, numbered after the old
    /// node's frames; a listen the old node dropped meanwhile is dropped here too.
    #[test]
    fn an_arrival_keeps_what_the_old_node_did_not_deliver_in_order() {
        let (a, b) = (NodeId::random(), NodeId::random());
        let mut state: State<Option<String>> = State::default();
        let tab = TabId::random();
        let ann = Some("ann".to_owned());
        assert!(state
            .arriving(tab, ann.clone(), &[key("k"), key("gone")], vec![None, None], 16)
            .is_some());
        assert!(
            state.arriving(tab, ann.clone(), &[], vec![], 16).is_none(),
            "one arrival per tab"
        );
        let mut wakes = Wakes::new();
        for (origin, text) in [
            (from(a, 4), "a4"),
            (from(b, 9), "b9"),
            (from(a, 5), "a5"),
            (from(b, 10), "b10"),
        ] {
            state.deliver_to_key(
                &key("k"),
                |_, _| false,
                &Arc::from(text),
                origin,
                Stamp::now(),
                &mut wakes,
            );
        }
        let (tx, _rx) = queue::channel(8);
        // The old node delivered a's frames up to 4 and b's up to 9; its tab's last frame was 7.
        let resumed = state
            .arrive(
                tab,
                7,
                vec![Arc::from("6"), Arc::from("7")],
                &[key("k")],
                |node| {
                    if node == a {
                        4
                    } else if node == b {
                        9
                    } else {
                        0
                    }
                },
                tx,
                None,
            )
            .expect("settled");
        let frames: Vec<(u64, &str)> = resumed.frames.iter().map(|(n, d)| (*n, &**d)).collect();
        assert_eq!(frames, [(6, "6"), (7, "7"), (8, "a5"), (9, "b10")]);
        assert_eq!(state.listens_of(tab), [key("k")], "the dropped listen went");
        assert!(!state.has_key(&key("gone")));
        assert_eq!(
            state.missed(tab, 7).unwrap().1.len(),
            2,
            "the kept frames replay after 7"
        );
    }

    #[test]
    fn an_arrival_that_kept_more_than_it_could_fails_and_leaves_nothing() {
        let mut state: State<Option<String>> = State::default();
        let tab = TabId::random();
        assert!(state.arriving(tab, None, &[key("k")], vec![None], 2).is_some());
        let mut wakes = Wakes::new();
        for seq in 1..=3 {
            let origin = from(NodeId::random(), seq);
            state.deliver_to_key(
                &key("k"),
                |_, _| false,
                &Arc::from("x"),
                origin,
                Stamp::now(),
                &mut wakes,
            );
        }
        let (tx, _rx) = queue::channel(8);
        assert!(state
            .arrive(tab, 0, Vec::new(), &[key("k")], |_| 0, tx, None)
            .is_none());
        assert_eq!(state.owner(tab), None);
        assert!(!state.has_key(&key("k")));
    }
}

//! A tab arriving from another node, in the tables: listening here before it is handed over,
//! keeping what arrives, then settled with what the old node gave (see `cluster/moves.rs`).
use std::sync::Arc;

use super::{push_tight, Resumed, State};
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
    /// Registers `client`, about to move here, listening on `keys` and keeping what arrives
    /// for it (at most `cap` frames). `false` if a tab of that id is here already.
    pub fn arriving(&mut self, client: TabId, identity: I, keys: &[KeyId], cap: usize) -> bool {
        if self.tabs.contains_key(&client) {
            return false;
        }
        push_tight(self.identities.entry(identity.clone()).or_default(), client);
        self.tabs.insert(
            client,
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
        for key in keys {
            // No cap here: the tab held these on its old node.
            let _ = self.listen(client, &identity, key.clone(), usize::MAX);
        }
        true
    }

    /// The move of `client` failed: forget what was set up for it.
    pub fn abandon_arrival(&mut self, client: TabId) {
        if self.tabs.get(&client).is_some_and(|t| t.arrival.is_some()) {
            self.remove(client);
        }
    }

    /// Settles `client`'s move: its latest frame was `seq` on the old node, which gave the
    /// `frames` its browser missed and listened on `kept`; of what arrived meanwhile, a frame
    /// is the tab's if its number is past `cut` of its origin. Attaches connection `tx`.
    /// `None` if the move was abandoned or kept more than it could.
    #[allow(clippy::too_many_arguments)]
    pub fn arrive(
        &mut self,
        client: TabId,
        seq: u64,
        frames: Vec<Arc<str>>,
        kept: &[KeyId],
        cut: impl Fn(NodeId) -> u64,
        tx: queue::Sender<Outgoing>,
        credentials: Option<Credentials>,
    ) -> Option<Resumed> {
        let tab = self.tabs.get_mut(&client)?;
        let arrival = tab.arrival.take()?;
        if arrival.overflowed || frames.len() as u64 > seq {
            self.remove(client);
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
            let _ = self.unlisten(client, &identity, key);
        }
        if let Some(credentials) = credentials {
            self.credentials.insert(client, credentials);
        }
        Some(Resumed {
            conn: 1,
            frames: replay,
        })
    }
}

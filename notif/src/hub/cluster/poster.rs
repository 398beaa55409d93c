//! Numbering and publishing this node's messages: each carries its number and the number of
//! the node's previous message on the same channel, so receivers see what they missed.
use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use super::{node, NodeId, Origin};
use crate::Backplane;

/// A message for other nodes, encoded, waiting for its number: published as the frames it
/// concerns are queued here, so its number and their place in this node's tabs agree.
pub(crate) struct Outbound {
    pub(super) channel: String,
    pub(super) body: Vec<u8>,
}

/// What this node published last.
#[derive(Default)]
struct Outbox {
    /// The number of its latest message.
    seq: u64,
    /// The number of its latest message on each channel, for the next one's `prev`. Bounded:
    /// past [`CHANNELS_REMEMBERED`] it starts afresh (the next message on each channel then
    /// says `prev` 0, unknown, and is not checked).
    last_on: HashMap<String, u64>,
}

const CHANNELS_REMEMBERED: usize = 65_536;

/// Numbers and publishes this node's messages: a handle the tables hold too, so a change they
/// announce is numbered as its frames are queued.
#[derive(Clone)]
pub(crate) struct Poster {
    node: NodeId,
    backplane: Arc<dyn Backplane>,
    /// Locked while a message is numbered and published, so numbers reach the backplane in
    /// order.
    outbox: Arc<Mutex<Outbox>>,
}

impl Poster {
    pub(super) fn new(node: NodeId, backplane: Arc<dyn Backplane>) -> Self {
        Poster {
            node,
            backplane,
            outbox: Arc::default(),
        }
    }

    /// The number of this node's latest message.
    pub(super) fn last(&self) -> u64 {
        self.outbox.lock().unwrap_or_else(|e| e.into_inner()).seq
    }

    /// Numbers and publishes an encoded message; returns its stamp.
    pub fn post(&self, outbound: Outbound) -> Origin {
        let mut outbox = self.outbox.lock().unwrap_or_else(|e| e.into_inner());
        outbox.seq += 1;
        let origin = Origin {
            node: self.node,
            seq: outbox.seq,
        };
        if outbox.last_on.len() >= CHANNELS_REMEMBERED {
            outbox.last_on = HashMap::new();
        }
        let prev = match outbox.last_on.get_mut(&outbound.channel) {
            Some(last) => std::mem::replace(last, origin.seq),
            None => {
                outbox.last_on.insert(outbound.channel.clone(), origin.seq);
                0
            }
        };
        self.backplane
            .publish(outbound.channel, node::frame(origin, prev, &outbound.body));
        origin
    }
}

//! One tab's state in the hub's tables: who it is, its connection's queue, its listens, and
//! the frames it was given, numbered and kept for a resume.
use std::sync::Arc;

use super::{
    cluster::Origin,
    key_id::KeyId,
    metrics::Stamp,
    queue::{self, TrySendError},
    replay::Replay,
};
use crate::ByeReason;

/// Frames queued by one pass that still have to be written or their connections woken, once
/// the hub's lock is released.
pub(crate) type Wakes = Vec<queue::Wake<Outgoing>>;

/// A frame queued for one tab.
#[derive(Debug)]
pub(crate) enum Outgoing {
    /// A notification: its sequence number in this tab, the shared data line, and when it was
    /// notified (for `notif_notify_to_write_seconds`).
    Notif { seq: u64, data: Arc<str>, at: Stamp },
    /// The server ends the stream.
    Bye(ByeReason),
}

impl Outgoing {
    /// When a notification was notified.
    pub fn stamp(&self) -> Option<Stamp> {
        match self {
            Outgoing::Notif { at, .. } => Some(*at),
            Outgoing::Bye(_) => None,
        }
    }
}

/// A tab the hub knows: connected, or waiting out its resume window.
pub(super) struct Tab<I> {
    pub(super) identity: I,
    /// `None` once the stream ended: the tab waits out its resume window.
    pub(super) tx: Option<queue::Sender<Outgoing>>,
    /// Few per tab (capped by `max_listens_per_tab`): a vector is smaller than a set.
    pub(super) listens: Vec<KeyId>,
    /// Sequence number of the tab's latest frame; frames are numbered from 1.
    pub(super) seq: u64,
    pub(super) replay: Replay,
    /// Which connection is attached: a connection that ended after another took over must
    /// not detach its successor.
    pub(super) conn: u32,
    /// Bumped on every detach and attach so a stale expiry timer does nothing.
    pub(super) epoch: u32,
    /// Set while the tab moves here from another node: what arrives for it meanwhile.
    pub(super) arrival: Option<Box<Arrival>>,
}

/// What arrived for a tab while it was moving here, with where each frame came from: the move
/// keeps only what the old node did not deliver.
pub(super) struct Arrival {
    pub frames: Vec<(Origin, Arc<str>)>,
    /// Most frames kept; beyond, the move fails (the tab starts over).
    pub cap: usize,
    pub overflowed: bool,
}

impl<I> Tab<I> {
    /// Numbers `data` (notified `at`), keeps it for replay and queues it if a connection is
    /// attached. A tab whose queue is full reports `Lagged`: the caller cuts it off, so memory
    /// stays bounded.
    pub(super) fn push(
        &mut self,
        data: &Arc<str>,
        origin: Origin,
        at: Stamp,
        wakes: &mut Wakes,
    ) -> Delivered {
        if let Some(arrival) = &mut self.arrival {
            if arrival.frames.len() < arrival.cap {
                arrival.frames.push((origin, data.clone()));
            } else {
                arrival.overflowed = true;
            }
            return Delivered::Queued;
        }
        // Every frame is numbered and kept for replay, sent or not: a reconnect names the last
        // frame it saw, and what followed it may have died in a closed connection.
        self.seq += 1;
        self.replay.push(data);
        let Some(tx) = &self.tx else {
            return Delivered::Queued;
        };
        match tx.push_quiet(Outgoing::Notif {
            seq: self.seq,
            data: data.clone(),
            at,
        }) {
            Ok(wake) => {
                wakes.extend(wake);
                Delivered::Queued
            }
            Err(TrySendError::Closed) => Delivered::Queued,
            Err(TrySendError::Full) => Delivered::Lagged,
        }
    }
}

/// What happened to one attempted delivery.
pub(crate) enum Delivered {
    Queued,
    /// The tab's queue is full: it has been cut off.
    Lagged,
    /// Not listening, gone, or disconnected.
    Skipped,
}

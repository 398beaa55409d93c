//! Counters for tests and operators: a snapshot ([`Metrics`]) and what `/metrics` shows of it
//! (`exposition.rs`), per-topic counts (`topics.rs`) and the notify-to-write histogram
//! (`latency.rs`).
mod exposition;
mod latency;
mod stamp;
mod topics;

use std::sync::atomic::{AtomicU64, Ordering};

pub(crate) use latency::{Latency, Sampler};
pub(crate) use stamp::Stamp;
pub(crate) use topics::Topics;

/// Monotonic counters, bumped without taking the hub's lock.
#[derive(Default)]
pub(crate) struct Counters {
    pub deliveries: AtomicU64,
    pub drops: AtomicU64,
    pub lagged: AtomicU64,
    pub notifies: AtomicU64,
    pub streams_opened: AtomicU64,
    pub resumes: AtomicU64,
    pub resets: AtomicU64,
    /// Streams refused, by [`REFUSALS`] reason.
    pub refused: [AtomicU64; REFUSALS.len()],
    /// `notify` calls and frames queued, by topic.
    pub topics: Topics,
    /// Time from `notify` to the socket write, sampled.
    pub latency: Latency,
}

/// The reasons a stream is refused for, as `StreamRefused::reason` names them: the labels of
/// `notif_streams_refused_total`.
pub(crate) const REFUSALS: [&str; 7] = [
    "origin",
    "denied",
    "tabs_per_identity",
    "streams_per_address",
    "bad_last_event_id",
    "foreign_tab",
    "shutting_down",
];

impl Counters {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

/// A snapshot of a hub's state and counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Metrics {
    /// Tabs the hub knows: connected, or disconnected within their resume window.
    pub tabs: u64,
    /// Tabs with an open stream.
    pub connected: u64,
    /// (tab, key) listen pairs.
    pub listens: u64,
    /// Keys with at least one listener.
    pub keys: u64,
    /// Distinct identities among known tabs.
    pub identities: u64,
    /// Frames kept for resumes, over all tabs (over WebSocket, only those the client has not
    /// acknowledged yet).
    pub replay_frames: u64,
    /// Frames queued to tabs since start.
    pub deliveries: u64,
    /// Frames dropped because a tab's queue was full, since start.
    pub drops: u64,
    /// Tabs cut off for lagging, since start.
    pub lagged: u64,
    /// `notify` calls since start.
    pub notifies: u64,
    /// Streams opened since start.
    pub streams_opened: u64,
    /// Reconnects that resumed their tab, since start.
    pub resumes: u64,
    /// Reconnects that could not resume (`recovered: false`), since start.
    pub resets: u64,
    /// 1 if this hub is one node of several (a backplane is configured).
    pub backplane: u64,
    /// 1 while the backplane connection works.
    pub backplane_up: u64,
    /// Backplane outages since start.
    pub backplane_outages: u64,
    /// Messages received from other nodes since start.
    pub backplane_received: u64,
    /// Messages from other nodes dropped because this node fell `Config::backplane_backlog`
    /// behind them (their keys' tabs were reset), since start.
    pub backplane_dropped: u64,
    /// Messages from other nodes found missing on the way (a later message of the same node
    /// on the same channel came, the one before it did not): the tabs on its key were reset.
    pub backplane_gaps: u64,
    /// Calls this node carried to the node holding a tab (a listen, an unlisten, a caller
    /// check or a move), since start.
    pub calls_forwarded: u64,
    /// Tabs that moved here from another node (`recovered: true`), since start.
    pub tabs_moved_in: u64,
    /// Tabs that moved from here to another node, since start.
    pub tabs_moved_out: u64,
    /// Stream requests refused since start, by reason: `origin` (not the server's own nor an
    /// allowed one), `denied` (by the app's `admit_streams`), `tabs_per_identity`,
    /// `streams_per_address`, `bad_last_event_id`, `foreign_tab` (a resume of another
    /// session's tab), `shutting_down`, in this order.
    pub streams_refused: [u64; REFUSALS.len()],
}

impl Metrics {
    /// Stream requests refused since start for `reason` (a label of
    /// `notif_streams_refused_total`, as [`StreamRefused::reason`](crate::StreamRefused::reason)
    /// names it); 0 for an unknown one.
    pub fn refused(&self, reason: &str) -> u64 {
        REFUSALS
            .iter()
            .position(|r| *r == reason)
            .map_or(0, |at| self.streams_refused[at])
    }
}

impl Metrics {
    pub(crate) fn read_counters(mut self, c: &Counters) -> Self {
        self.deliveries = c.deliveries.load(Ordering::Relaxed);
        self.drops = c.drops.load(Ordering::Relaxed);
        self.lagged = c.lagged.load(Ordering::Relaxed);
        self.notifies = c.notifies.load(Ordering::Relaxed);
        self.streams_opened = c.streams_opened.load(Ordering::Relaxed);
        self.resumes = c.resumes.load(Ordering::Relaxed);
        self.resets = c.resets.load(Ordering::Relaxed);
        self.streams_refused = std::array::from_fn(|at| c.refused[at].load(Ordering::Relaxed));
        self
    }
}

//! Counters for tests and operators, in Prometheus text format.
use std::{
    fmt::Write,
    sync::atomic::{AtomicU64, Ordering},
};

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

    /// Prometheus text exposition format (version 0.0.4).
    pub fn to_prometheus(&self) -> String {
        let rows: [(&str, &str, &str, u64); 22] = [
            (
                "notif_tabs",
                "gauge",
                "Tabs known: connected or within their resume window.",
                self.tabs,
            ),
            (
                "notif_connected_tabs",
                "gauge",
                "Tabs with an open stream.",
                self.connected,
            ),
            ("notif_listens", "gauge", "Listen pairs (tab, key).", self.listens),
            (
                "notif_keys",
                "gauge",
                "Keys with at least one listener.",
                self.keys,
            ),
            (
                "notif_identities",
                "gauge",
                "Distinct identities among known tabs.",
                self.identities,
            ),
            (
                "notif_replay_frames",
                "gauge",
                "Frames kept for resumes (over WebSocket, those not acknowledged yet).",
                self.replay_frames,
            ),
            (
                "notif_deliveries_total",
                "counter",
                "Frames queued to tabs.",
                self.deliveries,
            ),
            (
                "notif_drops_total",
                "counter",
                "Frames dropped on a full tab queue.",
                self.drops,
            ),
            (
                "notif_lagged_total",
                "counter",
                "Tabs cut off for lagging.",
                self.lagged,
            ),
            ("notif_notifies_total", "counter", "notify calls.", self.notifies),
            (
                "notif_streams_opened_total",
                "counter",
                "Streams opened.",
                self.streams_opened,
            ),
            (
                "notif_resumes_total",
                "counter",
                "Reconnects that resumed their tab.",
                self.resumes,
            ),
            (
                "notif_resets_total",
                "counter",
                "Reconnects that could not resume.",
                self.resets,
            ),
            (
                "notif_backplane",
                "gauge",
                "1 if this hub is one node of several.",
                self.backplane,
            ),
            (
                "notif_backplane_up",
                "gauge",
                "1 while the backplane connection works.",
                self.backplane_up,
            ),
            (
                "notif_backplane_outages_total",
                "counter",
                "Backplane outages.",
                self.backplane_outages,
            ),
            (
                "notif_backplane_received_total",
                "counter",
                "Messages from other nodes.",
                self.backplane_received,
            ),
            (
                "notif_backplane_dropped_total",
                "counter",
                "Messages from other nodes dropped because this node fell behind them.",
                self.backplane_dropped,
            ),
            (
                "notif_backplane_gaps_total",
                "counter",
                "Messages from other nodes lost on the way, detected by their numbers.",
                self.backplane_gaps,
            ),
            (
                "notif_calls_forwarded_total",
                "counter",
                "Calls carried to the node holding a tab.",
                self.calls_forwarded,
            ),
            (
                "notif_tabs_moved_in_total",
                "counter",
                "Tabs that moved here from another node.",
                self.tabs_moved_in,
            ),
            (
                "notif_tabs_moved_out_total",
                "counter",
                "Tabs that moved from here to another node.",
                self.tabs_moved_out,
            ),
        ];
        let mut out = String::with_capacity(1024);
        for (name, kind, help, value) in rows {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}");
        }
        let name = "notif_streams_refused_total";
        let _ = writeln!(
            out,
            "# HELP {name} Stream requests refused, by reason.\n# TYPE {name} counter"
        );
        for (reason, count) in REFUSALS.iter().zip(self.streams_refused) {
            let _ = writeln!(out, "{name}{{reason=\"{reason}\"}} {count}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_text_has_every_metric_once() {
        let text = Metrics {
            listens: 3,
            ..Default::default()
        }
        .to_prometheus();
        assert!(text.lines().any(|l| l == "notif_listens 3"));
        assert_eq!(text.lines().filter(|l| l.starts_with("# TYPE")).count(), 23);
        assert!(text
            .lines()
            .any(|l| l == r#"notif_streams_refused_total{reason="origin"} 0"#));
    }
}

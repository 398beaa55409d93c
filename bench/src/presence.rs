//! `bench presence`: N tabs join one key and then leave it, on a topic with presence (`lobby`)
//! or on the same topic without it (`group`); what the server spent on each phase and what the
//! tabs received.
//!
//! Join phase: tabs open and listen, `--parallel` at a time (as `bench idle` opens streams),
//! each reading its frames from the moment its listen is confirmed, so a tab is never cut off
//! for the generator's sake. With presence every listen gets a `present` list, and an
//! identity's first tab makes every tab already on the key receive `join`: N distinct
//! identities cost N(N-1)/2 `join` frames. The phase ends when the frames the order of listens
//! implies have all arrived, or when nothing arrived for `--quiet` seconds (a tab cut off never
//! gets its share); its wall time runs to the last arrival.
//!
//! Leave phase: tabs close in the order they opened, each stopping its reads as it closes; the
//! others keep reading. An identity's last tab closing sends `leave` to every tab still on the
//! key; run the server with `NOTIF_RESUME_WINDOW_MS=0` so a closed tab leaves at once (else it
//! waits out its resume window). Closing every tab at once would have the server write most
//! `leave` frames to tabs already gone (and measure less than the work a room emptying over
//! minutes costs): with presence, an identity's tabs close together, and the next identity's
//! only once at most `--leaving` identities' `leave` are still on their way to the
//! last tab (which reads every leave but its own and closes last). A tab closing while another
//! identity's `leave` is on its way misses it, so more than one identity at a time receives
//! fewer frames than expected. The default, `--parallel` tabs' worth of identities (64 with an
//! identity per tab, 1 with 100 tabs each), closes about as many tabs at once as listen at once
//! while joining. Without presence nothing is waited for. The phase ends when the
//! server holds no tab and nothing arrived for `--quiet` seconds; its wall time runs to the
//! later of the two.
//!
//! Tab `i` of `--tabs` N is identity `u{i * M / N}` of `--identities` M: an identity's tabs
//! open one after another, so identity `j`'s `join` goes to the `j * N / M` tabs before it
//! (N(M-1)/2 frames in all; identities whose tabs interleave would join within the first M
//! tabs: M(M-1)/2).
use std::{
    cell::{Cell, RefCell},
    rc::Rc,
    time::{Duration, Instant},
};

use futures::{stream, StreamExt};
use tokio::sync::{oneshot, Notify};

use crate::{
    client::{hello_tab_id, notif_listen, ws_url, Listen},
    procstat::{metrics_text, proc_stat, ProcStat},
    ws::WsConn,
};

/// What to run.
pub struct PresenceRun {
    pub url: String,
    pub tabs: usize,
    pub identities: usize,
    /// `lobby` (presence) or `group` (none).
    pub topic: &'static str,
    /// Listens in flight while joining.
    pub parallel: usize,
    /// Identities whose `leave` may be on its way at once while leaving.
    pub leaving: usize,
    /// A phase with nothing arriving this long is over.
    pub quiet: Duration,
    pub pid: Option<u32>,
}

/// The key every tab listens on.
const KEY: &str = "hall";

/// Tab `tab`'s identity number.
fn identity_of(run: &PresenceRun, tab: usize) -> usize {
    tab * run.identities / run.tabs
}

/// `join` and `leave` frames the tabs receive in all if listens and closes happen one at a time
/// in order (concurrency moves a few frames across the edges of a batch).
fn expected(run: &PresenceRun) -> (u64, u64) {
    let (mut joins, mut leaves) = (0u64, 0u64);
    let mut seen = None;
    for tab in 0..run.tabs {
        let identity = identity_of(run, tab);
        if seen != Some(identity) {
            // Its first tab: every tab before it is another identity's.
            joins += tab as u64;
            seen = Some(identity);
        }
        let last = tab + 1 == run.tabs || identity_of(run, tab + 1) != identity;
        if last {
            // Its last tab: every tab after it is another identity's.
            leaves += (run.tabs - tab - 1) as u64;
        }
    }
    (joins, leaves)
}

/// What every tab received, summed; one thread, so plain cells.
#[derive(Default)]
struct Received {
    joins: Cell<u64>,
    leaves: Cell<u64>,
    presents: Cell<u64>,
    /// Bytes of the `present` messages (the whole WebSocket text).
    present_bytes: Cell<u64>,
    /// Other text messages: notifications, the hello of none.
    other: Cell<u64>,
    /// `bye` `lagged`: the server cut the tab off, its queue full.
    lagged: Cell<u64>,
    /// Any other `bye`.
    byes: Cell<u64>,
    /// Streams that ended without the generator closing them.
    ended: Cell<u64>,
    last_arrival: Cell<Option<Instant>>,
    /// The last tab's view of who left: identity numbers whose `leave` it has read.
    left_seen: RefCell<Vec<bool>>,
    left_notify: Notify,
    /// The last tab's stream ended (cut off, say): nobody tracks who left any more.
    sentinel_gone: Cell<bool>,
}

impl Received {
    fn add(cell: &Cell<u64>, n: u64) {
        cell.set(cell.get() + n);
    }

    /// Counts one text message; `sentinel`: this tab tracks who left.
    fn count(&self, text: &str, sentinel: bool) {
        self.last_arrival.set(Some(Instant::now()));
        if text.starts_with("{\"event\":\"notif\"") {
            let Some(at) = text.find("\"presence\":{\"") else {
                return Self::add(&self.other, 1);
            };
            let change = &text[at + "\"presence\":{\"".len()..];
            if change.starts_with("join\"") {
                Self::add(&self.joins, 1);
            } else if let Some(rest) = change.strip_prefix("leave\":\"u") {
                Self::add(&self.leaves, 1);
                if sentinel {
                    if let Some(n) = rest.split('"').next().and_then(|n| n.parse::<usize>().ok()) {
                        if let Some(seen) = self.left_seen.borrow_mut().get_mut(n) {
                            *seen = true;
                        }
                        self.left_notify.notify_one();
                    }
                }
            } else if change.starts_with("present\"") {
                Self::add(&self.presents, 1);
                Self::add(&self.present_bytes, text.len() as u64);
            } else {
                Self::add(&self.other, 1);
            }
        } else if text.starts_with("{\"event\":\"bye\"") {
            if sentinel {
                self.sentinel_gone.set(true);
                self.left_notify.notify_one();
            }
            if text.contains("\"lagged\"") {
                Self::add(&self.lagged, 1);
            } else {
                Self::add(&self.byes, 1);
            }
        } else {
            Self::add(&self.other, 1);
        }
    }
}

/// Reads `conn` until told to close (then closes it as a tab does) or the server ends it.
async fn read_tab(
    mut conn: WsConn,
    received: Rc<Received>,
    mut close: oneshot::Receiver<()>,
    sentinel: bool,
) {
    loop {
        let closing = tokio::select! {
            biased;
            _ = &mut close => true,
            text = conn.next_text() => match text {
                Ok(text) => {
                    received.count(text, sentinel);
                    false
                }
                Err(_) => {
                    if sentinel {
                        received.sentinel_gone.set(true);
                        received.left_notify.notify_one();
                    }
                    Received::add(&received.ended, 1);
                    return;
                }
            },
        };
        if closing {
            conn.close().await;
            return;
        }
    }
}

/// Opens tab `tab`: its stream, its hello, its confirmed listen; then it reads on its own task.
async fn open_tab(
    run: &PresenceRun,
    http: &reqwest::Client,
    received: &Rc<Received>,
    tab: usize,
) -> Result<oneshot::Sender<()>, String> {
    let user = format!("u{}", identity_of(run, tab));
    let path = format!("{}?user={user}", notif::wire::WS_PATH);
    let mut conn = WsConn::connect(&ws_url(&run.url, &path)).await?;
    let client = hello_tab_id(conn.next_text().await?)?;
    let listen = Listen {
        topic: run.topic,
        key: KEY.into(),
    };
    notif_listen(http, &run.url, &client, &user, &listen).await?;
    let (tx, rx) = oneshot::channel();
    let sentinel = tab + 1 == run.tabs;
    tokio::task::spawn_local(read_tab(conn, received.clone(), rx, sentinel));
    Ok(tx)
}

/// The server's counters this run reads, from `/metrics`.
#[derive(Debug, Clone, Copy, Default)]
struct Counters {
    deliveries: f64,
    lagged: f64,
    drops: f64,
    tabs: f64,
    allocated: f64,
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(f64::NAN)
}

async fn counters(http: &reqwest::Client, url: &str) -> Counters {
    let text = metrics_text(http, url).await;
    Counters {
        deliveries: metric(&text, "notif_deliveries_total"),
        lagged: metric(&text, "notif_lagged_total"),
        drops: metric(&text, "notif_drops_total"),
        tabs: metric(&text, "notif_tabs"),
        allocated: metric(&text, "bench_jemalloc_allocated_bytes"),
    }
}

/// The server's peak RSS and anonymous memory (KiB) while the sampler runs, read every 50 ms.
#[derive(Default)]
struct Peak {
    rss: Cell<u64>,
    anon: Cell<u64>,
}

fn sample_peak(pid: Option<u32>) -> (Rc<Peak>, oneshot::Sender<()>) {
    let peak = Rc::new(Peak::default());
    let (stop, mut stopped) = oneshot::channel::<()>();
    if let Some(pid) = pid {
        let peak = peak.clone();
        tokio::task::spawn_local(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(50));
            loop {
                tokio::select! {
                    _ = &mut stopped => return,
                    _ = tick.tick() => {}
                }
                if let Some(now) = proc_stat(pid) {
                    peak.rss.set(peak.rss.get().max(now.rss_kib));
                    peak.anon.set(peak.anon.get().max(now.anon_kib));
                }
            }
        });
    }
    (peak, stop)
}

/// One phase's figures.
struct Phase {
    name: &'static str,
    wall: Duration,
    /// Server CPU (user + system) and its user part, seconds.
    cpu: Option<(f64, f64)>,
    frames: u64,
    expected: u64,
    presents: u64,
    present_bytes: u64,
    before: Counters,
    after: Counters,
    /// Server memory at the phase's start and end, and its peak during it.
    start: Option<ProcStat>,
    end: Option<ProcStat>,
    peak: (u64, u64),
    lagged_seen: u64,
}

impl Phase {
    fn row(&self, tabs: usize) -> String {
        let wall = self.wall.as_secs_f64().max(1e-9);
        let cpu =
            |f: fn(&(f64, f64)) -> f64| self.cpu.as_ref().map_or("-".into(), |c| format!("{:.2}", f(c)));
        let mib = |kib: i64| format!("{:.1}", kib as f64 / 1024.0);
        let (rss_added, peak_added) = match (self.start, self.end) {
            (Some(s), Some(e)) => (
                mib(e.rss_kib as i64 - s.rss_kib as i64),
                mib(self.peak.0 as i64 - s.rss_kib as i64),
            ),
            _ => ("-".into(), "-".into()),
        };
        let cpu_per_frame = match self.cpu {
            Some((c, _)) if self.frames > 0 => format!("{:.2}", c * 1e6 / self.frames as f64),
            _ => "-".into(),
        };
        format!(
            "| {:<5} | {:>6} | {:>7.2} | {:>5} ({:>5}) | {:>10} / {:>10} | {:>9.0} | {:>6} | {:>7} | {:>6} | {:>6} | {:>5} / {:>5} / {:>5} | {:>7} | {:>7} | {:>8} |",
            self.name,
            tabs,
            wall,
            cpu(|c| c.0),
            cpu(|c| c.1),
            self.frames,
            self.expected,
            self.frames as f64 / wall,
            cpu_per_frame,
            self.presents,
            self.present_bytes / 1024,
            self.after.deliveries - self.before.deliveries,
            self.after.lagged - self.before.lagged,
            self.after.drops - self.before.drops,
            self.lagged_seen,
            rss_added,
            peak_added,
            format!("{:.1}", (self.after.allocated - self.before.allocated) / 1048576.0),
        )
    }
}

pub const HEADER: &str = "| phase | tabs | wall s | CPU s (user) | join/leave frames received / expected | frames/s | µs CPU/frame | present frames | present KiB | Δ deliveries_total | Δ lagged_total / Δ drops_total / bye lagged seen | RSS added MiB | peak RSS added MiB | Δ jemalloc allocated MiB |";

/// The run's report: what it was, then one row per phase.
pub struct Report {
    pub lines: Vec<String>,
    /// `join` frames received and expected.
    pub joins: (u64, u64),
    /// `leave` frames received and expected.
    pub leaves: (u64, u64),
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for line in &self.lines {
            writeln!(f, "{line}")?;
        }
        Ok(())
    }
}

/// Waits until `done` or `quiet` passed with nothing arriving (counting from `since` if nothing
/// arrived yet); progress on stderr every 10 s.
async fn settle(received: &Received, since: Instant, quiet: Duration, done: impl Fn() -> bool, label: &str) {
    let mut told = Instant::now();
    loop {
        if done() {
            return;
        }
        let last = received.last_arrival.get().map_or(since, |at| at.max(since));
        if last.elapsed() >= quiet {
            return;
        }
        if told.elapsed() >= Duration::from_secs(10) {
            told = Instant::now();
            eprintln!(
                "bench presence: {label}: {} joins, {} leaves, {} presents so far ({:.0} s)",
                received.joins.get(),
                received.leaves.get(),
                received.presents.get(),
                since.elapsed().as_secs_f64()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The error of a run whose server stopped answering (it may have crashed: its stderr is the
/// run's), with what the tabs had received.
fn server_gone(run: &PresenceRun, received: &Received, phase: &str, began: Instant) -> String {
    let alive = run
        .pid
        .map(|pid| std::path::Path::new(&format!("/proc/{pid}")).exists());
    format!(
        "the server stopped answering /metrics while {phase} ({:.1} s in; process {}): the tabs had received {} join, {} leave, {} present frames, {} `bye` `lagged`, {} streams ended by the server",
        began.elapsed().as_secs_f64(),
        match alive {
            Some(true) => "still there",
            Some(false) => "gone",
            None => "unknown",
        },
        received.joins.get(),
        received.leaves.get(),
        received.presents.get(),
        received.lagged.get(),
        received.ended.get()
    )
}

pub async fn run_presence(run: PresenceRun) -> Result<Report, String> {
    if run.tabs == 0 || run.identities == 0 || run.identities > run.tabs {
        return Err("needs 1 <= --identities <= --tabs".into());
    }
    let presence = run.topic == "lobby";
    let (expected_joins, expected_leaves) = if presence { expected(&run) } else { (0, 0) };
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(run.parallel)
        .build()
        .map_err(|e| e.to_string())?;
    let received = Rc::new(Received {
        left_seen: RefCell::new(vec![false; run.identities]),
        ..Received::default()
    });
    let mut lines = vec![format!(
        "{} tabs of {} identities on one key of topic {} ({}), {} listens in flight, {} identities leaving at once; frames expected: {expected_joins} join, {expected_leaves} leave",
        run.tabs,
        run.identities,
        run.topic,
        if presence { "presence on" } else { "presence off" },
        run.parallel,
        run.leaving
    )];

    // Join.
    let before = counters(&http, &run.url).await;
    let start = run.pid.and_then(proc_stat);
    let (peak, stop) = sample_peak(run.pid);
    let began = Instant::now();
    let opened: Vec<Result<oneshot::Sender<()>, String>> = stream::iter(0..run.tabs)
        .map(|tab| open_tab(&run, &http, &received, tab))
        .buffered(run.parallel)
        .collect()
        .await;
    let listened = began.elapsed();
    let mut closers = Vec::with_capacity(run.tabs);
    for (tab, opened) in opened.into_iter().enumerate() {
        closers.push(opened.map_err(|e| format!("tab {tab}: {e}"))?);
    }
    settle(
        &received,
        began,
        run.quiet,
        || {
            !presence
                || (received.joins.get() >= expected_joins && received.presents.get() >= run.tabs as u64)
        },
        "joining",
    )
    .await;
    let wall = received
        .last_arrival
        .get()
        .map_or(listened, |at| at.duration_since(began).max(listened));
    let end = run.pid.and_then(proc_stat);
    let _ = stop.send(());
    let after = counters(&http, &run.url).await;
    if after.tabs.is_nan() {
        return Err(server_gone(&run, &received, "joining", began));
    }
    let join = Phase {
        name: "join",
        wall,
        cpu: start
            .zip(end)
            .map(|(s, e)| (e.cpu_seconds - s.cpu_seconds, e.user_seconds - s.user_seconds)),
        frames: received.joins.get(),
        expected: expected_joins,
        presents: received.presents.get(),
        present_bytes: received.present_bytes.get(),
        before,
        after,
        start,
        end,
        peak: (peak.rss.get(), peak.anon.get()),
        lagged_seen: received.lagged.get(),
    };
    lines.push(format!(
        "all {} listens confirmed in {:.2} s; server tabs {}",
        run.tabs,
        listened.as_secs_f64(),
        after.tabs
    ));

    // Leave.
    let (presents, present_bytes, lagged_before) = (
        received.presents.get(),
        received.present_bytes.get(),
        received.lagged.get(),
    );
    let before = after;
    let start = run.pid.and_then(proc_stat);
    let (peak, stop) = sample_peak(run.pid);
    let began = Instant::now();
    let leaves_before = received.leaves.get();
    let mut stalls = 0;
    // Identities whose last tab closed, in order, and how many of them the last tab has not
    // seen leave yet.
    let mut on_their_way: std::collections::VecDeque<usize> = Default::default();
    for (tab, close) in closers.into_iter().enumerate() {
        let identity = identity_of(&run, tab);
        let last_of_identity = tab + 1 == run.tabs || identity_of(&run, tab + 1) != identity;
        let _ = close.send(());
        if !presence || !last_of_identity || tab + 1 == run.tabs {
            continue;
        }
        on_their_way.push_back(identity);
        loop {
            on_their_way.retain(|i| !received.left_seen.borrow()[*i]);
            if on_their_way.len() < run.leaving || received.sentinel_gone.get() {
                break;
            }
            // The last tab may have been cut off: never wait for ever.
            let wait = tokio::time::timeout(Duration::from_secs(5), received.left_notify.notified());
            if wait.await.is_err() {
                stalls += 1;
                on_their_way.pop_front();
            }
        }
    }
    let closed = began.elapsed();
    let mut gone = None;
    let mut told = Instant::now();
    while gone.is_none() {
        let tabs = counters(&http, &run.url).await.tabs;
        if tabs == 0.0 {
            gone = Some(began.elapsed());
        } else if tabs.is_nan() {
            return Err(server_gone(&run, &received, "leaving", began));
        } else if told.elapsed() > Duration::from_secs(10) {
            told = Instant::now();
            eprintln!(
                "bench presence: leaving: server still holds tabs ({:.0} s)",
                began.elapsed().as_secs_f64()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    settle(&received, began, run.quiet, || false, "leaving").await;
    let end = run.pid.and_then(proc_stat);
    let _ = stop.send(());
    let after = counters(&http, &run.url).await;
    let last = received
        .last_arrival
        .get()
        .map_or(closed, |at| at.saturating_duration_since(began));
    let leave = Phase {
        name: "leave",
        wall: last.max(gone.unwrap_or(closed)),
        cpu: start
            .zip(end)
            .map(|(s, e)| (e.cpu_seconds - s.cpu_seconds, e.user_seconds - s.user_seconds)),
        frames: received.leaves.get() - leaves_before,
        expected: expected_leaves,
        presents: received.presents.get() - presents,
        present_bytes: received.present_bytes.get() - present_bytes,
        before,
        after,
        start,
        end,
        peak: (peak.rss.get(), peak.anon.get()),
        lagged_seen: received.lagged.get() - lagged_before,
    };
    lines.push(format!(
        "all closed in {:.2} s{}; server held no tab after {:.2} s; streams the server ended: {}, other byes: {}, other messages: {}",
        closed.as_secs_f64(),
        match stalls {
            0 => String::new(),
            n => format!(" ({n} waits for a leave given up after 5 s)"),
        },
        gone.unwrap_or_default().as_secs_f64(),
        received.ended.get(),
        received.byes.get(),
        received.other.get(),
    ));
    if let Some(start) = join.start {
        lines.push(format!(
            "server RSS at start {} KiB, after joining {} KiB ({:.2} KiB per tab), after leaving {} KiB",
            start.rss_kib,
            join.end.map_or(0, |e| e.rss_kib),
            join.end.map_or(0.0, |e| (e.rss_kib as f64 - start.rss_kib as f64)
                / run.tabs as f64),
            leave.end.map_or(0, |e| e.rss_kib),
        ));
    }
    lines.push(HEADER.into());
    lines.push("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|".into());
    lines.push(join.row(run.tabs));
    lines.push(leave.row(run.tabs));
    Ok(Report {
        lines,
        joins: (join.frames, join.expected),
        leaves: (leave.frames, leave.expected),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(tabs: usize, identities: usize) -> PresenceRun {
        PresenceRun {
            url: String::new(),
            tabs,
            identities,
            topic: "lobby",
            parallel: 1,
            leaving: 1,
            quiet: Duration::ZERO,
            pid: None,
        }
    }

    #[test]
    fn distinct_identities_cost_a_frame_per_pair_each_way() {
        assert_eq!(expected(&run(4, 4)), (6, 6));
        assert_eq!(expected(&run(1000, 1000)), (499_500, 499_500));
    }

    #[test]
    fn identities_opening_their_tabs_in_turn_join_the_tabs_before_them() {
        // Two identities of two tabs: the second's first tab joins the two before it; the
        // first's last tab leaves the two after it.
        assert_eq!(expected(&run(4, 2)), (2, 2));
        // N(M-1)/2 each way.
        assert_eq!(expected(&run(10_000, 100)), (495_000, 495_000));
        assert_eq!(expected(&run(5, 1)), (0, 0));
    }

    #[test]
    fn presence_frames_are_told_apart_and_the_last_tab_tracks_who_left() {
        let received = Received {
            left_seen: RefCell::new(vec![false; 3]),
            ..Received::default()
        };
        let frame = |change: &str| {
            format!(
                r#"{{"event":"notif","id":"a.1","data":{{"topic":"lobby","key":"hall","presence":{{{change}}}}}}}"#
            )
        };
        received.count(&frame(r#""present":["u0","u1"]"#), true);
        received.count(&frame(r#""join":"u2""#), true);
        received.count(&frame(r#""leave":"u1""#), true);
        received.count(&frame(r#""leave":"u0""#), false);
        received.count(r#"{"event":"bye","data":{"reason":"lagged"}}"#, false);
        received.count(
            r#"{"event":"notif","id":"a.2","data":{"topic":"group","key":"k","message":"x"}}"#,
            false,
        );
        assert_eq!(
            (
                received.presents.get(),
                received.joins.get(),
                received.leaves.get()
            ),
            (1, 1, 2)
        );
        assert_eq!((received.lagged.get(), received.other.get()), (1, 1));
        assert_eq!(
            *received.left_seen.borrow(),
            [false, true, false],
            "only the sentinel's"
        );
    }
}

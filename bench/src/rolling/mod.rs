//! `bench rolling-restart`: tabs on several `bench serve` nodes sharing a Redis, numbered
//! notifications posted to the live nodes, and every node in turn sent SIGTERM, waited for,
//! restarted on its port and waited for again. Each tab (a WebSocket client) reconnects after
//! its `bye` or close to a live node, naming its last frame and its node, as the browser client
//! does; the tab must move there (`recovered: true`) and get every notification exactly once.
//!
//! The generator starts the nodes itself (it must know when each one is stopped) and takes a
//! node out of rotation (no new notify, no reconnect to it) before it sends it SIGTERM, as a
//! load balancer does. Per tab it counts each notification number it receives: *lost* are the
//! numbers posted successfully to its key that never arrived, *duplicated* the extra copies,
//! and a *reset* is a `hello` with `recovered: false` after the first. Each reconnect is timed
//! from the moment its socket is opened to its `hello`.
mod frame;
mod node;
mod report;
mod tab;
mod tally;

use std::{
    cell::{Cell, RefCell},
    path::PathBuf,
    rc::Rc,
    time::{Duration, Instant},
};

use futures::{stream, StreamExt};
use hdrhistogram::Histogram;

use crate::ws::WsConn;
pub use frame::{parse, Frame};
pub use node::metric;
use node::{metrics, ready, Node};
use report::report;
use tab::{reconnect, run_tab, TabState};
use tally::tally;

/// What to run.
#[derive(Debug, Clone)]
pub struct Rolling {
    /// The Redis every node uses.
    pub redis: String,
    /// One node per port, on 127.0.0.1.
    pub ports: Vec<u16>,
    pub tabs: usize,
    pub keys: usize,
    /// Notifications per second over all keys.
    pub rate: f64,
    /// Before the first restart, and after each node is back.
    pub warmup: Duration,
    pub settle: Duration,
    /// How many times every node is restarted.
    pub rounds: usize,
    /// Each reconnect waits a delay drawn from [0, jitter) first (0: at once).
    pub jitter: Duration,
    /// Reconnect to a live node at random rather than round robin.
    pub random: bool,
    /// The `bench` binary the nodes run, the core they are pinned to, where their logs go.
    pub server_bin: PathBuf,
    pub server_cpu: Option<usize>,
    pub logs: PathBuf,
    pub name: String,
}

/// A notification as posted.
#[derive(Clone)]
struct Published {
    node: usize,
    at: f64,
    ok: bool,
}

struct Shared {
    run: Rolling,
    base: Instant,
    http: reqwest::Client,
    live: RefCell<Vec<bool>>,
    cursor: Cell<usize>,
    publish_cursor: Cell<usize>,
    rng: Cell<u64>,
    tabs: Vec<RefCell<TabState>>,
    reconnect_us: RefCell<Histogram<u64>>,
    /// The same, per restart (reconnects count for the last node sent SIGTERM).
    restart_us: RefCell<Vec<Histogram<u64>>>,
    published: RefCell<Vec<Published>>,
    /// The node the publisher is posting to right now.
    in_flight: Cell<Option<usize>>,
    stop_publishing: Cell<bool>,
}

impl Shared {
    fn now(&self) -> f64 {
        self.base.elapsed().as_secs_f64()
    }

    fn random(&self) -> u64 {
        // xorshift64
        let mut x = self.rng.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng.set(x);
        x
    }

    /// A live node, round robin (or at random); waits while none is.
    async fn pick(&self, random: bool, cursor: &Cell<usize>) -> usize {
        loop {
            let live: Vec<usize> = (0..self.run.ports.len())
                .filter(|&n| self.live.borrow()[n])
                .collect();
            if !live.is_empty() {
                let i = if random {
                    self.random() as usize
                } else {
                    let i = cursor.get();
                    cursor.set(i.wrapping_add(1));
                    i
                };
                return live[i % live.len()];
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn url(&self, node: usize) -> String {
        format!("http://127.0.0.1:{}", self.run.ports[node])
    }
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid bounds")
}

async fn publish(shared: Rc<Shared>) {
    let interval = Duration::from_secs_f64(1.0 / shared.run.rate);
    let start = Instant::now();
    let keys = shared.run.keys;
    for number in 0u64.. {
        if shared.stop_publishing.get() {
            break;
        }
        tokio::time::sleep_until((start + interval.mul_f64(number as f64)).into()).await;
        let node = shared.pick(false, &shared.publish_cursor).await;
        shared.in_flight.set(Some(node));
        let at = shared.now();
        let sent = shared
            .http
            .post(format!("{}/notify", shared.url(node)))
            .query(&[
                ("topic", "group"),
                ("key", &format!("k{}", number as usize % keys)),
            ])
            .body(number.to_string())
            .timeout(Duration::from_secs(5))
            .send()
            .await;
        shared.in_flight.set(None);
        let ok = matches!(&sent, Ok(r) if r.status().is_success());
        if !ok {
            eprintln!("notify {number} to :{} failed: {sent:?}", shared.run.ports[node]);
        }
        shared.published.borrow_mut().push(Published { node, at, ok });
    }
}

/// One node's restart.
struct Restart {
    node: usize,
    tabs_held: Option<f64>,
    term_at: f64,
    exited_after: f64,
    status: String,
    ready_after: f64,
}

pub async fn run_rolling(run: Rolling) -> Result<(String, bool), String> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()
        .map_err(|e| e.to_string())?;
    let base = Instant::now();
    let n = run.ports.len();
    if n < 2 {
        return Err("--ports: at least two nodes".into());
    }
    std::fs::create_dir_all(&run.logs).map_err(|e| format!("{}: {e}", run.logs.display()))?;
    let mut nodes: Vec<Node> = run
        .ports
        .iter()
        .map(|&port| Node {
            port,
            child: None,
            log: run.logs.join(format!("{}-node-{port}.log", run.name)),
        })
        .collect();
    for node in &mut nodes {
        let _ = std::fs::remove_file(&node.log);
        node.start(&run, base)?;
    }
    for node in &nodes {
        ready(&http, node.port).await?;
    }
    let seed = base.elapsed().as_nanos() as u64 | 1;
    let shared = Rc::new(Shared {
        base,
        http: http.clone(),
        live: RefCell::new(vec![true; n]),
        cursor: Cell::new(0),
        publish_cursor: Cell::new(0),
        rng: Cell::new(seed),
        tabs: (0..run.tabs)
            .map(|i| {
                RefCell::new(TabState {
                    user: format!("u{i}"),
                    key: i % run.keys,
                    tab_id: String::new(),
                    node: String::new(),
                    seq: 0,
                    counts: Vec::new(),
                    seq_gaps: 0,
                    foreign: 0,
                    resets: 0,
                    reconnects: 0,
                    failed_attempts: 0,
                    last_error: String::new(),
                    history: Vec::new(),
                })
            })
            .collect(),
        reconnect_us: RefCell::new(histogram()),
        restart_us: RefCell::new(Vec::new()),
        published: RefCell::new(Vec::new()),
        in_flight: Cell::new(None),
        stop_publishing: Cell::new(false),
        run,
    });
    let run = &shared.run;
    // Open every tab on node i % n and listen through the next node (a forwarded listen).
    let opened: Vec<WsConn> = stream::iter(0..run.tabs)
        .map(|tab| {
            let shared = shared.clone();
            async move { reconnect(&shared, tab, true).await }
        })
        .buffered(64)
        .collect()
        .await;
    let opened_at = shared.now();
    let readers: Vec<_> = opened
        .into_iter()
        .enumerate()
        .map(|(tab, conn)| tokio::task::spawn_local(run_tab(shared.clone(), tab, conn)))
        .collect();
    let publisher = tokio::task::spawn_local(publish(shared.clone()));
    tokio::time::sleep(run.warmup).await;
    let mut restarts = Vec::new();
    for _round in 0..run.rounds {
        for (index, node) in nodes.iter_mut().enumerate() {
            // Out of rotation first, as a load balancer would: no new notify or reconnect.
            shared.live.borrow_mut()[index] = false;
            while shared.in_flight.get() == Some(index) {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            let tabs_held = metrics(&http, node.port)
                .await
                .ok()
                .and_then(|m| metric(&m, "notif_tabs"));
            let pid = node.pid().ok_or("a node without a pid")?;
            let term_at = shared.now();
            shared.restart_us.borrow_mut().push(histogram());
            std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status()
                .map_err(|e| format!("kill: {e}"))?;
            let child = node.child.as_mut().ok_or("no child")?;
            let status = match tokio::time::timeout(Duration::from_secs(60), child.wait()).await {
                Ok(Ok(status)) => status.to_string(),
                Ok(Err(e)) => e.to_string(),
                Err(_) => {
                    let _ = child.start_kill();
                    let _ = child.wait().await;
                    "still running after 60 s: killed".into()
                }
            };
            let exited_at = shared.now();
            node.start(run, base)?;
            ready(&http, node.port).await?;
            let ready_at = shared.now();
            shared.live.borrow_mut()[index] = true;
            restarts.push(Restart {
                node: index,
                tabs_held,
                term_at,
                exited_after: exited_at - term_at,
                status,
                ready_after: ready_at - exited_at,
            });
            tokio::time::sleep(run.settle).await;
        }
    }
    shared.stop_publishing.set(true);
    let _ = publisher.await;
    let published: Vec<bool> = shared.published.borrow().iter().map(|p| p.ok).collect();
    // The last deliveries.
    let deadline = Instant::now() + Duration::from_secs(10);
    let complete = |shared: &Shared| {
        shared.tabs.iter().all(|t| {
            let t = t.borrow();
            tally(&t.counts, t.key, run.keys, &published).lost.is_empty()
        })
    };
    while !complete(&shared) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for reader in &readers {
        reader.abort();
    }
    let mut final_metrics = Vec::new();
    for node in &nodes {
        final_metrics.push(metrics(&http, node.port).await.unwrap_or_default());
    }
    for node in &mut nodes {
        if let Some(child) = node.child.as_mut() {
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
    }
    Ok(report(&shared, opened_at, &restarts, &final_metrics))
}

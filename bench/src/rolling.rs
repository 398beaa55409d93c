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
use std::{
    cell::{Cell, RefCell},
    fmt::Write as _,
    path::PathBuf,
    process::Stdio,
    rc::Rc,
    time::{Duration, Instant},
};

use futures::{stream, StreamExt};
use hdrhistogram::Histogram;

use crate::{client::notif_message, ws::WsConn};

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

/// A text frame from a notif WebSocket, as the tabs here need it.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    Hello {
        tab_id: String,
        seq: u64,
        recovered: bool,
        node: String,
    },
    /// A notification whose message is a number.
    Notif {
        tab_id: String,
        seq: u64,
        number: u64,
    },
    Bye(String),
    Other,
}

/// `<tab>.<seq>`.
fn split_id(id: &str) -> Option<(&str, u64)> {
    let (tab_id, seq) = id.rsplit_once('.')?;
    Some((tab_id, seq.parse().ok()?))
}

/// Reads a frame; notifications without a full JSON parse (one arrives per tab per key's
/// notification: the generator must stay cheap).
pub fn parse(text: &str) -> Frame {
    if text.starts_with("{\"event\":\"notif\"") {
        let id = text
            .find("\"id\":\"")
            .map(|at| &text[at + 6..])
            .and_then(|rest| rest.split('"').next())
            .and_then(split_id);
        let number = notif_message(text).and_then(|range| text[range].parse().ok());
        return match (id, number) {
            (Some((tab_id, seq)), Some(number)) => Frame::Notif {
                tab_id: tab_id.to_owned(),
                seq,
                number,
            },
            _ => Frame::Other,
        };
    }
    let Ok(value) = serde_json::from_str::<serde_json::Value>(text) else {
        return Frame::Other;
    };
    let data = &value["data"];
    match value["event"].as_str() {
        Some("hello") => {
            let seq = value["id"].as_str().and_then(split_id).map_or(0, |(_, s)| s);
            Frame::Hello {
                tab_id: data["client"].as_str().unwrap_or_default().to_owned(),
                seq,
                recovered: data["recovered"].as_bool().unwrap_or(false),
                node: data["node"].as_str().unwrap_or_default().to_owned(),
            }
        }
        Some("bye") => Frame::Bye(data["reason"].as_str().unwrap_or("?").to_owned()),
        _ => Frame::Other,
    }
}

/// One tab's count against what was published.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Tally {
    pub expected: u64,
    pub delivered: u64,
    /// Numbers posted successfully to the tab's key that never arrived.
    pub lost: Vec<u64>,
    /// Numbers that arrived more than once (each extra copy counts in `duplicates`).
    pub duplicated: Vec<u64>,
    pub duplicates: u64,
    /// Numbers that arrived although their notify failed or went to another key.
    pub unexpected: Vec<u64>,
}

/// `counts[n]`: copies of notification `n` the tab received; `published[n]`: whether notify
/// `n` was answered 200. Notification `n` goes to key `n % keys`.
pub fn tally(counts: &[u8], key: usize, keys: usize, published: &[bool]) -> Tally {
    let mut tally = Tally::default();
    let len = counts.len().max(published.len());
    for number in 0..len {
        let copies = u64::from(counts.get(number).copied().unwrap_or(0));
        let mine = number % keys == key && published.get(number).copied().unwrap_or(false);
        tally.delivered += copies;
        if mine {
            tally.expected += 1;
            if copies == 0 {
                tally.lost.push(number as u64);
            }
            if copies > 1 {
                tally.duplicated.push(number as u64);
                tally.duplicates += copies - 1;
            }
        } else if copies > 0 {
            tally.unexpected.push(number as u64);
        }
    }
    tally
}

/// One connection of a tab.
struct Connection {
    /// Seconds since the start: when its socket was opened, and when its hello came.
    at: f64,
    port: u16,
    hello_at: Option<f64>,
    recovered: bool,
    node: String,
    tab_id: String,
    /// How it ended, and when.
    ended: Option<(f64, String)>,
}

struct TabState {
    user: String,
    key: usize,
    tab_id: String,
    node: String,
    seq: u64,
    counts: Vec<u8>,
    /// Notifications whose seq did not follow the one before.
    seq_gaps: u64,
    /// Notifications carrying another tab id than the tab's.
    foreign: u64,
    resets: u64,
    reconnects: u64,
    failed_attempts: u64,
    last_error: String,
    history: Vec<Connection>,
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

/// A node process.
struct Node {
    port: u16,
    child: Option<tokio::process::Child>,
    log: PathBuf,
}

impl Node {
    fn start(&mut self, run: &Rolling, base: Instant) -> Result<(), String> {
        use std::io::Write;
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(|e| format!("{}: {e}", self.log.display()))?;
        let _ = writeln!(
            log,
            "=== {} starting at {:.3} s ===",
            self.port,
            base.elapsed().as_secs_f64()
        );
        let err = log.try_clone().map_err(|e| e.to_string())?;
        let mut command = match run.server_cpu {
            Some(cpu) => {
                let mut c = tokio::process::Command::new("taskset");
                c.arg("-c").arg(cpu.to_string()).arg(&run.server_bin);
                c
            }
            None => tokio::process::Command::new(&run.server_bin),
        };
        command
            .args([
                "serve",
                "--addr",
                &format!("127.0.0.1:{}", self.port),
                "--redis",
                &run.redis,
            ])
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(err))
            .kill_on_drop(true);
        if std::env::var_os("RUST_LOG").is_none() {
            command.env("RUST_LOG", "notif=info");
        }
        self.child = Some(
            command
                .spawn()
                .map_err(|e| format!("{}: {e}", run.server_bin.display()))?,
        );
        Ok(())
    }

    fn pid(&self) -> Option<u32> {
        self.child.as_ref()?.id()
    }
}

/// Waits until the node answers `/metrics` with its backplane up.
async fn ready(http: &reqwest::Client, port: u16) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(text) = metrics(http, port).await {
            if text.lines().any(|l| l == "notif_backplane_up 1") {
                return Ok(());
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Err(format!("node :{port} not ready (backplane up) after 30 s"))
}

async fn metrics(http: &reqwest::Client, port: u16) -> Result<String, String> {
    let response = http
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    response.text().await.map_err(|e| e.to_string())
}

/// A counter or gauge's value in Prometheus text.
pub fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

async fn listen(shared: &Shared, node: usize, tab: usize) -> Result<(), String> {
    let (user, key, tab_id, tab_node) = {
        let t = shared.tabs[tab].borrow();
        (
            t.user.clone(),
            format!("k{}", t.key),
            t.tab_id.clone(),
            t.node.clone(),
        )
    };
    let response = shared
        .http
        .post(format!("{}/listen", shared.url(node)))
        .query(&[("topic", "group"), ("key", &key), ("user", &user)])
        .header(notif::wire::TAB_HEADER, tab_id)
        .header(notif::wire::NODE_HEADER, tab_node)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .map_err(|e| format!("listen: {e}"))?;
    if !response.status().is_success() {
        let status = response.status();
        return Err(format!(
            "listen refused: {status} {}",
            response.text().await.unwrap_or_default()
        ));
    }
    Ok(())
}

/// Opens a socket to `node` (resuming the tab if it had a hello) and reads its hello.
async fn connect(shared: &Shared, tab: usize, node: usize) -> Result<(WsConn, Frame), String> {
    let query = {
        let t = shared.tabs[tab].borrow();
        if t.tab_id.is_empty() {
            format!("user={}", t.user)
        } else {
            format!(
                "user={}&{}={}.{}&{}={}",
                t.user,
                notif::wire::LAST_EVENT_ID_QUERY,
                t.tab_id,
                t.seq,
                notif::wire::NODE_QUERY,
                t.node
            )
        }
    };
    let url = format!(
        "ws://127.0.0.1:{}{}?{query}",
        shared.run.ports[node],
        notif::wire::WS_PATH
    );
    let mut conn = WsConn::connect(&url).await?;
    let hello = parse(conn.next_text().await?);
    if !matches!(hello, Frame::Hello { .. }) {
        return Err(format!("expected a hello from :{}", shared.run.ports[node]));
    }
    Ok((conn, hello))
}

/// Counts a reconnect attempt that failed, and waits a little before the next.
async fn failed(shared: &Shared, tab: usize, at: f64, node: usize, error: &str) {
    {
        let mut t = shared.tabs[tab].borrow_mut();
        t.failed_attempts += 1;
        t.last_error = format!("{at:.3} s :{}: {error}", shared.run.ports[node]);
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
}

/// Connects (again) until a hello comes; after a reset, listens again.
async fn reconnect(shared: &Shared, tab: usize, first: bool) -> WsConn {
    loop {
        if !first && !shared.run.jitter.is_zero() {
            let ms = shared.random() % shared.run.jitter.as_millis().max(1) as u64;
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        let node = if first {
            tab % shared.run.ports.len()
        } else {
            shared.pick(shared.run.random, &shared.cursor).await
        };
        let at = shared.now();
        let started = Instant::now();
        let attempt = tokio::time::timeout(Duration::from_secs(10), connect(shared, tab, node)).await;
        let (conn, hello) = match attempt {
            Ok(Ok(opened)) => opened,
            Ok(Err(error)) => {
                failed(shared, tab, at, node, &error).await;
                continue;
            }
            Err(_) => {
                failed(shared, tab, at, node, "no hello within 10 s").await;
                continue;
            }
        };
        let Frame::Hello {
            tab_id,
            seq,
            recovered,
            node: node_id,
        } = hello
        else {
            unreachable!("connect returns a hello");
        };
        let hello_at = shared.now();
        if !first {
            let _ = shared
                .reconnect_us
                .borrow_mut()
                .record((started.elapsed().as_micros() as u64).max(1));
            if let Some(last) = shared.restart_us.borrow_mut().last_mut() {
                let _ = last.record((started.elapsed().as_micros() as u64).max(1));
            }
        }
        let reset = {
            let mut t = shared.tabs[tab].borrow_mut();
            let reset = !first && !recovered;
            if !first {
                t.reconnects += 1;
            }
            if reset {
                t.resets += 1;
            }
            if recovered && tab_id != t.tab_id {
                t.foreign += 1;
            }
            t.tab_id = tab_id.clone();
            t.node = node_id.clone();
            t.seq = seq;
            t.history.push(Connection {
                at,
                port: shared.run.ports[node],
                hello_at: Some(hello_at),
                recovered,
                node: node_id,
                tab_id,
                ended: None,
            });
            reset || first
        };
        if reset {
            // The tab is new to the server: listen again (through another node, naming this one).
            let via = (node + 1) % shared.run.ports.len();
            let via = if shared.live.borrow()[via] { via } else { node };
            if let Err(error) = listen(shared, via, tab).await {
                {
                    let mut t = shared.tabs[tab].borrow_mut();
                    t.last_error = format!("{:.3} s: {error}", shared.now());
                    t.failed_attempts += 1;
                }
                conn.close().await;
                continue;
            }
        }
        return conn;
    }
}

/// Reads the tab's frames; reconnects after each bye or close.
async fn run_tab(shared: Rc<Shared>, tab: usize, mut conn: WsConn) {
    loop {
        let ended = loop {
            let text = match conn.next_text().await {
                Ok(text) => text,
                Err(error) => break error,
            };
            match parse(text) {
                Frame::Notif { tab_id, seq, number } => {
                    let mut t = shared.tabs[tab].borrow_mut();
                    if tab_id != t.tab_id {
                        t.foreign += 1;
                    }
                    if seq != t.seq + 1 {
                        t.seq_gaps += 1;
                    }
                    t.seq = seq;
                    let number = number as usize;
                    if t.counts.len() <= number {
                        t.counts.resize(number + 1, 0);
                    }
                    t.counts[number] = t.counts[number].saturating_add(1);
                }
                Frame::Bye(reason) => break format!("bye {reason}"),
                Frame::Hello { .. } => shared.tabs[tab].borrow_mut().foreign += 1,
                Frame::Other => {}
            }
        };
        let now = shared.now();
        if let Some(last) = shared.tabs[tab].borrow_mut().history.last_mut() {
            last.ended = Some((now, ended));
        }
        conn.close().await;
        conn = reconnect(&shared, tab, false).await;
    }
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

fn report(shared: &Shared, opened_at: f64, restarts: &[Restart], final_metrics: &[String]) -> (String, bool) {
    let run = &shared.run;
    let published = shared.published.borrow();
    let ok: Vec<bool> = published.iter().map(|p| p.ok).collect();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "rolling restart: {} nodes (:{}), {} WebSocket tabs on {} key(s), {} notify/s posted round robin to the live nodes, \
         reconnect to a live node {}{}, {} round(s)",
        run.ports.len(),
        run.ports.iter().map(u16::to_string).collect::<Vec<_>>().join(", :"),
        run.tabs,
        run.keys,
        run.rate,
        if run.random { "at random" } else { "round robin" },
        if run.jitter.is_zero() {
            " at once".to_owned()
        } else {
            format!(" after 0-{} ms", run.jitter.as_millis())
        },
        run.rounds,
    );
    let _ = writeln!(out, "tabs open and listening at {opened_at:.2} s");
    let per_restart = shared.restart_us.borrow();
    for (r, h) in restarts.iter().zip(per_restart.iter()) {
        let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
        let _ = writeln!(
            out,
            "node {} (:{}), {} tabs: SIGTERM at {:.2} s, exited after {:.2} s ({}), back with its backplane up {:.2} s later; \
             {} reconnects to hello p50 {:.1} / p99 {:.1} ms",
            r.node,
            run.ports[r.node],
            r.tabs_held.map_or("?".into(), |t| t.to_string()),
            r.term_at,
            r.exited_after,
            r.status,
            r.ready_after,
            h.len(),
            ms(0.5),
            ms(0.99),
        );
    }
    let failed = ok.iter().filter(|o| !**o).count();
    let _ = writeln!(out, "notifications posted: {} ({failed} failed)", ok.len());
    let (mut expected, mut delivered, mut lost, mut dups, mut unexpected) = (0, 0, 0, 0, 0);
    let (mut resets, mut gaps, mut foreign, mut reconnects, mut failed_attempts) = (0, 0, 0, 0, 0);
    let mut tabs_with_loss = 0;
    let mut details = Vec::new();
    for (i, tab) in shared.tabs.iter().enumerate() {
        let t = tab.borrow();
        let tally = tally(&t.counts, t.key, run.keys, &ok);
        expected += tally.expected;
        delivered += tally.delivered;
        lost += tally.lost.len();
        dups += tally.duplicates;
        unexpected += tally.unexpected.len();
        resets += t.resets;
        gaps += t.seq_gaps;
        foreign += t.foreign;
        reconnects += t.reconnects;
        failed_attempts += t.failed_attempts;
        let bad =
            !tally.lost.is_empty() || tally.duplicates > 0 || t.resets > 0 || t.seq_gaps > 0 || t.foreign > 0;
        tabs_with_loss += usize::from(!tally.lost.is_empty() || tally.duplicates > 0);
        if bad && details.len() < 20 {
            details.push(describe(i, &t, &tally, &published, run));
        }
    }
    let hist = shared.reconnect_us.borrow();
    let ms = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
    let _ = writeln!(
        out,
        "| tabs | expected | delivered | lost | duplicated | unexpected | resets | seq gaps | reconnects | failed attempts |"
    );
    let _ = writeln!(out, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let _ = writeln!(
        out,
        "| {} | {expected} | {delivered} | {lost} | {dups} | {unexpected} | {resets} | {gaps} | {reconnects} | {failed_attempts} |",
        run.tabs
    );
    let _ = writeln!(
        out,
        "reconnect (socket opened) to hello: p50 {:.2} / p90 {:.2} / p99 {:.2} / max {:.2} ms over {} reconnects",
        ms(0.5),
        ms(0.9),
        ms(0.99),
        hist.max() as f64 / 1000.0,
        hist.len()
    );
    let _ = writeln!(
        out,
        "tabs with a loss or a duplicate: {tabs_with_loss}; other tab ids seen: {foreign}"
    );
    for (i, text) in final_metrics.iter().enumerate() {
        let value = |name| metric(text, name).map_or("?".into(), |v| v.to_string());
        let _ = writeln!(
            out,
            "node {} at the end: tabs {}, moved in {}, moved out {}, resets {}, calls forwarded {}",
            i,
            value("notif_tabs"),
            value("notif_tabs_moved_in_total"),
            value("notif_tabs_moved_out_total"),
            value("notif_resets_total"),
            value("notif_calls_forwarded_total"),
        );
    }
    let clean = lost == 0 && dups == 0 && resets == 0 && gaps == 0 && foreign == 0 && failed == 0;
    let _ = writeln!(
        out,
        "{}",
        if clean {
            "every tab got every notification exactly once, no reset".to_owned()
        } else {
            format!("NOT CLEAN: {lost} lost, {dups} duplicates, {resets} resets, {gaps} seq gaps, {failed} notify failed")
        }
    );
    for detail in details {
        out += &detail;
    }
    (out, clean)
}

/// What went wrong for one tab, with its connections, for the logs.
fn describe(i: usize, t: &TabState, tally: &Tally, published: &[Published], run: &Rolling) -> String {
    let mut out = format!(
        "tab {i} ({}, key k{}): {} lost, {} duplicates, {} resets, {} seq gaps; last error: {}\n",
        t.user,
        t.key,
        tally.lost.len(),
        tally.duplicates,
        t.resets,
        t.seq_gaps,
        if t.last_error.is_empty() {
            "none"
        } else {
            &t.last_error
        }
    );
    let origin = |n: u64| {
        published.get(n as usize).map_or("?".into(), |p| {
            format!("{n} (posted to :{} at {:.3} s)", run.ports[p.node], p.at)
        })
    };
    for (label, numbers) in [("lost", &tally.lost), ("duplicated", &tally.duplicated)] {
        if !numbers.is_empty() {
            let shown: Vec<String> = numbers.iter().take(8).map(|&n| origin(n)).collect();
            out += &format!(
                "  {label}: {}{}\n",
                shown.join(", "),
                if numbers.len() > 8 { ", ..." } else { "" }
            );
        }
    }
    for c in &t.history {
        out += &format!(
            "  {:.3} s -> :{} hello {} {} node {} tab {}; ended {}\n",
            c.at,
            c.port,
            c.hello_at.map_or("none".into(), |h| format!("at {h:.3} s")),
            if c.recovered { "recovered" } else { "new" },
            c.node,
            c.tab_id,
            c.ended
                .as_ref()
                .map_or("no".into(), |(at, why)| format!("at {at:.3} s: {why}")),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_lost_duplicated_and_unexpected_per_tab() {
        // Four keys: this tab (key 1) expects 1, 5, 9, 13; notify 9 failed.
        let published = [
            true, true, true, true, true, true, true, true, true, false, true, true, true, true,
        ];
        let mut counts = vec![0u8; 14];
        counts[1] = 1;
        counts[5] = 3; // two extra copies
        counts[9] = 1; // its notify failed, yet it came
        counts[2] = 1; // another key's
        let tally = tally(&counts, 1, 4, &published);
        assert_eq!(tally.expected, 3);
        assert_eq!(tally.lost, vec![13]);
        assert_eq!(tally.duplicated, vec![5]);
        assert_eq!(tally.duplicates, 2);
        assert_eq!(tally.unexpected, vec![2, 9]);
        assert_eq!(tally.delivered, 6);
    }

    #[test]
    fn a_tab_with_everything_once_is_clean() {
        let published = vec![true; 10];
        let counts: Vec<u8> = (0..10).map(|n| u8::from(n % 2 == 0)).collect();
        let tally = tally(&counts, 0, 2, &published);
        assert_eq!((tally.expected, tally.delivered), (5, 5));
        assert!(tally.lost.is_empty() && tally.duplicated.is_empty() && tally.unexpected.is_empty());
        // Nothing received past the end of what was posted counts as lost.
        let tally = super::tally(&[], 0, 2, &published);
        assert_eq!(tally.lost, vec![0, 2, 4, 6, 8]);
    }

    #[test]
    fn reads_the_frames_a_tab_gets() {
        let tab_id = "5f0c2a9e8d7b4c1e9a3f6b2d1c0e8f7a";
        let hello = format!(
            r#"{{"event":"hello","id":"{tab_id}.17","data":{{"client":"{tab_id}","recovered":true,"node":"9c41d07be2a35f18"}}}}"#
        );
        assert_eq!(
            parse(&hello),
            Frame::Hello {
                tab_id: tab_id.into(),
                seq: 17,
                recovered: true,
                node: "9c41d07be2a35f18".into()
            }
        );
        let notif = format!(
            r#"{{"event":"notif","id":"{tab_id}.18","data":{{"topic":"group","key":"k1","message":"1234"}}}}"#
        );
        assert_eq!(
            parse(&notif),
            Frame::Notif {
                tab_id: tab_id.into(),
                seq: 18,
                number: 1234
            }
        );
        assert_eq!(
            parse(r#"{"event":"bye","data":{"reason":"shutdown"}}"#),
            Frame::Bye("shutdown".into())
        );
        assert_eq!(parse("not json"), Frame::Other);
    }

    #[test]
    fn reads_prometheus_values() {
        let text = "# HELP notif_tabs x\nnotif_tabs 12\nnotif_tabs_moved_in_total 3\n";
        assert_eq!(metric(text, "notif_tabs"), Some(12.0));
        assert_eq!(metric(text, "notif_tabs_moved_in_total"), Some(3.0));
        assert_eq!(metric(text, "notif_resets_total"), None);
    }
}

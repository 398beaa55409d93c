//! Chaos across nodes: three hubs over a real `redis-server`, tabs reconnecting to a node picked
//! at random (as a round-robin balancer sends them, after a cut or a `bye`), nodes drained and
//! replaced one after another, while numbered notifications flow from every node. Every tab gets
//! every notification once, in order per origin node, and none is reset.
//!
//! `NOTIF_CHAOS_NOTIFICATIONS` (default 10,000) and `NOTIF_CHAOS_TABS` (default 9) size it; the
//! long run outside CI: `NOTIF_CHAOS_NOTIFICATIONS=100000 cargo test -p notif --features redis
//! --test cluster_chaos -- --nocapture`.
mod common;

use std::{
    collections::{HashMap, HashSet},
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex, RwLock,
    },
    time::Duration,
};

use common::{read_events, RedisServer, TestServer};
use notif::{
    backplane::{Backplane, RedisBackplane},
    Config,
};
use tokio::sync::mpsc;

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A small PRNG (xorshift), seeded per test run and printed, so a failure can be replayed.
struct Dice(u64);

impl Dice {
    fn new(seed: u64) -> Self {
        Dice(seed | 1)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

type Nodes = Arc<RwLock<Vec<Arc<TestServer>>>>;

fn config() -> Config {
    {
        let mut config = Config::default();
        config.resume_window = Duration::from_secs(10);
        config.drain = Duration::from_secs(5);
        config
    }
}

async fn start_node(redis: &RedisServer) -> Arc<TestServer> {
    let backplane: Arc<dyn Backplane> = Arc::new(RedisBackplane::new(&redis.url()).unwrap());
    let node = TestServer::node(config(), Some(backplane)).await;
    common::eventually("the node reaches Redis", || node.hub.metrics().backplane_up == 1).await;
    Arc::new(node)
}

fn pick(nodes: &Nodes, dice: &mut Dice) -> Arc<TestServer> {
    let nodes = nodes.read().unwrap();
    nodes[dice.below(nodes.len() as u64) as usize].clone()
}

/// What one tab received, per origin node: the numbers, in arrival order.
#[derive(Default)]
struct Seen {
    by_origin: Mutex<HashMap<String, Vec<u64>>>,
    count: AtomicU64,
    resets: AtomicU64,
    resumes: AtomicU64,
    /// Resumes on another node than the last hello's.
    moves: AtomicU64,
}

/// A tab: connects to a random node naming its last id and node, listens (through a random node)
/// when it starts over, drops its connection now and then, and reconnects after every drop or
/// `bye`, as a browser behind a round-robin balancer does.
async fn run_tab(nodes: Nodes, user: String, seen: Arc<Seen>, stop: Arc<AtomicBool>, seed: u64) {
    let mut dice = Dice::new(seed);
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let (mut last_id, mut node_id): (Option<String>, Option<String>) = (None, None);
    let mut first = true;
    while !stop.load(Ordering::Relaxed) {
        let node = pick(&nodes, &mut dice);
        let mut url = node.url(notif::wire::STREAM_PATH);
        if let Some(id) = &node_id {
            url = format!("{url}?{}={id}", notif::wire::NODE_QUERY);
        }
        let mut request = http.get(url).header("x-user", &user);
        if let Some(id) = &last_id {
            request = request.header("last-event-id", id);
        }
        let response = match request.send().await {
            Ok(response) if response.status() == 200 => response,
            // A node draining (503) or gone: try another, as the browser's backoff does.
            _ => {
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let (tx, mut events) = mpsc::unbounded_channel();
        let reader = tokio::spawn(read_events(response, tx));
        let cut_after = Duration::from_millis(100 + dice.below(400));
        let cut = tokio::time::sleep(cut_after);
        tokio::pin!(cut);
        loop {
            let event = tokio::select! {
                event = events.recv() => match event {
                    Some(event) => event,
                    None => break,
                },
                () = &mut cut => break,
            };
            match event.event.as_str() {
                "hello" => {
                    let hello: notif::wire::Hello = serde_json::from_str(&event.data).unwrap();
                    if hello.recovered {
                        seen.resumes.fetch_add(1, Ordering::Relaxed);
                        if hello.node != node_id {
                            seen.moves.fetch_add(1, Ordering::Relaxed);
                        }
                    } else {
                        if !first {
                            seen.resets.fetch_add(1, Ordering::Relaxed);
                        }
                        // Listened through any node, naming the one holding the tab; a node
                        // gone meanwhile (503 when the call finds no answer) is retried, as the
                        // browser does.
                        let mut tries = 0;
                        loop {
                            let via = pick(&nodes, &mut dice);
                            let (status, body) = via
                                .call_naming(
                                    Some(&user),
                                    Some(&hello.tab_id),
                                    hello.node.as_deref(),
                                    "t/listen_chat",
                                    &[("key", "k")],
                                )
                                .await;
                            tries += 1;
                            if status == 200 {
                                break;
                            }
                            assert!(status == 503 && tries < 5, "{status} {body}");
                        }
                    }
                    first = false;
                    node_id = hello.node;
                }
                "notif" => {
                    let text = event.message().as_str().unwrap().to_owned();
                    let (origin, n) = text.rsplit_once(':').unwrap();
                    seen.by_origin
                        .lock()
                        .unwrap()
                        .entry(origin.to_owned())
                        .or_default()
                        .push(n.parse().unwrap());
                    seen.count.fetch_add(1, Ordering::Relaxed);
                }
                "bye" => {}
                other => panic!("unexpected {other} event"),
            }
            if !event.id.is_empty() {
                last_id = Some(event.id);
            }
        }
        reader.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tabs_moving_between_nodes_drained_and_replaced_lose_duplicate_and_reset_nothing() {
    let total = setting("NOTIF_CHAOS_NOTIFICATIONS", 10_000);
    let tab_count = setting("NOTIF_CHAOS_TABS", 9) as usize;
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    println!("seed {seed}");
    let redis = RedisServer::start().await;
    let mut started = Vec::new();
    for _ in 0..3 {
        started.push(start_node(&redis).await);
    }
    let nodes: Nodes = Arc::new(RwLock::new(started));
    let stop = Arc::new(AtomicBool::new(false));
    let tabs: Vec<Arc<Seen>> = (0..tab_count).map(|_| Arc::new(Seen::default())).collect();
    for (i, seen) in tabs.iter().enumerate() {
        let user = format!("user{}", i % 3);
        tokio::spawn(run_tab(
            nodes.clone(),
            user,
            seen.clone(),
            stop.clone(),
            seed + i as u64,
        ));
    }
    let listening = || {
        let nodes = nodes.read().unwrap();
        nodes.iter().map(|n| n.hub.metrics().listens).sum::<u64>()
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while listening() < tab_count as u64 {
        assert!(tokio::time::Instant::now() < deadline, "tabs did not all listen");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    // One publisher per node slot, through whichever node holds the slot now; the text names
    // the node that sent it and its number there.
    let per_slot = total.div_ceil(3);
    let publishers: Vec<_> = (0..3)
        .map(|slot| {
            let nodes = nodes.clone();
            tokio::spawn(async move {
                let mut sent: Vec<(String, u64)> = Vec::new();
                let mut numbers: HashMap<String, u64> = HashMap::new();
                for _ in 0..per_slot {
                    let node = nodes.read().unwrap()[slot].clone();
                    let origin = node.hub.node().unwrap();
                    let n = numbers.entry(origin.clone()).or_default();
                    *n += 1;
                    node.notify_chat("k", &format!("{origin}:{n}")).await;
                    sent.push((origin, *n));
                    tokio::time::sleep(Duration::from_micros(500)).await;
                }
                sent
            })
        })
        .collect();

    // Meanwhile, each node in turn is drained and replaced by a new one (each slot at least once).
    let mut drains = 0;
    while publishers.iter().any(|p| !p.is_finished()) || drains < 3 {
        tokio::time::sleep(Duration::from_millis(700)).await;
        let slot = drains % 3;
        let old = nodes.read().unwrap()[slot].clone();
        let new = start_node(&redis).await;
        nodes.write().unwrap()[slot] = new;
        old.shut_down().await;
        drains += 1;
    }
    let mut sent: HashMap<String, HashSet<u64>> = HashMap::new();
    for publisher in publishers {
        for (origin, n) in publisher.await.unwrap() {
            sent.entry(origin).or_default().insert(n);
        }
    }
    let sent_total: usize = sent.values().map(HashSet::len).sum();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while tabs
        .iter()
        .any(|t| t.count.load(Ordering::Relaxed) < sent_total as u64)
    {
        if tokio::time::Instant::now() >= deadline {
            for (i, tab) in tabs.iter().enumerate() {
                let by_origin = tab.by_origin.lock().unwrap();
                let missing: Vec<(&String, Vec<u64>)> = sent
                    .iter()
                    .map(|(origin, numbers)| {
                        let got: HashSet<u64> =
                            by_origin.get(origin).into_iter().flatten().copied().collect();
                        let mut missing: Vec<u64> = numbers.difference(&got).copied().collect();
                        missing.sort_unstable();
                        missing.truncate(8);
                        (origin, missing)
                    })
                    .filter(|(_, missing)| !missing.is_empty())
                    .collect();
                println!(
                    "tab {i}: {} of {sent_total}, {} resets, missing {missing:?}",
                    tab.count.load(Ordering::Relaxed),
                    tab.resets.load(Ordering::Relaxed)
                );
            }
            panic!("tabs stalled");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.store(true, Ordering::Relaxed);

    let moves: u64 = tabs.iter().map(|t| t.moves.load(Ordering::Relaxed)).sum();
    let resumes: u64 = tabs.iter().map(|t| t.resumes.load(Ordering::Relaxed)).sum();
    let resets: u64 = tabs.iter().map(|t| t.resets.load(Ordering::Relaxed)).sum();
    println!("{sent_total} notifications, {tab_count} tabs, {drains} nodes drained and replaced, {resumes} resumes ({moves} moves to another node), {resets} resets");
    assert!(drains >= 3, "every slot was replaced at least once");
    assert_eq!(resets, 0, "no tab started over");
    assert!(moves >= tab_count as u64, "tabs moved between nodes");
    for (i, tab) in tabs.iter().enumerate() {
        let by_origin = tab.by_origin.lock().unwrap();
        for (origin, numbers) in by_origin.iter() {
            let expected: Vec<u64> = (1..=sent[origin].len() as u64).collect();
            assert_eq!(
                numbers, &expected,
                "tab {i}, origin {origin}: each once, in order"
            );
        }
        assert_eq!(by_origin.len(), sent.len(), "tab {i} heard every origin");
    }
}

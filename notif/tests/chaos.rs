//! Chaos: a TCP proxy between the tabs and the server cuts connections at random while 10,000
//! numbered notifications flow. Tabs reconnect as browsers do (with `Last-Event-ID`).
mod common;

use std::{
    net::SocketAddr,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use common::{read_events, Chat, TestServer};
use notif::{Config, Exclude};
use tokio::{net::TcpListener, sync::mpsc, task::AbortHandle};

/// Forwards connections to `upstream`; `cut` drops every connection open now.
struct Proxy {
    addr: SocketAddr,
    open: Arc<Mutex<Vec<AbortHandle>>>,
    cuts: AtomicU64,
}

impl Proxy {
    async fn start(upstream: SocketAddr) -> Arc<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy = Arc::new(Proxy {
            addr: listener.local_addr().unwrap(),
            open: Default::default(),
            cuts: AtomicU64::new(0),
        });
        let open = proxy.open.clone();
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let pipe = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                open.lock().unwrap().push(pipe.abort_handle());
            }
        });
        proxy
    }

    fn cut(&self) {
        for pipe in self.open.lock().unwrap().drain(..) {
            pipe.abort();
        }
        self.cuts.fetch_add(1, Ordering::Relaxed);
    }
}

/// What one reconnecting tab saw.
#[derive(Default)]
struct Seen {
    numbers: Mutex<Vec<u64>>,
    count: AtomicU64,
    hellos: Mutex<Vec<bool>>,
}

/// A tab that reconnects through the proxy, resuming with the last id it processed, and listens
/// on `key` (directly, not through the proxy) whenever a hello says it was not recovered.
async fn run_tab(
    server: Arc<TestServer>,
    proxy: SocketAddr,
    user: String,
    key: String,
    seen: Arc<Seen>,
    stop: Arc<AtomicBool>,
) {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let mut last_id: Option<String> = None;
    while !stop.load(Ordering::Relaxed) {
        let mut request = http
            .get(format!("http://{proxy}{}", notif::wire::STREAM_PATH))
            .header("x-user", &user);
        if let Some(id) = &last_id {
            request = request.header("last-event-id", id);
        }
        let Ok(response) = request.send().await else {
            continue;
        };
        assert_eq!(response.status(), 200);
        let (tx, mut events) = mpsc::unbounded_channel();
        let reader = tokio::spawn(read_events(response, tx));
        while let Some(event) = events.recv().await {
            match event.event.as_str() {
                "hello" => {
                    let hello: notif::wire::Hello = serde_json::from_str(&event.data).unwrap();
                    seen.hellos.lock().unwrap().push(hello.recovered);
                    if !hello.recovered {
                        let (status, body) = server
                            .call_as(
                                Some(&user),
                                Some(&hello.tab_id),
                                "t/listen_chat",
                                &[("key", &key)],
                            )
                            .await;
                        assert_eq!(status, 200, "{body}");
                    }
                }
                "notif" => {
                    let number: u64 = event.message().as_str().unwrap().parse().unwrap();
                    seen.numbers.lock().unwrap().push(number);
                    seen.count.fetch_add(1, Ordering::Relaxed);
                }
                other => panic!("unexpected {other} event"),
            }
            last_id = Some(event.id);
        }
        reader.abort();
    }
}

struct Rig {
    server: Arc<TestServer>,
    proxy: Arc<Proxy>,
    tabs: Vec<Arc<Seen>>,
    stop: Arc<AtomicBool>,
}

impl Rig {
    async fn start(config: Config, tabs: usize, key: &str) -> Rig {
        let server = Arc::new(TestServer::with_config(config).await);
        let proxy = Proxy::start(server.addr).await;
        let stop = Arc::new(AtomicBool::new(false));
        let mut seen = Vec::new();
        for i in 0..tabs {
            let tab = Arc::new(Seen::default());
            let user = format!("user{}", i % 3);
            tokio::spawn(run_tab(
                server.clone(),
                proxy.addr,
                user,
                key.into(),
                tab.clone(),
                stop.clone(),
            ));
            seen.push(tab);
        }
        // Every tab listens before the first notification.
        while server.hub.metrics().listens < tabs as u64 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        Rig {
            server,
            proxy,
            tabs: seen,
            stop,
        }
    }

    async fn wait_for(&self, total: u64) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while self.tabs.iter().any(|t| t.count.load(Ordering::Relaxed) < total) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "tabs stalled: {:?}",
                self.counts()
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    fn counts(&self) -> Vec<u64> {
        self.tabs
            .iter()
            .map(|t| t.count.load(Ordering::Relaxed))
            .collect()
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.proxy.cut();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cuts_shorter_than_the_window_lose_and_duplicate_nothing() {
    const TOTAL: u64 = 10_000;
    let rig = Rig::start(
        {
            let mut config = Config::default();
            config.resume_window = Duration::from_secs(30);
            config.replay_capacity = 4096;
            config.queue_capacity = 4096;
            config
        },
        4,
        "chaos",
    )
    .await;

    // The cutter: pseudo-random pauses of 2-30 ms between cuts, from a fixed seed.
    let proxy = rig.proxy.clone();
    let stop_cuts = Arc::new(AtomicBool::new(false));
    let cutter = {
        let stop = stop_cuts.clone();
        tokio::spawn(async move {
            let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
            while !stop.load(Ordering::Relaxed) {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                tokio::time::sleep(Duration::from_micros(2_000 + state % 28_000)).await;
                proxy.cut();
            }
        })
    };
    for n in 0..TOTAL {
        rig.server
            .hub
            .notify::<Chat>(&"chaos".into(), &n.to_string(), Exclude::Nobody)
            .await
            .unwrap();
        // Flow control: stay within the replay buffer of the slowest tab (a test on resume, not on lag).
        while rig
            .tabs
            .iter()
            .any(|t| t.count.load(Ordering::Relaxed) + 1024 < n)
        {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    rig.wait_for(TOTAL).await;
    stop_cuts.store(true, Ordering::Relaxed);
    cutter.await.unwrap();

    let expected: Vec<u64> = (0..TOTAL).collect();
    for (i, tab) in rig.tabs.iter().enumerate() {
        let numbers = tab.numbers.lock().unwrap();
        assert_eq!(numbers.len() as u64, TOTAL, "tab {i}: lost or duplicated");
        assert!(*numbers == expected, "tab {i}: out of order");
        let hellos = tab.hellos.lock().unwrap();
        assert_eq!(
            hellos.iter().filter(|r| !**r).count(),
            1,
            "tab {i}: only its first hello starts over"
        );
    }
    let metrics = rig.server.hub.metrics();
    assert!(
        rig.proxy.cuts.load(Ordering::Relaxed) > 10,
        "the proxy cut connections"
    );
    assert!(metrics.resumes > 0, "tabs resumed: {metrics:?}");
    assert_eq!((metrics.resets, metrics.lagged), (0, 0));
    println!(
        "cuts: {}, resumes: {}",
        rig.proxy.cuts.load(Ordering::Relaxed),
        metrics.resumes
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_longer_than_the_window_resets_then_delivery_resumes() {
    // Window 0: the tab is forgotten as soon as the server sees its connection end.
    let rig = Rig::start(
        {
            let mut config = Config::default();
            config.resume_window = Duration::ZERO;
            config
        },
        1,
        "long",
    )
    .await;
    let hub = rig.server.hub.clone();
    let notify = move |text: String| {
        let hub = hub.clone();
        async move { hub.notify::<Chat>(&"long".into(), &text, Exclude::Nobody).await }
    };
    notify("0".into()).await.unwrap();
    rig.wait_for(1).await;
    // Cut, and keep the tab away until the server has forgotten it: every reconnect is cut too
    // until then. The cut is noticed by the next write, so keep writing.
    let mut n = 1;
    while rig.server.hub.metrics().streams_opened < 2 || rig.server.hub.metrics().resets == 0 {
        rig.proxy.cut();
        notify(n.to_string()).await.unwrap();
        n += 1;
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    // The tab came back with recovered: false, listened again, and receives what follows.
    while rig.server.hub.metrics().listens == 0 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if rig.tabs[0].numbers.lock().unwrap().last() == Some(&u64::MAX) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline);
        notify(u64::MAX.to_string()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let hellos = rig.tabs[0].hellos.lock().unwrap();
    assert!(
        hellos.iter().skip(1).any(|r| !r),
        "a later hello said recovered: false: {hellos:?}"
    );
}

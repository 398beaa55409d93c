//! Load generator for notif, and the minimal notif server it measures.
//!
//! ```text
//! bench serve  [--addr 127.0.0.1:3300] [--redis URL]      the notif server under test
//! bench fanout --url URL [--target ws|sse|socketio] [--streams 1000] [--keys 1] [--topic group|each]
//!              [--rates 100,200] [--seconds 5] [--settle 5] [--publish-url URL] [--pid PID]
//! bench idle   --url URL [--target ws|sse|socketio] [--streams 1000] [--processes 1] [--pid PID]
//!              [--after 0,30,60] [--warm 0]
//! bench presence --url URL [--tabs 10000] [--identities 10000] [--topic lobby|group] [--parallel 64]
//!              [--leaving 64] [--quiet 2] [--pid PID]   tabs join one key, with presence or without, then leave
//! bench floor  [--streams 1000] [--rounds 50] [--reader-cpu 1]   the machine's floor: raw writes
//! bench delay  --to HOST:PORT [--listen 127.0.0.1:6392] [--ms 1]   a TCP relay adding delay
//! bench cross-node-listen --url URL --other-url URL [--tabs 2000] [--calls 2000]
//!              listens to node A (local) against listens to node B naming node A (forwarded)
//! bench rolling-restart --redis URL [--ports 3300,3301,3302] [--tabs 1000] [--keys 4] [--rate 100]
//!              [--warmup 3] [--settle 5] [--rounds 1] [--jitter-ms 0] [--pick round-robin|random]
//!              [--server-cpu 0] [--logs target/bench-logs] [--name rolling-restart]
//!              starts the nodes itself, SIGTERMs and restarts each in turn under load
//! bench connections [--count 500] [--server axum|notif]   heap per idle keep-alive HTTP connection
//! bench smoke                                              in-process, seconds: asserts zero loss
//! ```
//! Latency is timed from each notification's *scheduled* send time (so a stalled publisher
//! cannot hide delay) to its arrival at each stream. `--pid` names the server process whose
//! memory and CPU are read from /proc. See docs/BENCHMARKS.md for the scenarios.
mod client;
mod connections;
mod delay;
mod fanout;
mod floor;
mod idle;
mod listen_hop;
mod presence;
mod procstat;
mod rolling;
mod serve;
mod ws;

use std::{net::SocketAddr, time::Duration};

use client::Target;
use fanout::{run_fanout, Fanout};
use floor::{read_floor, run_floor, Floor};
use idle::{hold, run_idle, Idle};

// jemalloc with its background thread gives freed memory back to the system even while the
// server sits idle, so RSS falls back after clients leave (docs/BENCHMARKS.md compares).
#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;
#[cfg(all(feature = "mimalloc", not(feature = "jemalloc")))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `--flag value` pairs.
struct Args(Vec<(String, String)>);

impl Args {
    fn parse(args: &[String], known: &[&str]) -> Result<Self, String> {
        let mut pairs = Vec::new();
        let mut args = args.iter();
        while let Some(flag) = args.next() {
            if !known.contains(&flag.as_str()) {
                return Err(format!("unknown flag {flag} (known: {})", known.join(" ")));
            }
            let value = args.next().ok_or(format!("{flag} needs a value"))?;
            pairs.push((flag.clone(), value.clone()));
        }
        Ok(Args(pairs))
    }

    fn get(&self, flag: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(f, _)| f == flag)
            .map(|(_, v)| v.as_str())
    }

    fn or<T: std::str::FromStr>(&self, flag: &str, default: T) -> Result<T, String> {
        match self.get(flag) {
            None => Ok(default),
            Some(value) => value.parse().map_err(|_| format!("{flag} {value}: not valid")),
        }
    }

    fn list<T: std::str::FromStr>(&self, flag: &str, default: Vec<T>) -> Result<Vec<T>, String> {
        match self.get(flag) {
            None => Ok(default),
            Some(value) => value
                .split(',')
                .map(|v| {
                    v.trim()
                        .parse()
                        .map_err(|_| format!("{flag} {value}: not a list of numbers"))
                })
                .collect(),
        }
    }

    fn url(&self) -> Result<String, String> {
        self.get("--url")
            .map(|u| u.trim_end_matches('/').to_owned())
            .ok_or("--url is required (a server started by `bench serve`, or the Socket.IO peer)".into())
    }
}

const USAGE: &str =
    "usage: bench serve|fanout|idle|presence|floor|delay|connections|cross-node-listen|rolling-restart|smoke [flags] (see bench/src/main.rs or docs/BENCHMARKS.md)";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("serve") => serve_command(&args[1..]),
        Some("smoke") => local(smoke()),
        Some("fanout") => local(fanout_command(&args[1..])),
        Some("idle") => local(idle_command(&args[1..])),
        Some("hold") => local(hold_command(&args[1..])),
        Some("presence") => local(presence_command(&args[1..])),
        Some("floor") => floor_command(&args[1..]),
        Some("floor-read") => local(floor_read_command(&args[1..])),
        Some("delay") => local(delay_command(&args[1..])),
        Some("connections") => local(connections_command(&args[1..])),
        Some("cross-node-listen") => local(listen_hop_command(&args[1..])),
        Some("rolling-restart") => local(rolling_command(&args[1..])),
        _ => Err(USAGE.into()),
    };
    if let Err(error) = result {
        eprintln!("bench: {error}");
        std::process::exit(1);
    }
}

/// The generator runs on one thread (pin it to its own core): no cross-thread handoffs to
/// measure, and its tasks share counters without locks.
fn local(work: impl std::future::Future<Output = Result<(), String>>) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    tokio::task::LocalSet::new().block_on(&runtime, work)
}

fn serve_command(args: &[String]) -> Result<(), String> {
    let args = Args::parse(args, &["--addr", "--redis"])?;
    let addr: SocketAddr = args.or("--addr", SocketAddr::from(([127, 0, 0, 1], 3300)))?;
    let redis = args.get("--redis").map(str::to_owned);
    // The library's log (drains, moves, outages) on stderr, only when asked for: `RUST_LOG`.
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .with_ansi(false)
            .init();
    }
    #[cfg(feature = "jemalloc")]
    tikv_jemalloc_ctl::background_thread::write(true).map_err(|e| format!("jemalloc: {e}"))?;
    // The main thread only waits for the server: a cache would keep what it allocated while
    // starting for ever.
    set_thread_cache(false)?;
    // One worker per core the process may run on: `taskset -c 0` makes it one.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .on_thread_park(flush_thread_cache_when_idle)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    // The server runs on the worker, not in `block_on` on the main thread: memory allocated on
    // one thread and freed on another is returned only when its owner runs again, and a parked
    // main thread never does.
    runtime.block_on(async {
        tokio::spawn(serve::serve(addr, redis))
            .await
            .map_err(|e| e.to_string())?
    })
}

fn fanout_args(args: &[String]) -> Result<Fanout, String> {
    let args = Args::parse(
        args,
        &[
            "--url",
            "--publish-url",
            "--target",
            "--streams",
            "--keys",
            "--topic",
            "--rates",
            "--seconds",
            "--settle",
            "--pid",
        ],
    )?;
    let url = args.url()?;
    let topic = match args.get("--topic").unwrap_or("group") {
        "group" => "group",
        "each" => "each",
        other => return Err(format!("--topic {other}: group or each")),
    };
    let keys: usize = args.or("--keys", 1)?;
    Ok(Fanout {
        publish_url: args
            .get("--publish-url")
            .map_or(url.clone(), |u| u.trim_end_matches('/').to_owned()),
        url,
        target: args.or("--target", Target::NotifWs)?,
        streams: args.or("--streams", 1000)?,
        keys: keys.max(1),
        topic,
        rates: args.list("--rates", vec![100.0])?,
        seconds: args.or("--seconds", 5.0)?,
        settle: Duration::from_secs_f64(args.or("--settle", 5.0)?),
        pid: args
            .get("--pid")
            .map(str::parse)
            .transpose()
            .map_err(|_| "--pid: not a pid")?,
    })
}

async fn fanout_command(args: &[String]) -> Result<(), String> {
    let report = run_fanout(fanout_args(args)?).await?;
    println!("{report}");
    Ok(())
}

async fn idle_command(args: &[String]) -> Result<(), String> {
    let args = Args::parse(
        args,
        &[
            "--url",
            "--target",
            "--streams",
            "--processes",
            "--pid",
            "--after",
            "--warm",
        ],
    )?;
    run_idle(Idle {
        url: args.url()?,
        target: args.or("--target", Target::NotifWs)?,
        streams: args.or("--streams", 1000)?,
        processes: args.or("--processes", 1)?,
        pid: args
            .get("--pid")
            .map(str::parse)
            .transpose()
            .map_err(|_| "--pid: not a pid")?,
        after: args.list("--after", vec![0, 30, 60])?,
        warm: args.or("--warm", 0)?,
    })
    .await
}

async fn presence_command(args: &[String]) -> Result<(), String> {
    let args = Args::parse(
        args,
        &[
            "--url",
            "--target",
            "--tabs",
            "--identities",
            "--topic",
            "--parallel",
            "--leaving",
            "--quiet",
            "--pid",
        ],
    )?;
    if args.or("--target", Target::NotifWs)? != Target::NotifWs {
        return Err("bench presence: notif over WebSocket only (--target ws)".into());
    }
    let tabs: usize = args.or("--tabs", 10_000)?;
    let identities = args.or("--identities", tabs)?;
    let parallel = args.or::<usize>("--parallel", 64)?.max(1);
    let report = presence::run_presence(presence::PresenceRun {
        url: args.url()?,
        tabs,
        identities,
        topic: match args.get("--topic").unwrap_or("lobby") {
            "lobby" => "lobby",
            "group" => "group",
            other => return Err(format!("--topic {other}: lobby (presence) or group (none)")),
        },
        parallel,
        // About `--parallel` tabs closing at once.
        leaving: args
            .or::<usize>("--leaving", (parallel * identities / tabs.max(1)).max(1))?
            .max(1),
        quiet: Duration::from_secs_f64(args.or("--quiet", 2.0)?),
        pid: args
            .get("--pid")
            .map(str::parse)
            .transpose()
            .map_err(|_| "--pid: not a pid")?,
    })
    .await?;
    print!("{report}");
    Ok(())
}

async fn listen_hop_command(args: &[String]) -> Result<(), String> {
    let args = Args::parse(args, &["--url", "--other-url", "--tabs", "--calls"])?;
    let report = listen_hop::run_listen_hop(listen_hop::ListenHop {
        url: args.url()?,
        other_url: args
            .get("--other-url")
            .ok_or("--other-url (node B) is required")?
            .trim_end_matches('/')
            .to_owned(),
        tabs: args.or::<usize>("--tabs", 2000)?.max(1),
        calls: args.or("--calls", 2000)?,
    })
    .await?;
    print!("{report}");
    Ok(())
}

async fn rolling_command(args: &[String]) -> Result<(), String> {
    let args = Args::parse(
        args,
        &[
            "--redis",
            "--ports",
            "--tabs",
            "--keys",
            "--rate",
            "--warmup",
            "--settle",
            "--rounds",
            "--jitter-ms",
            "--pick",
            "--server-bin",
            "--server-cpu",
            "--logs",
            "--name",
        ],
    )?;
    let seconds = |flag, default| args.or(flag, default).map(Duration::from_secs_f64);
    let (report, clean) = rolling::run_rolling(rolling::Rolling {
        redis: args.get("--redis").ok_or("--redis URL is required")?.to_owned(),
        ports: args.list("--ports", vec![3300, 3301, 3302])?,
        tabs: args.or::<usize>("--tabs", 1000)?.max(1),
        keys: args.or::<usize>("--keys", 4)?.max(1),
        rate: args.or("--rate", 100.0)?,
        warmup: seconds("--warmup", 3.0)?,
        settle: seconds("--settle", 5.0)?,
        rounds: args.or("--rounds", 1)?,
        jitter: Duration::from_millis(args.or("--jitter-ms", 0)?),
        random: match args.get("--pick").unwrap_or("round-robin") {
            "round-robin" => false,
            "random" => true,
            other => return Err(format!("--pick {other}: round-robin or random")),
        },
        server_bin: match args.get("--server-bin") {
            Some(path) => path.into(),
            None => std::env::current_exe().map_err(|e| e.to_string())?,
        },
        server_cpu: args
            .get("--server-cpu")
            .map(str::parse)
            .transpose()
            .map_err(|_| "--server-cpu: not a core number")?,
        logs: args.get("--logs").unwrap_or("target/bench-logs").into(),
        name: args.get("--name").unwrap_or("rolling-restart").to_owned(),
    })
    .await?;
    print!("{report}");
    if clean {
        Ok(())
    } else {
        Err("rolling restart: notifications lost or duplicated, or tabs reset (see above)".into())
    }
}

async fn delay_command(args: &[String]) -> Result<(), String> {
    let args = Args::parse(args, &["--listen", "--to", "--ms"])?;
    let to = args.get("--to").ok_or("--to host:port is required")?.to_owned();
    let listen = args.get("--listen").unwrap_or("127.0.0.1:6392").to_owned();
    delay::relay(
        &listen,
        to,
        Duration::from_secs_f64(args.or("--ms", 1.0)? / 1000.0),
    )
    .await
}

async fn connections_command(args: &[String]) -> Result<(), String> {
    let args = Args::parse(args, &["--count", "--server"])?;
    let server = args.get("--server").map(str::parse).transpose()?;
    let report = connections::run_connections(args.or("--count", 500)?, server).await?;
    print!("{report}");
    Ok(())
}

fn floor_command(args: &[String]) -> Result<(), String> {
    let args = Args::parse(args, &["--streams", "--rounds", "--reader-cpu"])?;
    let report = run_floor(Floor {
        streams: args.or("--streams", 1000)?,
        rounds: args.or::<usize>("--rounds", 50)?.max(1),
        reader_cpu: args
            .get("--reader-cpu")
            .map(str::parse)
            .transpose()
            .map_err(|_| "--reader-cpu: not a core number")?,
    })?;
    println!("{report}");
    Ok(())
}

/// `bench floor`'s reader, started by it: `floor-read ADDR STREAMS ROUNDS`.
async fn floor_read_command(args: &[String]) -> Result<(), String> {
    let [addr, streams, rounds] = args else {
        return Err("floor-read ADDR STREAMS ROUNDS (started by `bench floor`)".into());
    };
    let number = |v: &str| v.parse::<usize>().map_err(|_| format!("{v}: not a number"));
    println!("{}", read_floor(addr, number(streams)?, number(rounds)?).await?);
    Ok(())
}

async fn hold_command(args: &[String]) -> Result<(), String> {
    let args = Args::parse(args, &["--url", "--target", "--first", "--streams"])?;
    hold(
        args.url()?,
        args.or("--target", Target::NotifWs)?,
        args.or("--first", 0)?,
        args.or("--streams", 1)?,
    )
    .await
}

/// Empties the calling worker's jemalloc cache as it goes idle, at most once a second. The cache
/// spares each allocation and each free the arena's lock (a notify request to one listener:
/// 15-25% less server CPU than with no cache), but keeps what the thread freed for its next
/// allocations, each object pinning a page: a worker that went idle after everyone left would
/// keep them for ever (RSS after 10,000 streams left: 1.15-1.19x its baseline with a cache never
/// emptied). An idle worker still wakes for the hub's heartbeat, so what it cached is given back
/// then (docs/BENCHMARKS.md, "What moved the numbers").
fn flush_thread_cache_when_idle() {
    use std::{cell::Cell, time::Instant};
    thread_local! {
        static FLUSHED: Cell<Option<Instant>> = const { Cell::new(None) };
    }
    FLUSHED.with(|flushed| {
        if flushed
            .get()
            .is_some_and(|at| at.elapsed() < Duration::from_secs(1))
        {
            return;
        }
        flushed.set(Some(Instant::now()));
        // Turning the cache off empties it; it is made again on the next allocation.
        if let Err(error) = set_thread_cache(false).and_then(|()| set_thread_cache(true)) {
            eprintln!("bench serve: {error}");
        }
    });
}

/// Turns jemalloc's per-thread cache on or off for the calling thread.
fn set_thread_cache(on: bool) -> Result<(), String> {
    #[cfg(feature = "jemalloc")]
    {
        use tikv_jemalloc_ctl::{Access, AsName};
        b"thread.tcache.enabled\0"
            .name()
            .write(on)
            .map_err(|e| format!("jemalloc thread.tcache.enabled: {e}"))?;
    }
    #[cfg(not(feature = "jemalloc"))]
    let _ = on;
    Ok(())
}

/// Seconds against an in-process server, over both transports and both kinds of topic: proves
/// the harness works end to end and asserts that nothing was lost. Never asserts a speed.
async fn smoke() -> Result<(), String> {
    let url = serve_in_process(notif::Config::default(), None)?;
    for (target, topic, streams, keys) in [
        (Target::NotifWs, "group", 60, 3),
        (Target::NotifSse, "group", 20, 1),
        (Target::NotifWs, "each", 30, 2),
    ] {
        let report = run_fanout(Fanout {
            url: url.clone(),
            publish_url: url.clone(),
            target,
            streams,
            keys,
            topic,
            rates: vec![100.0, 200.0],
            seconds: 1.0,
            settle: Duration::from_secs(10),
            pid: None,
        })
        .await?;
        println!("{report}");
        let delivered: u64 = report.steps.iter().map(|s| s.deliveries).sum();
        if report.confirmed != streams || report.lost() != 0 || report.steps.len() != 2 || delivered == 0 {
            return Err(format!(
                "smoke run ({target:?}, {topic}): {} of {streams} listens confirmed, {} lost or out of order",
                report.confirmed,
                report.lost()
            ));
        }
    }
    // Two nodes over an in-process backplane: listens sent to the node without the tabs, naming
    // theirs, are carried there (what `bench cross-node-listen` times over Redis).
    let bus = notif::backplane::MemoryBackplane::new();
    let (a, b) = (
        serve_in_process(notif::Config::default(), Some(bus.node()))?,
        serve_in_process(notif::Config::default(), Some(bus.node()))?,
    );
    let report = listen_hop::run_listen_hop(listen_hop::ListenHop {
        url: a,
        other_url: b,
        tabs: 10,
        calls: 20,
    })
    .await?;
    print!("{report}");
    if !report.contains("grew by 20 (") {
        return Err("smoke run (two nodes): forwarded listens not counted as forwarded".into());
    }
    // Presence: every join between 20 tabs of their own identities arrives, and leaves do
    // (closed tabs leave at once: no resume window).
    let config = {
        let mut config = notif::Config::default();
        config.resume_window = Duration::ZERO;
        config
    };
    let report = presence::run_presence(presence::PresenceRun {
        url: serve_in_process(config, None)?,
        tabs: 20,
        identities: 20,
        topic: "lobby",
        parallel: 4,
        leaving: 1,
        quiet: Duration::from_secs(2),
        pid: None,
    })
    .await?;
    print!("{report}");
    // A tab closing may leave a `leave` unread in its socket: the leaves are not all counted.
    if report.joins != (190, 190) || report.leaves.0 == 0 || report.leaves.0 > report.leaves.1 {
        return Err(format!(
            "smoke run (presence): join frames {:?}, leave frames {:?} (received, expected)",
            report.joins, report.leaves
        ));
    }
    let floor = Floor {
        streams: 20,
        rounds: 2,
        reader_cpu: None,
    };
    println!("{}", run_floor(floor)?);
    Ok(())
}

/// `bench serve`'s routes on a port of their own, on a thread of their own; returns the URL.
fn serve_in_process(
    config: notif::Config,
    backplane: Option<std::sync::Arc<dyn notif::backplane::Backplane>>,
) -> Result<String, String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let url = format!("http://{}", listener.local_addr().map_err(|e| e.to_string())?);
    listener.set_nonblocking(true).map_err(|e| e.to_string())?;
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Runtime::new().expect("server runtime");
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            let router = serve::router(config, backplane);
            notif::serve(listener, router).await
        })
    });
    Ok(url)
}

#[cfg(all(test, feature = "jemalloc"))]
mod tests {
    use tikv_jemalloc_ctl::{Access, AsName};

    fn thread_cache_enabled() -> bool {
        b"thread.tcache.enabled\0".name().read().unwrap()
    }

    #[test]
    fn the_main_thread_runs_without_jemallocs_thread_cache() {
        super::set_thread_cache(false).unwrap();
        assert!(!thread_cache_enabled());
    }

    #[test]
    fn a_worker_going_idle_empties_its_thread_cache_and_keeps_using_one() {
        assert!(thread_cache_enabled());
        super::flush_thread_cache_when_idle();
        assert!(thread_cache_enabled(), "turned back on after the flush");
    }
}

//! The fan-out scenario: N streams listening on one room, a publisher posting at a fixed rate.
use std::{
    fmt,
    sync::Arc,
    time::{Duration, Instant},
};

use futures::{stream, StreamExt};
use hdrhistogram::Histogram;

/// What to run.
pub struct Fanout {
    pub url: String,
    pub streams: usize,
    pub messages: u64,
    /// Messages per second.
    pub rate: f64,
    /// The server's pid, to read its memory and CPU from /proc.
    pub pid: Option<u32>,
    /// How long to wait for the last deliveries after the last post.
    pub settle: Duration,
}

impl Fanout {
    pub fn from_args(args: &[String]) -> Result<Self, String> {
        let mut fanout = Fanout {
            url: String::new(),
            streams: 1000,
            messages: 1000,
            rate: 100.0,
            pid: None,
            settle: Duration::from_secs(10),
        };
        let mut args = args.iter();
        while let Some(flag) = args.next() {
            let value = args.next().ok_or(format!("{flag} needs a value"))?;
            let bad = |_| format!("{flag} {value}: not a number");
            match flag.as_str() {
                "--url" => fanout.url = value.trim_end_matches('/').to_owned(),
                "--streams" => fanout.streams = value.parse().map_err(bad)?,
                "--messages" => fanout.messages = value.parse().map_err(bad)?,
                "--rate" => {
                    fanout.rate = value
                        .parse()
                        .map_err(|_| format!("{flag} {value}: not a number"))?
                }
                "--pid" => fanout.pid = Some(value.parse().map_err(bad)?),
                other => return Err(format!("unknown flag {other}")),
            }
        }
        if fanout.url.is_empty() {
            return Err("--url is required (the demo server, e.g. http://127.0.0.1:3000)".into());
        }
        Ok(fanout)
    }
}

/// What happened.
pub struct Report {
    pub streams: usize,
    pub messages: u64,
    pub deliveries: u64,
    pub lost: u64,
    pub duplicated: u64,
    pub reordered: u64,
    pub listens_confirmed: usize,
    pub elapsed: Duration,
    pub latency: Histogram<u64>,
    pub server: Option<(ProcStat, ProcStat)>,
    /// The server before any stream opened.
    pub baseline: Option<ProcStat>,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let us = |q: f64| self.latency.value_at_quantile(q) as f64 / 1000.0;
        writeln!(
            f,
            "streams {} (listens confirmed {}), messages {}",
            self.streams, self.listens_confirmed, self.messages
        )?;
        writeln!(
            f,
            "deliveries {} in {:.2} s = {:.0}/s; lost {}, duplicated {}, out of order {}",
            self.deliveries,
            self.elapsed.as_secs_f64(),
            self.deliveries as f64 / self.elapsed.as_secs_f64(),
            self.lost,
            self.duplicated,
            self.reordered
        )?;
        writeln!(
            f,
            "latency ms from scheduled send: p50 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}",
            us(0.5) / 1000.0,
            us(0.99) / 1000.0,
            us(0.999) / 1000.0,
            self.latency.max() as f64 / 1e6
        )?;
        if let (Some(baseline), Some((with_streams, _))) = (&self.baseline, &self.server) {
            writeln!(
                f,
                "server idle: RSS {} KiB before streams, {} KiB with them = {:.1} KiB per stream",
                baseline.rss_kib,
                with_streams.rss_kib,
                (with_streams.rss_kib as f64 - baseline.rss_kib as f64) / self.streams.max(1) as f64
            )?;
        }
        if let Some((before, after)) = &self.server {
            let cpu = after.cpu_seconds - before.cpu_seconds;
            writeln!(
                f,
                "server: RSS {} KiB -> {} KiB; CPU {:.2} s = {:.2} us per delivery",
                before.rss_kib,
                after.rss_kib,
                cpu,
                cpu * 1e6 / self.deliveries.max(1) as f64
            )?;
        }
        Ok(())
    }
}

/// A process's resident memory and CPU time, from /proc.
pub struct ProcStat {
    pub rss_kib: u64,
    pub cpu_seconds: f64,
}

pub fn proc_stat(pid: u32) -> Option<ProcStat> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces): utime is the 12th, stime the 13th.
    let fields: Vec<&str> = stat[stat.rfind(')')? + 2..].split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ProcStat {
        rss_kib,
        cpu_seconds: ticks / 100.0,
    })
}

async fn sign_in(url: &str, name: &str) -> Result<reqwest::Client, String> {
    let http = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .map_err(|e| e.to_string())?;
    let response = http
        .post(format!("{url}/api/sign_in"))
        .form(&[("name", name)])
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if !response.status().is_success() {
        return Err(format!("sign in as {name}: {}", response.status()));
    }
    Ok(http)
}

/// One stream's view: each message number seen, and latencies.
struct Seen {
    received: Vec<u32>,
    deliveries: u64,
    reordered: u64,
    latency: Histogram<u64>,
}

/// Opens a stream as `http`'s user, listens on room 1, and records messages until it has
/// `messages` or `deadline` passes.
async fn run_stream(
    url: String,
    http: reqwest::Client,
    messages: u64,
    base: Instant,
    ready: tokio::sync::mpsc::Sender<bool>,
    deadline: Arc<tokio::sync::Notify>,
) -> Result<Seen, String> {
    let response = http
        .get(format!("{url}{}", notif::STREAM_PATH))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let mut body = response.bytes_stream();
    let mut buffer = String::new();
    let mut seen = Seen {
        received: vec![0; messages as usize],
        deliveries: 0,
        reordered: 0,
        latency: Histogram::new_with_bounds(1, 600_000_000_000, 3).map_err(|e| e.to_string())?,
    };
    let mut last: Option<u64> = None;
    let mut listening = false;
    let stop = deadline.notified();
    tokio::pin!(stop);
    loop {
        let chunk = tokio::select! {
            chunk = body.next() => chunk,
            _ = &mut stop => break,
        };
        let Some(Ok(chunk)) = chunk else { break };
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find("\n\n") {
            let frame: String = buffer.drain(..end + 2).collect();
            let data = frame
                .lines()
                .find_map(|l| l.strip_prefix("data:"))
                .map(str::trim_start);
            if frame.contains("event: hello") && !listening {
                let hello: notif::Hello =
                    serde_json::from_str(data.unwrap_or("{}")).map_err(|e| e.to_string())?;
                let listen = http
                    .post(format!("{url}/api/listen_room"))
                    .header(notif::CLIENT_HEADER, &hello.client)
                    .form(&[("room", "1")])
                    .send()
                    .await
                    .map_err(|e| e.to_string())?;
                listening = true;
                let _ = ready.send(listen.status().is_success()).await;
            } else if frame.contains("event: notif") {
                let now = base.elapsed().as_nanos() as u64;
                let value: serde_json::Value =
                    serde_json::from_str(data.unwrap_or("null")).map_err(|e| e.to_string())?;
                let text = value["message"]["message"]["body"].as_str().unwrap_or_default();
                let mut parts = text.split(':').skip(1);
                let (Some(Ok(number)), Some(Ok(scheduled))) = (
                    parts.next().map(str::parse::<u64>),
                    parts.next().map(str::parse::<u64>),
                ) else {
                    continue; // not a bench message
                };
                if number >= messages {
                    continue;
                }
                seen.deliveries += 1;
                seen.received[number as usize] += 1;
                if last.is_some_and(|l| number <= l) {
                    seen.reordered += 1;
                }
                last = Some(number);
                let _ = seen.latency.record(now.saturating_sub(scheduled).max(1));
                if seen.deliveries >= messages {
                    return Ok(seen);
                }
            }
        }
    }
    Ok(seen)
}

pub async fn run_fanout(run: Fanout) -> Result<Report, String> {
    let base = Instant::now();
    let baseline = run.pid.and_then(proc_stat);
    let users = run.streams.div_ceil(10).max(1);
    let mut clients = Vec::new();
    let tag = std::process::id();
    for user in 0..users {
        clients.push(sign_in(&run.url, &format!("bench{tag}u{user}")).await?);
    }
    let publisher = sign_in(&run.url, &format!("bench{tag}pub")).await?;
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel(run.streams.max(1));
    let deadline = Arc::new(tokio::sync::Notify::new());
    let mut tasks = Vec::new();
    for i in 0..run.streams {
        let task = run_stream(
            run.url.clone(),
            clients[i / 10].clone(),
            run.messages,
            base,
            ready_tx.clone(),
            deadline.clone(),
        );
        tasks.push(tokio::spawn(task));
    }
    drop(ready_tx);
    let mut listens_confirmed = 0;
    for _ in 0..run.streams {
        match tokio::time::timeout(Duration::from_secs(60), ready_rx.recv()).await {
            Ok(Some(true)) => listens_confirmed += 1,
            Ok(Some(false)) => return Err("a listen was refused".into()),
            _ => return Err("streams did not all open and listen within 60 s".into()),
        }
    }
    let before = run.pid.and_then(proc_stat);
    let start = Instant::now();
    let interval = Duration::from_secs_f64(1.0 / run.rate);
    // Posts go one after another: notifications of one node keep their order.
    for number in 0..run.messages {
        let scheduled = start + interval.mul_f64(number as f64);
        tokio::time::sleep_until(scheduled.into()).await;
        let stamp = (scheduled - base).as_nanos() as u64;
        let response = publisher
            .post(format!("{}/api/post", run.url))
            .form(&[("room", "1"), ("body", &format!("b:{number}:{stamp}"))])
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !response.status().is_success() {
            return Err(format!("post {number}: {}", response.status()));
        }
    }
    let settle = {
        let deadline = deadline.clone();
        let settle = run.settle;
        tokio::spawn(async move {
            tokio::time::sleep(settle).await;
            deadline.notify_waiters();
        })
    };
    let results: Vec<Result<Seen, String>> = stream::iter(tasks)
        .then(|t| async { t.await.map_err(|e| e.to_string())? })
        .collect()
        .await;
    settle.abort();
    let elapsed = start.elapsed();
    let after = run.pid.and_then(proc_stat);
    let mut latency = Histogram::<u64>::new_with_bounds(1, 600_000_000_000, 3).map_err(|e| e.to_string())?;
    let (mut deliveries, mut lost, mut duplicated, mut reordered) = (0, 0, 0, 0);
    for seen in results {
        let seen = seen?;
        deliveries += seen.deliveries;
        reordered += seen.reordered;
        for count in seen.received {
            match count {
                0 => lost += 1,
                1 => {}
                n => duplicated += u64::from(n - 1),
            }
        }
        latency.add(&seen.latency).map_err(|e| e.to_string())?;
    }
    Ok(Report {
        streams: run.streams,
        messages: run.messages,
        deliveries,
        lost,
        duplicated,
        reordered,
        listens_confirmed,
        elapsed,
        latency,
        server: before.zip(after),
        baseline,
    })
}

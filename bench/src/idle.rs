//! Idle streams and cleanup: many tabs each listening on two keys (its own, and a group of
//! ten) doing nothing; then every tab leaves. Memory per stream, then memory and counters at
//! chosen times after everyone left.
//!
//! One process may hold at most ~19,900 connections here, so the streams are spread over
//! `--processes` children (`bench hold`), each opening its share and holding it until told.
use std::{process::Stdio, time::Duration};

use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    process::Command,
};

use crate::{
    client::{open_each, Listen, NotOpen, Target},
    procstat::{live_by_size, metrics, metrics_text, per_stream_by_size, proc_stat, summary, ProcStat},
};

/// What to run.
pub struct Idle {
    pub url: String,
    pub target: Target,
    pub streams: usize,
    pub processes: usize,
    pub pid: Option<u32>,
    /// Seconds after everyone left at which to read memory and counters.
    pub after: Vec<u64>,
    /// Streams that open, listen and leave before the baseline is read, so that it counts the
    /// code and stacks any first client brings into memory (0: a baseline never served).
    pub warm: usize,
}

/// Wait after the warm-up: past notif's 30 s resume window and its sweep.
const WARM_SETTLE: Duration = Duration::from_secs(40);

/// Stream `i`'s user and listens: its own key and group `i / 10`.
fn plan(first: usize, count: usize) -> Vec<(String, Vec<Listen>)> {
    (first..first + count)
        .map(|i| {
            let user = format!("u{i}");
            let listens = vec![
                Listen {
                    topic: "user",
                    key: user.clone(),
                },
                Listen {
                    topic: "group",
                    key: format!("g{}", i / 10),
                },
            ];
            (user, listens)
        })
        .collect()
}

/// `bench hold`: opens `count` streams from `first`, prints `ready <held> <unconfirmed>`, closes
/// them all when its stdin gets a line, prints `closed`. A stream whose listen the server never
/// confirms is counted and closed (a peer measured here loses some sent right after connecting);
/// any other failure fails the run.
pub async fn hold(url: String, target: Target, first: usize, count: usize) -> Result<(), String> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()
        .map_err(|e| e.to_string())?;
    let mut conns = Vec::new();
    let mut unconfirmed = 0;
    for opened in open_each(target, &http, &url, plan(first, count), 64).await {
        match opened {
            Ok(conn) => conns.push(conn),
            Err(NotOpen::Unconfirmed(e)) => {
                eprintln!("bench hold: {e}");
                unconfirmed += 1;
            }
            Err(NotOpen::Failed(e)) => return Err(e),
        }
    }
    let held = conns.len();
    // Keep reading so pings are answered and closes noticed.
    let (stop, _) = tokio::sync::broadcast::channel::<()>(1);
    let tasks: Vec<_> = conns
        .into_iter()
        .map(|mut conn| {
            let mut stop = stop.subscribe();
            tokio::task::spawn_local(async move {
                loop {
                    tokio::select! {
                        message = conn.next_message() => if message.is_none() { return },
                        _ = stop.recv() => break,
                    }
                }
                conn.close().await;
            })
        })
        .collect();
    println!("ready {held} {unconfirmed}");
    let mut line = String::new();
    let _ = BufReader::new(tokio::io::stdin()).read_line(&mut line).await;
    let _ = stop.send(());
    for task in tasks {
        let _ = task.await;
    }
    println!("closed");
    Ok(())
}

fn kib_line(label: &str, now: Option<ProcStat>, baseline: Option<ProcStat>, extra: &str) -> String {
    match (now, baseline) {
        (Some(now), Some(base)) => format!(
            "{label}: RSS {} KiB ({:.2}x baseline), anonymous {} KiB ({:.2}x baseline) {extra}",
            now.rss_kib,
            now.rss_kib as f64 / base.rss_kib.max(1) as f64,
            now.anon_kib,
            now.anon_kib as f64 / base.anon_kib.max(1) as f64
        ),
        _ => format!("{label}: {extra}"),
    }
}

/// A `bench hold` child's `ready <held> <unconfirmed>` line.
fn ready_counts(line: &str) -> Option<(usize, usize)> {
    let (held, unconfirmed) = line.strip_prefix("ready ")?.split_once(' ')?;
    Some((held.parse().ok()?, unconfirmed.parse().ok()?))
}

/// The `bench hold` children holding one batch of streams.
struct Holders {
    children: Vec<(
        tokio::process::Child,
        tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    )>,
    /// Streams open with every listen confirmed.
    held: usize,
    /// Streams closed because the server never confirmed a listen.
    unconfirmed: usize,
}

impl Holders {
    /// Opens streams `first..first + streams` over `processes` children; returns once each is
    /// listening or given up on.
    async fn open(run: &Idle, first: usize, streams: usize, processes: usize) -> Result<Holders, String> {
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let target = match run.target {
            Target::NotifWs => "ws",
            Target::NotifSse => "sse",
            Target::SocketIo => "socketio",
        };
        let per = streams.div_ceil(processes.max(1));
        let mut children = Vec::new();
        for p in 0..processes.max(1) {
            let count = per.min(streams.saturating_sub(p * per));
            if count == 0 {
                break;
            }
            let mut child = Command::new(&exe)
                .args(["hold", "--url", &run.url, "--target", target])
                .args([
                    "--first",
                    &(first + p * per).to_string(),
                    "--streams",
                    &count.to_string(),
                ])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .kill_on_drop(true)
                .spawn()
                .map_err(|e| e.to_string())?;
            let lines = BufReader::new(child.stdout.take().ok_or("no stdout")?).lines();
            children.push((child, lines));
        }
        let (mut held, mut unconfirmed) = (0, 0);
        for (_, lines) in &mut children {
            let line = lines
                .next_line()
                .await
                .map_err(|e| e.to_string())?
                .unwrap_or_default();
            let Some((h, u)) = ready_counts(&line) else {
                return Err(format!(
                    "a generator process failed to open its streams ({line:?})"
                ));
            };
            held += h;
            unconfirmed += u;
        }
        Ok(Holders {
            children,
            held,
            unconfirmed,
        })
    }

    /// Tells every child to close its streams; returns once they have.
    async fn close(mut self) {
        for (child, lines) in &mut self.children {
            if let Some(stdin) = child.stdin.as_mut() {
                let _ = stdin.write_all(b"close\n").await;
            }
            let _ = lines.next_line().await;
        }
        for (mut child, _) in self.children {
            let _ = child.wait().await;
        }
    }
}

pub async fn run_idle(run: Idle) -> Result<(), String> {
    let http = reqwest::Client::new();
    if run.warm > 0 {
        // Users after the measured ones, so nothing of theirs is reused.
        Holders::open(&run, run.streams, run.warm, 1).await?.close().await;
        println!(
            "warm-up: {} streams opened, listened and left; baseline taken {} s later",
            run.warm,
            WARM_SETTLE.as_secs()
        );
        tokio::time::sleep(WARM_SETTLE).await;
    }
    let baseline = run.pid.and_then(proc_stat);
    let text = metrics_text(&http, &run.url).await;
    let live_before = live_by_size(&text);
    println!("{}", kib_line("baseline", baseline, baseline, &summary(&text)));
    let opened = std::time::Instant::now();
    let holders = Holders::open(&run, 0, run.streams, run.processes).await?;
    println!(
        "{} streams open, 2 confirmed listens each, in {:.1} s{}",
        holders.held,
        opened.elapsed().as_secs_f64(),
        match holders.unconfirmed {
            0 => String::new(),
            n => format!("; {n} more never had a listen confirmed within 30 s (closed, not counted)"),
        }
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let streams = holders.held.max(1) as f64;
    let held = run.pid.and_then(proc_stat);
    let text = metrics_text(&http, &run.url).await;
    let per_stream = held
        .zip(baseline)
        .map(|(h, b)| {
            let per = |now: u64, base: u64| (now as f64 - base as f64) / streams;
            format!(
                "= {:.2} KiB per stream ({:.2} KiB anonymous)",
                per(h.rss_kib, b.rss_kib),
                per(h.anon_kib, b.anon_kib)
            )
        })
        .unwrap_or_default();
    println!(
        "{}",
        kib_line(
            "held",
            held,
            baseline,
            &format!("{per_stream} {}", summary(&text))
        )
    );
    if let Some(line) = per_stream_by_size(&live_before, &live_by_size(&text), streams) {
        println!("{line}");
    }
    let left = std::time::Instant::now();
    holders.close().await;
    for at in &run.after {
        tokio::time::sleep_until((left + Duration::from_secs(*at)).into()).await;
        let now = run.pid.and_then(proc_stat);
        println!(
            "{}",
            kib_line(
                &format!("+{at} s after all left"),
                now,
                baseline,
                &metrics(&http, &run.url).await
            )
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_holders_ready_line_says_how_many_it_holds_and_how_many_it_gave_up_on() {
        assert_eq!(ready_counts("ready 4999 1"), Some((4999, 1)));
        assert_eq!(ready_counts("ready 5000"), None, "an old child's line");
        assert_eq!(ready_counts(""), None, "a child that died");
    }
}

//! The machine's floor for "one write per listener": no notif, no HTTP, no WebSocket. This
//! process writes one frame-sized message to each of N loopback TCP sockets per round, as fast as
//! `write()` goes; a reader process of the generator's kind (one task per socket on a
//! current-thread tokio runtime), pinned like the generator, times each arrival from the moment
//! the round began. Whatever a server does per delivery comes on top of these figures, so they
//! bound what the latency targets can reach on this machine.
use std::{
    cell::RefCell,
    io::{BufRead, BufReader, Write},
    process::{Command, Stdio},
    rc::Rc,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use hdrhistogram::Histogram;
use tokio::io::AsyncReadExt;

use crate::procstat::{proc_stat, ProcStat};

/// About a notification frame's size.
const MESSAGE: usize = 120;
/// Pause between rounds: every round starts with idle sockets, as at light load.
const GAP: Duration = Duration::from_millis(100);

pub struct Floor {
    pub streams: usize,
    pub rounds: usize,
    /// The core to pin the reader to (with `taskset`), as `scripts/bench` pins the generator.
    pub reader_cpu: Option<u32>,
}

/// Microseconds since the epoch: both processes read the same clock.
fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// This process's CPU time (user + system, 10 ms ticks) since `start`, per message: how busy
/// each side's core was during the rounds. The writer's `write()`s include the loopback receive
/// path; the reader's reads include sending the ACKs.
struct Cpu(Option<ProcStat>);

impl Cpu {
    fn start() -> Self {
        Cpu(proc_stat(std::process::id()))
    }

    fn per(&self, messages: usize) -> String {
        match (self.0, proc_stat(std::process::id())) {
            // /proc counts in 10 ms ticks: a short run may not reach one.
            (Some(before), Some(now)) if now.cpu_seconds <= before.cpu_seconds => {
                format!(
                    "under {:.2} µs (less than one 10 ms tick)",
                    1e4 / messages.max(1) as f64
                )
            }
            (Some(before), Some(now)) if messages > 0 => {
                let per = |seconds: f64| seconds * 1e6 / messages as f64;
                format!(
                    "{:.2} µs (user space {:.2})",
                    per(now.cpu_seconds - before.cpu_seconds),
                    per(now.user_seconds - before.user_seconds)
                )
            }
            _ => "unknown (no /proc)".into(),
        }
    }
}

/// The writing side: starts the reader, then writes the rounds. Returns the report.
pub fn run_floor(floor: Floor) -> Result<String, String> {
    let Floor {
        streams,
        rounds,
        reader_cpu,
    } = floor;
    let err = |e: std::io::Error| e.to_string();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(err)?;
    let addr = listener.local_addr().map_err(err)?.to_string();
    let exe = std::env::current_exe().map_err(err)?;
    let exe = exe.to_string_lossy().into_owned();
    let mut args = vec![
        exe,
        "floor-read".into(),
        addr,
        streams.to_string(),
        rounds.to_string(),
    ];
    if let Some(cpu) = reader_cpu {
        args.splice(0..0, ["taskset".into(), "-c".into(), cpu.to_string()]);
    }
    let mut reader = Command::new(&args[0])
        .args(&args[1..])
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{}: {e}", args[0]))?;
    let mut writers = Vec::with_capacity(streams);
    for _ in 0..streams {
        let (writer, _) = listener.accept().map_err(err)?;
        // As `notif::serve` sets it: each write leaves at once.
        writer.set_nodelay(true).map_err(err)?;
        writers.push(writer);
    }
    let mut message = [b'.'; MESSAGE];
    let mut took = Vec::with_capacity(rounds);
    let cpu = Cpu::start();
    for _ in 0..rounds {
        std::thread::sleep(GAP);
        let start = Instant::now();
        message[..8].copy_from_slice(&now_us().to_le_bytes());
        for socket in &mut writers {
            socket.write_all(&message).map_err(err)?;
        }
        took.push(start.elapsed());
    }
    let write_cpu = cpu.per(streams * rounds);
    let mut arrivals = String::new();
    let stdout = reader.stdout.take().ok_or("the reader has no output")?;
    for line in BufReader::new(stdout).lines() {
        arrivals.push_str(&line.map_err(err)?);
        arrivals.push('\n');
    }
    let status = reader.wait().map_err(err)?;
    if !status.success() || arrivals.is_empty() {
        return Err(format!("the reader failed ({status})"));
    }
    let arrivals = arrivals.trim_end();
    took.sort();
    let round_ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let median = took[took.len() / 2];
    Ok(format!(
        "floor: {streams} loopback sockets, {rounds} rounds of one {MESSAGE}-byte write each\n\
         writing a round: {:.2} / {:.2} / {:.2} ms (min / median / max) = {:.2} µs per write\n\
         writer's CPU per write: {write_cpu}\n\
         {arrivals}",
        round_ms(took[0]),
        round_ms(median),
        round_ms(took[took.len() - 1]),
        median.as_secs_f64() * 1e6 / streams as f64,
    ))
}

/// The reading side (`bench floor-read ADDR STREAMS ROUNDS`): one task per socket, like the
/// generator's streams. Returns the arrival line.
pub async fn read_floor(addr: &str, streams: usize, rounds: usize) -> Result<String, String> {
    let latency = Rc::new(RefCell::new(
        Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).map_err(|e| e.to_string())?,
    ));
    let mut sockets = Vec::with_capacity(streams);
    for _ in 0..streams {
        sockets.push(
            tokio::net::TcpStream::connect(addr)
                .await
                .map_err(|e| e.to_string())?,
        );
    }
    let cpu = Cpu::start();
    let tasks: Vec<_> = sockets
        .into_iter()
        .map(|mut socket| {
            let latency = latency.clone();
            tokio::task::spawn_local(async move {
                let mut message = [0u8; MESSAGE];
                for _ in 0..rounds {
                    socket.read_exact(&mut message).await.map_err(|e| e.to_string())?;
                    let mut start = [0u8; 8];
                    start.copy_from_slice(&message[..8]);
                    let us = now_us().saturating_sub(u64::from_le_bytes(start));
                    latency
                        .borrow_mut()
                        .record(us.max(1))
                        .map_err(|e| e.to_string())?;
                }
                Ok::<(), String>(())
            })
        })
        .collect();
    for task in tasks {
        task.await.map_err(|e| e.to_string())??;
    }
    let read_cpu = cpu.per(streams * rounds);
    let latency = latency.borrow();
    let ms = |us: u64| us as f64 / 1000.0;
    Ok(format!(
        "arrival after the round began: p50 {:.2} / p99 {:.2} / max {:.2} ms\n\
         reader's CPU per message: {read_cpu}",
        ms(latency.value_at_quantile(0.5)),
        ms(latency.value_at_quantile(0.99)),
        ms(latency.max()),
    ))
}

//! The machine's floor for "one write per listener": no notif, no HTTP, no WebSocket. One thread
//! writes one frame-sized message to each of N loopback TCP sockets per round, as fast as
//! `write()` goes; the generator's kind of reader (one task per socket on a current-thread tokio
//! runtime) times each arrival from the moment the round began. Whatever a server does per
//! delivery comes on top of these figures, so they bound what the latency targets can reach here.
use std::{
    cell::RefCell,
    io::Write,
    rc::Rc,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use hdrhistogram::Histogram;
use tokio::io::AsyncReadExt;

/// About a notification frame's size.
const MESSAGE: usize = 120;
/// Pause between rounds: every round starts with idle sockets, as at light load.
const GAP: Duration = Duration::from_millis(100);

pub struct Floor {
    pub streams: usize,
    pub rounds: usize,
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

pub async fn run_floor(floor: Floor) -> Result<String, String> {
    let Floor { streams, rounds } = floor;
    let err = |e: std::io::Error| e.to_string();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(err)?;
    let addr = listener.local_addr().map_err(err)?;
    let (mut readers, mut writers) = (Vec::with_capacity(streams), Vec::with_capacity(streams));
    for _ in 0..streams {
        readers.push(tokio::net::TcpStream::connect(addr).await.map_err(err)?);
        // The connection is already in the accept queue: this does not block.
        writers.push(listener.accept().map_err(err)?.0);
    }
    let starts: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let writer = {
        let starts = starts.clone();
        std::thread::spawn(move || -> Result<Vec<Duration>, String> {
            let mut message = [b'.'; MESSAGE];
            let mut took = Vec::with_capacity(rounds);
            for round in 0..rounds {
                std::thread::sleep(GAP);
                message[..4].copy_from_slice(&(round as u32).to_le_bytes());
                let start = Instant::now();
                starts.lock().map_err(|e| e.to_string())?.push(start);
                for socket in &mut writers {
                    socket.write_all(&message).map_err(|e| e.to_string())?;
                }
                took.push(start.elapsed());
            }
            Ok(took)
        })
    };
    let latency = Rc::new(RefCell::new(
        Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).map_err(|e| e.to_string())?,
    ));
    let tasks: Vec<_> = readers
        .into_iter()
        .map(|mut socket| {
            let (latency, starts) = (latency.clone(), starts.clone());
            tokio::task::spawn_local(async move {
                let mut message = [0u8; MESSAGE];
                for _ in 0..rounds {
                    socket.read_exact(&mut message).await.map_err(|e| e.to_string())?;
                    let arrived = Instant::now();
                    let round = u32::from_le_bytes([message[0], message[1], message[2], message[3]]) as usize;
                    let start = *starts
                        .lock()
                        .map_err(|e| e.to_string())?
                        .get(round)
                        .ok_or("a message from a round not begun")?;
                    let us = arrived.duration_since(start).as_micros() as u64;
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
    let mut took = writer.join().map_err(|_| "the writer thread panicked")??;
    took.sort();
    let round_ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let per_write = took[took.len() / 2].as_secs_f64() * 1e6 / streams as f64;
    let latency = latency.borrow();
    Ok(format!(
        "floor: {streams} loopback sockets, {rounds} rounds of one {MESSAGE}-byte write each\n\
         writing a round: {:.2} / {:.2} / {:.2} ms (min / median / max) = {per_write:.2} µs per write\n\
         arrival after the round began: p50 {:.2} / p99 {:.2} / max {:.2} ms",
        round_ms(took[0]),
        round_ms(took[took.len() / 2]),
        round_ms(took[took.len() - 1]),
        ms(latency.value_at_quantile(0.5)),
        ms(latency.value_at_quantile(0.99)),
        ms(latency.max()),
    ))
}

//! `bench delay`: a TCP relay that holds every chunk for a fixed time in each direction, to put
//! Redis "across a network" on one machine (no `tc netem` here). Used by `scripts/bench
//! cross-node-far`: what a node gets from Redis when each round trip costs milliseconds.
use std::time::Duration;

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{tcp, TcpListener, TcpStream},
    sync::mpsc,
    time::Instant,
};

/// Relays connections on `listen` to `to`, each chunk delivered `delay` after it was read.
pub async fn relay(listen: &str, to: String, delay: Duration) -> Result<(), String> {
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|e| format!("{listen}: {e}"))?;
    loop {
        let (inbound, _) = listener.accept().await.map_err(|e| e.to_string())?;
        let to = to.clone();
        tokio::spawn(async move {
            let Ok(outbound) = TcpStream::connect(&to).await else {
                return;
            };
            let _ = (inbound.set_nodelay(true), outbound.set_nodelay(true));
            let (in_read, in_write) = inbound.into_split();
            let (out_read, out_write) = outbound.into_split();
            tokio::join!(
                one_way(in_read, out_write, delay),
                one_way(out_read, in_write, delay)
            );
        });
    }
}

/// Reads chunks as they come and writes each once its time is due; order is kept.
async fn one_way(mut from: tcp::OwnedReadHalf, mut to: tcp::OwnedWriteHalf, delay: Duration) {
    let (chunks, mut due) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let reader = async move {
        let mut buffer = vec![0; 64 * 1024];
        while let Ok(n @ 1..) = from.read(&mut buffer).await {
            if chunks
                .send((Instant::now() + delay, buffer[..n].to_vec()))
                .is_err()
            {
                break;
            }
        }
    };
    let writer = async move {
        while let Some((at, chunk)) = due.recv().await {
            tokio::time::sleep_until(at).await;
            if to.write_all(&chunk).await.is_err() {
                break;
            }
        }
        let _ = to.shutdown().await;
    };
    tokio::join!(reader, writer);
}

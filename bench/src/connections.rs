//! `bench connections`: the server heap an idle keep-alive HTTP connection holds, under
//! `axum::serve` and under `notif::serve`. Every tab keeps one for its server-function calls
//! next to its stream, so this is per-tab memory as much as the stream's.
//!
//! In process, on one thread: for each server, open `count` connections that each send one
//! request (`GET /metrics`) and read its response, then read jemalloc's live heap (`allocated`)
//! and its resident pages. The first connection is opened before the baseline, so code and
//! allocator state that any first connection brings in are not counted. Each server is
//! measured in a process of its own (pages one freed would otherwise serve the other).
use std::{future::IntoFuture, time::Duration};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

/// `axum::serve` or `notif::serve`.
#[derive(Debug, Clone, Copy)]
pub enum Server {
    Axum,
    Notif,
}

impl std::str::FromStr for Server {
    type Err = String;
    fn from_str(name: &str) -> Result<Self, String> {
        match name {
            "axum" => Ok(Server::Axum),
            "notif" => Ok(Server::Notif),
            other => Err(format!("--server {other}: expected axum or notif")),
        }
    }
}

/// Measures `server`, or each in a child process of its own.
pub async fn run_connections(count: usize, server: Option<Server>) -> Result<String, String> {
    if count == 0 {
        return Err("--count must be at least 1".into());
    }
    let Some(server) = server else {
        let mut report = format!("idle keep-alive HTTP connections, {count} per server, one request each:\n");
        for name in ["axum", "notif"] {
            let count = count.to_string();
            let child = tokio::process::Command::new(std::env::current_exe().map_err(|e| e.to_string())?)
                .args(["connections", "--count", &count, "--server", name])
                .output()
                .await
                .map_err(|e| e.to_string())?;
            if !child.status.success() {
                return Err(String::from_utf8_lossy(&child.stderr).into_owned());
            }
            report += &String::from_utf8_lossy(&child.stdout);
        }
        return Ok(report);
    };
    let (allocated, resident) = per_connection(server, count).await?;
    Ok(format!(
        "{:<13} {allocated:5.1} KiB allocated, {resident:5.1} KiB resident per connection\n",
        match server {
            Server::Axum => "axum::serve",
            Server::Notif => "notif::serve",
        }
    ))
}

async fn per_connection(server: Server, count: usize) -> Result<(f64, f64), String> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let router = crate::serve::router(notif::Config::default(), None);
    let serving = match server {
        Server::Axum => tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        }),
        Server::Notif => {
            let serve = notif::serve(listener, router).into_future();
            tokio::spawn(async move {
                let _ = serve.await;
            })
        }
    };
    let mut connections = vec![connect(addr).await?];
    let before = heap()?;
    for _ in 0..count {
        connections.push(connect(addr).await?);
    }
    // Let the server's tasks go idle after their responses.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = heap()?;
    drop(connections);
    serving.abort();
    let per = |a: usize, b: usize| (a as f64 - b as f64) / count as f64 / 1024.0;
    Ok((per(after.0, before.0), per(after.1, before.1)))
}

/// A connection that has sent one request and read its whole response.
async fn connect(addr: std::net::SocketAddr) -> Result<TcpStream, String> {
    let mut connection = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    connection
        .write_all(b"GET /metrics HTTP/1.1\r\nhost: bench\r\n\r\n")
        .await
        .map_err(|e| e.to_string())?;
    let mut response = Vec::new();
    let mut buffer = [0; 4096];
    let body_length = loop {
        let read = connection.read(&mut buffer).await.map_err(|e| e.to_string())?;
        if read == 0 {
            return Err("the server closed the connection before answering".into());
        }
        response.extend_from_slice(&buffer[..read]);
        if let Some(end) = response.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&response[..end]).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|line| line.strip_prefix("content-length:"))
                .and_then(|value| value.trim().parse::<usize>().ok())
                .ok_or("a response without content-length")?;
            break end + 4 + length;
        }
    };
    while response.len() < body_length {
        let read = connection.read(&mut buffer).await.map_err(|e| e.to_string())?;
        if read == 0 {
            return Err("the response ended early".into());
        }
        response.extend_from_slice(&buffer[..read]);
    }
    Ok(connection)
}

/// jemalloc's live heap and resident bytes.
#[cfg(feature = "jemalloc")]
fn heap() -> Result<(usize, usize), String> {
    use tikv_jemalloc_ctl::{epoch, stats};
    epoch::advance().map_err(|e| e.to_string())?;
    let allocated = stats::allocated::read().map_err(|e| e.to_string())?;
    let resident = stats::resident::read().map_err(|e| e.to_string())?;
    Ok((allocated, resident))
}

#[cfg(not(feature = "jemalloc"))]
fn heap() -> Result<(usize, usize), String> {
    Err("bench connections reads jemalloc's figures: build bench with its default feature".into())
}

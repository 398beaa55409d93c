//! A bare notif server for Autobahn|Testsuite's fuzzingclient cases (see docs/AUTOBAHN.md):
//!
//!   cargo run -p notif --features ssr --example autobahn -- [ADDR]     (default 127.0.0.1:9001)
//!
//! Every request is a tab with no identity. notif's first frame on every connection is its hello,
//! which no Autobahn case expects: in front of the server sits a proxy that drops that one frame
//! and passes everything else through byte for byte, closes included, and serves any path as
//! notif's WebSocket endpoint.
use std::{future::IntoFuture, time::Duration};

use notif::{Config, Hub};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:9001".into());
    let hub: Hub<Option<String>> = Hub::new(
        {
            let mut config = Config::default();
            config.resume_window = Duration::ZERO;
            config
        },
        |_: &http::request::Parts| async { None },
    );
    let server = TcpListener::bind("127.0.0.1:0").await?;
    let notif_addr = server.local_addr()?;
    tokio::spawn(notif::serve(server, hub.routes::<()>()).into_future());

    let proxy = TcpListener::bind(&addr).await?;
    eprintln!("notif at {notif_addr}, its WebSocket endpoint without the hello at ws://{addr}/");
    loop {
        let (client, _) = proxy.accept().await?;
        tokio::spawn(async move {
            if let Err(error) = pass(client, notif_addr).await {
                eprintln!("proxy: {error}");
            }
        });
    }
}

/// Passes one connection through to notif, minus the hello.
async fn pass(client: TcpStream, notif_addr: std::net::SocketAddr) -> std::io::Result<()> {
    let server = TcpStream::connect(notif_addr).await?;
    let (mut client_rx, mut client_tx) = client.into_split();
    let (mut server_rx, mut server_tx) = server.into_split();

    // The request's head, with its path made notif's endpoint.
    let head = read_head(&mut client_rx).await?;
    let head = String::from_utf8_lossy(&head).into_owned();
    let (line, rest) = head.split_once("\r\n").unwrap_or((&head, ""));
    let mut words = line.splitn(3, ' ');
    let (method, _path, version) = (words.next(), words.next(), words.next());
    let line = format!(
        "{} {} {}",
        method.unwrap_or("GET"),
        notif::wire::WS_PATH,
        version.unwrap_or("HTTP/1.1")
    );
    server_tx
        .write_all(format!("{line}\r\n{rest}").as_bytes())
        .await?;
    let upstream = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut client_rx, &mut server_tx).await;
        let _ = server_tx.shutdown().await;
    });

    // The answer's head, then the hello (a text frame of at most 64 KiB), dropped.
    let answer = read_head(&mut server_rx).await?;
    client_tx.write_all(&answer).await?;
    if answer.starts_with(b"HTTP/1.1 101") {
        let mut header = [0u8; 2];
        server_rx.read_exact(&mut header).await?;
        let len = match header[1] & 0x7F {
            126 => usize::from(server_rx.read_u16().await?),
            127 => usize::try_from(server_rx.read_u64().await?).unwrap_or(usize::MAX),
            short => usize::from(short),
        };
        let mut hello = vec![0u8; len];
        server_rx.read_exact(&mut hello).await?;
    }
    let _ = tokio::io::copy(&mut server_rx, &mut client_tx).await;
    let _ = client_tx.shutdown().await;
    let _ = upstream.await;
    Ok(())
}

/// An HTTP head, up to and with its blank line.
async fn read_head(stream: &mut (impl AsyncReadExt + Unpin)) -> std::io::Result<Vec<u8>> {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.push(stream.read_u8().await?);
    }
    Ok(head)
}

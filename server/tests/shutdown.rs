//! The real server process, stopped with SIGTERM as a deploy stops it: every open stream (SSE
//! and WebSocket) gets its `bye` (`shutdown`) before the process exits, and it exits cleanly.
use std::{
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use futures::StreamExt;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

/// A free port on loopback (the system's pick for port 0).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The demo server built for these tests, on `port`, with an in-memory database.
fn start_server(port: u16) -> Child {
    Command::new(env!("CARGO_BIN_EXE_server"))
        .env("LEPTOS_SITE_ADDR", format!("127.0.0.1:{port}"))
        .env("LEPTOS_OUTPUT_NAME", "notif-demo")
        .env("NOTIF_DB", ":memory:")
        .env("NOTIF_SHUTDOWN_MS", "8000")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("the server binary starts")
}

/// Signs in as `name`; the session cookie.
async fn sign_in(base: &str, name: &str) -> String {
    let http = reqwest::Client::new();
    let started = Instant::now();
    loop {
        match http
            .post(format!("{base}/api/sign_in"))
            .form(&[("name", name)])
            .send()
            .await
        {
            Ok(response) if response.status() == 200 => {
                let cookie = response.headers()["set-cookie"].to_str().unwrap();
                return cookie.split(';').next().unwrap().to_owned();
            }
            other if started.elapsed() > Duration::from_secs(20) => panic!("no server: {other:?}"),
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// A WebSocket stream over a raw socket, read up to its hello.
async fn websocket(port: u16, cookie: &str) -> TcpStream {
    let mut socket = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let request = format!(
        "GET /notif/ws HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\ncookie: {cookie}\r\nconnection: Upgrade\r\n\
         upgrade: websocket\r\nsec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    );
    socket.write_all(request.as_bytes()).await.unwrap();
    read_until(&mut socket, "\"recovered\"").await;
    socket
}

/// Reads `socket` until what it sent contains `wanted`; what it read.
async fn read_until(socket: &mut TcpStream, wanted: &str) -> String {
    let mut read = Vec::new();
    let mut chunk = [0; 4096];
    while !String::from_utf8_lossy(&read).contains(wanted) {
        let n = tokio::time::timeout(Duration::from_secs(10), socket.read(&mut chunk))
            .await
            .unwrap_or_else(|_| panic!("no {wanted:?} within 10 s: {}", String::from_utf8_lossy(&read)))
            .unwrap();
        assert!(
            n > 0,
            "closed before {wanted:?}: {}",
            String::from_utf8_lossy(&read)
        );
        read.extend_from_slice(&chunk[..n]);
    }
    String::from_utf8_lossy(&read).into_owned()
}

#[tokio::test]
async fn sigterm_sends_every_stream_its_bye_then_the_process_exits() {
    let port = free_port();
    let mut server = start_server(port);
    let base = format!("http://127.0.0.1:{port}");
    let cookie = sign_in(&base, "alice").await;

    let mut sockets = Vec::new();
    for _ in 0..10 {
        sockets.push(websocket(port, &cookie).await);
    }
    let http = reqwest::Client::new();
    let mut streams = Vec::new();
    for _ in 0..2 {
        let response = http
            .get(format!("{base}/notif/stream"))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let mut body = response.bytes_stream();
        let hello = body.next().await.unwrap().unwrap();
        assert!(String::from_utf8_lossy(&hello).contains("hello"));
        streams.push(body);
    }

    let stopping = Instant::now();
    let killed = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    for socket in &mut sockets {
        let tail = read_until(socket, "\"shutdown\"").await;
        assert!(tail.contains("\"bye\""), "{tail}");
        // Answer the server's close, as a browser does, so it need not wait for us.
        drop(socket.shutdown().await);
    }
    drop(sockets);
    for mut body in streams {
        let mut tail = String::new();
        while let Some(chunk) = tokio::time::timeout(Duration::from_secs(10), body.next())
            .await
            .expect("the SSE stream ends")
        {
            tail.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
        }
        assert!(
            tail.contains("event: bye") && tail.contains("\"shutdown\""),
            "{tail}"
        );
    }
    let status = loop {
        if let Some(status) = server.try_wait().unwrap() {
            break status;
        }
        assert!(
            stopping.elapsed() < Duration::from_secs(15),
            "the server did not exit after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "{status:?}");
}

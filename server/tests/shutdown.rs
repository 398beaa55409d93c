//! The real server process, stopped with SIGTERM as a deploy stops it: every open stream (SSE
//! and WebSocket) gets its `bye` (`shutdown`) before the process exits, and it exits cleanly.
mod process;

use std::time::{Duration, Instant};

use futures::StreamExt;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

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
    let port = process::free_port();
    let mut server = process::start_server(port, &[("NOTIF_SHUTDOWN_MS", "8000")]);
    let base = format!("http://127.0.0.1:{port}");
    let cookie = process::sign_in(&base, "alice").await;

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
    process::terminate(&server);
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
    let status = process::exited(&mut server, Duration::from_secs(15)).await;
    assert!(stopping.elapsed() < Duration::from_secs(15));
    assert!(status.success(), "{status:?}");
}

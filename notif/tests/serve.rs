//! `notif::serve`: idle HTTP connections are closed and streams are not; a graceful shutdown
//! ends every stream (SSE and WebSocket) with a `bye` and waits for every connection.
mod common;

use std::{
    future::IntoFuture,
    time::{Duration, Instant},
};

use common::TestServer;
use futures::StreamExt;
use notif::Config;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};
use tokio_tungstenite::tungstenite::Message;

const IDLE: Duration = Duration::from_millis(300);

/// Sends one request on a new keep-alive connection and reads its whole response.
async fn keep_alive_connection(server: &TestServer) -> TcpStream {
    let mut connection = TcpStream::connect(server.addr).await.unwrap();
    connection
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n")
        .await
        .unwrap();
    let mut head = Vec::new();
    let mut byte = [0; 1];
    while !head.ends_with(b"\r\n\r\n") {
        connection.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let length: usize = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length: "))
        .expect("a content-length")
        .parse()
        .unwrap();
    connection.read_exact(&mut vec![0; length]).await.unwrap();
    connection
}

/// Reads until the server closes `connection`; panics if it has not within 5 s.
async fn closed_by_server(connection: &mut TcpStream) {
    let mut buffer = [0; 256];
    loop {
        let read = tokio::time::timeout(Duration::from_secs(5), connection.read(&mut buffer))
            .await
            .expect("the server closes the connection")
            .unwrap();
        if read == 0 {
            return;
        }
    }
}

async fn websocket(server: &TestServer) -> common::Socket {
    let url = format!("ws://{}{}", server.addr, notif::wire::WS_PATH);
    tokio_tungstenite::connect_async(url).await.unwrap().0
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_and_streams_are_not() {
    let config = {
        let mut config = Config::default();
        config.heartbeat = Duration::from_millis(20);
        config
    };
    let server = TestServer::serving(config, None, IDLE).await;

    // Timed from before the request: the server's idle time starts once it has answered, which
    // may be before this side has read the whole answer.
    let asked = Instant::now();
    let mut connection = keep_alive_connection(&server).await;
    closed_by_server(&mut connection).await;
    assert!(
        asked.elapsed() >= IDLE,
        "closed for idleness, not after the response"
    );

    // Both kinds of stream see heartbeats well past the idle time and stay open.
    let sse = reqwest::get(server.url(notif::wire::STREAM_PATH)).await.unwrap();
    let mut sse = sse.bytes_stream();
    let mut ws = websocket(&server).await;
    let opened = Instant::now();
    while opened.elapsed() < IDLE * 3 {
        let (chunk, message) = tokio::join!(
            tokio::time::timeout(Duration::from_secs(5), sse.next()),
            tokio::time::timeout(Duration::from_secs(5), ws.next()),
        );
        chunk
            .expect("SSE heartbeats keep coming")
            .expect("the SSE stream is still open")
            .unwrap();
        message
            .expect("WebSocket frames keep coming")
            .expect("the WebSocket is still open")
            .unwrap();
    }
    drop((sse, ws));
    server.shut_down().await;
}

#[tokio::test]
async fn shutdown_ends_every_stream_with_a_bye_and_waits_for_no_idle_connection() {
    let server = TestServer::serving(Config::default(), None, Duration::from_secs(60)).await;
    let mut sse = Vec::new();
    for _ in 0..2 {
        let response = reqwest::get(server.url(notif::wire::STREAM_PATH)).await.unwrap();
        let mut body = response.bytes_stream();
        let hello = String::from_utf8_lossy(&body.next().await.unwrap().unwrap()).into_owned();
        assert!(hello.contains("event: hello"), "{hello}");
        sse.push(body);
    }
    let mut ws = websocket(&server).await;
    let hello = common::next_text_message(&mut ws).await;
    assert!(hello.contains("\"hello\""), "{hello}");
    // Idle for far longer than the test may take: the shutdown must close it, not wait for it.
    let mut idle = keep_alive_connection(&server).await;
    assert_eq!(server.hub.metrics().connected, 3);

    let stopping = tokio::spawn(async move {
        server.shut_down().await;
    });
    for mut body in sse {
        let mut rest = String::new();
        while let Some(chunk) = tokio::time::timeout(Duration::from_secs(5), body.next())
            .await
            .expect("the SSE stream ends")
        {
            rest.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
        }
        assert!(
            rest.contains("event: bye") && rest.contains("\"shutdown\""),
            "{rest}"
        );
    }
    let bye = common::next_text_message(&mut ws).await;
    assert!(bye.contains("\"bye\"") && bye.contains("\"shutdown\""), "{bye}");
    loop {
        match tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("the WebSocket closes")
        {
            None | Some(Err(_)) | Some(Ok(Message::Close(_))) => break,
            Some(Ok(_)) => {}
        }
    }
    // Closed on this side too: the server waits for that (or its close timeout) before it stops.
    drop(ws);
    closed_by_server(&mut idle).await;
    stopping.await.unwrap();
}

/// A body trickling in one byte at a time fails at `body_timeout`, and its connection closes.
#[tokio::test]
async fn a_request_body_that_trickles_in_is_cut_at_its_deadline() {
    let router = axum::Router::new().route("/echo", axum::routing::post(|body: String| async move { body }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(
        notif::serve(listener, router)
            .body_timeout(Duration::from_millis(500))
            .into_future(),
    );
    // A prompt body goes through.
    let client = reqwest::Client::new();
    let echoed = client
        .post(format!("http://{addr}/echo"))
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(echoed.text().await.unwrap(), "hello");

    let mut connection = TcpStream::connect(addr).await.unwrap();
    let started = Instant::now();
    connection
        .write_all(b"POST /echo HTTP/1.1\r\nhost: test\r\ncontent-length: 100\r\n\r\n")
        .await
        .unwrap();
    let trickle = async {
        for _ in 0..100 {
            if connection.write_all(b"x").await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    // 100 bytes at 10 a second would take 10 s.
    let _ = tokio::time::timeout(Duration::from_secs(3), trickle).await;
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(3), connection.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(read.is_ok(), "closed, not left open: {answer}");
    assert!(started.elapsed() < Duration::from_secs(6));
    assert!(!answer.starts_with("HTTP/1.1 200"), "{answer}");
    server.abort();
}

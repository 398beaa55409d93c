//! An HTTP connection that sends no request for the idle time is closed (`axum::serve` kept
//! them for ever, ~31 KiB each); a notification stream in progress is not idle.
use std::time::{Duration, Instant};

use futures::StreamExt;
use leptos::prelude::LeptosOptions;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const IDLE: Duration = Duration::from_millis(300);

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_and_a_stream_is_not() {
    let config = notif::Config {
        heartbeat: Duration::from_millis(20),
        ..notif::Config::default()
    };
    let hub = app::server::hub(config, None);
    let options = LeptosOptions::builder().output_name("notif-demo").build();
    let router = server::router(options, hub.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let stopping = async move {
        let _ = stopped.await;
    };
    let serving = tokio::spawn(server::serve(listener, router, hub, stopping, IDLE));

    // One request on a keep-alive connection, then nothing: the response, then the server's close.
    let mut connection = tokio::net::TcpStream::connect(addr).await.unwrap();
    connection
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n")
        .await
        .unwrap();
    let sent = Instant::now();
    let mut response = Vec::new();
    let mut buffer = [0; 4096];
    loop {
        let read = tokio::time::timeout(Duration::from_secs(5), connection.read(&mut buffer))
            .await
            .expect("the server closes an idle connection")
            .unwrap();
        if read == 0 {
            break;
        }
        response.extend_from_slice(&buffer[..read]);
    }
    let response = String::from_utf8_lossy(&response);
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(
        sent.elapsed() >= IDLE,
        "closed for idleness, not after the response"
    );

    // A stream sends heartbeats well past the idle time and stays open.
    let stream = reqwest::get(format!("http://{addr}{}", notif::STREAM_PATH))
        .await
        .unwrap();
    let mut body = stream.bytes_stream();
    let opened = Instant::now();
    while opened.elapsed() < IDLE * 3 {
        tokio::time::timeout(Duration::from_secs(5), body.next())
            .await
            .expect("heartbeats keep coming")
            .expect("the stream is still open")
            .unwrap();
    }

    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), serving)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

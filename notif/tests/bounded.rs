//! Memory stays bounded whatever a client does: a tab that stops reading is cut off at its queue
//! cap, told why (`bye` `lagged`) once it reads again, and starts over when it returns;
//! oversized notifications are refused.
mod common;

use std::time::Duration;

use common::{Chat, TestServer};
use notif::{Config, Exclude, NotifyError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn a_tab_that_never_reads_is_cut_at_its_queue_cap() {
    never_reads(b"GET /notif/stream HTTP/1.1\r\nhost: test\r\nx-user: slow\r\n\r\n").await;
}

/// Over a WebSocket, notify passes write straight to the socket until it is full; then the
/// connection's task holds what is left, the queue fills, and the tab is cut all the same.
#[tokio::test]
async fn a_websocket_tab_that_never_reads_is_cut_at_its_queue_cap() {
    never_reads(&common::ws_upgrade_request("slow")).await;
}

/// Opens a stream with `request` on a raw connection that reads up to the hello and then
/// nothing ever again; notifies until the tab is cut off.
async fn never_reads(request: &[u8]) {
    let server = TestServer::with_config({
        let mut config = Config::default();
        config.queue_capacity = 16;
        config.resume_window = Duration::from_secs(30);
        config
    })
    .await;
    let mut slow = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    slow.write_all(request).await.unwrap();
    let mut head = Vec::new();
    while !String::from_utf8_lossy(&head).contains("\"recovered\"") {
        let mut chunk = [0u8; 1024];
        let n = slow.read(&mut chunk).await.unwrap();
        assert!(n > 0, "stream closed before its hello");
        head.extend_from_slice(&chunk[..n]);
    }
    let text = String::from_utf8_lossy(&head);
    let at = text.find("\"client\":\"").unwrap() + 10;
    let tab_id = text[at..at + 32].to_owned();
    let (status, body) = server
        .call_as(Some("slow"), Some(&tab_id), "t/listen_chat", &[("key", "k")])
        .await;
    assert_eq!(status, 200, "{body}");

    // 8 KiB per frame: the socket's buffers fill, then the tab's queue of 16 frames, then it is cut.
    let big = "x".repeat(8 * 1024);
    let mut sent = 0;
    while server.hub.metrics().lagged == 0 {
        server
            .hub
            .notify::<Chat>(&"k".into(), &big, Exclude::Nobody)
            .await
            .unwrap();
        sent += 1;
        assert!(sent < 10_000, "never cut: {:?}", server.hub.metrics());
        tokio::task::yield_now().await;
    }
    let metrics = server.hub.metrics();
    assert_eq!(
        (metrics.tabs, metrics.listens, metrics.keys, metrics.lagged),
        (0, 0, 0, 1)
    );
    assert_eq!(metrics.drops, 1, "exactly the frame that found the queue full");
    // Nothing more is queued for it, however much is notified.
    assert_eq!(
        server
            .hub
            .notify::<Chat>(&"k".into(), &big, Exclude::Nobody)
            .await
            .unwrap(),
        0
    );

    // Reading again, it gets what was queued, then the bye that says why the stream ended.
    let mut tail = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    while !String::from_utf8_lossy(&tail[tail.len().saturating_sub(200)..]).contains("\"lagged\"") {
        let n = tokio::time::timeout(Duration::from_secs(10), slow.read(&mut chunk))
            .await
            .expect("the bye within 10 s")
            .unwrap();
        assert!(n > 0, "the stream ended without a lagged bye");
        tail.extend_from_slice(&chunk[..n]);
    }

    // Coming back, it is told it lost frames.
    let back = server
        .reconnect(Some("slow"), Some(&format!("{tab_id}.0")))
        .await
        .unwrap();
    assert!(!back.recovered);
}

#[tokio::test]
async fn oversized_notifications_are_refused_and_queue_nothing() {
    let server = TestServer::with_config({
        let mut config = Config::default();
        config.max_message_bytes = 1024;
        config
    })
    .await;
    let mut tab = server.tab(Some("alice")).await;
    server.listen_chat(&tab, "k").await;
    let huge = "x".repeat(2000);
    let refused = server
        .hub
        .notify::<Chat>(&"k".into(), &huge, Exclude::Nobody)
        .await;
    match refused {
        Err(NotifyError::TooLarge { bytes, cap: 1024 }) => assert!(bytes > 2000),
        other => panic!("{other:?}"),
    }
    let direct = server
        .hub
        .send_to_identity::<Chat>(&Some("alice".into()), None, &huge);
    assert!(matches!(direct, Err(NotifyError::TooLarge { .. })));
    assert_eq!(server.hub.metrics().deliveries, 0);
    server.notify_chat("k", "small").await;
    assert_eq!(tab.next_text().await, "small");
}

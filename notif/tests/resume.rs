//! Reconnects: a tab that comes back within its window resumes with every missed frame exactly
//! once and in order, and keeps its listens; otherwise it is told `recovered: false`.
mod common;

use std::time::Duration;

use common::TestServer;
use notif::Config;

fn resuming() -> Config {
    {
        let mut config = Config::default();
        config.resume_window = Duration::from_secs(30);
        config
    }
}

#[tokio::test]
async fn a_reconnect_within_the_window_replays_missed_frames_once_in_order() {
    let server = TestServer::with_config(resuming()).await;
    let mut tab = server.tab(Some("alice")).await;
    assert_eq!(
        tab.last_id,
        format!("{}.0", tab.id),
        "the hello carries an id to resume from"
    );
    server.listen_chat(&tab, "k").await;
    server.notify_chat("k", "1").await;
    server.notify_chat("k", "2").await;
    assert_eq!(tab.next_text().await, "1");
    assert_eq!(tab.next_text().await, "2");
    let (tab_id, seen) = (tab.id.clone(), tab.last_id.clone());
    tab.close();
    for text in ["3", "4", "5"] {
        server.notify_chat("k", text).await;
    }

    let mut back = server.reconnect(Some("alice"), Some(&seen)).await.unwrap();
    assert!(back.recovered);
    assert_eq!(back.id, tab_id, "the same tab");
    for (seq, text) in [(3, "3"), (4, "4"), (5, "5")] {
        assert_eq!(back.next_text().await, text);
        assert_eq!(back.last_id, format!("{tab_id}.{seq}"));
    }
    server.notify_chat("k", "6").await;
    assert_eq!(back.next_text().await, "6", "its listen was kept");
    let metrics = server.hub.metrics();
    assert_eq!(
        (metrics.tabs, metrics.listens, metrics.resumes, metrics.resets),
        (1, 1, 1, 0)
    );
}

#[tokio::test]
async fn resuming_from_the_hello_replays_everything_and_a_replay_can_itself_be_resumed() {
    let server = TestServer::with_config(resuming()).await;
    let tab = server.tab(Some("alice")).await;
    server.listen_chat(&tab, "k").await;
    let hello_id = tab.last_id.clone();
    tab.close();
    for i in 1..=4 {
        server.notify_chat("k", &i.to_string()).await;
    }
    let mut back = server.reconnect(Some("alice"), Some(&hello_id)).await.unwrap();
    assert!(back.recovered);
    assert_eq!(back.next_text().await, "1");
    assert_eq!(back.next_text().await, "2");
    let seen = back.last_id.clone();
    back.close(); // dropped in the middle of the replay
    let mut again = server.reconnect(Some("alice"), Some(&seen)).await.unwrap();
    assert!(again.recovered);
    assert_eq!(again.next_text().await, "3");
    assert_eq!(again.next_text().await, "4");
}

#[tokio::test]
async fn a_tab_that_missed_more_than_its_buffer_starts_over() {
    let server = TestServer::with_config({
        let mut config = resuming();
        config.replay_capacity = 3;
        config
    })
    .await;
    let tab = server.tab(Some("alice")).await;
    server.listen_chat(&tab, "k").await;
    let seen = tab.last_id.clone();
    let old = tab.id.clone();
    tab.close();
    for i in 1..=5 {
        server.notify_chat("k", &i.to_string()).await;
    }
    let fresh = server.reconnect(Some("alice"), Some(&seen)).await.unwrap();
    assert!(!fresh.recovered);
    assert_ne!(fresh.id, old);
    assert_eq!(server.hub.metrics().resets, 1);
}

#[tokio::test]
async fn a_tab_whose_window_passed_starts_over() {
    let server = TestServer::start().await; // window 0
    let mut tab = server.tab(Some("alice")).await;
    server.listen_chat(&tab, "k").await;
    server.notify_chat("k", "1").await;
    tab.next_text().await;
    let seen = tab.last_id.clone();
    tab.close();
    // The server forgets the tab as soon as it notices the closed connection.
    for _ in 0..500 {
        if server.hub.metrics().tabs == 0 {
            break;
        }
        server.notify_chat("k", "probe").await; // a write notices a dead peer
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let fresh = server.reconnect(Some("alice"), Some(&seen)).await.unwrap();
    assert!(!fresh.recovered);
    assert_eq!(server.hub.metrics().listens, 0);
}

#[tokio::test]
async fn hostile_last_event_ids_are_refused_or_start_over() {
    let server = TestServer::with_config(resuming()).await;
    let alice = server.tab(Some("alice")).await;
    let id = format!("{}.0", alice.id);
    for bad in [
        "garbage",
        "0123.1",
        &format!("{}.", alice.id),
        &format!("{}.-1", alice.id),
        &format!("{}.99999999999999999999999", alice.id),
        &format!("{}.1.2", alice.id),
    ] {
        let refused = server.reconnect(Some("alice"), Some(bad)).await.err();
        let (status, reason) = refused.unwrap_or_else(|| panic!("{bad:?} was accepted"));
        assert_eq!(status, 400, "{bad:?}");
        assert!(reason.contains("<tab>.<seq>"), "{reason}");
    }
    let (status, reason) = server.reconnect(Some("mallory"), Some(&id)).await.err().unwrap();
    assert_eq!(status, 403, "{reason}");
    // A sequence number from the future cannot be resumed: a new tab, nothing else changed.
    let future = server
        .reconnect(Some("alice"), Some(&format!("{}.7", alice.id)))
        .await
        .unwrap();
    assert!(!future.recovered);
    assert_eq!(server.hub.metrics().tabs, 2);
}

#[tokio::test]
async fn the_query_parameter_works_like_the_header() {
    let server = TestServer::with_config(resuming()).await;
    let tab = server.tab(Some("alice")).await;
    server.listen_chat(&tab, "k").await;
    let seen = tab.last_id.clone();
    tab.close();
    server.notify_chat("k", "missed").await;
    let url = server.url(&format!("{}?last_event_id={seen}", notif::wire::STREAM_PATH));
    let response = server
        .http
        .get(url)
        .header("x-user", "alice")
        .send()
        .await
        .unwrap();
    let body = String::from_utf8_lossy(
        &futures::StreamExt::next(&mut response.bytes_stream())
            .await
            .unwrap()
            .unwrap(),
    )
    .into_owned();
    assert!(body.contains("\"recovered\":true"), "{body}");
}

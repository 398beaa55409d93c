//! Who may open a stream: the origin allow-list, the app's own refusal, the caps per identity
//! and per address, and sessions checked again while streams are open. Every refusal is
//! answered before anything is allocated: the counters are compared before and after.
mod common;

use std::time::Duration;

use common::{eventually, TestServer};
use notif::{Config, Hub, StreamDenied};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

/// Opens a stream over SSE with `headers` (and `x-user: alice`); the status and, on refusal,
/// the body.
async fn sse(server: &TestServer, headers: &[(&str, &str)]) -> (u16, String) {
    let mut request = server
        .http
        .get(server.url(notif::wire::STREAM_PATH))
        .header("x-user", "alice");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    if status == 200 {
        // The stream stays open: leave it to the server to count, and drop it here.
        return (200, String::new());
    }
    (status, response.text().await.unwrap())
}

/// Sends a WebSocket upgrade with `headers` over a raw socket; the status line's code and the
/// body (empty for a 101).
async fn ws(server: &TestServer, headers: &[(&str, &str)]) -> (u16, String) {
    let request = String::from_utf8(common::ws_upgrade_request("alice")).unwrap();
    // The host a browser would name: the server's own origin follows from it.
    let mut request = request.replace("host: test", &format!("host: {}", server.addr));
    request.truncate(request.len() - 2);
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    let mut socket = TcpStream::connect(server.addr).await.unwrap();
    socket.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let mut chunk = [0; 1024];
    while !String::from_utf8_lossy(&answer).contains("\r\n\r\n") || answer.starts_with(b"HTTP/1.1 4") {
        let read = tokio::time::timeout(Duration::from_secs(5), socket.read(&mut chunk))
            .await
            .expect("an answer within 5 s")
            .unwrap();
        if read == 0 {
            break;
        }
        answer.extend_from_slice(&chunk[..read]);
        let text = String::from_utf8_lossy(&answer);
        let length = text
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .and_then(|l| l.trim().parse::<usize>().ok());
        if let (Some(length), Some((_, body))) = (length, text.split_once("\r\n\r\n")) {
            if body.len() >= length {
                break;
            }
        }
    }
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text[9..12].parse().unwrap();
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// A stream's transport.
#[derive(Clone, Copy, Debug)]
enum Over {
    Sse,
    Ws,
}

/// Opens a stream over `over` with `headers`: the status and, on refusal, the body.
async fn open(server: &TestServer, over: Over, headers: &[(&str, &str)]) -> (u16, String) {
    match over {
        Over::Sse => sse(server, headers).await,
        Over::Ws => ws(server, headers).await,
    }
}

/// What a refusal must leave as it was.
fn unchanged(server: &TestServer) -> (u64, u64, u64) {
    let m = server.hub.metrics();
    (m.tabs, m.streams_opened, m.identities)
}

#[tokio::test]
async fn streams_from_other_origins_are_refused_before_anything_is_allocated() {
    let server = TestServer::start().await;
    let own = format!("http://{}", server.addr);
    let port = server.addr.port();
    let sibling = format!("http://evil.localhost:{port}");
    let other_port = format!("http://127.0.0.1:{}", port.wrapping_add(1));
    let scheme = format!("https://{}", server.addr);
    for origin in [
        "http://evil.example",
        sibling.as_str(),
        other_port.as_str(),
        scheme.as_str(),
        "null",
    ] {
        for over in [Over::Sse, Over::Ws] {
            let before = unchanged(&server);
            let refused = server.hub.metrics().refused("origin");
            let (status, body) = open(&server, over, &[("origin", origin)]).await;
            assert_eq!(status, 403, "{origin}: {body}");
            assert!(body.contains("origin"), "{origin}: {body}");
            assert_eq!(unchanged(&server), before, "{origin}: nothing allocated");
            assert_eq!(server.hub.metrics().refused("origin"), refused + 1);
        }
    }
    let metrics = reqwest::get(server.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(r#"notif_streams_refused_total{reason="origin"} 10"#),
        "{metrics}"
    );

    // The page's own origin, and no Origin at all (curl), are let in.
    assert_eq!(ws(&server, &[("origin", &own)]).await.0, 101);
    assert_eq!(sse(&server, &[("origin", &own)]).await.0, 200);
    assert_eq!(ws(&server, &[]).await.0, 101);
    assert_eq!(server.hub.metrics().streams_opened, 3);
}

#[tokio::test]
async fn listed_origins_are_let_in_and_a_missing_origin_can_be_required() {
    let server = TestServer::with_config({
        let mut config = Config::default();
        config.allowed_origins = vec!["https://app.example.com".into()];
        config.require_origin = true;
        config
    })
    .await;
    assert_eq!(ws(&server, &[("origin", "https://app.example.com")]).await.0, 101);
    assert_eq!(
        sse(&server, &[("origin", "https://app.example.com:443")]).await.0,
        200
    );
    let before = unchanged(&server);
    for over in [Over::Sse, Over::Ws] {
        let (status, body) = open(&server, over, &[]).await;
        assert_eq!(status, 403, "{body}");
        assert!(body.contains("requires an Origin"), "{body}");
        let (status, _) = open(
            &server,
            over,
            &[("origin", "https://app.example.com.evil.example")],
        )
        .await;
        assert_eq!(status, 403);
    }
    assert_eq!(unchanged(&server), before);
    assert_eq!(server.hub.metrics().refused("origin"), 4);
}

#[tokio::test]
async fn the_app_refuses_streams_it_does_not_want_with_its_reason() {
    let server = TestServer::start().await;
    server
        .hub
        .clone()
        .admit_streams(|user: &Option<String>| match user.as_deref() {
            None => Err(StreamDenied::unauthenticated("sign in to receive notifications")),
            Some("banned") => Err(StreamDenied::forbidden("this account is suspended")),
            Some(_) => Ok(()),
        });
    let before = unchanged(&server);
    let (status, body) = server.reconnect(None, None).await.err().unwrap();
    assert_eq!((status, body.as_str()), (401, "sign in to receive notifications"));
    let (status, body) = server.reconnect(Some("banned"), None).await.err().unwrap();
    assert_eq!((status, body.as_str()), (403, "this account is suspended"));
    assert_eq!(unchanged(&server), before);
    assert_eq!(server.hub.metrics().refused("denied"), 2);
    assert!(server.reconnect(Some("alice"), None).await.is_ok());
}

#[tokio::test]
async fn an_identity_holds_at_most_its_cap_of_tabs_and_a_new_one_replaces_a_closed_one() {
    let server = TestServer::with_config({
        let mut config = Config::default();
        config.resume_window = Duration::from_secs(60);
        config.max_tabs_per_identity = 2;
        config
    })
    .await;
    let first = server.tab(Some("alice")).await;
    let _second = server.tab(Some("alice")).await;
    let before = unchanged(&server);
    let (status, body) = server.reconnect(Some("alice"), None).await.err().unwrap();
    assert_eq!(status, 429, "{body}");
    assert!(body.contains("2 tabs"), "{body}");
    assert_eq!(unchanged(&server), before);
    assert_eq!(server.hub.metrics().refused("tabs_per_identity"), 1);
    let _bob = server.tab(Some("bob")).await;

    // A closed tab waits out its window, but a new tab of the same identity takes its place.
    let (first_id, first_last) = (first.id.clone(), first.last_id.clone());
    first.close();
    eventually("the first tab's stream ends", || {
        server.hub.metrics().connected == 2
    })
    .await;
    let _third = server.tab(Some("alice")).await;
    assert_eq!(server.hub.metrics().tabs, 3, "alice's two, bob's one");
    // The replaced tab is gone: its reconnect would be a new tab, over the cap.
    let (status, _) = server
        .reconnect(Some("alice"), Some(&first_last))
        .await
        .err()
        .unwrap();
    assert_eq!(status, 429);
    assert!(!first_id.is_empty());
}

#[tokio::test]
async fn opening_and_closing_streams_in_a_loop_keeps_the_tables_bounded() {
    let server = TestServer::with_config({
        let mut config = Config::default();
        config.resume_window = Duration::from_secs(60);
        config.max_tabs_per_identity = 8;
        config
    })
    .await;
    for _ in 0..200 {
        let tab = server.tab(Some("mallory")).await;
        tab.close();
        let opened = server.hub.metrics().streams_opened;
        eventually("the stream ends", || server.hub.metrics().connected == 0).await;
        assert!(server.hub.metrics().tabs <= 8, "after {opened} streams");
    }
    let metrics = server.hub.metrics();
    assert_eq!((metrics.streams_opened, metrics.tabs), (200, 8));
    assert_eq!(metrics.refused("tabs_per_identity"), 0);
}

#[tokio::test]
async fn an_address_holds_at_most_its_cap_of_streams() {
    let server = TestServer::with_config({
        let mut config = Config::default();
        config.max_streams_per_address = 3;
        config
    })
    .await;
    let mut tabs = Vec::new();
    for user in ["a", "b", "c"] {
        tabs.push(server.tab(Some(user)).await);
    }
    let before = unchanged(&server);
    for over in [Over::Sse, Over::Ws] {
        let (status, body) = open(&server, over, &[]).await;
        assert_eq!(status, 429, "{body}");
        assert!(body.contains("3 streams are open from this address"), "{body}");
    }
    assert_eq!(unchanged(&server), before);
    assert_eq!(server.hub.metrics().refused("streams_per_address"), 2);
    tabs.pop().unwrap().close();
    eventually("a place is free", || server.hub.metrics().connected == 2).await;
    assert!(server.reconnect(Some("d"), None).await.is_ok());
}

#[tokio::test]
async fn a_stream_whose_session_was_deleted_is_ended_at_the_next_check() {
    let server = TestServer::with_config({
        let mut config = Config::default();
        config.revalidate = Duration::from_millis(100);
        config
    })
    .await;
    let mut carol = server.tab(Some("carol")).await;
    let mut dan = server.tab(Some("dan")).await;
    server.listen_chat(&carol, "k").await;
    server.listen_chat(&dan, "k").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(server.hub.metrics().connected, 2, "valid sessions are left alone");

    common::revoked().lock().unwrap().insert("carol".into());
    let bye = carol.next().await;
    assert_eq!(bye.event, "bye");
    assert!(bye.data.contains("disconnected"), "{bye:?}");
    assert!(carol.ended().await);
    assert_eq!(server.notify_chat("k", "still here").await, 1);
    assert_eq!(dan.next_text().await, "still here");
    let hub: &Hub<Option<String>> = &server.hub;
    assert_eq!((hub.metrics().tabs, hub.metrics().listens), (1, 1));
}

//! Refusals: authorize, tabs of another session, malformed input, caps. Each leaves state as it was.
mod common;

use common::TestServer;
use notif::Config;

#[tokio::test]
async fn authorize_refuses_with_403_and_a_reason() {
    let server = TestServer::start().await;
    let bob = server.tab(Some("bob")).await;
    let (status, body) = server.call(&bob, "t/listen_chat", &[("key", "secret")]).await;
    assert_eq!(status, 403);
    assert!(body.contains("not allowed to listen"), "{body}");
    assert_eq!(server.hub.metrics().listens, 0);

    let admin = server.tab(Some("admin")).await;
    let (status, _) = server.call(&admin, "t/listen_chat", &[("key", "secret")]).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_tab_of_another_session_is_refused() {
    let server = TestServer::start().await;
    let alice = server.tab(Some("alice")).await;
    let (status, body) = server
        .call_as(Some("mallory"), Some(&alice.id), "t/listen_chat", &[("key", "k")])
        .await;
    assert_eq!(status, 403);
    assert!(body.contains("another session"), "{body}");
    let (status, _) = server
        .call_as(None, Some(&alice.id), "t/listen_chat", &[("key", "k")])
        .await;
    assert_eq!(status, 403, "anonymous is another identity too");
    assert_eq!(server.hub.metrics().listens, 0);
}

#[tokio::test]
async fn missing_malformed_and_unknown_tab_ids_are_4xx() {
    let server = TestServer::start().await;
    let (status, body) = server
        .call_as(Some("alice"), None, "t/listen_chat", &[("key", "k")])
        .await;
    assert_eq!(status, 400);
    assert!(body.contains("notif::TabClient"), "{body}");
    for bad in [
        "xyz",
        "0123456789ABCDEF0123456789ABCDEF",
        "",
        "0123456789abcdef0123456789abcdef00",
    ] {
        let (status, body) = server
            .call_as(Some("alice"), Some(bad), "t/listen_chat", &[("key", "k")])
            .await;
        assert_eq!(status, 400, "{bad:?}: {body}");
    }
    let unknown = "0123456789abcdef0123456789abcdef";
    let (status, body) = server
        .call_as(Some("alice"), Some(unknown), "t/listen_chat", &[("key", "k")])
        .await;
    assert_eq!(status, 410, "{body}");
    assert_eq!(server.hub.metrics().listens, 0);
}

#[tokio::test]
async fn unknown_server_functions_are_4xx() {
    // Malformed arguments are the app's server's business (server/tests: it maps them to 400).
    let server = TestServer::start().await;
    let alice = server.tab(Some("alice")).await;
    let (status, _) = server.call(&alice, "t/no_such_function", &[("key", "k")]).await;
    assert!((400..500).contains(&status), "{status}");
    assert_eq!(server.hub.metrics().listens, 0);
}

#[tokio::test]
async fn listens_per_tab_are_capped() {
    let server = TestServer::with_config({
        let mut config = Config::default();
        config.max_listens_per_tab = 2;
        config
    })
    .await;
    let tab = server.tab(Some("alice")).await;
    server.listen_chat(&tab, "a").await;
    server.listen_chat(&tab, "b").await;
    server.listen_chat(&tab, "a").await; // listening again is not a new listen
    let (status, body) = server.call(&tab, "t/listen_chat", &[("key", "c")]).await;
    assert_eq!(status, 429);
    assert!(body.contains("2 keys"), "{body}");
    assert_eq!(server.hub.metrics().listens, 2);
}

#[tokio::test]
async fn tab_ids_are_unique_and_128_bit_hex() {
    let server = TestServer::start().await;
    let a = server.tab(None).await;
    let b = server.tab(None).await;
    assert_ne!(a.id, b.id);
    for id in [&a.id, &b.id] {
        assert!(id.parse::<notif::TabId>().is_ok(), "{id}");
    }
}

#[tokio::test]
async fn oversized_keys_are_refused() {
    let server = TestServer::start().await;
    let tab = server.tab(Some("alice")).await;
    let long = "k".repeat(2000);
    let (status, body) = server.call(&tab, "t/listen_chat", &[("key", &long)]).await;
    assert_eq!(status, 400);
    assert!(body.contains("more than the 1024 allowed"), "{body}");
    assert_eq!(server.hub.metrics().listens, 0);
}

#[tokio::test]
async fn a_call_naming_another_sessions_tab_cannot_leave_it_out() {
    let server = TestServer::start().await;
    let mut alice = server.tab(Some("alice")).await;
    let mut bob = server.tab(Some("bob")).await;
    server.listen_chat(&alice, "k").await;
    server.listen_chat(&bob, "k").await;

    // Mallory names alice's tab as hers: it is not, so nobody is left out.
    let (status, body) = server
        .call_as(
            Some("mallory"),
            Some(&alice.id),
            "t/post_chat",
            &[("key", "k"), ("text", "one")],
        )
        .await;
    assert_eq!((status, body.as_str()), (200, "2"));
    assert_eq!(alice.next_text().await, "one");
    assert_eq!(bob.next_text().await, "one");

    // Alice's own call leaves her own tab out, and only it.
    let (status, body) = server
        .call(&alice, "t/post_chat", &[("key", "k"), ("text", "two")])
        .await;
    assert_eq!((status, body.as_str()), (200, "1"));
    assert_eq!(bob.next_text().await, "two");
    server.notify_chat("k", "three").await;
    assert_eq!(alice.next_text().await, "three", "nothing in between for alice");
}

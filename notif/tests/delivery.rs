//! Delivery over real HTTP/SSE: who gets what, per identity, with exclusions.
mod common;

use common::{prepare_calls, Chat, Greeting, GreetingEvent, TestServer};
use notif::Exclude;

#[tokio::test]
async fn a_notification_reaches_listeners_only() {
    let server = TestServer::start().await;
    let mut on_k1 = server.tab(Some("alice")).await;
    let mut on_k2 = server.tab(Some("bob")).await;
    let mut on_k1_too = server.tab(None).await;
    server.listen_chat(&on_k1, "k1").await;
    server.listen_chat(&on_k1_too, "k1").await;
    server.listen_chat(&on_k2, "k2").await;

    assert_eq!(server.notify_chat("k1", "one").await, 2);
    // k2's tab must see "two" first: "one" would have been queued before it.
    assert_eq!(server.notify_chat("k2", "two").await, 1);
    assert_eq!(on_k1.next_text().await, "one");
    assert_eq!(on_k1_too.next_text().await, "one");
    assert_eq!(on_k2.next_text().await, "two");
}

#[tokio::test]
async fn frames_carry_tab_and_sequence_ids_in_order() {
    let server = TestServer::start().await;
    let mut tab = server.tab(Some("alice")).await;
    server.listen_chat(&tab, "k").await;
    for i in 0..20 {
        server.notify_chat("k", &i.to_string()).await;
    }
    for i in 1..=20u32 {
        let event = tab.next().await;
        assert_eq!(event.id, format!("{}.{i}", tab.id));
        assert_eq!(event.message(), serde_json::json!((i - 1).to_string()));
    }
}

#[tokio::test]
async fn one_stream_carries_several_topics_and_keys() {
    let server = TestServer::start().await;
    let mut tab = server.tab(Some("alice")).await;
    server.listen_chat(&tab, "a").await;
    server.listen_chat(&tab, "b").await;
    let (status, _) = server.call(&tab, "t/listen_greeting", &[("key", "a")]).await;
    assert_eq!(status, 200);
    server.notify_chat("a", "chat a").await;
    server
        .hub
        .notify::<Greeting>(
            &"a".into(),
            &GreetingEvent {
                nonce: "multi".into(),
            },
            Exclude::Nobody,
        )
        .await
        .unwrap();
    server.notify_chat("b", "chat b").await;
    let topics: Vec<(String, serde_json::Value)> = [tab.next().await, tab.next().await, tab.next().await]
        .iter()
        .map(|e| {
            let v: serde_json::Value = serde_json::from_str(&e.data).unwrap();
            (v["topic"].as_str().unwrap().to_owned(), v["key"].clone())
        })
        .collect();
    assert_eq!(
        topics,
        [
            ("chat".into(), "a".into()),
            ("greeting".into(), "a".into()),
            ("chat".into(), "b".into())
        ]
    );
}

#[tokio::test]
async fn unlisten_stops_delivery() {
    let server = TestServer::start().await;
    let mut tab = server.tab(Some("alice")).await;
    server.listen_chat(&tab, "k").await;
    server.listen_chat(&tab, "sentinel").await;
    let (status, body) = server.call(&tab, "t/unlisten_chat", &[("key", "k")]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(server.notify_chat("k", "missed").await, 0);
    server.notify_chat("sentinel", "after").await;
    assert_eq!(tab.next_text().await, "after");
}

#[tokio::test]
async fn prepare_runs_once_per_identity_and_may_send_nothing() {
    let server = TestServer::start().await;
    let mut alice1 = server.tab(Some("alice")).await;
    let mut alice2 = server.tab(Some("alice")).await;
    let mut bob = server.tab(Some("bob")).await;
    let mut carol = server.tab(Some("carol")).await;
    for tab in [&alice1, &alice2, &bob, &carol] {
        let (status, body) = server.call(tab, "t/listen_greeting", &[("key", "g")]).await;
        assert_eq!(status, 200, "{body}");
        server.listen_chat(tab, "sentinel-g").await;
    }
    let event = GreetingEvent {
        nonce: "per-identity".into(),
    };
    let reached = server
        .hub
        .notify::<Greeting>(&"g".into(), &event, Exclude::Nobody)
        .await;
    assert_eq!(reached.unwrap(), 3);
    assert_eq!(
        prepare_calls().lock().unwrap()["per-identity"],
        3,
        "alice's two tabs share one prepare"
    );
    server.notify_chat("sentinel-g", "end").await;
    assert_eq!(alice1.next_text().await, "hi alice");
    assert_eq!(alice2.next_text().await, "hi alice");
    assert_eq!(bob.next_text().await, "hello bob");
    assert_eq!(carol.next_text().await, "end", "prepare returned None for carol");
}

#[tokio::test]
async fn equal_messages_share_one_encoding() {
    // dave's prepare returns alice's text: both frames carry the same bytes. Observable effect:
    // both get it; the sharing itself is covered by the unit test on `notify`.
    let server = TestServer::start().await;
    let mut alice = server.tab(Some("alice")).await;
    let mut dave = server.tab(Some("dave")).await;
    for tab in [&alice, &dave] {
        server.call(tab, "t/listen_greeting", &[("key", "s")]).await;
    }
    server
        .hub
        .notify::<Greeting>(
            &"s".into(),
            &GreetingEvent {
                nonce: "shared".into(),
            },
            Exclude::Nobody,
        )
        .await
        .unwrap();
    assert_eq!(alice.next_text().await, "hi alice");
    assert_eq!(dave.next_text().await, "hi alice");
}

#[tokio::test]
async fn exclusions_leave_out_a_tab_or_an_identity() {
    let server = TestServer::start().await;
    let mut alice1 = server.tab(Some("alice")).await;
    let mut alice2 = server.tab(Some("alice")).await;
    let mut bob = server.tab(Some("bob")).await;
    for tab in [&alice1, &alice2, &bob] {
        server.listen_chat(tab, "k").await;
    }
    let me: notif::TabId = alice1.id.parse().unwrap();
    let hub = &server.hub;
    assert_eq!(
        hub.notify::<Chat>(&"k".into(), &"not me".into(), Exclude::Tab(me))
            .await
            .unwrap(),
        2
    );
    let not_alice = Exclude::Identity(Some("alice".into()));
    assert_eq!(
        hub.notify::<Chat>(&"k".into(), &"not alice".into(), not_alice)
            .await
            .unwrap(),
        1
    );
    server.notify_chat("k", "all").await;
    assert_eq!(alice1.next_text().await, "all");
    assert_eq!(alice2.next_text().await, "not me");
    assert_eq!(alice2.next_text().await, "all");
    assert_eq!(bob.next_text().await, "not me");
    assert_eq!(bob.next_text().await, "not alice");
}

#[tokio::test]
async fn send_to_identity_reaches_all_its_tabs_without_a_listen() {
    let server = TestServer::start().await;
    let mut alice1 = server.tab(Some("alice")).await;
    let mut alice2 = server.tab(Some("alice")).await;
    let mut bob = server.tab(Some("bob")).await;
    server.listen_chat(&bob, "k").await;
    let sent = server
        .hub
        .send_to_identity::<Chat>(&Some("alice".into()), None, &"you have mail".into());
    assert_eq!(sent.unwrap(), 2);
    server.notify_chat("k", "bob's").await;
    for tab in [&mut alice1, &mut alice2] {
        let event = tab.next().await;
        let data: serde_json::Value = serde_json::from_str(&event.data).unwrap();
        assert_eq!(data["key"], serde_json::Value::Null);
        assert_eq!(data["message"], "you have mail");
    }
    assert_eq!(bob.next_text().await, "bob's");
}

#[tokio::test]
async fn unlisten_identity_and_disconnect_identity() {
    let server = TestServer::start().await;
    let mut alice1 = server.tab(Some("alice")).await;
    let mut alice2 = server.tab(Some("alice")).await;
    let mut bob = server.tab(Some("bob")).await;
    for tab in [&alice1, &alice2, &bob] {
        server.listen_chat(tab, "k").await;
        server.listen_chat(tab, "other").await;
    }
    assert_eq!(
        server
            .hub
            .unlisten_identity::<Chat>(&Some("alice".into()), &"k".into())
            .unwrap(),
        2
    );
    assert_eq!(server.notify_chat("k", "bob only").await, 1);
    assert_eq!(bob.next_text().await, "bob only");

    assert_eq!(server.hub.disconnect_identity(&Some("alice".into())), 2);
    for tab in [&mut alice1, &mut alice2] {
        let bye = tab.next().await;
        assert_eq!(bye.event, "bye");
        assert!(bye.data.contains("disconnected"), "{}", bye.data);
        assert!(tab.ended().await);
    }
    assert_eq!(
        server.notify_chat("other", "after").await,
        1,
        "alice's tabs listen no more"
    );
    assert_eq!(bob.next_text().await, "after");
}

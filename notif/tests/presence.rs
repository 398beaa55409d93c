//! Presence over real HTTP on one node: counts and pages, `join`/`leave` once per identity, no
//! flap on resume, `authorize` hiding presence, and only the public form reaching browsers.
mod common;

use std::time::Duration;

use common::{Lobby, Tab, TestServer};
use notif::{wire::PresenceChange, Config, Exclude, PresenceCount};
use serde_json::json;

fn shown(user: &str) -> serde_json::Value {
    json!(format!("{user} (shown)"))
}

/// Notifies `key` and asserts the next frame of each tab is that notification: nothing (no
/// presence frame) came before it.
async fn nothing_else(server: &TestServer, key: &str, tabs: &mut [&mut Tab]) {
    let marker = format!("marker {}", rand_suffix());
    server
        .hub
        .notify::<Lobby>(&key.to_owned(), &marker, Exclude::Nobody)
        .await
        .unwrap();
    for tab in tabs {
        assert_eq!(
            tab.next_text().await,
            marker,
            "{:?} got something else first",
            tab.user
        );
    }
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

async fn count(server: &TestServer, key: &str) -> PresenceCount {
    server.hub.presence::<Lobby>(&key.to_owned()).await.unwrap()
}

#[tokio::test]
async fn joins_and_leaves_reach_listeners_once_per_identity_in_their_public_form() {
    let server = TestServer::start().await;
    let mut alice = server.tab(Some("alice")).await;
    server.lobby(&alice, "t/listen_lobby", "hall").await;
    assert_eq!(
        alice.next_presence().await,
        PresenceChange::Present(vec![shown("alice")])
    );

    let mut bob = server.tab(Some("bob")).await;
    server.lobby(&bob, "t/listen_lobby", "hall").await;
    assert_eq!(alice.next_presence().await, PresenceChange::Join(shown("bob")));
    assert_eq!(
        bob.next_presence().await,
        PresenceChange::Present(vec![shown("alice"), shown("bob")])
    );

    // Bob's second tab: bob is there already, so alice hears nothing.
    let mut bob_again = server.tab(Some("bob")).await;
    server.lobby(&bob_again, "t/listen_lobby", "hall").await;
    assert_eq!(
        bob_again.next_presence().await,
        PresenceChange::Present(vec![shown("alice"), shown("bob")])
    );
    nothing_else(&server, "hall", &mut [&mut alice, &mut bob]).await;
    bob_again.next_text().await;
    let now = count(&server, "hall").await;
    assert_eq!((now.tabs, now.identities), (3, 2));

    // One of bob's tabs stops listening: bob is still there. The other goes: bob leaves.
    server.lobby(&bob_again, "t/unlisten_lobby", "hall").await;
    nothing_else(&server, "hall", &mut [&mut alice, &mut bob]).await;
    server.lobby(&bob, "t/unlisten_lobby", "hall").await;
    assert_eq!(alice.next_presence().await, PresenceChange::Leave(shown("bob")));
    nothing_else(&server, "hall", &mut [&mut alice]).await;
    let now = count(&server, "hall").await;
    assert_eq!((now.tabs, now.identities), (1, 1));

    // Presence frames are numbered like notifications: ids follow on.
    let (_, seq) = notif::wire::parse_event_id(&alice.last_id).unwrap();
    assert_eq!(
        seq, 6,
        "alice got present, join, a marker, a marker, leave, a marker"
    );
}

#[tokio::test]
async fn a_sign_out_or_a_closed_tab_whose_window_passed_leaves_and_a_resume_replays_without_a_flap() {
    let server = TestServer::with_config({
        let mut config = Config::default();
        config.resume_window = Duration::from_millis(600);
        config
    })
    .await;
    let mut alice = server.tab(Some("alice")).await;
    server.lobby(&alice, "t/listen_lobby", "hall").await;
    alice.next_presence().await;
    let mut bob = server.tab(Some("bob")).await;
    server.lobby(&bob, "t/listen_lobby", "hall").await;
    assert_eq!(alice.next_presence().await, PresenceChange::Join(shown("bob")));
    bob.next_presence().await;

    // Bob's connection drops and comes back within the window: nobody sees him go, and what
    // he missed meanwhile (dan joining) is replayed to him like any frame.
    let remembered = bob.clone_for_resume();
    bob.close();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let dan = server.tab(Some("dan")).await;
    server.lobby(&dan, "t/listen_lobby", "hall").await;
    assert_eq!(alice.next_presence().await, PresenceChange::Join(shown("dan")));
    let mut bob = server.resume(&remembered).await.expect("resumes");
    assert!(bob.recovered);
    assert_eq!(
        bob.next_presence().await,
        PresenceChange::Join(shown("dan")),
        "replayed"
    );
    server.lobby(&dan, "t/unlisten_lobby", "hall").await;
    assert_eq!(alice.next_presence().await, PresenceChange::Leave(shown("dan")));
    assert_eq!(bob.next_presence().await, PresenceChange::Leave(shown("dan")));
    dan.close();
    nothing_else(&server, "hall", &mut [&mut alice, &mut bob]).await;

    // Closed for good: bob leaves once the window has passed, not before.
    bob.close();
    let closed = std::time::Instant::now();
    assert_eq!(alice.next_presence().await, PresenceChange::Leave(shown("bob")));
    assert!(
        closed.elapsed() >= Duration::from_millis(500),
        "left after {:?}",
        closed.elapsed()
    );

    // A sign-out ends carol's tabs at once: she leaves.
    let mut carol = server.tab(Some("carol")).await;
    server.lobby(&carol, "t/listen_lobby", "hall").await;
    assert_eq!(alice.next_presence().await, PresenceChange::Join(shown("carol")));
    carol.next_presence().await;
    assert_eq!(server.hub.disconnect_identity(&Some("carol".into())), 1);
    assert_eq!(alice.next_presence().await, PresenceChange::Leave(shown("carol")));
    let now = count(&server, "hall").await;
    assert_eq!((now.tabs, now.identities), (1, 1));
}

#[tokio::test]
async fn authorize_hides_presence_and_hidden_identities_count_without_being_shown() {
    let server = TestServer::start().await;
    let mut admin = server.tab(Some("admin")).await;
    server.lobby(&admin, "t/listen_lobby", "vip").await;
    assert_eq!(
        admin.next_presence().await,
        PresenceChange::Present(vec![shown("admin")])
    );

    // Carol may not listen on "vip": refused, she learns nothing, and nobody sees her.
    let mut carol = server.tab(Some("carol")).await;
    let (status, body) = server.call(&carol, "t/listen_lobby", &[("key", "vip")]).await;
    assert_eq!(status, 403, "{body}");
    let before = count(&server, "vip").await;
    assert_eq!((before.tabs, before.identities), (1, 1));
    nothing_else(&server, "vip", &mut [&mut admin]).await;
    server.lobby(&carol, "t/listen_lobby", "hall").await;
    assert_eq!(
        carol.next_presence().await,
        PresenceChange::Present(vec![shown("carol")])
    );

    // A ghost and an anonymous visitor count, but nobody sees them come or go.
    let mut ghost = server.tab(Some("ghost")).await;
    server.lobby(&ghost, "t/listen_lobby", "hall").await;
    let mut nobody = server.tab(None).await;
    let (status, _) = server.call(&nobody, "t/listen_lobby", &[("key", "vip")]).await;
    assert_eq!(status, 403, "anonymous may not listen on vip");
    server.lobby(&nobody, "t/listen_lobby", "hall").await;
    assert_eq!(
        ghost.next_presence().await,
        PresenceChange::Present(vec![shown("carol")])
    );
    assert_eq!(
        nobody.next_presence().await,
        PresenceChange::Present(vec![shown("carol")])
    );
    nothing_else(&server, "hall", &mut [&mut carol, &mut ghost, &mut nobody]).await;
    let hall = count(&server, "hall").await;
    assert_eq!((hall.tabs, hall.identities), (3, 3));
    let vip = count(&server, "vip").await;
    assert_eq!((vip.tabs, vip.identities), (1, 1));

    // They leave unseen too.
    server.lobby(&ghost, "t/unlisten_lobby", "hall").await;
    nobody.close();
    nothing_else(&server, "hall", &mut [&mut carol]).await;
    nothing_else(&server, "vip", &mut [&mut admin]).await;
}

#[tokio::test]
async fn identities_come_in_pages_in_a_stable_order_for_any_topic() {
    let server = TestServer::start().await;
    let mut tabs = Vec::new();
    for user in ["erin", "dan", "bea", "ann", "cy"] {
        for _ in 0..2 {
            let tab = server.tab(Some(user)).await;
            server.lobby(&tab, "t/listen_lobby", "hall").await;
            server.listen_chat(&tab, "room").await;
            tabs.push(tab);
        }
    }
    let anonymous = server.tab(None).await;
    server.listen_chat(&anonymous, "room").await;

    let hall = count(&server, "hall").await;
    assert_eq!((hall.tabs, hall.identities), (10, 5));
    // A topic without presence answers too, counting the anonymous tab as one identity.
    let room = server
        .hub
        .presence::<common::Chat>(&"room".to_owned())
        .await
        .unwrap();
    assert_eq!((room.tabs, room.identities), (11, 6));

    let mut seen = Vec::new();
    let mut after = None;
    let mut pages = 0;
    loop {
        let page = server
            .hub
            .present::<common::Chat>(&"room".to_owned(), after.as_ref(), 2)
            .await
            .unwrap();
        assert!(page.identities.len() <= 2);
        seen.extend(page.identities);
        pages += 1;
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    // The order of their JSON: the names (`"` sorts before `n`), then null.
    let expected: Vec<Option<String>> = [
        Some("ann"),
        Some("bea"),
        Some("cy"),
        Some("dan"),
        Some("erin"),
        None,
    ]
    .into_iter()
    .map(|u| u.map(str::to_owned))
    .collect();
    assert_eq!(seen, expected);

    // Nobody on a key: an empty last page. A key nobody could listen on: a typed error.
    let empty = server
        .hub
        .present::<Lobby>(&"nowhere".to_owned(), None, 10)
        .await
        .unwrap();
    assert!(empty.identities.is_empty() && empty.next.is_none());
    assert_eq!(count(&server, "nowhere").await, PresenceCount::default());
}

//! Presence across nodes: three hubs over a real `redis-server`. Everyone sees everyone on
//! every node, a tab moving between nodes makes nobody leave, a node that falls silent (killed)
//! has its identities leave everywhere within the bound, and after Redis restarts the lists
//! converge again.
mod common;

use std::{collections::HashMap, sync::Arc, time::Duration};

use common::{eventually, Lobby, RedisServer, Relay, Tab, TestServer};
use notif::{
    backplane::{Backplane, RedisBackplane},
    wire::PresenceChange,
    Config, Exclude,
};
use serde_json::Value;

fn config() -> Config {
    {
        let mut config = Config::default();
        config.resume_window = Duration::from_secs(10);
        config.node_heartbeat = Duration::from_millis(200);
        config.node_timeout = Duration::from_millis(1000);
        config
    }
}

async fn node(redis_url: &str) -> TestServer {
    let backplane: Arc<dyn Backplane> = Arc::new(RedisBackplane::new(redis_url).unwrap());
    let node = TestServer::node(config(), Some(backplane)).await;
    eventually("the node reaches Redis", || node.hub.metrics().backplane_up == 1).await;
    node
}

/// What a tab was told of who is on a key, and every join and leave it was told.
#[derive(Default)]
struct View {
    present: Vec<Value>,
    joins: HashMap<String, usize>,
    leaves: HashMap<String, usize>,
}

impl View {
    fn apply(&mut self, change: PresenceChange) {
        match change {
            PresenceChange::Present(list) => self.present = list,
            PresenceChange::Join(who) => {
                *self.joins.entry(who.to_string()).or_default() += 1;
                self.present.push(who);
            }
            PresenceChange::Leave(who) => {
                *self.leaves.entry(who.to_string()).or_default() += 1;
                if let Some(at) = self.present.iter().position(|p| *p == who) {
                    self.present.remove(at);
                }
            }
            _ => {}
        }
    }

    fn sorted(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .present
            .iter()
            .map(|p| p.as_str().unwrap_or("").to_owned())
            .collect();
        names.sort();
        names
    }
}

/// Reads `tab`'s presence frames into `view` until it shows exactly `users`; panics after 5 s
/// (the guard of `Tab::next`).
async fn until_shows(tab: &mut Tab, view: &mut View, users: &[&str]) {
    let mut wanted: Vec<String> = users.iter().map(|u| format!("{u} (shown)")).collect();
    wanted.sort();
    while view.sorted() != wanted {
        view.apply(tab.next_presence().await);
    }
}

/// Notifies `key` through `node` and asserts each tab's next frame is that notification:
/// no presence frame came first.
async fn nothing_else(node: &TestServer, key: &str, tabs: &mut [&mut Tab]) {
    node.hub
        .notify::<Lobby>(&key.to_owned(), &"marker".to_owned(), Exclude::Nobody)
        .await
        .unwrap();
    for tab in tabs {
        assert_eq!(
            tab.next_text().await,
            "marker",
            "{:?} got something else first",
            tab.user
        );
    }
}

async fn enter(node: &TestServer, user: &str) -> Tab {
    let tab = node.tab(Some(user)).await;
    node.lobby(&tab, "t/listen_lobby", "hall").await;
    tab
}

#[tokio::test]
async fn everyone_sees_everyone_on_every_node_and_a_moving_tab_makes_nobody_leave() {
    let redis = RedisServer::start().await;
    let nodes = [
        node(&redis.url()).await,
        node(&redis.url()).await,
        node(&redis.url()).await,
    ];
    let mut views: Vec<View> = (0..3).map(|_| View::default()).collect();
    let mut ann = enter(&nodes[0], "ann").await;
    let mut bob = enter(&nodes[1], "bob").await;
    let mut cy = enter(&nodes[2], "cy").await;
    until_shows(&mut ann, &mut views[0], &["ann", "bob", "cy"]).await;
    until_shows(&mut bob, &mut views[1], &["ann", "bob", "cy"]).await;
    until_shows(&mut cy, &mut views[2], &["ann", "bob", "cy"]).await;
    for view in &views {
        assert!(
            view.leaves.is_empty() && view.joins.values().all(|n| *n == 1),
            "once each"
        );
    }

    // Counts and pages cover every node.
    for node in &nodes {
        let count = node.hub.presence::<Lobby>(&"hall".to_owned()).await.unwrap();
        assert_eq!((count.tabs, count.identities), (3, 3));
    }
    let first = nodes[1]
        .hub
        .present::<Lobby>(&"hall".to_owned(), None, 2)
        .await
        .unwrap();
    let rest = nodes[1]
        .hub
        .present::<Lobby>(&"hall".to_owned(), first.next.as_ref(), 2)
        .await
        .unwrap();
    let all: Vec<_> = first.identities.into_iter().chain(rest.identities).collect();
    assert_eq!(all, ["ann", "bob", "cy"].map(|u| Some(u.to_owned())));
    assert!(rest.next.is_none());

    // Bob's tab moves from node 1 to node 2 (a reconnect through the balancer): nobody sees
    // him leave or join again.
    let remembered = bob.clone_for_resume();
    bob.close();
    let mut bob = nodes[2].resume(&remembered).await.expect("moves");
    assert!(bob.recovered);
    assert_eq!(bob.node, nodes[2].hub.node());
    nothing_else(&nodes[0], "hall", &mut [&mut ann, &mut bob, &mut cy]).await;
    let count = nodes[0].hub.presence::<Lobby>(&"hall".to_owned()).await.unwrap();
    assert_eq!((count.tabs, count.identities), (3, 3));

    // Bob unlistens on his new node: he leaves everywhere, once.
    nodes[0].lobby(&bob, "t/unlisten_lobby", "hall").await;
    until_shows(&mut ann, &mut views[0], &["ann", "cy"]).await;
    until_shows(&mut cy, &mut views[2], &["ann", "cy"]).await;
    assert_eq!(views[0].leaves.get("\"bob (shown)\""), Some(&1));
    nothing_else(&nodes[1], "hall", &mut [&mut ann, &mut cy]).await;
}

#[tokio::test]
async fn a_node_that_falls_silent_has_its_identities_leave_everywhere_within_the_bound() {
    let redis = RedisServer::start().await;
    let relay = Relay::start(redis.port).await;
    let nodes = [
        node(&redis.url()).await,
        node(&redis.url()).await,
        node(&relay.url()).await,
    ];
    let mut ann = enter(&nodes[0], "ann").await;
    let mut bob = enter(&nodes[1], "bob").await;
    let _dee = enter(&nodes[2], "dee").await;
    let (mut ann_view, mut bob_view) = (View::default(), View::default());
    until_shows(&mut ann, &mut ann_view, &["ann", "bob", "dee"]).await;
    until_shows(&mut bob, &mut bob_view, &["ann", "bob", "dee"]).await;

    // Node 2 is cut off from everyone, as if killed: dee leaves once the timeout passes.
    relay.cut();
    let cut = std::time::Instant::now();
    until_shows(&mut ann, &mut ann_view, &["ann", "bob"]).await;
    until_shows(&mut bob, &mut bob_view, &["ann", "bob"]).await;
    let took = cut.elapsed();
    assert!(
        took >= Duration::from_millis(800) && took < Duration::from_millis(2500),
        "dee left after {took:?}, not within node_timeout (1 s) and a heartbeat"
    );
    // The counts leave the silent node out rather than fail.
    let count = nodes[0].hub.presence::<Lobby>(&"hall".to_owned()).await.unwrap();
    assert_eq!((count.tabs, count.identities), (2, 2));
    nothing_else(&nodes[0], "hall", &mut [&mut ann, &mut bob]).await;
}

#[tokio::test]
async fn after_redis_restarts_the_lists_converge_again() {
    let mut redis = RedisServer::start().await;
    let nodes = [
        node(&redis.url()).await,
        node(&redis.url()).await,
        node(&redis.url()).await,
    ];
    let mut tabs = [
        enter(&nodes[0], "ann").await,
        enter(&nodes[1], "bob").await,
        enter(&nodes[2], "cy").await,
    ];
    for tab in &mut tabs {
        until_shows(tab, &mut View::default(), &["ann", "bob", "cy"]).await;
    }

    redis.restart().await;
    for node in &nodes {
        eventually("the node is back on Redis", || {
            node.hub.metrics().backplane_up == 1
        })
        .await;
    }
    // Every tab with listens was reset (it may have missed frames): browsers open new tabs and
    // listen again, and every list comes back whole.
    for tab in &mut tabs {
        let bye = tab.next().await;
        assert_eq!(bye.event, "bye", "{bye:?}");
    }
    let mut again = [
        enter(&nodes[0], "ann").await,
        enter(&nodes[1], "bob").await,
        enter(&nodes[2], "cy").await,
    ];
    for tab in &mut again {
        until_shows(tab, &mut View::default(), &["ann", "bob", "cy"]).await;
    }
    for node in &nodes {
        let count = node.hub.presence::<Lobby>(&"hall".to_owned()).await.unwrap();
        assert_eq!((count.tabs, count.identities), (3, 3));
    }
}

//! Any node takes any call: three hubs over a real `redis-server`, a tab held by one of them,
//! and calls and reconnects arriving at the others, as a round-robin load balancer sends them.
mod common;

use std::{collections::HashMap, sync::Arc, time::Duration};

use common::{eventually, RedisServer, Tab, TestServer};
use notif::{
    backplane::{Backplane, RedisBackplane},
    Config,
};

fn config() -> Config {
    {
        let mut config = Config::default();
        config.resume_window = Duration::from_secs(10);
        config
    }
}

async fn nodes(redis: &RedisServer, config: Config) -> Vec<TestServer> {
    let mut nodes = Vec::new();
    for _ in 0..3 {
        let backplane: Arc<dyn Backplane> = Arc::new(RedisBackplane::new(&redis.url()).unwrap());
        let node = TestServer::node(config.clone(), Some(backplane)).await;
        eventually("the node reaches Redis", || node.hub.metrics().backplane_up == 1).await;
        nodes.push(node);
    }
    nodes
}

/// `tab`, listening on `key`, through `node` (which need not hold it).
async fn listen_via(node: &TestServer, tab: &Tab, key: &str) -> (u16, String) {
    node.call(tab, "t/listen_chat", &[("key", key)]).await
}

#[tokio::test]
async fn a_listen_or_unlisten_through_a_node_that_does_not_hold_the_tab_is_carried_out_where_it_is() {
    let redis = RedisServer::start().await;
    let nodes = nodes(&redis, config()).await;
    let mut ann = nodes[0].tab(Some("ann")).await;
    assert_eq!(ann.node, nodes[0].hub.node(), "the hello names the node");

    let (status, body) = listen_via(&nodes[1], &ann, "k").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(nodes[0].hub.metrics().listens, 1, "registered where the tab is");
    assert_eq!(nodes[1].hub.metrics().listens, 0);
    assert_eq!(nodes[1].hub.metrics().calls_forwarded, 1);
    nodes[2].notify_chat("k", "from node 2").await;
    assert_eq!(ann.next_text().await, "from node 2");

    // The caller is known through any node: a post through node 2 leaves ann's tab out.
    let bob = nodes[1].tab(Some("bob")).await;
    let mut bob = bob;
    assert_eq!(listen_via(&nodes[2], &bob, "k").await.0, 200);
    let (status, _) = nodes[2]
        .call(&ann, "t/post_chat", &[("key", "k"), ("text", "by ann")])
        .await;
    assert_eq!(status, 200);
    assert_eq!(bob.next_text().await, "by ann");
    nodes[0].notify_chat("k", "to both").await;
    assert_eq!(ann.next_text().await, "to both", "ann did not get her own post");
    assert_eq!(bob.next_text().await, "to both");

    let (status, body) = nodes[2].call(&ann, "t/unlisten_chat", &[("key", "k")]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(nodes[0].hub.metrics().listens, 0, "unlistened where the tab is");
    nodes[1].notify_chat("k", "after").await;
    assert_eq!(bob.next_text().await, "after");
    ann.close();
}

#[tokio::test]
async fn refusals_from_the_node_holding_the_tab_come_back_as_they_would_there_and_change_nothing() {
    let redis = RedisServer::start().await;
    let nodes = nodes(&redis, {
        let mut config = config();
        config.max_listens_per_tab = 1;
        config
    })
    .await;
    let ann = nodes[0].tab(Some("ann")).await;
    assert_eq!(listen_via(&nodes[1], &ann, "k").await.0, 200);
    let before = nodes[0].hub.metrics();

    // Another session naming ann's tab: 403.
    let (status, body) = nodes[1]
        .call_naming(
            Some("eve"),
            Some(&ann.id),
            ann.node.as_deref(),
            "t/listen_chat",
            &[("key", "x")],
        )
        .await;
    assert_eq!(status, 403, "{body}");
    // Past the tab's cap: 429.
    let (status, body) = listen_via(&nodes[2], &ann, "second").await;
    assert_eq!(status, 429, "{body}");
    // A tab the named node does not know: 410.
    let (status, body) = nodes[1]
        .call_naming(
            Some("ann"),
            Some("0123456789abcdef0123456789abcdef"),
            ann.node.as_deref(),
            "t/listen_chat",
            &[("key", "k")],
        )
        .await;
    assert_eq!(status, 410, "{body}");
    // A node that does not exist: 503 once the call times out, not a hang.
    let started = std::time::Instant::now();
    let (status, body) = nodes[1]
        .call_naming(
            Some("ann"),
            Some(&ann.id),
            Some("0000000000000001"),
            "t/listen_chat",
            &[("key", "k")],
        )
        .await;
    assert_eq!(status, 503, "{body}");
    assert!(started.elapsed() < Duration::from_secs(4));
    // Eve cannot leave ann's tab out through another node either.
    let (status, _) = nodes[2]
        .call_naming(
            Some("eve"),
            Some(&ann.id),
            ann.node.as_deref(),
            "t/post_chat",
            &[("key", "k"), ("text", "spoof")],
        )
        .await;
    assert_eq!(status, 200);

    let after = nodes[0].hub.metrics();
    assert_eq!(
        (after.tabs, after.listens, after.keys),
        (before.tabs, before.listens, before.keys)
    );
    let mut ann = ann;
    assert_eq!(
        ann.next_text().await,
        "spoof",
        "eve's post reached ann: not excluded"
    );
}

/// Reads `n` notifications and returns their texts.
async fn texts(tab: &mut Tab, n: usize) -> Vec<String> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(tab.next_text().await);
    }
    out
}

#[tokio::test]
async fn a_tab_moves_to_the_node_it_reconnects_to_with_what_it_missed_exactly_once() {
    let redis = RedisServer::start().await;
    let nodes = nodes(&redis, config()).await;
    let mut ann = nodes[0].tab(Some("ann")).await;
    assert_eq!(listen_via(&nodes[2], &ann, "k").await.0, 200);
    nodes[1].notify_chat("k", "1").await;
    assert_eq!(ann.next_text().await, "1");
    let (tab_id, old) = (ann.id.clone(), ann.clone_for_resume());
    ann.close();
    eventually("node 0 sees the stream close", || {
        nodes[0].hub.metrics().connected == 0
    })
    .await;
    for (i, node) in nodes.iter().enumerate() {
        node.notify_chat("k", &format!("missed {i}")).await;
    }
    eventually("node 0 has them all", || {
        nodes[0].hub.metrics().replay_frames >= 4
    })
    .await;

    let mut moved = nodes[1].resume(&old).await.expect("the move is accepted");
    assert!(moved.recovered, "recovered: true");
    assert_eq!(moved.id, tab_id, "the same tab");
    assert_eq!(moved.node, nodes[1].hub.node(), "now held by node 1");
    assert_eq!(texts(&mut moved, 3).await, ["missed 0", "missed 1", "missed 2"]);
    assert_eq!(nodes[0].hub.metrics().tabs, 0, "node 0 forgot it");
    assert_eq!(nodes[1].hub.metrics().tabs_moved_in, 1);
    assert_eq!(nodes[1].hub.metrics().listens, 1, "its listen came along");

    nodes[0].notify_chat("k", "after").await;
    assert_eq!(moved.next_text().await, "after");
    // A call still naming node 0 follows the tab.
    let stale = Tab::naming(&moved, nodes[0].hub.node());
    let (status, body) = nodes[2].call(&stale, "t/unlisten_chat", &[("key", "k")]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(nodes[1].hub.metrics().listens, 0);
}

#[tokio::test]
async fn a_move_by_another_identity_is_refused_and_the_tab_stays() {
    let redis = RedisServer::start().await;
    let nodes = nodes(&redis, config()).await;
    let mut ann = nodes[0].tab(Some("ann")).await;
    assert_eq!(listen_via(&nodes[0], &ann, "k").await.0, 200);
    let (status, body) = nodes[1]
        .reconnect_from(Some("eve"), Some(&format!("{}.0", ann.id)), ann.node.as_deref())
        .await
        .err()
        .expect("refused");
    assert_eq!(status, 403, "{body}");
    assert_eq!(nodes[1].hub.metrics().tabs, 0, "nothing kept on node 1");
    assert_eq!(nodes[0].hub.metrics().tabs, 1);
    nodes[2].notify_chat("k", "still here").await;
    assert_eq!(ann.next_text().await, "still here");
}

#[tokio::test]
async fn a_tab_whose_node_is_gone_or_unreachable_starts_over_promptly() {
    let mut redis = RedisServer::start().await;
    let nodes = nodes(&redis, config()).await;
    let ann = nodes[0].tab(Some("ann")).await;
    // A node that answers nothing (killed): recovered false once the call times out.
    let started = std::time::Instant::now();
    let tab = nodes[1]
        .reconnect_from(
            Some("ann"),
            Some(&format!("{}.0", ann.id)),
            Some("0000000000000001"),
        )
        .await
        .unwrap();
    assert!(!tab.recovered);
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    // Redis hung (it takes no publish for 4 s): the move gives up within its call's 2 s.
    let bob = nodes[0].tab(Some("bob")).await;
    redis.pause_writes(Duration::from_secs(4)).await;
    let started = std::time::Instant::now();
    let tab = nodes[2].resume(&bob).await.unwrap();
    assert!(!tab.recovered);
    assert!(
        started.elapsed() < Duration::from_millis(3500),
        "{:?}",
        started.elapsed()
    );
    // Redis stopped: the move fails at once, it does not hang.
    redis.kill();
    eventually("node 1 sees Redis gone", || {
        nodes[1].hub.metrics().backplane_up == 0
    })
    .await;
    let started = std::time::Instant::now();
    let tab = nodes[1].resume(&ann).await.unwrap();
    assert!(!tab.recovered);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_draining_node_keeps_its_tabs_for_the_nodes_they_move_to() {
    let redis = RedisServer::start().await;
    let nodes = nodes(&redis, {
        let mut config = config();
        config.drain = Duration::from_secs(8);
        config
    })
    .await;
    let mut ann = nodes[0].tab(Some("ann")).await;
    assert_eq!(listen_via(&nodes[0], &ann, "k").await.0, 200);
    let draining = nodes[0].shut_down();
    let drained = async {
        draining.await;
        std::time::Instant::now()
    };
    let moved = async {
        let bye = ann.next().await;
        assert_eq!(bye.event, "bye");
        assert!(bye.data.contains("shutdown"), "{}", bye.data);
        // Sent while the tab is between nodes.
        nodes[2].notify_chat("k", "during").await;
        let mut moved = nodes[1].resume(&ann).await.expect("moved");
        assert!(moved.recovered);
        assert_eq!(moved.next_text().await, "during");
        nodes[2].notify_chat("k", "after").await;
        assert_eq!(moved.next_text().await, "after");
        std::time::Instant::now()
    };
    let (drained_at, moved_at) = tokio::join!(drained, moved);
    assert!(
        drained_at >= moved_at && drained_at - moved_at < Duration::from_secs(2),
        "node 0 exits once its last tab moved, not at the end of the drain period"
    );
}

/// Three publishers, one per node, number their notifications; a tab moves from node to node
/// while they flow. It gets every one exactly once, in order per publisher.
#[tokio::test]
async fn a_tab_moving_while_notifications_flow_gets_each_exactly_once_in_order() {
    let redis = RedisServer::start().await;
    let nodes = Arc::new(nodes(&redis, config()).await);
    let mut tab = nodes[0].tab(Some("ann")).await;
    assert_eq!(listen_via(&nodes[1], &tab, "k").await.0, 200);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let publishers: Vec<_> = (0..3)
        .map(|origin| {
            let (nodes, stop) = (nodes.clone(), stop.clone());
            tokio::spawn(async move {
                let mut n = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    n += 1;
                    nodes[origin].notify_chat("k", &format!("{origin}:{n}")).await;
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                n
            })
        })
        .collect();
    let mut seen: HashMap<u64, u64> = HashMap::new();
    let record = |seen: &mut HashMap<u64, u64>, text: String| {
        let (origin, n) = text.split_once(':').unwrap();
        let (origin, n): (u64, u64) = (origin.parse().unwrap(), n.parse().unwrap());
        let last = seen.entry(origin).or_default();
        assert_eq!(n, *last + 1, "origin {origin}: {n} after {last}");
        *last = n;
    };
    for hop in 1..=6 {
        for _ in 0..20 {
            record(&mut seen, tab.next_text().await);
        }
        let old = tab.clone_for_resume();
        tab.close();
        tokio::time::sleep(Duration::from_millis(20)).await;
        tab = nodes[hop % 3].resume(&old).await.expect("moved");
        assert!(tab.recovered, "hop {hop}");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut sent = HashMap::new();
    for (origin, publisher) in publishers.into_iter().enumerate() {
        sent.insert(origin as u64, publisher.await.unwrap());
    }
    while seen.iter().any(|(origin, n)| *n < sent[origin]) || seen.len() < 3 {
        record(&mut seen, tab.next_text().await);
    }
    assert_eq!(seen, sent, "every notification of every origin, once");
    let moved: u64 = nodes.iter().map(|n| n.hub.metrics().tabs_moved_in).sum();
    assert_eq!(moved, 6);
}

/// Redis delivers at most once. A message lost between nodes (as a failover or a proxy in
/// between can lose one) is noticed by the next message of the same node on that channel, whose
/// header names the one before it: the tabs on its key start over (`bye` `resync`), never a
/// silent gap. Here the messages come from a node the test plays, straight through Redis.
#[tokio::test]
async fn a_message_lost_between_nodes_is_noticed_and_its_key_s_tabs_start_over() {
    let redis = RedisServer::start().await;
    let nodes = nodes(&redis, config()).await;
    let mut ann = nodes[0].tab(Some("ann")).await;
    let mut bob = nodes[0].tab(Some("bob")).await;
    assert_eq!(listen_via(&nodes[0], &ann, "k").await.0, 200);
    assert_eq!(listen_via(&nodes[0], &bob, "other").await.0, 200);
    let client = redis::Client::open(redis.url()).unwrap();
    let mut publisher = client.get_multiplexed_async_connection().await.unwrap();
    let channel = "notif:k:chat\0\"k\"";
    let message = |seq: u64, prev: u64, text: &str| {
        let body = serde_json::json!({
            "op": "notify", "topic": "chat", "key": "\"k\"",
            "event": serde_json::to_string(text).unwrap(), "exclude": "Nobody",
        });
        format!("00000000000000aa {seq} {prev} {body}")
    };
    for (seq, prev, text) in [(1, 0, "one"), (2, 1, "two"), (4, 3, "four")] {
        let _: () = redis::cmd("PUBLISH")
            .arg(channel)
            .arg(message(seq, prev, text))
            .query_async(&mut publisher)
            .await
            .unwrap();
    }
    assert_eq!(ann.next_text().await, "one");
    assert_eq!(ann.next_text().await, "two");
    let bye = ann.next().await;
    assert_eq!(
        (bye.event.as_str(), bye.data.contains("resync")),
        ("bye", true),
        "{bye:?}"
    );
    assert!(ann.ended().await);
    assert_eq!(nodes[0].hub.metrics().backplane_gaps, 1);
    // Only the key that missed something: bob's tab on another key goes on.
    nodes[1].notify_chat("other", "still").await;
    assert_eq!(bob.next_text().await, "still");
}

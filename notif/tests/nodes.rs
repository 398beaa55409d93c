//! Several nodes: the same scenarios over the in-process backplane (fast) and over a real
//! `redis-server` that the test starts itself.
mod common;

use std::{sync::Arc, time::Duration};

use common::{eventually, Chat, Greeting, GreetingEvent, RedisServer, TestServer, Viewer};
use notif::{
    backplane::{Backplane, MemoryBackplane, RedisBackplane},
    Config, Exclude, TabId, Topic,
};
use tokio::sync::{Notify, Semaphore};

fn config() -> Config {
    {
        let mut config = Config::default();
        config.resume_window = Duration::ZERO;
        config.unsubscribe_after = Duration::from_millis(100);
        config
    }
}

async fn memory_nodes(n: usize) -> Vec<TestServer> {
    let bus = MemoryBackplane::new();
    let mut nodes = Vec::new();
    for _ in 0..n {
        nodes.push(TestServer::node(config(), Some(bus.node())).await);
    }
    nodes
}

async fn redis_nodes(redis: &RedisServer, n: usize) -> Vec<TestServer> {
    let mut nodes = Vec::new();
    for _ in 0..n {
        let backplane = RedisBackplane::new(&redis.url()).unwrap();
        nodes.push(redis_node(config(), backplane).await);
    }
    nodes
}

async fn redis_node(config: Config, backplane: RedisBackplane) -> TestServer {
    let node = TestServer::node(config, Some(Arc::new(backplane) as Arc<dyn Backplane>)).await;
    eventually("the node reaches Redis", || node.hub.metrics().backplane_up == 1).await;
    node
}

/// A notify on one node reaches listeners on every node, once each.
async fn delivery_across_nodes(nodes: &[TestServer]) {
    let mut tabs = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        let tab = node.tab(Some(&format!("user{i}"))).await;
        node.listen_chat(&tab, "k").await;
        tabs.push(tab);
    }
    // Order holds for the notifications of one node (not between nodes).
    for text in ["1", "2", "3"] {
        nodes[0].notify_chat("k", text).await;
    }
    for tab in &mut tabs {
        for text in ["1", "2", "3"] {
            assert_eq!(tab.next_text().await, text, "once each, in order");
        }
    }
    nodes[nodes.len() - 1]
        .notify_chat("k", "from the last node")
        .await;
    for tab in &mut tabs {
        assert_eq!(tab.next_text().await, "from the last node");
    }
}

/// `prepare` runs where the listener lives; exclusions and sign-out cross nodes.
async fn prepare_exclusion_and_sign_out_across_nodes(nodes: &[TestServer]) {
    let (a, b) = (&nodes[0], &nodes[1]);
    let mut alice_a = a.tab(Some("alice")).await;
    let mut alice_b = b.tab(Some("alice")).await;
    let mut bob_b = b.tab(Some("bob")).await;
    let mut carol_a = a.tab(Some("carol")).await;
    for (node, tab) in [(a, &alice_a), (b, &alice_b), (b, &bob_b), (a, &carol_a)] {
        let (status, body) = node.call(tab, "t/listen_greeting", &[("key", "g")]).await;
        assert_eq!(status, 200, "{body}");
        node.listen_chat(tab, "k").await;
    }
    b.hub
        .notify::<Greeting>(
            &"g".into(),
            &GreetingEvent {
                nonce: "nodes".into(),
            },
            Exclude::Nobody,
        )
        .await
        .unwrap();
    a.hub
        .notify::<Chat>(
            &"k".into(),
            &"not alice".into(),
            Exclude::Identity(Some("alice".into())),
        )
        .await
        .unwrap();
    assert_eq!(alice_a.next_text().await, "hi alice");
    assert_eq!(alice_b.next_text().await, "hi alice");
    assert_eq!(bob_b.next_text().await, "hello bob");
    assert_eq!(bob_b.next_text().await, "not alice");
    assert_eq!(
        carol_a.next_text().await,
        "not alice",
        "carol's prepare gave nothing"
    );

    // Unlistening alice from "k" on node a unlistens her tab on node b too.
    let listens_on_b = b.hub.metrics().listens;
    a.hub
        .unlisten_identity::<Chat>(&Some("alice".into()), &"k".into())
        .unwrap();
    eventually("node b applied the unlisten", || {
        b.hub.metrics().listens == listens_on_b - 1
    })
    .await;
    b.notify_chat("k", "alice unlistened").await;
    assert_eq!(bob_b.next_text().await, "alice unlistened");
    assert_eq!(carol_a.next_text().await, "alice unlistened");

    // Alice signs out on node a: her tab on node b ends too (its next frame is the bye: it
    // never got "alice unlistened").
    a.hub.disconnect_identity(&Some("alice".into()));
    for tab in [&mut alice_a, &mut alice_b] {
        assert_eq!(tab.next().await.event, "bye");
        assert!(tab.ended().await);
    }
    b.notify_chat("k", "after").await;
    assert_eq!(bob_b.next_text().await, "after");
    assert_eq!(carol_a.next_text().await, "after");
    eventually("alice's tabs are gone on both nodes", || {
        a.hub.metrics().identities == 1 && b.hub.metrics().identities == 1
    })
    .await;
}

/// A node receives only keys it has listeners for.
async fn subscriptions_follow_local_listeners(nodes: &[TestServer]) {
    let (a, b) = (&nodes[0], &nodes[1]);
    // A control message reaches every node: once it is counted, everything published before
    // it was. Returns b's count of messages from other nodes, barrier included.
    let barrier = || async move {
        let before = b.hub.metrics().backplane_received;
        a.hub.disconnect_identity(&Some("nobody".into()));
        eventually("the barrier arrives", || {
            b.hub.metrics().backplane_received > before
        })
        .await;
        (before, b.hub.metrics().backplane_received)
    };
    barrier().await;
    a.notify_chat("only-a", "x").await;
    let (before, after) = barrier().await;
    assert_eq!(
        after,
        before + 1,
        "b has no listener for the key: only the barrier came"
    );
    let mut tab = b.tab(Some("bob")).await;
    b.listen_chat(&tab, "only-a").await;
    a.notify_chat("only-a", "now").await;
    assert_eq!(tab.next_text().await, "now");
    let (status, _) = b.call(&tab, "t/unlisten_chat", &[("key", "only-a")]).await;
    assert_eq!(status, 200);
    // Subscribed a little longer (`unsubscribe_after`), then not.
    tokio::time::sleep(Duration::from_millis(300)).await;
    barrier().await;
    a.notify_chat("only-a", "gone").await;
    let (before, after) = barrier().await;
    assert_eq!(after, before + 1, "unsubscribed with the last listener");
}

#[tokio::test]
async fn memory_delivery_across_three_nodes() {
    delivery_across_nodes(&memory_nodes(3).await).await;
}

#[tokio::test]
async fn memory_prepare_exclusion_and_sign_out() {
    prepare_exclusion_and_sign_out_across_nodes(&memory_nodes(2).await).await;
}

#[tokio::test]
async fn memory_subscriptions_follow_local_listeners() {
    subscriptions_follow_local_listeners(&memory_nodes(2).await).await;
}

#[tokio::test]
async fn redis_delivery_across_two_and_three_nodes() {
    let redis = RedisServer::start().await;
    delivery_across_nodes(&redis_nodes(&redis, 2).await).await;
    delivery_across_nodes(&redis_nodes(&redis, 3).await).await;
}

#[tokio::test]
async fn redis_prepare_exclusion_and_sign_out() {
    let redis = RedisServer::start().await;
    prepare_exclusion_and_sign_out_across_nodes(&redis_nodes(&redis, 2).await).await;
}

#[tokio::test]
async fn redis_subscriptions_follow_local_listeners() {
    let redis = RedisServer::start().await;
    subscriptions_follow_local_listeners(&redis_nodes(&redis, 2).await).await;
}

#[tokio::test]
async fn redis_outage_local_delivery_goes_on_then_nodes_reconnect_and_reset_tabs() {
    let mut redis = RedisServer::start().await;
    let nodes = redis_nodes(&redis, 2).await;
    let (a, b) = (&nodes[0], &nodes[1]);
    let mut alice = a.tab(Some("alice")).await;
    let mut bob = b.tab(Some("bob")).await;
    a.listen_chat(&alice, "k").await;
    a.listen_chat(&alice, "alone").await;
    b.listen_chat(&bob, "k").await;
    a.notify_chat("k", "before").await;
    assert_eq!(alice.next_text().await, "before");
    assert_eq!(bob.next_text().await, "before");

    redis.kill();
    eventually("both nodes see Redis down", || {
        a.hub.metrics().backplane_up == 0 && b.hub.metrics().backplane_up == 0
    })
    .await;
    assert!(a.hub.metrics().backplane_outages >= 1);
    // On a key nobody on node B listens on: what node A dropped concerns no tab there, so the
    // tabs below are reset once each (by their own node), whenever A's notice of it arrives.
    assert_eq!(
        a.notify_chat("alone", "local only").await,
        1,
        "local delivery goes on"
    );
    assert_eq!(alice.next_text().await, "local only");

    redis.restart().await;
    eventually("both nodes reconnect by themselves", || {
        a.hub.metrics().backplane_up == 1 && b.hub.metrics().backplane_up == 1
    })
    .await;
    // Tabs that may have missed cross-node messages are told to start over.
    for tab in [&mut alice, &mut bob] {
        let bye = tab.next().await;
        assert_eq!(bye.event, "bye");
        assert!(bye.data.contains("resync"), "{}", bye.data);
    }
    let mut alice = a.tab(Some("alice")).await;
    let mut bob = b.tab(Some("bob")).await;
    a.listen_chat(&alice, "k").await;
    b.listen_chat(&bob, "k").await;
    b.notify_chat("k", "after").await;
    assert_eq!(alice.next_text().await, "after", "cross-node delivery is back");
    assert_eq!(bob.next_text().await, "after");
}

/// Notifications published back to back (many within one round trip to Redis) all cross, in
/// the order they were made.
#[tokio::test]
async fn redis_notifications_published_back_to_back_cross_in_order() {
    let redis = RedisServer::start().await;
    let roomy = {
        let mut config = config();
        config.queue_capacity = 4096;
        config
    };
    let a = redis_node(roomy.clone(), RedisBackplane::new(&redis.url()).unwrap()).await;
    let b = redis_node(roomy, RedisBackplane::new(&redis.url()).unwrap()).await;
    let mut bob = b.tab(Some("bob")).await;
    b.listen_chat(&bob, "k").await;
    for i in 0..1000 {
        a.notify_chat("k", &i.to_string()).await;
    }
    for i in 0..1000 {
        assert_eq!(bob.next_text().await, i.to_string());
    }
}

/// A Redis that stops answering (here: writes paused) is noticed within seconds, not waited on
/// for ever: the node reports it down, then comes back by itself.
#[tokio::test]
async fn redis_that_stops_answering_publishes_is_treated_as_down() {
    let redis = RedisServer::start().await;
    let a = redis_node(config(), RedisBackplane::new(&redis.url()).unwrap()).await;
    redis.pause_writes(Duration::from_secs(4)).await;
    a.notify_chat("k", "into the void").await;
    eventually("the node gives up on a publish Redis does not answer", || {
        a.hub.metrics().backplane_outages >= 1
    })
    .await;
    eventually("and reconnects by itself", || a.hub.metrics().backplane_up == 1).await;
}

/// Publishes that Redis is slow to take do not pile up without end: past `max_unsent_bytes`
/// the node treats Redis as down (local delivery goes on) and resets its tabs once it is back;
/// and it tells the other nodes which keys it dropped notifications for, so their tabs on
/// those keys start over too, while tabs on other keys go on.
#[tokio::test]
async fn redis_too_far_behind_is_treated_as_down_and_other_nodes_are_told_what_was_lost() {
    let redis = RedisServer::start().await;
    let backplane = RedisBackplane::new(&redis.url())
        .unwrap()
        .max_unsent_bytes(16 * 1024);
    let a = redis_node(config(), backplane).await;
    let b = redis_node(config(), RedisBackplane::new(&redis.url()).unwrap()).await;
    let mut alice = a.tab(Some("alice")).await;
    let mut bob = b.tab(Some("bob")).await;
    let mut carol = b.tab(Some("carol")).await;
    a.listen_chat(&alice, "k").await;
    b.listen_chat(&bob, "k").await;
    b.listen_chat(&carol, "other").await;
    // Shorter than the time a node waits for an answer: only the bound can trip.
    redis.pause_writes(Duration::from_millis(1500)).await;
    let kilobyte = "x".repeat(1024);
    for _ in 0..64 {
        assert_eq!(a.notify_chat("k", &kilobyte).await, 1, "local delivery goes on");
    }
    eventually("the node stops queueing for Redis", || {
        a.hub.metrics().backplane_outages >= 1
    })
    .await;
    for _ in 0..64 {
        assert_eq!(alice.next_text().await, kilobyte);
    }
    let bye = alice.next().await;
    assert_eq!(
        bye.event, "bye",
        "the tab may have missed messages: it starts over"
    );
    assert!(bye.data.contains("resync"), "{}", bye.data);
    assert_eq!(a.hub.metrics().backplane_up, 1);
    // Some of the batch in flight may have reached Redis before node A gave up on it.
    let bye = loop {
        let event = bob.next().await;
        if event.event != "notif" {
            break event;
        }
        assert_eq!(event.message().as_str(), Some(kilobyte.as_str()));
    };
    assert_eq!(bye.event, "bye", "bob may have missed some: he starts over");
    assert!(bye.data.contains("resync"), "{}", bye.data);
    b.notify_chat("other", "still here").await;
    assert_eq!(carol.next_text().await, "still here", "carol's key lost nothing");
}

/// A topic whose `prepare` waits for the test: it holds a node's delivery of other nodes'
/// messages, so they pile up behind it.
struct Held;

static HELD_ENTERED: Notify = Notify::const_new();
static HELD_GATE: Semaphore = Semaphore::const_new(0);

impl Topic for Held {
    const NAME: &'static str = "held";
    type Key = String;
    type Event = String;
    type Message = String;
    type Identity = Viewer;

    async fn prepare(_viewer: &Viewer, event: &String) -> Option<String> {
        HELD_ENTERED.notify_one();
        HELD_GATE.acquire().await.ok()?.forget();
        Some(event.clone())
    }
}

/// A node that falls `backplane_backlog` messages behind the others drops what waits instead of
/// queueing without bound, and resets the tabs on those messages' keys; tabs on other keys go on.
#[tokio::test]
async fn a_node_fallen_behind_the_others_drops_their_messages_and_resets_those_tabs() {
    let bus = MemoryBackplane::new();
    let a = TestServer::node(config(), Some(bus.node())).await;
    let behind = {
        let mut config = config();
        config.backplane_backlog = 16;
        config
    };
    let b = TestServer::node(behind, Some(bus.node())).await;
    let mut bob = b.tab(Some("bob")).await;
    let mut carol = b.tab(Some("carol")).await;
    b.listen_chat(&bob, "k").await;
    b.listen_chat(&carol, "other").await;
    let carol_id: TabId = carol.id.parse().unwrap();
    b.hub
        .listen::<Held>(carol_id, &Some("carol".into()), &"h".to_string())
        .await
        .unwrap();

    a.hub
        .notify::<Held>(&"h".to_string(), &"held".to_string(), Exclude::Nobody)
        .await
        .unwrap();
    HELD_ENTERED.notified().await;
    // Node B is inside that delivery: these wait behind it, 32 > 16.
    for i in 0..32 {
        a.notify_chat("k", &i.to_string()).await;
    }
    HELD_GATE.add_permits(1);

    assert_eq!(
        carol.next_text().await,
        "held",
        "the message being delivered goes through"
    );
    let bye = bob.next().await;
    assert_eq!(bye.event, "bye", "bob's key lost messages: he starts over");
    assert!(bye.data.contains("resync"), "{}", bye.data);
    assert_eq!(b.hub.metrics().backplane_dropped, 32);
    a.notify_chat("other", "still here").await;
    assert_eq!(carol.next_text().await, "still here", "carol's keys lost nothing");
}

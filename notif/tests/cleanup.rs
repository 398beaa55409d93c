//! Nothing stays behind: after tabs leave and their window passes, every gauge is zero.
mod common;

use std::time::Duration;

use common::TestServer;
use notif::Config;

/// Polls /metrics until `done` holds; fails after 5 s. The server notices a closed connection
/// on its next heartbeat write at the latest (10 ms here), so this does not guess a delay.
async fn metrics_until(server: &TestServer, done: impl Fn(&std::collections::HashMap<String, u64>) -> bool) {
    for _ in 0..500 {
        let metrics = server.metrics().await;
        if done(&metrics) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("metrics never matched: {:?}", server.metrics().await);
}

#[tokio::test]
async fn every_counter_returns_to_zero_after_tabs_leave() {
    let server = TestServer::with_config({
        let mut config = Config::default();
        config.resume_window = Duration::ZERO;
        config.heartbeat = Duration::from_millis(10);
        config
    })
    .await;
    for cycle in 0..5 {
        let mut tabs = Vec::new();
        for i in 0..50 {
            let tab = server.tab(Some(&format!("user{}", i % 4))).await;
            server.listen_chat(&tab, "shared").await;
            server.listen_chat(&tab, &format!("own{i}")).await;
            tabs.push(tab);
        }
        let metrics = server.metrics().await;
        assert_eq!(metrics["notif_tabs"], 50, "cycle {cycle}");
        assert_eq!(metrics["notif_listens"], 100);
        assert_eq!(metrics["notif_keys"], 51);
        assert_eq!(metrics["notif_identities"], 4);
        assert_eq!(server.notify_chat("shared", "x").await, 50);
        for tab in tabs {
            tab.close();
        }
        metrics_until(&server, |m| m["notif_tabs"] == 0).await;
        let metrics = server.metrics().await;
        for gauge in [
            "notif_tabs",
            "notif_connected_tabs",
            "notif_listens",
            "notif_keys",
            "notif_identities",
        ] {
            assert_eq!(metrics[gauge], 0, "{gauge} after cycle {cycle}");
        }
    }
}

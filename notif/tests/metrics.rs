//! `/metrics`: the series the hub adds to its snapshot (per topic, the notify-to-write
//! histogram), as a scraper reads them.
mod common;

use common::TestServer;

/// Over SSE, a tab's own task hands frames to the response: one frame in 16 of a tab is timed,
/// whichever its first.
#[tokio::test]
async fn sixteen_frames_to_an_sse_tab_time_one_and_count_their_topic() {
    let server = TestServer::start().await;
    let mut tab = server.tab(Some("ann")).await;
    server.listen_chat(&tab, "k").await;
    for n in 0..16 {
        assert_eq!(server.notify_chat("k", &n.to_string()).await, 1);
        assert_eq!(tab.next_text().await, n.to_string());
    }
    let metrics = server.metrics().await;
    assert_eq!(metrics["notif_notifies_total"], 16, "the totals stay");
    assert_eq!(metrics[r#"notif_topic_notifies_total{topic="chat"}"#], 16);
    assert_eq!(metrics[r#"notif_topic_deliveries_total{topic="chat"}"#], 16);
    assert_eq!(metrics["notif_notify_to_write_seconds_count"], 1);
    assert_eq!(metrics[r#"notif_notify_to_write_seconds_bucket{le="5"}"#], 1);
}

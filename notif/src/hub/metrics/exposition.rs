//! What `/metrics` shows: a registry of prometheus-client's, encoded in the Prometheus text
//! format (version 0.0.4). The snapshot's values are read at scrape time ([`Metrics`] is the
//! registry's collector); the per-topic counters and the histogram are live metrics.
use prometheus_client::{
    collector::Collector,
    encoding::{prometheus_text, DescriptorEncoder, EncodeMetric},
    metrics::{
        counter::ConstCounter,
        gauge::ConstGauge,
        MetricType::{self, Counter, Gauge},
    },
    registry::{Registry, Unit},
};

use super::{Metrics, REFUSALS};
use crate::{Hub, Identity};

impl Metrics {
    /// Every series but the refusals: name (without a counter's `_total`, which the encoder
    /// appends), type, help, value.
    fn rows(&self) -> [(&'static str, MetricType, &'static str, u64); 22] {
        [
            (
                "notif_tabs",
                Gauge,
                "Tabs known: connected or within their resume window.",
                self.tabs,
            ),
            (
                "notif_connected_tabs",
                Gauge,
                "Tabs with an open stream.",
                self.connected,
            ),
            ("notif_listens", Gauge, "Listen pairs (tab, key).", self.listens),
            ("notif_keys", Gauge, "Keys with at least one listener.", self.keys),
            (
                "notif_identities",
                Gauge,
                "Distinct identities among known tabs.",
                self.identities,
            ),
            (
                "notif_replay_frames",
                Gauge,
                "Frames kept for resumes (over WebSocket, those not acknowledged yet).",
                self.replay_frames,
            ),
            (
                "notif_deliveries",
                Counter,
                "Frames queued to tabs.",
                self.deliveries,
            ),
            (
                "notif_drops",
                Counter,
                "Frames dropped on a full tab queue.",
                self.drops,
            ),
            ("notif_lagged", Counter, "Tabs cut off for lagging.", self.lagged),
            ("notif_notifies", Counter, "notify calls.", self.notifies),
            (
                "notif_streams_opened",
                Counter,
                "Streams opened.",
                self.streams_opened,
            ),
            (
                "notif_resumes",
                Counter,
                "Reconnects that resumed their tab.",
                self.resumes,
            ),
            (
                "notif_resets",
                Counter,
                "Reconnects that could not resume.",
                self.resets,
            ),
            (
                "notif_backplane",
                Gauge,
                "1 if this hub is one node of several.",
                self.backplane,
            ),
            (
                "notif_backplane_up",
                Gauge,
                "1 while the backplane connection works.",
                self.backplane_up,
            ),
            (
                "notif_backplane_outages",
                Counter,
                "Backplane outages.",
                self.backplane_outages,
            ),
            (
                "notif_backplane_received",
                Counter,
                "Messages from other nodes.",
                self.backplane_received,
            ),
            (
                "notif_backplane_dropped",
                Counter,
                "Messages from other nodes dropped because this node fell behind them.",
                self.backplane_dropped,
            ),
            (
                "notif_backplane_gaps",
                Counter,
                "Messages from other nodes lost on the way, detected by their numbers.",
                self.backplane_gaps,
            ),
            (
                "notif_calls_forwarded",
                Counter,
                "Calls carried to the node holding a tab.",
                self.calls_forwarded,
            ),
            (
                "notif_tabs_moved_in",
                Counter,
                "Tabs that moved here from another node.",
                self.tabs_moved_in,
            ),
            (
                "notif_tabs_moved_out",
                Counter,
                "Tabs that moved from here to another node.",
                self.tabs_moved_out,
            ),
        ]
    }

    /// This snapshot's series in the Prometheus text exposition format (version 0.0.4):
    /// what [`Hub::prometheus`] shows, without the per-topic counters and the histogram.
    pub fn to_prometheus(&self) -> String {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(*self));
        encode(&registry)
    }
}

impl Collector for Metrics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for (name, kind, help, value) in self.rows() {
            let metric = encoder.encode_descriptor(name, help, None, kind)?;
            match kind {
                Counter => ConstCounter::new(value).encode(metric)?,
                _ => ConstGauge::new(value).encode(metric)?,
            }
        }
        let mut metric = encoder.encode_descriptor(
            "notif_streams_refused",
            "Stream requests refused, by reason.",
            None,
            Counter,
        )?;
        for (reason, count) in REFUSALS.iter().zip(self.streams_refused) {
            ConstCounter::new(count).encode(metric.encode_family(&[("reason", *reason)])?)?;
        }
        Ok(())
    }
}

fn encode(registry: &Registry) -> String {
    let mut text = String::with_capacity(4096);
    // Writing to a `String` cannot fail.
    let _ = prometheus_text::encode(&mut text, registry);
    text
}

impl<I: Identity> Hub<I> {
    /// This hub's metrics in the Prometheus text exposition format (version 0.0.4), what a
    /// `/metrics` route answers: the [`Metrics`] snapshot, `notify` calls and frames queued by
    /// topic, and the histogram of the time from `notify` to the socket write (see
    /// docs/OPERATIONS.md for each series).
    pub fn prometheus(&self) -> String {
        let counters = &self.inner.counters;
        let mut registry = Registry::default();
        registry.register_collector(Box::new(self.metrics()));
        // Registered names get their `_total` and a full stop from the registry.
        registry.register(
            "notif_topic_notifies",
            "notify calls, by topic",
            counters.topics.notifies.clone(),
        );
        registry.register(
            "notif_topic_deliveries",
            "Frames queued to tabs, by topic",
            counters.topics.deliveries.clone(),
        );
        registry.register_with_unit(
            "notif_notify_to_write",
            "Time from notify to the frame written to its socket, one write in 16",
            Unit::Seconds,
            counters.latency.histogram(),
        );
        encode(&registry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Dashboards read these names: none may change.
    const SERIES: [&str; 23] = [
        "notif_tabs gauge",
        "notif_connected_tabs gauge",
        "notif_listens gauge",
        "notif_keys gauge",
        "notif_identities gauge",
        "notif_replay_frames gauge",
        "notif_deliveries_total counter",
        "notif_drops_total counter",
        "notif_lagged_total counter",
        "notif_notifies_total counter",
        "notif_streams_opened_total counter",
        "notif_resumes_total counter",
        "notif_resets_total counter",
        "notif_backplane gauge",
        "notif_backplane_up gauge",
        "notif_backplane_outages_total counter",
        "notif_backplane_received_total counter",
        "notif_backplane_dropped_total counter",
        "notif_backplane_gaps_total counter",
        "notif_calls_forwarded_total counter",
        "notif_tabs_moved_in_total counter",
        "notif_tabs_moved_out_total counter",
        "notif_streams_refused_total counter",
    ];

    #[test]
    fn prometheus_text_has_every_metric_once() {
        let text = Metrics {
            listens: 3,
            deliveries: 5,
            ..Default::default()
        }
        .to_prometheus();
        let types: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("# TYPE ")).collect();
        assert_eq!(types, SERIES);
        assert!(text.lines().any(|l| l == "notif_listens 3"));
        assert!(text.lines().any(|l| l == "notif_deliveries_total 5"));
        assert!(text
            .lines()
            .any(|l| l == r#"notif_streams_refused_total{reason="origin"} 0"#));
        assert!(text.contains("# HELP notif_tabs Tabs known: connected or within their resume window.\n"));
    }

    #[tokio::test]
    async fn a_hub_shows_its_topics_and_the_histogram_beside_the_snapshot() {
        use crate::{hub::tests::Chat, Config, Exclude};
        let hub = crate::hub::tests::hub(Config::default());
        let (client, _rx) = hub.open(None);
        hub.listen::<Chat>(client, &None, &"k".into()).await.unwrap();
        for _ in 0..2 {
            hub.notify::<Chat>(&"k".into(), &"m".into(), Exclude::Nobody)
                .await
                .unwrap();
        }
        let text = hub.prometheus();
        for line in [
            "notif_deliveries_total 2",
            r#"notif_topic_notifies_total{topic="chat"} 2"#,
            r#"notif_topic_deliveries_total{topic="chat"} 2"#,
            "# TYPE notif_notify_to_write_seconds histogram",
            r#"notif_notify_to_write_seconds_bucket{le="+Inf"} 0"#,
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in {text}");
        }
        assert_eq!(text.matches("# TYPE").count(), SERIES.len() + 3);
    }
}

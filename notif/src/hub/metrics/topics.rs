//! `notify` calls and frames queued, by topic (`Topic::NAME`): which topic is busy. Counted
//! once per notify pass, never per delivery.
use std::borrow::Cow;

use prometheus_client::metrics::{counter::Counter, family::Family};

/// `{topic="<name>"}`. Borrowed for a topic named in Rust source: no allocation per count.
pub(crate) type TopicLabel = [(&'static str, Cow<'static, str>); 1];

fn label(topic: Cow<'static, str>) -> TopicLabel {
    [("topic", topic)]
}

/// The counters; clones share them.
#[derive(Clone, Debug, Default)]
pub(crate) struct Topics {
    pub notifies: Family<TopicLabel, Counter>,
    pub deliveries: Family<TopicLabel, Counter>,
}

impl Topics {
    pub fn notified(&self, topic: &'static str) {
        self.notifies.get_or_create(&label(Cow::Borrowed(topic))).inc();
    }

    /// `queued` frames of `topic` queued to tabs (a topic named by another node is owned).
    pub fn delivered(&self, topic: Cow<'static, str>, queued: u64) {
        if queued > 0 {
            self.deliveries.get_or_create(&label(topic)).inc_by(queued);
        }
    }
}

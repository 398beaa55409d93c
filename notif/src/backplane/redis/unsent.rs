//! What a node published and Redis has not acknowledged yet.

/// Publishes not yet acknowledged by Redis: those waiting for the next round trip, and the
/// batch in flight.
pub(super) struct Unsent {
    waiting: Vec<(String, Vec<u8>)>,
    waiting_bytes: usize,
    in_flight: Vec<(String, Vec<u8>)>,
    in_flight_bytes: usize,
    max: usize,
}

impl Unsent {
    pub fn new(max: usize) -> Self {
        Unsent {
            waiting: Vec::new(),
            waiting_bytes: 0,
            in_flight: Vec::new(),
            in_flight_bytes: 0,
            max,
        }
    }

    /// Queues a publish; `false` once more than `max` bytes would be unsent.
    pub fn push(&mut self, channel: String, payload: Vec<u8>) -> bool {
        self.waiting_bytes += channel.len() + payload.len();
        self.waiting.push((channel, payload));
        self.waiting_bytes + self.in_flight_bytes <= self.max
    }

    /// Everything waiting, in order, as one pipeline, now in flight; `None` if nothing waits.
    pub fn next_batch(&mut self) -> Option<redis::Pipeline> {
        if self.waiting.is_empty() {
            return None;
        }
        self.in_flight.clear();
        std::mem::swap(&mut self.waiting, &mut self.in_flight);
        self.in_flight_bytes = std::mem::take(&mut self.waiting_bytes);
        let mut pipe = redis::pipe();
        for (channel, payload) in &self.in_flight {
            pipe.publish(channel, payload).ignore();
        }
        Some(pipe)
    }

    /// The batch in flight was answered.
    pub fn sent(&mut self) {
        self.in_flight.clear();
        self.in_flight_bytes = 0;
    }

    /// Whether Redis acknowledged everything published.
    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty() && self.in_flight.is_empty()
    }

    /// The connection failed: the channels of everything unsent (the batch in flight may or
    /// may not have reached Redis).
    pub fn abandon(self) -> impl Iterator<Item = String> {
        self.in_flight
            .into_iter()
            .chain(self.waiting)
            .map(|(channel, _)| channel)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backplane::{lost::MAX_LISTED, LostChannels};

    fn publishes(list: &[(&str, &str)]) -> Vec<u8> {
        let mut pipe = redis::pipe();
        for (channel, payload) in list {
            pipe.publish(*channel, payload.as_bytes()).ignore();
        }
        pipe.get_packed_pipeline()
    }

    #[test]
    fn publishes_made_during_a_round_trip_go_together_in_the_next_in_order() {
        let mut unsent = Unsent::new(1 << 20);
        assert!(unsent.next_batch().is_none(), "nothing to send");
        assert!(unsent.push("a".into(), b"1".to_vec()));
        let first = unsent.next_batch().unwrap();
        assert_eq!(first.get_packed_pipeline(), publishes(&[("a", "1")]));
        assert!(unsent.push("b".into(), b"2".to_vec()));
        assert!(unsent.push("a".into(), b"3".to_vec()));
        unsent.sent();
        let second = unsent.next_batch().unwrap();
        assert_eq!(second.get_packed_pipeline(), publishes(&[("b", "2"), ("a", "3")]));
        assert!(unsent.next_batch().is_none(), "each publish goes once");
    }

    #[test]
    fn the_bound_counts_what_waits_and_what_is_in_flight() {
        let mut unsent = Unsent::new(10);
        assert!(unsent.push("k".into(), vec![0; 4])); // 5 bytes
        let _in_flight = unsent.next_batch();
        assert!(unsent.push("k".into(), vec![0; 4])); // 10: at the bound
        assert!(!unsent.push("k".into(), vec![0; 1]), "12 bytes unsent > 10");
        unsent.sent();
        let mut unsent = Unsent::new(10);
        assert!(unsent.push("k".into(), vec![0; 9]));
        let _ = unsent.next_batch();
        unsent.sent();
        assert!(
            unsent.push("k".into(), vec![0; 9]),
            "an answered batch no longer counts"
        );
    }

    #[test]
    fn what_was_unsent_is_reported_lost_by_channel_then_as_any_past_the_list_limit() {
        let mut unsent = Unsent::new(1 << 20);
        unsent.push("a".into(), vec![1]);
        let _in_flight = unsent.next_batch();
        unsent.push("b".into(), vec![2]);
        unsent.push("a".into(), vec![3]);
        let mut dropped = LostChannels::default();
        assert!(dropped.take().is_none(), "nothing dropped, nothing to report");
        unsent.abandon().for_each(|channel| dropped.add(channel));
        match dropped.take() {
            Some(Some(mut channels)) => {
                channels.sort();
                assert_eq!(channels, ["a", "b"]);
            }
            other => panic!("{other:?}"),
        }
        assert!(dropped.take().is_none(), "reported once");
        for i in 0..=MAX_LISTED {
            dropped.add(i.to_string());
        }
        assert!(matches!(dropped.take(), Some(None)));
    }
}

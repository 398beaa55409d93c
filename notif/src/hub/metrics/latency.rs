//! `notif_notify_to_write_seconds`: how long a notification takes from `notify` to its tab's
//! socket, sampled so that a notify to thousands of tabs times a few of its writes, not all.
//!
//! prometheus-client's `Histogram` takes a mutex on every observation: fine a few times per
//! pass, not once per delivery. So one write in [`SAMPLE_EVERY`] is timed, spread over the
//! tabs of a pass and over passes, which keeps the distribution while the counts are about
//! 1/16 of the writes.
use prometheus_client::metrics::histogram::Histogram;

use super::Stamp;

/// One write in this many is timed.
pub(crate) const SAMPLE_EVERY: usize = 16;

/// Upper bounds of the buckets, in seconds: from a direct write on an idle server (tens of
/// microseconds) to a saturated fan-out to ten thousand tabs (seconds).
const BUCKETS: [f64; 16] = [
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// The histogram; clones share it.
#[derive(Clone, Debug)]
pub(crate) struct Latency(Histogram);

impl Default for Latency {
    fn default() -> Self {
        Latency(Histogram::new(BUCKETS))
    }
}

impl Latency {
    /// Counts a frame stamped `at` as written now.
    pub fn observe(&self, at: Stamp) {
        self.0.observe(at.age().as_secs_f64());
    }

    /// The histogram itself, for the registry.
    pub fn histogram(&self) -> Histogram {
        self.0.clone()
    }

    /// Whether the frame numbered `seq` of a tab whose id ends in `phase`, taken by the tab's
    /// own connection task, is one to time. The phase varies by tab, so tabs that got the same
    /// notifications are not all timed on the same one.
    pub fn samples(seq: u64, phase: u8) -> bool {
        seq.wrapping_add(u64::from(phase)) % SAMPLE_EVERY as u64 == 0
    }

    /// Observations so far, as `/metrics` shows them.
    #[cfg(test)]
    pub fn count(&self) -> u64 {
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register("h", "h", self.histogram());
        let mut text = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut text, &registry).unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix("h_count "))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }
}

/// Which writes of one notify pass (its wakes, in order) are timed: every
/// [`SAMPLE_EVERY`]th, starting at a place that moves from pass to pass, so a pass to fewer
/// tabs is timed now and then, and a key's first listeners are not the only ones timed.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Sampler {
    first: usize,
}

impl Sampler {
    pub fn new(at: Stamp) -> Self {
        Sampler {
            first: at.low_bits() % SAMPLE_EVERY,
        }
    }

    pub fn samples(self, index: usize) -> bool {
        index % SAMPLE_EVERY == self.first
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pass_times_one_write_in_sixteen_and_so_does_a_tab() {
        let sampler = Sampler::new(Stamp::now());
        assert_eq!((0..1600).filter(|&i| sampler.samples(i)).count(), 100);
        assert_eq!((1..=1600).filter(|&seq| Latency::samples(seq, 7)).count(), 100);
        // Tabs with other phases are timed on other frames.
        let timed = |phase| (1..=16).find(|&seq| Latency::samples(seq, phase));
        assert_ne!(timed(1), timed(2));
    }
}

//! When a notification was sent: taken once per `notify` and copied into each of its frames, so
//! the write side can tell how long a frame took to reach its socket.
use std::{
    sync::OnceLock,
    time::{Duration, Instant},
};

/// Microseconds since the process's first stamp, modulo 2³² (71 minutes). Four bytes, not an
/// `Instant`'s twelve (sixteen with padding): every queued frame carries one, and a frame in a
/// queue fits 32 bytes with it. Ages are taken with wrapping arithmetic, right for any frame
/// younger than 71 minutes; a queued frame is far younger (queues are capped, laggards cut off).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stamp(u32);

static EPOCH: OnceLock<Instant> = OnceLock::new();

fn micros() -> u32 {
    // Truncated on purpose: see the type's comment.
    EPOCH.get_or_init(Instant::now).elapsed().as_micros() as u32
}

impl Stamp {
    pub fn now() -> Self {
        Stamp(micros())
    }

    /// Time since this stamp was taken.
    pub fn age(self) -> Duration {
        self.age_at(micros())
    }

    fn age_at(self, now: u32) -> Duration {
        Duration::from_micros(u64::from(now.wrapping_sub(self.0)))
    }

    /// A number that varies from pass to pass, to spread sampling over a pass's tabs.
    pub fn low_bits(self) -> usize {
        self.0 as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_age_grows_with_time_and_survives_the_wrap() {
        let stamp = Stamp::now();
        std::thread::sleep(Duration::from_millis(2));
        assert!(stamp.age() >= Duration::from_millis(2));
        assert!(stamp.age() < Duration::from_secs(60));
        // Taken 10 µs before the counter wrapped, looked at 5 µs after.
        assert_eq!(Stamp(u32::MAX - 9).age_at(5), Duration::from_micros(15));
    }
}

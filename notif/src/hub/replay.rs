//! A tab's replay buffer: its last frames, kept so a reconnect can resume without loss.
use std::{collections::VecDeque, sync::Arc};

/// The last `cap` frames of one tab, oldest first. Frame data is shared with every other
/// recipient, so a buffered frame costs a pointer and a sequence number.
pub(crate) struct Replay {
    frames: VecDeque<(u64, Arc<str>)>,
    cap: usize,
}

impl Replay {
    pub fn new(cap: usize) -> Self {
        Replay {
            frames: VecDeque::new(),
            cap,
        }
    }

    pub fn push(&mut self, seq: u64, data: &Arc<str>) {
        if self.cap == 0 {
            return;
        }
        if self.frames.len() == self.cap {
            self.frames.pop_front();
        }
        self.frames.push_back((seq, data.clone()));
    }

    /// Every frame after `seen` up to `last` (the tab's latest sequence number), or `None` if
    /// some of them are no longer buffered (or `seen` is in the future: a forged id).
    pub fn since(&self, seen: u64, last: u64) -> Option<Vec<(u64, Arc<str>)>> {
        if seen == last {
            return Some(Vec::new());
        }
        if seen > last || self.frames.front()?.0 > seen + 1 {
            return None;
        }
        Some(
            self.frames
                .iter()
                .filter(|(seq, _)| *seq > seen)
                .cloned()
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filled(cap: usize, upto: u64) -> Replay {
        let mut replay = Replay::new(cap);
        for seq in 1..=upto {
            replay.push(seq, &Arc::from(seq.to_string()));
        }
        replay
    }

    #[test]
    fn replays_exactly_what_follows_the_last_seen_frame() {
        let replay = filled(4, 10);
        let seqs =
            |v: Option<Vec<(u64, Arc<str>)>>| v.map(|v| v.into_iter().map(|(s, _)| s).collect::<Vec<_>>());
        assert_eq!(seqs(replay.since(10, 10)), Some(vec![]));
        assert_eq!(seqs(replay.since(8, 10)), Some(vec![9, 10]));
        assert_eq!(seqs(replay.since(6, 10)), Some(vec![7, 8, 9, 10]));
        assert_eq!(seqs(replay.since(5, 10)), None, "frame 6 fell out of the buffer");
        assert_eq!(
            seqs(replay.since(11, 10)),
            None,
            "a sequence number from the future"
        );
        assert_eq!(
            seqs(filled(0, 3).since(2, 3)),
            None,
            "no buffer, no resume past a gap"
        );
        assert_eq!(seqs(filled(0, 3).since(3, 3)), Some(vec![]));
    }
}

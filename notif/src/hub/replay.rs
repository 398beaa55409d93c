//! A tab's replay buffer: its last frames, kept so a reconnect can resume without loss.
use std::{collections::VecDeque, sync::Arc};

/// The last `cap` frames of one tab, oldest first. Frame data is shared with every other
/// recipient, and a frame's sequence number is implied (a tab numbers every frame it is given,
/// one after the other, and keeps each), so a buffered frame costs one pointer: a full buffer of
/// the default 256 frames is 4 KiB, where a number stored beside each made it 6.
pub(crate) struct Replay {
    frames: VecDeque<Arc<str>>,
    cap: usize,
}

impl Replay {
    pub fn new(cap: usize) -> Self {
        Replay {
            frames: VecDeque::new(),
            cap,
        }
    }

    /// Keeps the tab's newest frame, the one just numbered.
    pub fn push(&mut self, data: &Arc<str>) {
        if self.cap == 0 {
            return;
        }
        if self.frames.len() == self.cap {
            self.frames.pop_front();
        }
        self.frames.push_back(data.clone());
    }

    /// Every frame after `seen` up to `last` (the tab's latest sequence number: the newest
    /// frame pushed), or `None` if some of them are no longer buffered (or `seen` is in the
    /// future: a forged id).
    pub fn since(&self, seen: u64, last: u64) -> Option<Vec<(u64, Arc<str>)>> {
        if seen == last {
            return Some(Vec::new());
        }
        let oldest = (last + 1).saturating_sub(self.frames.len() as u64);
        if seen > last || oldest > seen + 1 {
            return None;
        }
        let skipped = (seen + 1 - oldest) as usize;
        Some(
            (seen + 1..)
                .zip(self.frames.iter().skip(skipped))
                .map(|(seq, data)| (seq, data.clone()))
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
            replay.push(&Arc::from(seq.to_string()));
        }
        replay
    }

    #[test]
    fn a_full_buffer_of_the_default_256_frames_takes_4_kib() {
        let replay = filled(256, 300);
        assert_eq!(replay.frames.len(), 256);
        let bytes = replay.frames.capacity() * std::mem::size_of::<Arc<str>>();
        assert!(bytes <= 4096, "{bytes} bytes");
    }

    #[test]
    fn replays_exactly_what_follows_the_last_seen_frame() {
        let replay = filled(4, 10);
        // Each frame comes back with its own number (`filled` makes a frame's data its number).
        let seqs = |v: Option<Vec<(u64, Arc<str>)>>| {
            v.map(|v| {
                v.into_iter()
                    .map(|(seq, data)| {
                        assert_eq!(*data, *seq.to_string(), "frame {seq}'s data");
                        seq
                    })
                    .collect::<Vec<_>>()
            })
        };
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

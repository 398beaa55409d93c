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

    /// Forgets the frames up to `upto` (`last` is the tab's latest sequence number): the client
    /// has them, so no resume will ask for them. A WebSocket client says so by answering a ping
    /// that carries `upto`; its buffer then holds only what followed, not the last `cap` frames.
    pub fn acknowledge(&mut self, upto: u64, last: u64) {
        let oldest = self.oldest(last);
        if upto < oldest {
            return;
        }
        let known = ((upto - oldest + 1) as usize).min(self.frames.len());
        self.frames.drain(..known);
        // What a busy tab held before its acknowledgement goes back, not only its frames.
        if self.frames.is_empty() {
            self.frames = VecDeque::new();
        } else if self.frames.capacity() > 2 * self.frames.len().max(8) {
            self.frames.shrink_to(self.frames.len());
        }
    }

    /// The number of the oldest frame kept, `last` being the newest's (`last + 1` if none).
    fn oldest(&self, last: u64) -> u64 {
        (last + 1).saturating_sub(self.frames.len() as u64)
    }

    /// Whether any frame is kept.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// How many frames are kept.
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    /// Every frame after `seen` up to `last` (the tab's latest sequence number: the newest
    /// frame pushed), or `None` if some of them are no longer buffered (or `seen` is in the
    /// future: a forged id).
    pub fn since(&self, seen: u64, last: u64) -> Option<Vec<(u64, Arc<str>)>> {
        if seen == last {
            return Some(Vec::new());
        }
        let oldest = self.oldest(last);
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

    #[test]
    fn acknowledged_frames_are_forgotten_and_their_room_given_back() {
        let mut replay = filled(256, 300);
        replay.acknowledge(40, 300);
        assert_eq!(replay.frames.len(), 256, "frame 40 had already fallen out");
        replay.acknowledge(296, 300);
        assert_eq!(replay.since(296, 300).map(|v| v.len()), Some(4));
        assert_eq!(replay.since(295, 300), None, "frame 296 is forgotten");
        assert!(replay.frames.capacity() < 64, "room for 256 given back");
        replay.push(&Arc::from("301"));
        let last = replay.since(300, 301).unwrap();
        assert_eq!((last[0].0, &*last[0].1), (301, "301"), "numbering goes on");
        replay.acknowledge(1_000, 301);
        assert!(
            replay.is_empty(),
            "an acknowledgement from the future forgets all, no more"
        );
        assert_eq!(replay.frames.capacity(), 0);
        assert_eq!(replay.since(301, 301), Some(vec![]));
    }
}

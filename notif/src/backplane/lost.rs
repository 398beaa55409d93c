//! Channels whose messages were dropped: named one by one up to a limit, then "any".
use std::collections::HashSet;

/// Most channels named one by one; past it, the set says "any".
pub(crate) const MAX_LISTED: usize = 1024;

/// Channels whose messages were dropped, as a [`BackplaneEvent::Lost`](super::BackplaneEvent)
/// reports them (a node's publishes) or as a node that fell behind counts them (others').
#[derive(Default)]
pub(crate) struct LostChannels {
    channels: HashSet<String>,
    any: bool,
}

impl LostChannels {
    pub fn add(&mut self, channel: String) {
        if self.any || self.channels.contains(&channel) {
            return;
        }
        if self.channels.len() == MAX_LISTED {
            self.any = true;
            self.channels = HashSet::new();
        } else {
            self.channels.insert(channel);
        }
    }

    /// `None` if nothing was added; else the channels, or `Some(None)` for "any". Starts over
    /// empty.
    pub fn take(&mut self) -> Option<Option<Vec<String>>> {
        let LostChannels { channels, any } = std::mem::take(self);
        if any {
            return Some(None);
        }
        (!channels.is_empty()).then(|| Some(channels.into_iter().collect()))
    }
}

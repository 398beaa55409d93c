//! Tabs waiting out their resume window. Every window has the same length, so deadlines come in
//! the order tabs closed: one queue and one sweeping task per hub, instead of a task and a timer
//! per closed tab (which a crowd leaving at once would spawn by the thousand).
use std::collections::VecDeque;

use tokio::time::Instant;

use crate::ClientId;

/// A closed tab to forget at `deadline`, unless it was reattached since (its epoch moved on).
struct Due {
    deadline: Instant,
    client: ClientId,
    epoch: u64,
}

#[derive(Default)]
pub(crate) struct Expiries {
    queue: VecDeque<Due>,
    /// A sweeping task is running; it stops once the queue is empty.
    sweeping: bool,
}

impl Expiries {
    /// Queues an expiry; returns whether a sweeping task must be started.
    pub fn push(&mut self, deadline: Instant, client: ClientId, epoch: u64) -> bool {
        self.queue.push_back(Due {
            deadline,
            client,
            epoch,
        });
        !std::mem::replace(&mut self.sweeping, true)
    }

    /// The sweeping task ended without emptying the queue.
    pub fn stopped(&mut self) {
        self.sweeping = false;
    }

    /// Takes every expiry due at `now`; then the next deadline, or `None` when nothing is left
    /// (the sweeper stops).
    pub fn take_due(&mut self, now: Instant) -> (Vec<(ClientId, u64)>, Option<Instant>) {
        let mut due = Vec::new();
        while let Some(front) = self.queue.front().filter(|d| d.deadline <= now) {
            due.push((front.client, front.epoch));
            self.queue.pop_front();
        }
        let next = self.queue.front().map(|d| d.deadline);
        if next.is_none() {
            self.sweeping = false;
            // A crowd's worth of entries is not kept once they are gone.
            self.queue.shrink_to_fit();
        }
        (due, next)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn expiries_come_out_in_deadline_order_and_the_sweeper_stops_when_none_are_left() {
        let start = Instant::now();
        let at = |s| start + Duration::from_secs(s);
        let (a, b) = (ClientId::random(), ClientId::random());
        let mut expiries = Expiries::default();
        assert!(expiries.push(at(30), a, 1), "the first expiry starts a sweeper");
        assert!(!expiries.push(at(31), b, 4), "one sweeper at a time");
        assert_eq!(expiries.take_due(at(29)), (vec![], Some(at(30))));
        assert_eq!(expiries.take_due(at(30)), (vec![(a, 1)], Some(at(31))));
        assert_eq!(expiries.take_due(at(40)), (vec![(b, 4)], None));
        assert!(
            expiries.push(at(70), a, 2),
            "a new sweeper once the last one stopped"
        );
    }
}

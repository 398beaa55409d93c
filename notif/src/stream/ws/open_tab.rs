//! What the WebSocket transport does with a tab's open connection beyond reading its frames:
//! polls its queue, takes frames as the socket can take them, writes through the hub's notify
//! passes directly, and hears the client's acknowledgements.
use std::sync::Arc;

use crate::{
    hub::{queue, Outgoing},
    stream::OpenTab,
    Identity,
};

/// Most frames the transport takes from a tab's queue before writing them out: bounds the time
/// one busy tab holds its worker while others wait.
pub(super) const WRITE_BATCH: usize = 64;

impl<I: Identity> OpenTab<I> {
    /// Ready once a frame may be queued or the stream is over; [`take`](Self::take) says which.
    pub(super) fn poll_ready(&self, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        match &self.rx {
            Some(rx) => rx.poll_ready(cx),
            None => std::task::Poll::Ready(()),
        }
    }

    /// The next queued frame, `Empty`, or `Closed` once the stream is over.
    pub(super) fn take(&mut self) -> Result<Outgoing, queue::TryRecvError> {
        let frame = self.rx.as_mut().ok_or(queue::TryRecvError::Closed)?.try_recv()?;
        Ok(self.taken(frame))
    }

    /// Lets whoever queues a frame for this tab write it through `direct`, and the hub's
    /// heartbeat ping it.
    pub(super) fn set_direct(&self, direct: Arc<dyn queue::Direct<Outgoing>>) {
        if let Some(rx) = &self.rx {
            rx.set_direct(direct);
            self.slot.hub.start_heartbeat();
        }
    }

    /// The client has every frame up to `seq` (it answered a ping asking for them): the tab
    /// need not keep them for a resume.
    pub(super) fn acknowledged(&self, seq: u64) {
        self.slot.hub.acknowledged(self.tab_id, seq);
    }
}

//! The hub's side of a stream's session: a tab registered or resumed (here, or moved here),
//! the frames its client acknowledged, and what the metrics count of it.
use super::{
    metrics::{self, Counters},
    queue, Credentials, Hub, Outgoing, ResumeRefused, Resumed,
};
use crate::{Identity, StreamRefused, TabId};

impl<I: Identity> Hub<I> {
    /// Registers a new tab for `identity`, keeping `credentials` to re-validate it, and
    /// returns its id and frame queue (connection 0); refused when every tab the identity may
    /// hold is connected.
    pub(crate) fn open_tab(
        &self,
        identity: I,
        credentials: Option<Credentials>,
    ) -> Result<(TabId, queue::Receiver<Outgoing>), StreamRefused> {
        let config = &self.inner.config;
        let mut state = self.state();
        if self.is_shutting_down() {
            return Err(StreamRefused::ShuttingDown);
        }
        state.make_room(&identity, config.max_tabs_per_identity)?;
        let (tx, rx) = queue::channel(config.queue_capacity);
        let tab_id = state.open(identity, credentials, tx, config.replay_capacity);
        drop(state);
        Counters::add(&self.inner.counters.streams_opened, 1);
        self.start_revalidation();
        Ok((tab_id, rx))
    }

    /// A new tab for `identity`, for tests: no credentials, no cap reached.
    #[cfg(test)]
    pub(crate) fn open(&self, identity: I) -> (TabId, queue::Receiver<Outgoing>) {
        self.open_tab(identity, None).expect("under the cap")
    }

    /// Attaches a new connection to `tab_id`, which last saw frame `seen`, and re-validates
    /// it from now on with `credentials`. A tab another node holds (`node`, as the browser
    /// names it) moves here.
    pub(crate) async fn resume(
        &self,
        tab_id: TabId,
        node: Option<&str>,
        identity: &I,
        seen: u64,
        credentials: Option<Credentials>,
    ) -> Result<(Resumed, queue::Receiver<Outgoing>), ResumeRefused> {
        let (tx, rx) = queue::channel(self.inner.config.queue_capacity);
        let resumed = match self.holder(tab_id, node) {
            Some(node) => {
                self.move_in(tab_id, identity, seen, node, tx, credentials)
                    .await?
            }
            None => {
                let mut state = self.state();
                if self.is_shutting_down() {
                    // A new tab is refused too: the stream is.
                    return Err(ResumeRefused::Gone);
                }
                state.resume(tab_id, identity, seen, tx, credentials)?
            }
        };
        Counters::add(&self.inner.counters.streams_opened, 1);
        Counters::add(&self.inner.counters.resumes, 1);
        Ok((resumed, rx))
    }

    /// A stream request was refused.
    pub(crate) fn count_refused(&self, refused: &StreamRefused) {
        if let Some(at) = metrics::REFUSALS.iter().position(|r| *r == refused.reason()) {
            Counters::add(&self.inner.counters.refused[at], 1);
        }
    }

    /// A reconnect named a tab that could not be resumed.
    pub(crate) fn count_reset(&self) {
        Counters::add(&self.inner.counters.resets, 1);
    }

    /// `tab_id` has every frame up to `seq`: its replay buffer forgets them.
    pub(crate) fn acknowledged(&self, tab_id: TabId, seq: u64) {
        self.state().acknowledge(tab_id, seq);
    }
}

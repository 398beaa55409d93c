//! Who may open a stream beyond the hub's own checks (the app's hook), and which tab a server
//! function call comes from.
use std::sync::Arc;

use super::Hub;
use crate::{Identity, StreamDenied, StreamRefused, TabId};

pub(super) type AdmitFn<I> = dyn Fn(&I) -> Result<(), StreamDenied> + Send + Sync;

impl<I: Identity> Hub<I> {
    /// Lets `admit` refuse a stream for an identity (say, anonymous visitors), with 401 or 403
    /// and a reason. It runs on every new or resumed stream, after the origin and the caps are
    /// checked and before anything is allocated for the tab; it replaces any earlier one.
    ///
    /// An identity many people share (every anonymous visitor, when the identity is "no user")
    /// is one identity to the hub: its tabs share `Config::max_tabs_per_identity`, and any of
    /// them could resume another's tab, or listen for it, if it learnt that tab's id. Refuse
    /// such streams here, or give each visitor an identity of its own.
    ///
    /// # Examples
    ///
    /// ```
    /// use notif::{Config, Hub, StreamDenied};
    ///
    /// let hub: Hub<Option<String>> = Hub::new(Config::default(), |_parts| async { None })
    ///     .admit_streams(|user: &Option<String>| match user {
    ///         Some(_) => Ok(()),
    ///         None => Err(StreamDenied::unauthenticated("sign in to receive notifications")),
    ///     });
    /// ```
    pub fn admit_streams(
        self,
        admit: impl Fn(&I) -> Result<(), StreamDenied> + Send + Sync + 'static,
    ) -> Self {
        *self
            .inner
            .admit
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(Arc::new(admit));
        self
    }

    /// Whether the app admits a stream for `identity` (never once shutting down).
    pub(crate) fn admits(&self, identity: &I) -> Result<(), StreamRefused> {
        // Checked again under the tables' lock as the tab is registered (`open_tab`, `resume`).
        if self.is_shutting_down() {
            return Err(StreamRefused::ShuttingDown);
        }
        let admit = self
            .inner
            .admit
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone();
        match admit {
            Some(admit) => admit(identity).map_err(StreamRefused::Denied),
            None => Ok(()),
        }
    }

    /// Whether `shutdown` was called: no stream opens after it.
    pub(crate) fn is_shutting_down(&self) -> bool {
        self.inner
            .shutting_down
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The tab that sent `parts` (a server function call), if it names one (the
    /// `x-notif-client` header that [`TabClient`](crate::TabClient) sends) and that tab is known
    /// (here, or on the node the call names in `x-notif-node`) and belongs to the request's
    /// identity; `None` otherwise, so that no request can
    /// leave someone else's tab out of a notification. Use it to leave the caller out:
    ///
    /// ```
    /// # async fn post(hub: notif::Hub<Option<String>>, parts: http::request::Parts) {
    /// let exclude: notif::Exclude<Option<String>> =
    ///     hub.caller(&parts).await.map_or(notif::Exclude::Nobody, notif::Exclude::Tab);
    /// # }
    /// ```
    ///
    /// Inside a server function, [`caller`](crate::caller) does this with the request in context.
    pub async fn caller(&self, parts: &http::request::Parts) -> Option<TabId> {
        let tab_id = crate::request::caller_from(parts).ok()?;
        let identity = self.identify(parts).await;
        let owns = match self.holder(tab_id, crate::request::node_from(parts)) {
            Some(node) => self.owns_at(node, tab_id, &identity).await,
            None => self.state().owner(tab_id) == Some(&identity),
        };
        owns.then_some(tab_id)
    }
}

//! Why a listen or unlisten was refused.

/// A refused listen or unlisten. Each variant maps to an HTTP status ([`ListenError::status`]),
/// which the server function helpers set on the response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ListenError {
    /// No `Hub` in Leptos context.
    #[error("no notif::Hub in the server function's context: provide it with leptos_routes_with_context(.., move || provide_context(hub.clone()), ..)")]
    NoHub,
    /// The call carries no tab id.
    #[error("this call names no tab: declare the server function with `client = notif::TabClient` and call it from the browser")]
    NoTab,
    /// The tab id header is not a tab id.
    #[error("the x-notif-client header is not a tab id (32 lowercase hex digits)")]
    BadTabId,
    /// The tab is not known here: its stream ended and its window passed, the server
    /// restarted, or (several nodes) the call did not name the node holding the tab.
    #[error("this server does not hold this tab: its stream is gone (the browser listens again by itself once it reopens), or, with several server nodes, the call did not name the tab's node (send the hello's `node` in the x-notif-node header)")]
    UnknownTab,
    /// The tab belongs to another identity.
    #[error("this tab belongs to another session; a tab can only be used by the session that opened it")]
    ForeignTab,
    /// `Topic::authorize` refused.
    #[error("not allowed to listen on this key")]
    Unauthorized,
    /// The tab already listens on as many keys as allowed.
    #[error("this tab already listens on {cap} keys, the most allowed; unlisten keys it no longer shows")]
    TooManyListens {
        /// The configured cap.
        cap: usize,
    },
    /// The key cannot be serialised, or is too long.
    #[error("unusable key: {0}")]
    BadKey(String),
    /// The node holding the tab did not answer (it is gone, or the connection between nodes
    /// is down).
    #[error(
        "the server node holding this tab did not answer; the tab listens again once its stream reopens"
    )]
    Unreachable,
    /// The node holding the tab has not registered the topic, so it could not deliver the
    /// topic's notifications from other nodes.
    #[error("topic {0:?} is not registered on the node holding this tab: call Hub::with_topic for every topic on every node at startup")]
    UnknownTopic(String),
}

impl ListenError {
    /// The HTTP status this refusal is answered with.
    pub fn status(&self) -> u16 {
        match self {
            ListenError::NoHub | ListenError::UnknownTopic(_) => 500,
            ListenError::Unreachable => 503,
            ListenError::NoTab | ListenError::BadTabId | ListenError::BadKey(_) => 400,
            ListenError::UnknownTab => 410,
            ListenError::ForeignTab | ListenError::Unauthorized => 403,
            ListenError::TooManyListens { .. } => 429,
        }
    }
}

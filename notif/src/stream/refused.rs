//! Why a stream request is refused: answered before any frame is sent and before anything is
//! allocated for the tab.
use std::borrow::Cow;

use axum::response::{IntoResponse, Response};
use http::StatusCode;

/// A stream request refused before any frame was sent. Each variant is answered with a status
/// ([`StreamRefused::status`]) and its text as the body, and counted in
/// `notif_streams_refused_total{reason}` ([`StreamRefused::reason`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StreamRefused {
    /// `Last-Event-ID` (or `last_event_id`) is not an id this server sends.
    #[error("Last-Event-ID must be <tab>.<seq> as sent in `id:` lines; omit it to start a new stream")]
    BadLastEventId,
    /// The named tab belongs to another identity.
    #[error("this tab belongs to another session; omit Last-Event-ID to start a new stream")]
    ForeignTab,
    /// The request's `Origin` is neither the server's own nor an allowed one.
    #[error("this page's origin may not open a stream: only the server's own origin and those in NOTIF_ALLOWED_ORIGINS (Config::allowed_origins) may")]
    ForeignOrigin,
    /// `Origin: null` (a sandboxed frame, a `file:` page): nobody vouches for such a page.
    #[error("a page with a null origin (sandboxed, or opened from a file) may not open a stream")]
    NullOrigin,
    /// The request has no `Origin` and the hub requires one (`Config::require_origin`).
    #[error("this server requires an Origin header on stream requests")]
    NoOrigin,
    /// The app refused a stream for this identity ([`Hub::admit_streams`](crate::Hub::admit_streams)).
    #[error("{0}")]
    Denied(StreamDenied),
    /// Every tab this identity may hold is connected (`Config::max_tabs_per_identity`).
    #[error("this session already has {cap} tabs with open streams, the most allowed; close one and retry")]
    TooManyTabs {
        /// The configured cap.
        cap: usize,
    },
    /// The server is shutting down: try another node, or again in a moment.
    #[error("this server is shutting down; reconnect in a moment")]
    ShuttingDown,
    /// This remote address holds as many streams as allowed (`Config::max_streams_per_address`).
    #[error("{cap} streams are open from this address, the most allowed; close one and retry")]
    TooManyStreams {
        /// The configured cap.
        cap: usize,
    },
}

impl StreamRefused {
    /// The HTTP status this refusal is answered with.
    pub fn status(&self) -> u16 {
        match self {
            StreamRefused::BadLastEventId => 400,
            StreamRefused::ForeignTab
            | StreamRefused::ForeignOrigin
            | StreamRefused::NullOrigin
            | StreamRefused::NoOrigin => 403,
            StreamRefused::Denied(denied) => denied.status(),
            StreamRefused::TooManyTabs { .. } | StreamRefused::TooManyStreams { .. } => 429,
            StreamRefused::ShuttingDown => 503,
        }
    }

    /// The `reason` label this refusal is counted under in `/metrics`.
    pub fn reason(&self) -> &'static str {
        match self {
            StreamRefused::BadLastEventId => "bad_last_event_id",
            StreamRefused::ForeignTab => "foreign_tab",
            StreamRefused::ForeignOrigin | StreamRefused::NullOrigin | StreamRefused::NoOrigin => "origin",
            StreamRefused::Denied(_) => "denied",
            StreamRefused::TooManyTabs { .. } => "tabs_per_identity",
            StreamRefused::TooManyStreams { .. } => "streams_per_address",
            StreamRefused::ShuttingDown => "shutting_down",
        }
    }
}

impl IntoResponse for StreamRefused {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status()).unwrap_or(StatusCode::FORBIDDEN);
        (status, self.to_string()).into_response()
    }
}

/// The app's refusal of a stream for an identity, given by the hook set with
/// [`Hub::admit_streams`](crate::Hub::admit_streams): 401 (sign in first) or 403, with a reason
/// the client reads.
///
/// # Examples
///
/// ```
/// use notif::StreamDenied;
///
/// let denied = StreamDenied::unauthenticated("sign in to receive notifications");
/// assert_eq!((denied.status(), denied.to_string().as_str()), (401, "sign in to receive notifications"));
/// assert_eq!(StreamDenied::forbidden("banned").status(), 403);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamDenied {
    status: u16,
    reason: Cow<'static, str>,
}

impl StreamDenied {
    /// Refused until the client authenticates: 401.
    pub fn unauthenticated(reason: impl Into<Cow<'static, str>>) -> Self {
        StreamDenied {
            status: 401,
            reason: reason.into(),
        }
    }

    /// Refused for this identity: 403.
    pub fn forbidden(reason: impl Into<Cow<'static, str>>) -> Self {
        StreamDenied {
            status: 403,
            reason: reason.into(),
        }
    }

    /// 401 or 403.
    pub fn status(&self) -> u16 {
        self.status
    }
}

impl std::fmt::Display for StreamDenied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.reason)
    }
}

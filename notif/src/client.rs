//! The browser half: one stream per tab, notifications as signals, listens tied to components.
//!
//! Everything here is callable from components on both sides. During server-side rendering the
//! functions return inert signals (the connection reads "connecting", no notification arrives)
//! and listen nothing; in the browser (feature `hydrate`) the first call opens the tab's stream.
//!
//! ```
//! use leptos::prelude::*;
//! # pub struct RoomTopic;
//! # impl notif::SimpleTopic for RoomTopic {
//! #     const NAME: &'static str = "room";
//! #     type Key = i64;
//! #     type Message = String;
//! #     type Identity = Option<String>;
//! # }
//! # async fn listen_room(_room: i64) -> Result<(), ServerFnError> { Ok(()) }
//! # async fn unlisten_room(_room: i64) -> Result<(), ServerFnError> { Ok(()) }
//!
//! #[component]
//! fn Room(room: Signal<i64>) -> impl IntoView {
//!     // Listens while mounted, follows `room`, unlistens on cleanup, re-listens after a reset.
//!     notif::use_listen::<RoomTopic, _, _, _, _, _>(room, listen_room, unlisten_room);
//!     let last = notif::notifications::<RoomTopic>();
//!     let state = notif::connection_state();
//!     view! {
//!         <span class="conn">{move || state.get().to_string()}</span>
//!         <p>{move || last.get().map(|n| n.message)}</p>
//!     }
//! }
//! ```
use std::{fmt, future::Future};

use leptos::prelude::*;

use crate::Topic;

/// State of the tab's stream, for a connection indicator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConnectionState {
    /// Not yet open (and always, during server-side rendering).
    Connecting,
    /// Open: notifications flow.
    Live,
    /// Lost; the browser is reconnecting by itself.
    Reconnecting,
}

impl fmt::Display for ConnectionState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ConnectionState::Connecting => "connecting",
            ConnectionState::Live => "live",
            ConnectionState::Reconnecting => "reconnecting",
        })
    }
}

/// One notification of topic `T` as the browser receives it.
pub struct Notification<T: Topic> {
    /// The key it was notified on; `None` when sent straight to an identity without a key.
    pub key: Option<T::Key>,
    /// The message `prepare` made for this tab's identity.
    pub message: T::Message,
}

impl<T: Topic> Clone for Notification<T> {
    fn clone(&self) -> Self {
        Notification {
            key: self.key.clone(),
            message: self.message.clone(),
        }
    }
}

impl<T: Topic> fmt::Debug for Notification<T>
where
    T::Key: fmt::Debug,
    T::Message: fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Notification")
            .field("key", &self.key)
            .field("message", &self.message)
            .finish()
    }
}

/// The tab's connection state. Opens the stream on first use in the browser.
pub fn connection_state() -> Signal<ConnectionState> {
    imp::connection_state()
}

/// How many times the server forgot this tab's earlier state: its stream came back with
/// `recovered: false` after the first hello, or a `bye` `disconnected` ended it (signed out, or
/// its session ended). Bump-triggers for refetching whatever the page shows.
pub fn resets() -> Signal<u64> {
    imp::resets()
}

/// The latest notification of topic `T` received by this tab.
///
/// A signal keeps only its latest value; to see every notification (to append them to a list)
/// use [`on_notification`].
pub fn notifications<T: Topic>() -> Signal<Option<Notification<T>>> {
    imp::notifications::<T>()
}

/// Calls `handler` with every notification of topic `T` until the current reactive owner (the
/// component) is cleaned up.
pub fn on_notification<T: Topic>(handler: impl Fn(Notification<T>) + 'static) {
    imp::on_notification::<T>(handler)
}

/// Listens on `key` while the calling component is mounted, through the app's own server
/// functions `listen` and `unlisten` (declared with `client = notif::TabClient`).
///
/// When `key` changes the old key is unlistened and the new one listened; on cleanup the key is
/// unlistened. Components holding the same key share one listen. After the stream comes back
/// with `recovered: false` the key is listened again by itself, and a listen call that failed
/// (the network went away mid-call) is sent again when the stream comes back, resumed or not.
/// Calls for one key go out one after the other, so an unlisten never overtakes its listen.
/// Reads of your own that failed the same way are yours to retry: watch [`connection_state`]
/// turn `Live` (the demo's room page does). The returned signal counts the
/// confirmed listens of this key: a change means "registered now: refetch what may have been
/// missed before".
pub fn use_listen<T, L, LF, U, UF, E>(key: Signal<T::Key>, listen: L, unlisten: U) -> Signal<u64>
where
    T: Topic,
    L: Fn(T::Key) -> LF + Clone + 'static,
    LF: Future<Output = Result<(), E>> + 'static,
    U: Fn(T::Key) -> UF + Clone + 'static,
    UF: Future<Output = Result<(), E>> + 'static,
    E: fmt::Display + 'static,
{
    imp::use_listen::<T, L, LF, U, UF, E>(key, listen, unlisten)
}

/// The tab's client id while its stream is open (browser only).
pub fn client_id() -> Option<String> {
    imp::client_id()
}

#[cfg(not(feature = "hydrate"))]
mod imp {
    //! Server-side rendering: inert values, so components render the same markup as before
    //! hydration.
    use super::*;

    pub fn connection_state() -> Signal<ConnectionState> {
        Signal::stored(ConnectionState::Connecting)
    }

    pub fn resets() -> Signal<u64> {
        Signal::stored(0)
    }

    pub fn notifications<T: Topic>() -> Signal<Option<Notification<T>>> {
        Signal::stored(None)
    }

    pub fn on_notification<T: Topic>(_handler: impl Fn(Notification<T>) + 'static) {}

    pub fn use_listen<T, L, LF, U, UF, E>(_key: Signal<T::Key>, _listen: L, _unlisten: U) -> Signal<u64>
    where
        T: Topic,
        L: Fn(T::Key) -> LF,
        LF: Future<Output = Result<(), E>>,
        U: Fn(T::Key) -> UF,
        UF: Future<Output = Result<(), E>>,
    {
        Signal::stored(0)
    }

    pub fn client_id() -> Option<String> {
        None
    }
}

#[cfg(feature = "hydrate")]
use crate::browser as imp;

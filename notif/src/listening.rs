//! The browser half: one WebSocket per tab, notifications as signals, listens tied to
//! components.
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
//!     let listening = notif::use_listen::<RoomTopic>(room, listen_room, unlisten_room);
//!     let latest = listening.latest();
//!     let state = notif::connection_state();
//!     view! {
//!         <span class="conn">{move || state.get().to_string()}</span>
//!         <p>{move || latest.get()}</p>
//!     }
//! }
//!
//! /// A constant key needs no signal.
//! #[component]
//! fn Lobby() -> impl IntoView {
//!     let listening = notif::use_listen::<RoomTopic>(3, listen_room, unlisten_room);
//!     let said = RwSignal::new(Vec::<String>::new());
//!     listening.on_message(move |message| said.update(|all| all.push(message)));
//!     view! { <ul>{move || said.get().into_iter().map(|m| view! { <li>{m}</li> }).collect_view()}</ul> }
//! }
//! ```
use std::{fmt, future::Future, pin::Pin};

use leptos::prelude::*;

use crate::{Presence, Topic};

/// State of the tab's stream, for a connection indicator.
///
/// A stream the server refuses (an identity the app does not accept, a cap reached, a foreign
/// origin) stays `Connecting`, or `Reconnecting` if it was open before: browsers do not tell a
/// page why a WebSocket handshake failed, so the tab keeps trying, backing off from 0.5 s to
/// 30 s. docs/PROTOCOL.md lists the refusals with their reasons, which curl or the SSE endpoint
/// shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
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

/// A listen or unlisten call for keys of type `K`: any `Fn(K) -> impl Future<Output =
/// Result<(), E>>` with `E: Display`, such as a `#[server]` function taking the key.
///
/// Implemented for every such function or closure; apps never implement it themselves.
pub trait ListenCall<K>: 'static {
    /// Starts the call; an error is kept as its message (it is only logged).
    #[doc(hidden)]
    fn call(&self, key: K) -> Pin<Box<dyn Future<Output = Result<(), String>>>>;
}

impl<K, F, Fut, E> ListenCall<K> for F
where
    F: Fn(K) -> Fut + 'static,
    Fut: Future<Output = Result<(), E>> + 'static,
    E: fmt::Display + 'static,
{
    fn call(&self, key: K) -> Pin<Box<dyn Future<Output = Result<(), String>>>> {
        let call = self(key);
        Box::pin(async move { call.await.map_err(|error| error.to_string()) })
    }
}

/// What [`use_listen`] hands back: the key's own notifications and its confirmed listens.
///
/// A handle of signals, `Copy`; everything in it follows the key when the key changes.
pub struct Listening<T: Topic> {
    pub(crate) key: Signal<T::Key>,
    pub(crate) latest: Signal<Option<T::Message>>,
    pub(crate) confirmed: Signal<u64>,
    pub(crate) listen_error: Signal<Option<String>>,
    /// The held key's id in the tab (browser only: `None` during server-side rendering and
    /// before the first listen goes out), for what only some topics keep per key (presence).
    pub(crate) held: Signal<Option<String>>,
}

impl<T: Topic> Clone for Listening<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T: Topic> Copy for Listening<T> {}

impl<T: Topic> Listening<T> {
    /// The key listened on.
    pub fn key(&self) -> Signal<T::Key> {
        self.key
    }

    /// The latest message notified on the current key since it became the key (`None` until
    /// one arrives). A signal keeps only its latest value: to see every message, use
    /// [`on_message`](Self::on_message).
    pub fn latest(&self) -> Signal<Option<T::Message>> {
        self.latest
    }

    /// Calls `handler` with every message notified on the current key, until the current
    /// reactive owner (the component) is cleaned up.
    pub fn on_message(&self, handler: impl Fn(T::Message) + 'static) {
        imp::on_message::<T>(self.key, handler)
    }

    /// How many listens of the key the server confirmed (the first, and each re-listen after
    /// a reset or a failed call): a change means "registered now: refetch what may have been
    /// missed before". Components holding the same key share the count. It follows the key:
    /// after a change it reads the new key's count, 0 until that key's first listen is
    /// confirmed, so `> 0` means "listening on the current key".
    pub fn confirmed_listens(&self) -> Signal<u64> {
        self.confirmed
    }

    /// Why the latest listen call of the current key failed, as its error displays (a refusal
    /// by `authorize` reads as the server function's 403 reason; a call lost with the
    /// network, as the network error), or `None`: none failed, or the latest succeeded.
    /// Components holding the same key share it. A failed listen is sent again when the stream
    /// next says hello (on a reconnect), so a refusal stays until the listen is allowed or the
    /// component lets go of the key.
    pub fn listen_error(&self) -> Signal<Option<String>> {
        self.listen_error
    }
}

impl<T: Presence> Listening<T> {
    /// Who is on the current key, each in the public form [`Presence::public`] gives them, this
    /// tab's own identity included: the list the server sends after each listen of the key,
    /// then its joins and leaves, live while the component is mounted (see [`Presence`]).
    ///
    /// Components holding the same key share the list; it follows the key when the key
    /// changes (empty until the new key's list arrives) and is always empty during server-side
    /// rendering. Two identities may look the same: the list keeps one entry for each, and a
    /// leave removes one. The tab keeps a held key's presence from its listen on, so calling
    /// this later (in an event handler, a child component) misses nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// use leptos::prelude::*;
    /// # pub struct RoomTopic;
    /// # impl notif::SimpleTopic for RoomTopic {
    /// #     const NAME: &'static str = "room";
    /// #     type Key = i64;
    /// #     type Message = String;
    /// #     type Identity = Option<String>;
    /// # }
    /// # async fn listen_room(_room: i64) -> Result<(), ServerFnError> { Ok(()) }
    /// # async fn unlisten_room(_room: i64) -> Result<(), ServerFnError> { Ok(()) }
    /// impl notif::Presence for RoomTopic {
    ///     type Public = String; // a display name
    ///     // Signed-out visitors: counted, not shown.
    ///     #[cfg(feature = "ssr")]
    ///     async fn public(user: &Option<String>) -> Option<String> { user.clone() }
    /// }
    ///
    /// #[component]
    /// fn WhoIsHere(room: Signal<i64>) -> impl IntoView {
    ///     let present = notif::use_listen::<RoomTopic>(room, listen_room, unlisten_room).present();
    ///     view! {
    ///         <ul class="present">
    ///             {move || present.get().into_iter().map(|name| view! { <li>{name}</li> }).collect_view()}
    ///         </ul>
    ///     }
    /// }
    /// ```
    pub fn present(&self) -> Signal<Vec<T::Public>> {
        imp::present::<T>(self.held)
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

/// The latest notification of topic `T` received by this tab, on any key.
///
/// A signal keeps only its latest value; to see every notification (to append them to a list)
/// use [`on_notification`]. For one key, [`use_listen`] hands back its own.
pub fn latest_notification<T: Topic>() -> Signal<Option<Notification<T>>> {
    imp::latest_notification::<T>()
}

/// Calls `handler` with every notification of topic `T`, on any key, until the current reactive
/// owner (the component) is cleaned up.
pub fn on_notification<T: Topic>(handler: impl Fn(Notification<T>) + 'static) {
    imp::on_notification::<T>(handler)
}

/// Listens on `key` while the calling component is mounted, through the app's own server
/// functions `listen` and `unlisten` (declared with `client = notif::TabClient`), and hands back
/// the key's notifications and confirmed listens ([`Listening`]).
///
/// `key` is a constant or any signal of the key (`Signal`, `Memo`, `RwSignal`, ...). When it
/// changes the old key is unlistened and the new one listened; on cleanup the key is
/// unlistened. Components holding the same key share one listen. After the stream comes back
/// with `recovered: false` the key is listened again by itself, and a listen call that failed
/// (the network went away mid-call) is sent again when the stream comes back, resumed or not.
/// Calls for one key go out one after the other, so an unlisten never overtakes its listen.
/// Reads of your own that failed the same way are yours to retry: watch [`connection_state`]
/// turn `Live` (the demo's room page does).
///
/// # Examples
///
/// ```
/// use leptos::prelude::*;
/// # pub struct RoomTopic;
/// # impl notif::SimpleTopic for RoomTopic {
/// #     const NAME: &'static str = "room";
/// #     type Key = i64;
/// #     type Message = String;
/// #     type Identity = Option<String>;
/// # }
/// # async fn listen_room(_room: i64) -> Result<(), ServerFnError> { Ok(()) }
/// # async fn unlisten_room(_room: i64) -> Result<(), ServerFnError> { Ok(()) }
///
/// #[component]
/// fn Room(room: Signal<i64>) -> impl IntoView {
///     let listening = notif::use_listen::<RoomTopic>(room, listen_room, unlisten_room);
///     // Refetch the history on every confirmed (re)listen: nothing falls between the two.
///     let _history = Resource::new(move || (room.get(), listening.confirmed_listens().get()), |_| async { 0 });
///     view! { <p>{move || listening.latest().get()}</p> }
/// }
/// ```
pub fn use_listen<T: Topic>(
    key: impl Into<Signal<T::Key>>,
    listen: impl ListenCall<T::Key>,
    unlisten: impl ListenCall<T::Key>,
) -> Listening<T> {
    imp::use_listen::<T>(key.into(), listen, unlisten)
}

/// The tab's id while its stream is open (browser only): the `tab_id` of its latest hello.
pub fn tab_id() -> Option<String> {
    imp::tab_id()
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

    pub fn latest_notification<T: Topic>() -> Signal<Option<Notification<T>>> {
        Signal::stored(None)
    }

    pub fn on_notification<T: Topic>(_handler: impl Fn(Notification<T>) + 'static) {}

    pub fn on_message<T: Topic>(_key: Signal<T::Key>, _handler: impl Fn(T::Message) + 'static) {}

    pub fn use_listen<T: Topic>(
        key: Signal<T::Key>,
        _listen: impl ListenCall<T::Key>,
        _unlisten: impl ListenCall<T::Key>,
    ) -> Listening<T> {
        Listening {
            key,
            latest: Signal::stored(None),
            confirmed: Signal::stored(0),
            listen_error: Signal::stored(None),
            held: Signal::stored(None),
        }
    }

    pub fn present<T: Presence>(_held: Signal<Option<String>>) -> Signal<Vec<T::Public>> {
        Signal::stored(Vec::new())
    }

    pub fn tab_id() -> Option<String> {
        None
    }
}

#[cfg(feature = "hydrate")]
use crate::browser as imp;

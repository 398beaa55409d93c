//! Topics: what a tab listens to, and what it receives.
//!
//! A [`Topic`] is implemented by a unit type in the application. It names the key type (what a
//! tab listens on), the event the server notifies with, and the message each recipient gets.
//! `prepare` turns one event into a message per recipient identity (or nothing); `authorize`
//! decides who may listen on a key. Topics whose event is the message itself implement
//! [`SimpleTopic`] instead and get `Topic` for free.
//!
//! ```
//! use notif::SimpleTopic;
//!
//! /// Anyone may listen on a counter; every listener gets the new value as is.
//! pub struct Counter;
//!
//! impl SimpleTopic for Counter {
//!     const NAME: &'static str = "counter";
//!     type Key = String;
//!     type Message = u64;
//!     type Identity = Option<String>;
//! }
//! ```
#[cfg(feature = "ssr")]
use std::future::Future;

use serde::{de::DeserializeOwned, Serialize};

/// Bounds shared by keys, events and messages: they cross threads, the wire and (for keys and
/// events) nodes.
pub trait Data: Serialize + DeserializeOwned + Clone + Send + Sync + 'static {}
impl<T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static> Data for T {}

/// Who a tab belongs to, as the application sees it (a user id, `Option<UserId>`, ...).
///
/// Resolved from the request when a tab opens its stream; `prepare` and `authorize` get it.
/// Serialisable because exclusions and sign-outs name identities across nodes.
pub trait Identity:
    Clone + Eq + std::hash::Hash + std::fmt::Debug + Serialize + DeserializeOwned + Send + Sync + 'static
{
}
impl<T> Identity for T where
    T: Clone + Eq + std::hash::Hash + std::fmt::Debug + Serialize + DeserializeOwned + Send + Sync + 'static
{
}

/// A family of notifications, keyed by [`Topic::Key`].
///
/// A unit type in the application implements it. It names the key type (what a tab listens on),
/// the event the server notifies with, and the message each recipient gets: `prepare` turns one
/// event into a message per recipient identity (or nothing), `authorize` decides who may listen
/// on a key. Topics whose event is the message itself implement [`SimpleTopic`] instead and get
/// `Topic` for free.
///
/// The topic is shared by the server and the browser build, but `prepare` and `authorize` exist
/// only with notif's `ssr` feature: put `#[cfg(feature = "ssr")]` on each of them in the `impl`,
/// as below (the app's `ssr` feature turning on `notif/ssr`). Without it the browser build
/// fails with "method `prepare` is not a member of trait `notif::Topic`".
///
/// # Examples
///
/// A room's new posts: members only may listen, a post mentioning the reader is highlighted
/// for them, and a reader who muted the author gets nothing.
///
/// ```
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Clone, Serialize, Deserialize)]
/// pub struct Posted { pub author: String, pub text: String }
///
/// #[derive(Clone, PartialEq, Serialize, Deserialize)]
/// pub struct Shown { pub text: String, pub mentions_you: bool }
///
/// pub struct Room;
///
/// impl notif::Topic for Room {
///     const NAME: &'static str = "room";
///     type Key = u32;
///     type Event = Posted;
///     type Message = Shown;
///     type Identity = Option<String>; // the signed-in user, if any
///
///     #[cfg(feature = "ssr")]
///     async fn prepare(reader: &Option<String>, post: &Posted) -> Option<Shown> {
///         let reader = reader.as_deref()?;
///         if muted(reader, &post.author) {
///             return None;
///         }
///         let mentions_you = post.text.contains(&format!("@{reader}"));
///         Some(Shown { text: post.text.clone(), mentions_you })
///     }
///
///     #[cfg(feature = "ssr")]
///     async fn authorize(reader: &Option<String>, room: &u32) -> bool {
///         reader.as_deref().is_some_and(|reader| is_member(reader, *room))
///     }
/// }
/// # fn muted(_reader: &str, _author: &str) -> bool { false }
/// # fn is_member(_reader: &str, _room: u32) -> bool { true }
/// ```
pub trait Topic: Send + Sync + 'static {
    /// Name on the wire; unique within an application.
    const NAME: &'static str;
    /// What a tab listens on (a room id, a user id, ...). Not one that serialises to JSON
    /// `null` (`()`, `None`): that marks a message sent to an identity without a key, and a
    /// listen on it is refused.
    type Key: Data + Eq + std::hash::Hash;
    /// What server code notifies with. Serialisable so it can cross nodes.
    type Event: Data;
    /// What a recipient's browser receives. Equal messages are encoded once per notify.
    type Message: Data + PartialEq;
    /// The application's identity type, shared by all its topics.
    type Identity: Identity;

    /// Whether `prepare` can give different identities different messages. When `false`,
    /// a notify calls `prepare` once (with one listener's identity) and encodes one frame for
    /// every listener, skipping the grouping by identity. [`SimpleTopic`]s set it to `false`.
    const PER_IDENTITY: bool = true;

    /// The message `identity` receives for `event`, or `None` for nothing. Runs at most once per
    /// distinct identity per notify, whatever the number of its tabs.
    #[cfg(feature = "ssr")]
    fn prepare(
        identity: &Self::Identity,
        event: &Self::Event,
    ) -> impl Future<Output = Option<Self::Message>> + Send;

    /// Whether `identity` may listen on `key`. Checked on every listen. Allows everyone by default.
    #[cfg(feature = "ssr")]
    fn authorize(identity: &Self::Identity, key: &Self::Key) -> impl Future<Output = bool> + Send {
        let _ = (identity, key);
        async { true }
    }
}

/// A topic whose listeners all receive the notified value unchanged (Eliom's `Make_Simple`).
///
/// # Examples
///
/// ```
/// use notif::SimpleTopic;
///
/// /// Anyone may listen on a counter; every listener gets the new value as is.
/// pub struct Counter;
///
/// impl SimpleTopic for Counter {
///     const NAME: &'static str = "counter";
///     type Key = String;
///     type Message = u64;
///     type Identity = Option<String>;
/// }
/// ```
pub trait SimpleTopic: Send + Sync + 'static {
    /// Name on the wire; unique within an application.
    const NAME: &'static str;
    /// What a tab listens on.
    type Key: Data + Eq + std::hash::Hash;
    /// What is notified and received.
    type Message: Data + PartialEq;
    /// The application's identity type.
    type Identity: Identity;

    /// Whether `identity` may listen on `key`. Allows everyone by default.
    #[cfg(feature = "ssr")]
    fn authorize(identity: &Self::Identity, key: &Self::Key) -> impl Future<Output = bool> + Send {
        let _ = (identity, key);
        async { true }
    }
}

impl<T: SimpleTopic> Topic for T {
    const NAME: &'static str = T::NAME;
    type Key = T::Key;
    type Event = T::Message;
    type Message = T::Message;
    type Identity = T::Identity;
    const PER_IDENTITY: bool = false;

    #[cfg(feature = "ssr")]
    fn prepare(
        _identity: &Self::Identity,
        event: &Self::Event,
    ) -> impl Future<Output = Option<Self::Message>> + Send {
        let message = event.clone();
        async move { Some(message) }
    }

    #[cfg(feature = "ssr")]
    fn authorize(identity: &Self::Identity, key: &Self::Key) -> impl Future<Output = bool> + Send {
        <T as SimpleTopic>::authorize(identity, key)
    }
}

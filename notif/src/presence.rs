//! Presence: who is listening on a key, as other listeners see them.
#[cfg(feature = "ssr")]
use std::future::Future;

use crate::{Data, Topic};

/// A topic whose keys know who listens on them.
///
/// A topic that implements [`Presence`] and is registered with
/// [`Hub::with_presence`](crate::Hub::with_presence) tracks the identities listening on each of
/// its keys. A tab that listens on such a key is present there, and is told who else is: first
/// the whole list, then `join` when an identity's first tab starts listening and `leave` when its
/// last tab stops (an unlisten, a sign-out, a tab closed whose resume window passed). A tab that
/// resumes within its window was never gone: nobody sees it leave and join again.
///
/// What a listener sees of an identity is [`Presence::public`]'s answer, never the identity
/// itself; only tabs `authorize` lets listen on the key see its presence. In the browser,
/// [`Listening::present`](crate::Listening::present) holds the list. With several nodes the
/// lists cover every node, and a node that dies takes its identities with it within
/// `Config::node_timeout`.
///
/// Like `Topic::prepare`, `public` exists only with notif's `ssr` feature: put
/// `#[cfg(feature = "ssr")]` on it in the `impl`, as below.
///
/// # Examples
///
/// ```
/// use notif::{Presence, SimpleTopic};
///
/// /// A chat room: its messages, and who is in it.
/// pub struct Room;
/// impl SimpleTopic for Room {
///     const NAME: &'static str = "room";
///     type Key = u32;
///     type Message = String;
///     type Identity = Option<String>; // the signed-in user, if any
/// }
///
/// impl Presence for Room {
///     type Public = String; // a display name
///
///     #[cfg(feature = "ssr")]
///     async fn public(user: &Option<String>) -> Option<String> {
///         // Visitors who are not signed in are counted but not shown.
///         user.clone()
///     }
/// }
/// ```
pub trait Presence: Topic {
    /// What a listener sees of another identity listening on the same key: a display name, an
    /// avatar, never a secret. Two identities may look the same: the browser keeps one entry
    /// for each.
    type Public: Data + PartialEq;

    /// What listeners see of `identity`, or `None` to leave it out of the lists and events (it
    /// still counts in [`Hub::presence`](crate::Hub::presence)). Runs on every listen of a key
    /// of this topic, before the listen is registered.
    #[cfg(feature = "ssr")]
    fn public(identity: &Self::Identity) -> impl Future<Output = Option<Self::Public>> + Send;
}

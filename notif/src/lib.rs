//! # notif
//!
//! Server-to-client notifications for [Leptos](https://leptos.dev), after Ocsigen's
//! `Os_notif`: a browser tab *listens* on keys through the app's own `#[server]` functions;
//! server code *notifies* a key; every tab listening receives it through a reactive signal,
//! customised per user by [`Topic::prepare`]; nothing stays behind when tabs go away.
//!
//! One WebSocket per tab carries every topic (the same frames are also served as Server-Sent
//! Events for other clients; wire format: [`wire`] and `docs/PROTOCOL.md`).
//!
//! | feature   | side    | what it adds |
//! |-----------|---------|--------------|
//! | (none)    | both    | [`Topic`], [`SimpleTopic`], [`Presence`], [`TabId`], the [`wire`] types, [`TabClient`], and the hooks components call: [`use_listen`] (a key's messages while a component is mounted, and who is on it: [`Listening`]), [`latest_notification`], [`on_notification`], [`connection_state`], [`resets`], [`tab_id`]. The hooks are in every build so that one component compiles for both sides; without `hydrate` (server-side rendering) they are inert: the connection reads `Connecting`, no notification arrives, nothing is listened |
//! | `ssr`     | server  | [`Hub`] (tabs, listens, `notify`), the stream route, [`listen`]/[`unlisten`]/[`caller`] for server functions, [`Metrics`], [`serve`](fn@serve) (HTTP/1.1 for the app: idle connections closed, graceful shutdown) |
//! | `redis`   | server  | [`backplane::RedisBackplane`]: several server nodes sharing notifications through Redis |
//! | `hydrate` | browser | what makes the hooks live: the tab's stream (one WebSocket, opened by the first hook called), its signals and listens; [`TabClient`] sending the tab's id with each call |
//!
//! An app turns on `ssr` in its server build and `hydrate` in its browser build, each from its
//! own feature of the same name (README, step 1).
//!
//! ```
//! use notif::SimpleTopic;
//!
//! /// A chat room's new messages, the same for every listener.
//! pub struct Chat;
//! impl SimpleTopic for Chat {
//!     const NAME: &'static str = "chat";
//!     type Key = u32;         // room id
//!     type Message = String;  // the text
//!     type Identity = Option<String>;
//! }
//! ```
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod error;
mod hex;
mod listening;
mod presence;
mod tab_client;
mod tab_id;
mod topic;
pub mod wire;

#[cfg(feature = "ssr")]
pub mod backplane;
#[cfg(feature = "hydrate")]
mod browser;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
#[cfg(feature = "ssr")]
mod hub;
#[cfg(feature = "ssr")]
mod request;
#[cfg(feature = "ssr")]
mod serve;
#[cfg(feature = "ssr")]
mod stream;

pub use error::ListenError;
pub use listening::{
    connection_state, latest_notification, on_notification, resets, tab_id, use_listen, ConnectionState,
    ListenCall, Listening, Notification,
};
pub use presence::Presence;
pub use tab_client::TabClient;
pub use tab_id::{BadTabId, TabId};
pub use topic::{Data, Identity, SimpleTopic, Topic};

// The crate's own short paths to the protocol and backplane items, whose public home is their
// module.
#[cfg(feature = "ssr")]
pub(crate) use backplane::Backplane;
#[allow(unused_imports)]
pub(crate) use wire::{
    parse_event_id, Bye, ByeReason, Hello, RawNotification, WsFrame, EVENT_BYE, EVENT_HELLO, EVENT_NOTIF,
    LAST_EVENT_ID_HEADER, LAST_EVENT_ID_QUERY, NODE_HEADER, NODE_QUERY, STREAM_PATH, TAB_HEADER, WS_PATH,
};

#[cfg(feature = "ssr")]
pub use hub::{
    Config, ConfigError, Exclude, Hub, Metrics, NotifyError, PageCursor, PresenceCount, PresenceError,
    PresentPage,
};
#[cfg(feature = "ssr")]
pub use request::{caller, listen, unlisten};
#[cfg(feature = "ssr")]
pub use serve::{bind, serve, Serve};
#[cfg(feature = "ssr")]
pub use stream::{StreamDenied, StreamRefused};

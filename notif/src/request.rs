//! Listening from inside the app's own server functions: the calling tab is found from the
//! request, its identity checked, and refusals answered with the right HTTP status.
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
//! # async fn load_history(_room: i64) -> Result<Vec<String>, ServerFnError> { Ok(Vec::new()) }
//!
//! #[server(endpoint = "rooms/open", client = notif::TabClient)]
//! pub async fn open_room(room: i64) -> Result<Vec<String>, ServerFnError> {
//!     notif::listen::<RoomTopic>(&room).await?; // first listen, then read: nothing falls between
//!     load_history(room).await
//! }
//!
//! /// Posting leaves the calling tab out: it shows its own message from the reply.
//! #[server(endpoint = "rooms/post", client = notif::TabClient)]
//! pub async fn post(room: i64, text: String) -> Result<(), ServerFnError> {
//!     let hub = use_context::<notif::Hub<Option<String>>>().expect("hub in context");
//!     let exclude = notif::caller::<Option<String>>().await.map_or(notif::Exclude::Nobody, notif::Exclude::Tab);
//!     hub.notify::<RoomTopic>(&room, &text, exclude).await?;
//!     Ok(())
//! }
//! ```
use http::request::Parts;
use leptos::prelude::use_context;

use crate::{Hub, Identity, ListenError, TabId, Topic, NODE_HEADER, TAB_HEADER};

/// The calling tab, from the request of the current server function: `None` if the call named
/// no tab (or a malformed one), or a tab that is not the caller's own (another identity's, or
/// one this node does not hold), so no request can leave someone else's tab out of a
/// notification. Use it to leave the caller out of a notify.
///
/// `I` is the hub's identity type, your topics' [`Topic::Identity`]: nothing in the call names
/// it, so write it out (`caller::<Viewer>()`), or the compiler stops with E0283 ("type
/// annotations needed").
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
///
/// #[server(endpoint = "rooms/say", client = notif::TabClient)]
/// pub async fn say(room: i64, text: String) -> Result<(), ServerFnError> {
///     let hub = expect_context::<notif::Hub<Option<String>>>();
///     // Everyone on the room but the tab that called: it shows its own message already.
///     let exclude = notif::caller::<Option<String>>()
///         .await
///         .map_or(notif::Exclude::Nobody, notif::Exclude::Tab);
///     hub.notify::<RoomTopic>(&room, &text, exclude).await?;
///     Ok(())
/// }
/// ```
pub async fn caller<I: Identity>() -> Option<TabId> {
    let hub = use_context::<Hub<I>>()?;
    hub.caller(&use_context::<Parts>()?).await
}

/// The tab a server function call names in its `x-notif-client` header (not yet checked
/// against the caller's identity).
pub(crate) fn caller_from(parts: &Parts) -> Result<TabId, ListenError> {
    let value = parts.headers.get(TAB_HEADER).ok_or(ListenError::NoTab)?;
    value
        .to_str()
        .ok()
        .and_then(|v| v.parse().ok())
        .ok_or(ListenError::BadTabId)
}

/// The node a server function call names as holding its tab (`x-notif-node`), if any.
pub(crate) fn node_from(parts: &Parts) -> Option<&str> {
    parts.headers.get(NODE_HEADER)?.to_str().ok()
}

/// Listens the calling tab on `key`. Returns once the listen is registered, on whichever node
/// holds the tab: a notification sent after it reaches the tab. Declare the server function
/// with `client = notif::TabClient`, which names the calling tab.
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
/// # async fn load_history(_room: i64) -> Result<Vec<String>, ServerFnError> { Ok(Vec::new()) }
///
/// #[server(endpoint = "rooms/open", client = notif::TabClient)]
/// pub async fn open_room(room: i64) -> Result<Vec<String>, ServerFnError> {
///     notif::listen::<RoomTopic>(&room).await?; // first listen, then read: nothing falls between
///     load_history(room).await
/// }
/// ```
///
/// # Errors
///
/// A [`ListenError`], also set as the response's HTTP status: no hub in context (500), no or a
/// malformed tab id (400), the tab unknown (410) or another identity's (403), `authorize`
/// refused (403), the tab's listen cap reached (429), the key unusable (400); with several nodes,
/// the tab's node unreachable (503) or missing the topic (500).
pub async fn listen<T: Topic>(key: &T::Key) -> Result<(), ListenError> {
    with_status(async {
        let (hub, parts) = context::<T>()?;
        hub.listen_caller::<T>(&parts, key).await
    })
    .await
}

/// Stops the calling tab listening on `key`, on whichever node holds the tab. Unlistening a
/// key the tab does not listen on is not an error.
///
/// # Errors
///
/// A [`ListenError`], also set as the response's HTTP status: no hub in context (500), no or a
/// malformed tab id (400), the key unusable (400), the tab unknown (410) or another identity's
/// (403); with several nodes, the tab's node unreachable (503).
pub async fn unlisten<T: Topic>(key: &T::Key) -> Result<(), ListenError> {
    with_status(async {
        let (hub, parts) = context::<T>()?;
        hub.unlisten_caller::<T>(&parts, key).await
    })
    .await
}

fn context<T: Topic>() -> Result<(Hub<T::Identity>, Parts), ListenError> {
    let hub = use_context::<Hub<T::Identity>>().ok_or(ListenError::NoHub)?;
    let parts = use_context::<Parts>().ok_or(ListenError::NoTab)?;
    Ok((hub, parts))
}

/// Sets the refusal's status on the server function's response.
async fn with_status(
    work: impl std::future::Future<Output = Result<(), ListenError>>,
) -> Result<(), ListenError> {
    let result = work.await;
    if let Err(error) = &result {
        if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
            if let Ok(status) = http::StatusCode::from_u16(error.status()) {
                response.set_status(status);
            }
        }
    }
    result
}

//! The server function client that tells the server which tab is calling.
//!
//! A server function that listens or unlistens must know the calling tab. Declare it with
//! `client = notif::TabClient`: in the browser the call then waits until the tab's stream is open
//! and carries the tab's id in the [`TAB_HEADER`](crate::wire::TAB_HEADER) header. App code never
//! handles the id.
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
//!
//! #[server(endpoint = "rooms/listen", client = notif::TabClient)]
//! pub async fn listen_room(room: i64) -> Result<(), ServerFnError> {
//!     notif::listen::<RoomTopic>(&room).await?;
//!     Ok(())
//! }
//! ```
use std::future::Future;

use leptos::server_fn::{
    client::{browser::BrowserClient, Client},
    error::FromServerFnError,
    request::browser::BrowserRequest,
    response::browser::BrowserResponse,
};

/// `fetch` in the browser, plus the calling tab's id (and, with several server nodes, the node
/// holding it). Use as `#[server(client = notif::TabClient)]`.
pub struct TabClient;

impl<E, IS, OS> Client<E, IS, OS> for TabClient
where
    E: FromServerFnError,
    IS: FromServerFnError,
    OS: FromServerFnError,
{
    type Request = BrowserRequest;
    type Response = BrowserResponse;

    fn send(req: Self::Request) -> impl Future<Output = Result<Self::Response, E>> + Send {
        #[cfg(feature = "hydrate")]
        {
            send_wrapper::SendWrapper::new(async move {
                if let Some((id, node)) = crate::browser::wait_tab_id().await {
                    req.headers().set(crate::TAB_HEADER, &id);
                    if let Some(node) = node {
                        req.headers().set(crate::NODE_HEADER, &node);
                    }
                }
                <BrowserClient as Client<E, IS, OS>>::send(req).await
            })
        }
        #[cfg(not(feature = "hydrate"))]
        {
            <BrowserClient as Client<E, IS, OS>>::send(req)
        }
    }

    #[allow(clippy::type_complexity)]
    fn open_websocket(
        path: &str,
    ) -> impl Future<
        Output = Result<
            (
                impl futures::Stream<Item = Result<bytes::Bytes, bytes::Bytes>> + Send + 'static,
                impl futures::Sink<bytes::Bytes> + Send + 'static,
            ),
            E,
        >,
    > + Send {
        <BrowserClient as Client<E, IS, OS>>::open_websocket(path)
    }

    fn spawn(future: impl Future<Output = ()> + Send + 'static) {
        <BrowserClient as Client<E, IS, OS>>::spawn(future)
    }
}

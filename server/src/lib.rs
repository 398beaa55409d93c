//! The demo server: configuration, routes, the notif hub (served by `notif::serve`).
//!
//! | env var | default | meaning |
//! |---|---|---|
//! | `LEPTOS_SITE_ADDR` | `127.0.0.1:3000` | address to listen on (cargo-leptos sets it) |
//! | `NOTIF_DB` | `data/notif-demo.db` | SQLite file, created with its tables on first run; `:memory:` for none |
//! | `NOTIF_REDIS_URL` | unset (one node) | `redis://host:port`: this server is one node of several sharing that Redis (`RedisBackplane::from_env`) |
//! | `NOTIF_PUBLIC_ORIGIN` | unset (compare with `Host`) | `scheme://host[:port]` browsers use to reach the app (e.g. `https://chat.example.com` behind a TLS proxy): state-changing requests from any other origin are refused (`same_origin`) |
//! | `NOTIF_SESSION_TTL_SECS` | `604800` (7 days) | a session ends this long after sign-in, on the server and in the browser (cookie `Max-Age`) |
//! | `NOTIF_HTTP_IDLE_MS` | `30000` | an HTTP connection that sends no request for this long is closed (streams in progress are not idle) |
//! | `NOTIF_RESUME_WINDOW_MS`, `NOTIF_QUEUE_CAPACITY`, `NOTIF_REPLAY_CAPACITY`, `NOTIF_MAX_MESSAGE_BYTES`, `NOTIF_MAX_LISTENS`, `NOTIF_HEARTBEAT_MS`, `NOTIF_RETRY_MS`, `NOTIF_BACKPLANE_BACKLOG` | see `notif::Config` | hub limits |
//! | `NOTIF_ALLOWED_ORIGINS`, `NOTIF_REQUIRE_ORIGIN`, `NOTIF_TRUST_FORWARDED`, `NOTIF_MAX_TABS_PER_IDENTITY`, `NOTIF_MAX_STREAMS_PER_ADDRESS`, `NOTIF_REVALIDATE_MS`, `NOTIF_SHUTDOWN_MS` | see `notif::Config` | who may open streams, caps, session checks, shutdown |
#![allow(missing_docs)]

pub mod protective_headers;
pub mod same_origin;

use app::{model::Viewer, shell, App};

use axum::{
    body::Body,
    extract::Request,
    http::StatusCode,
    middleware::{self, Next},
    response::Response,
    routing::get,
    Router,
};
use leptos::prelude::*;
use leptos_axum::{generate_route_list, LeptosRoutes};

/// The whole app: notif's stream route, `/metrics`, server functions and pages; state-changing
/// requests from other origins refused as `origins` says.
pub fn router(options: LeptosOptions, hub: notif::Hub<Viewer>, origins: same_origin::Policy) -> Router {
    let routes = generate_route_list(App);
    let metrics_hub = hub.clone();
    Router::new()
        .merge(hub.routes())
        .route(
            "/metrics",
            get(move || {
                let hub = metrics_hub.clone();
                async move {
                    (
                        [(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                        hub.prometheus(),
                    )
                }
            }),
        )
        .leptos_routes_with_context(&options, routes, move || provide_context(hub.clone()), {
            let options = options.clone();
            move || shell(options.clone())
        })
        .fallback(leptos_axum::file_and_error_handler(shell))
        .layer(middleware::from_fn(bad_arguments_are_400))
        .layer(middleware::from_fn_with_state(
            origins,
            same_origin::refuse_cross_origin,
        ))
        .layer(middleware::from_fn(protective_headers::add))
        .layer(tower_http::limit::RequestBodyLimitLayer::new(MAX_REQUEST_BYTES))
        .with_state(options)
}

/// Largest request body accepted (413 beyond): a message is at most 500 characters.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// Server functions answer undecodable arguments with 500; it is the caller's mistake, so say 400.
async fn bad_arguments_are_400(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    if response.status() != StatusCode::INTERNAL_SERVER_ERROR {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_REQUEST_BYTES)
        .await
        .unwrap_or_default();
    if bytes.starts_with(b"Args|") || bytes.starts_with(b"Deserialization|") {
        parts.status = StatusCode::BAD_REQUEST;
    }
    Response::from_parts(parts, Body::from(bytes))
}

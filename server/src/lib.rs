//! The demo server: configuration, routes, the notif hub, graceful shutdown.
//!
//! | env var | default | meaning |
//! |---|---|---|
//! | `LEPTOS_SITE_ADDR` | `127.0.0.1:3000` | address to listen on (cargo-leptos sets it) |
//! | `NOTIF_DB` | `data/notif-demo.db` | SQLite file, created with its tables on first run; `:memory:` for none |
//! | `NOTIF_REDIS_URL` | unset (one node) | `redis://host:port`: this server is one node of several sharing that Redis |
//! | `NOTIF_HTTP_IDLE_MS` | `30000` | an HTTP connection that sends no request for this long is closed (streams in progress are not idle) |
//! | `NOTIF_RESUME_WINDOW_MS`, `NOTIF_QUEUE_CAPACITY`, `NOTIF_MAX_LISTENS`, `NOTIF_HEARTBEAT_MS`, `NOTIF_RETRY_MS`, `NOTIF_BACKPLANE_BACKLOG` | see `notif::Config` | hub limits |
#![allow(missing_docs)]

use app::{model::Viewer, shell, App};
use std::time::Duration;

use axum::{
    body::Body,
    extract::Request,
    http::StatusCode,
    middleware::{self, Next},
    response::Response,
    routing::get,
    Router,
};
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::{conn::auto, graceful::GracefulShutdown},
    service::TowerToHyperService,
};
use leptos::prelude::*;
use leptos_axum::{generate_route_list, LeptosRoutes};

/// The whole app: notif's stream route, `/metrics`, server functions and pages.
pub fn router(options: LeptosOptions, hub: notif::Hub<Viewer>) -> Router {
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
                        hub.metrics().to_prometheus(),
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

/// How long an idle HTTP connection stays open by default (`NOTIF_HTTP_IDLE_MS`): a browser's
/// keep-alive connection for its server-function calls costs the server ~31 KiB (hyper's buffers
/// and task, docs/BENCHMARKS.md), ten times what its notification stream costs, and
/// `axum::serve` never closes one. Streams in progress (SSE, WebSocket) are not idle.
pub const HTTP_IDLE: Duration = Duration::from_secs(30);

/// Serves `router` until `shutdown` completes, then ends every notification stream with a
/// `bye` and waits for the connections to close. A connection that sends no request (headers)
/// for `idle` is closed.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    hub: notif::Hub<Viewer>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    idle: Duration,
) -> std::io::Result<()> {
    // HTTP/1 only, as `axum::serve` was here (browsers speak HTTP/2 only over TLS, in front).
    let mut http = auto::Builder::new(TokioExecutor::new()).http1_only();
    http.http1().timer(TokioTimer::new()).header_read_timeout(idle);
    let connections = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    // Out of file descriptors, say: wait rather than spin (as axum::serve does).
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let service = TowerToHyperService::new(router.clone());
        let connection = http.serve_connection_with_upgrades(TokioIo::new(stream), service);
        let connection = connections.watch(connection.into_owned());
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "connection ended");
            }
        });
    }
    drop(listener);
    tracing::info!("shutting down: closing notification streams");
    // Streams never end by themselves; ending them lets the graceful shutdown finish.
    hub.shutdown();
    connections.shutdown().await;
    Ok(())
}

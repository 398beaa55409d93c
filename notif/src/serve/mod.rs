//! Serving an app whose tabs hold notification streams: see [`serve`] (the module is private;
//! its overview and example are on the function, where rustdoc shows them).
mod body_deadline;
mod socket;

use socket::accepted;
pub(crate) use socket::socket_of;

use std::{
    future::{Future, IntoFuture},
    pin::Pin,
    time::Duration,
};

use axum::{extract::ConnectInfo, Router};
use body_deadline::BodyDeadline;
use hyper_util::{rt::TokioTimer, service::TowerToHyperService};
use tokio::{net::TcpListener, sync::watch};
use tower::ServiceExt;

use crate::{Hub, Identity};

type Signal = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Ends the streams; resolves once they closed, then (the second) once the hub is drained.
type EndStreams = Box<dyn FnOnce() -> (Signal, Signal) + Send>;

/// A listener on `addr` whose kernel queue holds [`Serve::LISTEN_BACKLOG`] connections waiting
/// to be accepted, where `TcpListener::bind` asks for 128: when a node drains or dies, its tabs
/// reconnect to the others at once, and connections beyond the queue are dropped and retried
/// a second or more later. The kernel caps the queue at `net.core.somaxconn`.
///
/// # Errors
///
/// The address is in use, or not this machine's.
///
/// # Examples
///
/// ```no_run
/// # async fn run() -> std::io::Result<()> {
/// let listener = notif::bind("127.0.0.1:3000".parse().unwrap())?;
/// # Ok(()) }
/// ```
pub fn bind(addr: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    let socket = match addr {
        std::net::SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        std::net::SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    // As `TcpListener::bind` does: a restarted server binds while old connections linger.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(Serve::LISTEN_BACKLOG)
}

/// Serves `router` on `listener` until the shutdown signal, if any: await the returned
/// [`Serve`]. HTTP/1.1 with upgrades, so WebSocket streams work.
///
/// Use it rather than `axum::serve`: every tab keeps an HTTP keep-alive connection for its
/// server-function calls next to its stream. Under `axum::serve` such a connection costs the
/// server ~31 KiB of heap and is kept until the browser drops it; a stream costs ~2.3 KiB
/// (docs/BENCHMARKS.md). `serve` drives each connection with hyper's HTTP/1 server alone (~20
/// KiB while idle: no HTTP/2 state beside it) and closes one that sends no request for
/// [`idle_timeout`](Serve::idle_timeout) ([`Serve::DEFAULT_IDLE_TIMEOUT`] unless set). Streams
/// in progress are never idle. A request whose body has not arrived whole within
/// [`body_timeout`](Serve::body_timeout) fails. Each request carries its peer's address as
/// axum's `ConnectInfo<SocketAddr>` (what the per-address stream cap counts). Browsers speak
/// HTTP/2 only over TLS, which a proxy in front terminates.
///
/// # Examples
///
/// ```no_run
/// # async fn run(hub: notif::Hub<Option<String>>) -> std::io::Result<()> {
/// let app = axum::Router::new().merge(hub.routes());
/// let listener = notif::bind("127.0.0.1:3000".parse().unwrap())?;
/// notif::serve(listener, app)
///     .idle_timeout(std::time::Duration::from_secs(30))
///     .with_graceful_shutdown(&hub, async {
///         let _ = tokio::signal::ctrl_c().await;
///     })
///     .await
/// # }
/// ```
///
/// # Errors
///
/// None today: a failed accept (out of file descriptors, say) is logged and retried a second
/// later, and a connection's own errors end that connection alone. The future resolves to `Ok`
/// once the graceful shutdown is over.
pub fn serve(listener: TcpListener, router: Router) -> Serve {
    Serve {
        listener,
        router,
        idle: Serve::DEFAULT_IDLE_TIMEOUT,
        body: Serve::DEFAULT_BODY_TIMEOUT,
        signal: Box::pin(std::future::pending()),
        end_streams: None,
    }
}

/// A server being configured; `.await` it to serve. Made by [`serve`].
#[must_use = "a Serve does nothing until awaited"]
pub struct Serve {
    listener: TcpListener,
    router: Router,
    idle: Duration,
    body: Duration,
    /// Starts the shutdown; never, unless given.
    signal: Signal,
    /// Ends the hub's streams once the signal came, and how long to wait for them to close.
    end_streams: Option<(EndStreams, Duration)>,
}

impl std::fmt::Debug for Serve {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Serve")
            .field("listener", &self.listener)
            .field("idle", &self.idle)
            .field("body", &self.body)
            .field("graceful_shutdown", &self.end_streams.is_some())
            .finish_non_exhaustive()
    }
}

impl Serve {
    /// How long a connection may go without a request by default: [`Serve::idle_timeout`].
    pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

    /// How long a request's body may take to arrive whole by default: [`Serve::body_timeout`].
    pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(30);

    /// Connections a listener from [`bind`] queues before they are accepted.
    pub const LISTEN_BACKLOG: u32 = 4096;

    /// Closes a connection that sends no request (its headers) for `idle` after the last
    /// response or after connecting; at least 1 ms. Streams in progress are not idle.
    pub fn idle_timeout(mut self, idle: Duration) -> Self {
        self.idle = idle.max(Duration::from_millis(1));
        self
    }

    /// Fails a request whose body has not arrived whole `body` after its head (at least 1 ms):
    /// a client trickling a body in holds no connection longer than that.
    pub fn body_timeout(mut self, body: Duration) -> Self {
        self.body = body.max(Duration::from_millis(1));
        self
    }

    /// Once `signal` completes: stop accepting, end every stream of `hub` with a `bye`
    /// (`shutdown`), let requests in progress finish, and return when every connection closed
    /// and every stream took its `bye`, or once the hub's `Config::shutdown_timeout` has passed.
    /// A hub with a backplane then drains ([`Hub::drained`]): its tabs wait up to
    /// `Config::drain` for the nodes their browsers reconnect to.
    pub fn with_graceful_shutdown<I: Identity>(
        mut self,
        hub: &Hub<I>,
        signal: impl Future<Output = ()> + Send + 'static,
    ) -> Self {
        let hub = hub.clone();
        let timeout = hub.config().shutdown_timeout;
        self.signal = Box::pin(signal);
        let end_streams: EndStreams = Box::new(move || {
            hub.shutdown();
            let drained = hub.clone();
            (
                Box::pin(async move { hub.connections_closed().await }),
                Box::pin(async move { drained.drained().await }),
            )
        });
        self.end_streams = Some((end_streams, timeout));
        self
    }

    async fn run(self) -> std::io::Result<()> {
        let Serve {
            listener,
            router,
            idle,
            body,
            mut signal,
            end_streams,
        } = self;
        let mut http = hyper::server::conn::http1::Builder::new();
        // hyper applies this to the wait for every request's headers, the next one included.
        http.timer(TokioTimer::new()).header_read_timeout(idle);
        // Each connection holds a receiver; the sender learns when the last one is gone.
        let (closing, closing_rx) = watch::channel(());
        loop {
            let (stream, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        // Out of file descriptors, say: wait rather than spin (as axum::serve does).
                        tracing::warn!(%error, "accept failed");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                },
                () = &mut signal => break,
            };
            let router = router.clone();
            let service = tower::service_fn(move |request: http::Request<hyper::body::Incoming>| {
                let mut request = request.map(|b| axum::body::Body::new(BodyDeadline::new(b, body)));
                request.extensions_mut().insert(ConnectInfo(peer));
                router.clone().oneshot(request)
            });
            let connection = http
                .serve_connection(accepted(stream), TowerToHyperService::new(service))
                .with_upgrades();
            let mut closing = closing_rx.clone();
            tokio::spawn(async move {
                let mut connection = std::pin::pin!(connection);
                let ended = tokio::select! {
                    ended = connection.as_mut() => ended,
                    _ = closing.changed() => {
                        connection.as_mut().graceful_shutdown();
                        connection.await
                    }
                };
                if let Err(error) = ended {
                    tracing::debug!(%error, "connection ended");
                }
            });
        }
        drop(listener);
        drop(closing_rx);
        tracing::info!("shutting down: closing notification streams");
        // Streams never end by themselves; ending them lets their connections close.
        let ((streams_closed, drained), timeout) = match end_streams {
            Some((end_streams, timeout)) => (end_streams(), timeout),
            None => {
                let done = || Box::pin(std::future::ready(())) as Signal;
                ((done(), done()), Duration::MAX)
            }
        };
        let _ = closing.send(());
        let all_closed = async {
            closing.closed().await;
            streams_closed.await;
        };
        if tokio::time::timeout(timeout, all_closed).await.is_err() {
            tracing::warn!(?timeout, "shutting down with connections still open");
        }
        // With several nodes, the tabs stay a while for the nodes they reconnect to.
        drained.await;
        Ok(())
    }
}

impl IntoFuture for Serve {
    type Output = std::io::Result<()>;
    type IntoFuture = Pin<Box<dyn Future<Output = std::io::Result<()>> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.run())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A burst of connections nobody accepts yet all get through the handshake at once:
    /// beyond a queue of 128, the kernel would drop them and clients retry a second later.
    #[tokio::test]
    async fn a_bound_listener_queues_a_burst_of_connections() {
        let listener = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let address = listener.local_addr().unwrap();
        let connecting = (0..600).map(|_| {
            tokio::time::timeout(
                std::time::Duration::from_millis(500),
                tokio::net::TcpStream::connect(address),
            )
        });
        let connected = futures::future::join_all(connecting).await;
        let through = connected.iter().filter(|c| matches!(c, Ok(Ok(_)))).count();
        assert_eq!(through, 600, "all queued, none accepted yet");
        drop(listener);
    }
}

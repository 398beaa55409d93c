//! The TCP socket of a connection [`serve`](fn@super::serve) accepts: Nagle's algorithm off, and
//! given back by hyper once the connection is upgraded, so the WebSocket transport writes to it
//! directly.
use bytes::Bytes;
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// An accepted connection, ready for hyper. Nagle's algorithm off: notif writes each frame (or
/// a tab's queued frames together) once, complete, so holding a small write back until the
/// previous one is acknowledged only delays it, by the client's delayed acknowledgement (up to
/// 40 ms on Linux, 200 ms on Windows) when two notifications follow each other closely.
/// [`socket_of`] takes the socket back from an upgraded connection by this very type.
pub(super) fn accepted(stream: TcpStream) -> TokioIo<TcpStream> {
    if let Err(error) = stream.set_nodelay(true) {
        tracing::debug!(%error, "cannot set TCP_NODELAY");
    }
    TokioIo::new(stream)
}

/// The TCP socket under a connection [`serve`] accepted and hyper upgraded, with the bytes hyper
/// read past the handshake; any other server's connection (TLS, `axum::serve`'s sniffing
/// wrapper) comes back as it was. The WebSocket transport writes to the socket directly then,
/// instead of through hyper's boxed connection.
pub(crate) fn socket_of(upgraded: Upgraded) -> Result<(TcpStream, Bytes), Upgraded> {
    upgraded
        .downcast::<TokioIo<TcpStream>>()
        .map(|parts| (parts.io.into_inner(), parts.read_buf))
}

#[cfg(test)]
mod tests {
    use std::future::IntoFuture;

    use axum::Router;
    use tokio::net::TcpListener;

    use super::*;
    use crate::serve;

    #[tokio::test]
    async fn accepted_connections_send_each_write_at_once() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap());
        let (accepting, _client) = tokio::join!(listener.accept(), client);
        let stream = accepted(accepting.unwrap().0).into_inner();
        assert!(stream.nodelay().unwrap(), "Nagle's algorithm is off");
    }

    /// What the WebSocket transport counts on for its direct writes: a connection `serve`
    /// accepted gives its socket back once upgraded, with what the client sent after the
    /// handshake; `axum::serve`'s does not (and is served through hyper's `Upgraded`).
    #[tokio::test]
    async fn an_upgraded_connection_gives_its_socket_back_under_serve_only() {
        use tokio::io::AsyncWriteExt;
        for ours in [true, false] {
            let (found, mut found_rx) = tokio::sync::mpsc::unbounded_channel();
            let upgrade = move |mut request: axum::extract::Request| async move {
                let upgrade = request.extensions_mut().remove::<hyper::upgrade::OnUpgrade>();
                tokio::spawn(async move {
                    let upgraded = upgrade.expect("an upgradable connection").await.unwrap();
                    let _ = found.send(socket_of(upgraded).map(|(_, read)| read).map_err(drop));
                });
                http::Response::builder()
                    .status(http::StatusCode::SWITCHING_PROTOCOLS)
                    .header("connection", "upgrade")
                    .header("upgrade", "test")
                    .body(axum::body::Body::empty())
                    .unwrap()
            };
            let router = Router::new().route("/up", axum::routing::get(upgrade));
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let address = listener.local_addr().unwrap();
            let server = if ours {
                tokio::spawn(serve(listener, router).into_future())
            } else {
                tokio::spawn(axum::serve(listener, router).into_future())
            };
            let mut client = TcpStream::connect(address).await.unwrap();
            let request = "GET /up HTTP/1.1\r\nhost: a\r\nconnection: upgrade\r\nupgrade: test\r\n\r\n";
            client
                .write_all(format!("{request}after").as_bytes())
                .await
                .unwrap();
            let found = found_rx.recv().await.expect("the handler ran");
            if ours {
                assert_eq!(found, Ok(Bytes::from_static(b"after")));
            } else {
                assert_eq!(found, Err(()), "axum::serve's connection is not a bare socket");
            }
            server.abort();
        }
    }
}

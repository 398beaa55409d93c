//! WebSocket transport: the same frames as SSE, one JSON text message each. Browsers allow only
//! six HTTP/1.1 connections per host, so one SSE stream per tab freezes the seventh tab's
//! server function calls; WebSockets do not count against that limit.
//!
//! notif speaks the protocol itself rather than through a WebSocket library: the socket is
//! shared with the hub, so a notify pass writes a tab's frame at once when the socket is free
//! instead of waking the connection's task (see `link.rs`). That halves the CPU spent per
//! delivery outside the kernel.
mod frame;
#[cfg(feature = "fuzzing")]
mod fuzz;
mod io;
mod link;
mod open_tab;

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{ready, Context, Poll},
    time::Duration,
};

use axum::{
    body::Body,
    extract::Request,
    response::{IntoResponse, Response},
};
use http::{header, HeaderMap, HeaderValue, StatusCode};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};

use super::{OpenTab, Session};
use crate::{hub::queue::TryRecvError, wire::encode_ws, Hub, Identity, EVENT_HELLO};
use frame::{Incoming, OpCode};
use io::Unreadable;
use link::Link;
use open_tab::WRITE_BATCH;

/// How long a closing connection may take to write its last frames and hear the client close
/// before it is dropped.
const CLOSE_WAIT: Duration = Duration::from_secs(5);

/// Why a request is not a WebSocket handshake notif accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
enum HandshakeRefused {
    #[error("not a WebSocket upgrade: send `Connection: Upgrade` and `Upgrade: websocket`")]
    NotUpgrade,
    #[error("unsupported WebSocket version: send `Sec-WebSocket-Version: 13`")]
    Version,
    #[error("missing `Sec-WebSocket-Key` header")]
    NoKey,
    #[error("`Sec-WebSocket-Key` must be the base64 of 16 random bytes (RFC 6455 §4.2.1)")]
    BadKey,
    #[error("this connection cannot be upgraded (HTTP/1.1 is required)")]
    NotUpgradable,
}

impl IntoResponse for HandshakeRefused {
    fn into_response(self) -> Response {
        let status = match self {
            HandshakeRefused::NotUpgradable => StatusCode::UPGRADE_REQUIRED,
            _ => StatusCode::BAD_REQUEST,
        };
        (status, self.to_string()).into_response()
    }
}

fn has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|value| {
        value
            .to_str()
            .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    })
}

/// The `Sec-WebSocket-Accept` answer to a handshake, or why there is none.
fn accept(headers: &HeaderMap) -> Result<HeaderValue, HandshakeRefused> {
    use base64::Engine;
    use sha1::Digest;
    if !has_token(headers, header::CONNECTION, "upgrade") || !has_token(headers, header::UPGRADE, "websocket")
    {
        return Err(HandshakeRefused::NotUpgrade);
    }
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .map(HeaderValue::as_bytes)
        != Some(b"13")
    {
        return Err(HandshakeRefused::Version);
    }
    let key = headers
        .get(header::SEC_WEBSOCKET_KEY)
        .ok_or(HandshakeRefused::NoKey)?;
    // The answer hashes the key as sent; only its form is checked, as the RFC asks.
    let nonce = base64::engine::general_purpose::STANDARD.decode(key.as_bytes());
    if nonce.map_or(true, |nonce| nonce.len() != 16) {
        return Err(HandshakeRefused::BadKey);
    }
    let mut sha1 = sha1::Sha1::new();
    sha1.update(key.as_bytes());
    sha1.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    let accept = base64::engine::general_purpose::STANDARD.encode(sha1.finalize());
    HeaderValue::from_str(&accept).map_err(|_| HandshakeRefused::NoKey)
}

/// Checks the request, starts the tab's session, then upgrades.
pub(super) async fn upgrade<I: Identity>(hub: Hub<I>, request: Request) -> Response {
    let (mut parts, _body) = request.into_parts();
    let accept = match accept(&parts.headers) {
        Ok(accept) => accept,
        Err(refused) => return refused.into_response(),
    };
    let Some(upgrade) = parts.extensions.remove::<OnUpgrade>() else {
        return HandshakeRefused::NotUpgradable.into_response();
    };
    let session = match super::start_session(&hub, &parts).await {
        Ok(session) => session,
        Err(refused) => return refused.into_response(),
    };
    tokio::spawn(upgraded(upgrade, session));
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    response
}

/// Whether the client's close frame was read: after it, a client sends nothing.
enum Heard {
    Yes,
    No,
}

/// What a turn of a waiting connection leaves to do.
enum Step {
    /// Write what was encoded, then carry on.
    Write,
    /// Write what was encoded (ending with a close frame), then end: once the client closed
    /// too, unless its close frame was `Heard` already (this one is its echo).
    Finish(Heard),
    /// The connection is gone.
    Gone,
}

/// Waits for the upgrade, queues the hello, then hands the connection to a task of its own and
/// ends. That task lives as long as the connection and is the largest part of an idle stream's
/// memory, so it holds only what serving needs (see [`Serving`]).
async fn upgraded<I: Identity>(upgrade: OnUpgrade, session: Session<I>) {
    let upgraded = match upgrade.await {
        Ok(upgraded) => upgraded,
        Err(error) => {
            // Dropping the session starts the tab's resume window, as for any ended stream.
            tracing::debug!(%error, "notif: WebSocket upgrade failed");
            return;
        }
    };
    // Under `notif::serve` the connection is a plain TCP socket: kept as that, each write goes
    // straight to it (one pointer chased, and one allocation held, less per stream).
    match crate::serve::socket_of(upgraded) {
        Ok((socket, read)) => serve_socket(socket, &read, session),
        Err(upgraded) => serve_socket(TokioIo::new(upgraded), &[], session),
    }
}

/// Starts serving `stream`, whose client already sent `read` (bytes hyper read past the
/// handshake), in a task of its own.
fn serve_socket<I, S>(stream: S, read: &[u8], session: Session<I>)
where
    I: Identity,
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let link = Arc::new(Link::new(stream, session.tab_id, read));
    let open = queue_hello(&link, session);
    tokio::spawn(Serving {
        link,
        open,
        phase: Phase::Hello,
    });
}

/// Encodes the hello and the frames to replay. What remains of the session is its open tab.
fn queue_hello<I: Identity, S: AsyncRead + AsyncWrite + Unpin>(
    link: &Link<S>,
    session: Session<I>,
) -> OpenTab<I> {
    let mut io = link.lock();
    let hello = serde_json::to_string(&session.hello()).unwrap_or_default();
    let first = encode_ws(EVENT_HELLO, Some(format_args!("{}", session.hello_id())), &hello);
    io.put(OpCode::Text, first.as_bytes());
    for (seq, data) in session.replay {
        io.put_notif(seq, &data);
    }
    session.open
}

/// A connection being served, from its hello until it ends; then its socket is closed.
///
/// A future written out by hand rather than an `async fn`: it is the whole of a connection's
/// task, and its size is then what it holds (80 bytes), where the compiler's layout of an
/// `async fn` doing the same kept room for every await point (272 bytes). tokio aligns a
/// task's cell to 128 bytes, so this takes an idle connection's task from 384 to 256 bytes.
/// Heartbeats come from the hub's clock, which writes them itself (`hub/heartbeat.rs`).
struct Serving<I: Identity, S: AsyncRead + AsyncWrite + Unpin> {
    link: Arc<Link<S>>,
    open: OpenTab<I>,
    phase: Phase,
}

/// Where a connection is.
enum Phase {
    /// Writing the hello and the frames to replay.
    Hello,
    /// Waiting for frames to send or for the client.
    Waiting,
    /// Writing what the last turn encoded.
    Writing,
    /// Writing the last frames, a close frame at their end, then waiting for the client's close,
    /// for at most [`CLOSE_WAIT`].
    /// Boxed: only a closing connection holds a timer.
    Closing(Pin<Box<tokio::time::Sleep>>, Heard),
}

impl<I, S> Serving<I, S>
where
    I: Identity,
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    /// One turn of a waiting connection: frames first (a wake for a frame then does not poll
    /// the socket), then what the client sent.
    fn turn(&mut self, cx: &mut Context<'_>) -> Poll<Step> {
        if self.open.poll_ready(cx).is_ready() {
            let mut io = self.link.lock();
            // A notify pass may have written frames meanwhile, or queued a bye.
            let mut end = io.ending;
            let mut taken = 0;
            while !end && taken < WRITE_BATCH {
                match self.open.take() {
                    Ok(frame) => {
                        io.queue(frame);
                        taken += 1;
                        end = io.ending;
                    }
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Closed) => end = true,
                }
            }
            if end {
                io.put_close(None);
                return Poll::Ready(Step::Finish(Heard::No));
            }
            return Poll::Ready(Step::Write);
        }
        let read = ready!(self.link.lock().poll_read(cx));
        let mut io = self.link.lock();
        Poll::Ready(match read {
            Ok(Incoming::Ping(payload)) => {
                io.put(OpCode::Pong, &payload);
                Step::Write
            }
            Ok(Incoming::Acknowledged(seq)) => {
                // Not under the link's lock: this takes the hub's.
                drop(io);
                self.open.acknowledged(seq);
                // Nothing new to write: a flush of nothing, then back to waiting.
                Step::Write
            }
            Ok(Incoming::Close(code)) => {
                // Echo the client's code (one a close frame may carry), as the protocol asks.
                io.put_close(code);
                Step::Finish(Heard::Yes)
            }
            Err(Unreadable::Broken(error)) => {
                tracing::debug!(%error, "notif: a WebSocket tab_id broke the protocol; closing");
                io.put_close(Some(error.close_code()));
                Step::Finish(Heard::No)
            }
            Err(Unreadable::Gone) => Step::Gone,
        })
    }
}

impl<I, S> Future for Serving<I, S>
where
    I: Identity,
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        loop {
            match &mut this.phase {
                Phase::Hello | Phase::Writing => {
                    let flushed = ready!(this.link.lock().poll_flush(cx));
                    if flushed.is_err() {
                        return Poll::Ready(());
                    }
                    if matches!(this.phase, Phase::Hello) {
                        // Most streams then wait: none keeps its hello's buffer.
                        this.link.lock().release();
                        // From here on, frames may be written by whoever queues them.
                        this.open.set_direct(this.link.clone());
                    }
                    this.phase = Phase::Waiting;
                }
                Phase::Waiting => match ready!(this.turn(cx)) {
                    Step::Write => this.phase = Phase::Writing,
                    Step::Finish(heard) => {
                        this.phase = Phase::Closing(Box::pin(tokio::time::sleep(CLOSE_WAIT)), heard);
                    }
                    Step::Gone => return Poll::Ready(()),
                },
                Phase::Closing(deadline, heard) => {
                    if deadline.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(());
                    }
                    let mut io = this.link.lock();
                    if ready!(io.poll_flush(cx)).is_err() || matches!(heard, Heard::Yes) {
                        return Poll::Ready(());
                    }
                    // All written: wait for the client to close too, reading and dropping what
                    // it sent meanwhile (pongs to the pings between the last frames). A socket
                    // closed with bytes unread is reset, and a reset can cost the client the
                    // frames it has not read yet: the last ones and the bye.
                    loop {
                        match ready!(io.poll_read(cx)) {
                            Ok(Incoming::Ping(_) | Incoming::Acknowledged(_)) => {}
                            Ok(Incoming::Close(_)) | Err(_) => return Poll::Ready(()),
                        }
                    }
                }
            }
        }
    }
}

impl<I: Identity, S: AsyncRead + AsyncWrite + Unpin> Drop for Serving<I, S> {
    fn drop(&mut self) {
        // Before `open` drops, which starts the tab's resume window.
        self.link.shut();
    }
}

#[cfg(test)]
mod tests;

//! WebSocket transport: the same frames as SSE, one JSON text message each. Browsers allow only
//! six HTTP/1.1 connections per host, so one SSE stream per tab freezes the seventh tab's
//! server function calls; WebSockets do not count against that limit.
use std::pin::pin;

use axum::{
    extract::{
        ws::{Message, WebSocket, WebSocketUpgrade},
        FromRequestParts, Request,
    },
    response::{IntoResponse, Response},
};
use futures::{SinkExt, StreamExt};

use super::{Session, WRITE_BATCH};
use crate::{
    hub::Outgoing, wire::encode_ws, Bye, ClientId, Hub, Identity, EVENT_BYE, EVENT_HELLO, EVENT_NOTIF,
};

/// Read buffer per connection. Clients send only control frames (pong, close), and tungstenite
/// zero-fills its whole read buffer on the first read: its 128 KiB default would make every idle
/// tab cost 128 KiB.
const READ_BUFFER: usize = 256;
/// Frames are gathered up to this size before a write; a flush writes whatever is gathered.
const WRITE_BUFFER: usize = 16 * 1024;
/// Largest message a client may send: it has nothing to say but control frames.
const MAX_CLIENT_MESSAGE: usize = 4096;

/// Checks the request, starts the tab's session, then upgrades.
pub(super) async fn answer<I: Identity>(hub: Hub<I>, request: Request) -> Response {
    let (mut parts, _body) = request.into_parts();
    let upgrade = match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
        Ok(upgrade) => upgrade,
        Err(rejection) => return rejection.into_response(),
    };
    let session = match hub.start_session(&parts).await {
        Ok(session) => session,
        Err(refused) => return refused.into_response(),
    };
    upgrade
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        .max_message_size(MAX_CLIENT_MESSAGE)
        .max_frame_size(MAX_CLIENT_MESSAGE)
        .on_upgrade(move |socket| run(socket, session, hub))
}

/// A frame as a text message, and whether it is the last of the stream.
fn message(client: ClientId, frame: Outgoing) -> (Message, bool) {
    match frame {
        Outgoing::Notif { seq, data } => {
            let text = encode_ws(EVENT_NOTIF, Some(format_args!("{client}.{seq}")), &data);
            (Message::Text(text.into()), false)
        }
        Outgoing::Bye(reason) => {
            let bye = serde_json::to_string(&Bye { reason }).unwrap_or_default();
            (Message::Text(encode_ws(EVENT_BYE, None, &bye).into()), true)
        }
    }
}

async fn run<I: Identity>(mut socket: WebSocket, mut session: Session<I>, hub: Hub<I>) {
    let client = session.client;
    let hello = serde_json::to_string(&session.hello()).unwrap_or_default();
    let first = encode_ws(EVENT_HELLO, Some(format_args!("{}", session.hello_id())), &hello);
    if socket.feed(Message::Text(first.into())).await.is_err() {
        return;
    }
    for (seq, data) in std::mem::take(&mut session.replay) {
        let (text, _) = message(client, Outgoing::Notif { seq, data });
        if socket.feed(text).await.is_err() {
            return;
        }
    }
    if socket.flush().await.is_err() {
        return;
    }
    // The hub's shared clock; a connection that wrote since the last tick needs no ping.
    let mut beat = pin!(hub.heartbeat());
    let mut wrote = false;
    loop {
        tokio::select! {
            // Frames first: a wake for a frame then polls neither the socket nor the clock.
            biased;
            frame = session.open.next() => {
                let Some(frame) = frame else { break };
                // Whatever else is already queued goes out in the same write.
                let (mut frame, mut written, mut last) = (frame, 0, false);
                loop {
                    let (text, end) = message(client, frame);
                    last |= end;
                    if socket.feed(text).await.is_err() {
                        return;
                    }
                    written += 1;
                    if last || written == WRITE_BATCH {
                        break;
                    }
                    match session.open.try_next() {
                        Some(more) => frame = more,
                        None => break,
                    }
                }
                if socket.flush().await.is_err() || last {
                    break;
                }
                wrote = true;
            }
            incoming = socket.next() => match incoming {
                // The client sends nothing but control frames; a close or an error ends the tab's connection.
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                Some(Ok(_)) => {}
            },
            () = &mut beat => {
                beat.set(hub.heartbeat());
                if !std::mem::take(&mut wrote) && socket.send(Message::Ping(Default::default())).await.is_err() {
                    break;
                }
            }
        }
    }
    let _ = socket.send(Message::Close(None)).await;
}

//! WebSocket transport: the same frames as SSE, one JSON text message each. Browsers allow only
//! six HTTP/1.1 connections per host, so one SSE stream per tab freezes the seventh tab's
//! server function calls; WebSockets do not count against that limit.
use std::time::Duration;

use axum::{
    extract::{
        ws::{Message, WebSocket, WebSocketUpgrade},
        FromRequestParts, Request,
    },
    response::{IntoResponse, Response},
};
use futures::StreamExt;

use super::Session;
use crate::{hub::Outgoing, wire::encode_ws, Bye, Hub, Identity, EVENT_BYE, EVENT_HELLO, EVENT_NOTIF};

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
    let heartbeat = hub.config().heartbeat.max(Duration::from_millis(1));
    upgrade.on_upgrade(move |socket| run(socket, session, heartbeat))
}

async fn run<I: Identity>(mut socket: WebSocket, mut session: Session<I>, heartbeat: Duration) {
    let client = session.client;
    let hello = serde_json::to_string(&session.hello()).unwrap_or_default();
    let mut first = vec![encode_ws(EVENT_HELLO, Some(&session.hello_id()), &hello)];
    for (seq, data) in std::mem::take(&mut session.replay) {
        first.push(encode_ws(EVENT_NOTIF, Some(&format!("{client}.{seq}")), &data));
    }
    for text in first {
        if socket.send(Message::Text(text.into())).await.is_err() {
            return;
        }
    }
    let mut ping = tokio::time::interval(heartbeat);
    ping.tick().await;
    loop {
        tokio::select! {
            frame = session.open.next() => {
                let Some(frame) = frame else { break };
                let (text, last) = match frame {
                    Outgoing::Notif { seq, data } => {
                        (encode_ws(EVENT_NOTIF, Some(&format!("{client}.{seq}")), &data), false)
                    }
                    Outgoing::Bye(reason) => {
                        (encode_ws(EVENT_BYE, None, &serde_json::to_string(&Bye { reason }).unwrap_or_default()), true)
                    }
                };
                if socket.send(Message::Text(text.into())).await.is_err() || last {
                    break;
                }
            }
            incoming = socket.next() => match incoming {
                // The client sends nothing but control frames; a close or an error ends the tab's connection.
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                Some(Ok(_)) => {}
            },
            _ = ping.tick() => {
                if socket.send(Message::Ping(Default::default())).await.is_err() {
                    break;
                }
            }
        }
    }
    let _ = socket.send(Message::Close(None)).await;
}

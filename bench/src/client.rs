//! One stream as a browser tab holds it: open, listen (each listen confirmed before it counts),
//! then read frames, handing back each notification's message text.
//!
//! Targets: notif over WebSocket (what the browser client uses) or Server-Sent Events, and the
//! Socket.IO peer (Engine.IO v4 over WebSocket: `join` events acknowledged once joined).
use std::{ops::Range, time::Duration};

use futures::{stream, StreamExt};

use crate::ws::WsConn;

/// What the generator talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// notif's `/notif/ws`.
    NotifWs,
    /// notif's `/notif/stream`.
    NotifSse,
    /// A Socket.IO server at `/socket.io/`.
    SocketIo,
}

impl std::str::FromStr for Target {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "ws" | "notif" => Ok(Target::NotifWs),
            "sse" => Ok(Target::NotifSse),
            "socketio" => Ok(Target::SocketIo),
            other => Err(format!("--target {other}: ws, sse or socketio")),
        }
    }
}

/// A key to listen on: a topic of `bench serve` and a key (a room for Socket.IO).
#[derive(Debug, Clone)]
pub struct Listen {
    pub topic: &'static str,
    pub key: String,
}

/// An open stream whose listens are confirmed.
pub enum Conn {
    Ws {
        socket: Box<WsConn>,
        socketio: bool,
    },
    Sse {
        body: futures::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
        buffer: Vec<u8>,
        /// The frame the last message was read from.
        last: String,
    },
}

pub(crate) fn ws_url(url: &str, path: &str) -> String {
    format!("ws{}{path}", url.strip_prefix("http").unwrap_or(url))
}

async fn next_text(socket: &mut WsConn) -> Result<String, String> {
    socket.next_text().await.map(str::to_owned)
}

/// The next Socket.IO packet that is not an Engine.IO ping (pings are answered).
async fn sio_next(socket: &mut WsConn) -> Result<String, String> {
    let not_ping = |text: &str| (text != "2").then_some(0..text.len());
    let text = socket.next_matching(not_ping, Some(("2", "3")));
    text.await.map(str::to_owned)
}

/// The tab id in a notif hello frame.
pub(crate) fn hello_tab_id(frame: &str) -> Result<String, String> {
    let value: serde_json::Value = serde_json::from_str(frame).map_err(|e| format!("hello: {e}"))?;
    value["data"]["client"]
        .as_str()
        .map(str::to_owned)
        .ok_or(format!("no client (tab id) in hello {frame}"))
}

pub(crate) async fn notif_listen(
    http: &reqwest::Client,
    url: &str,
    tab_id: &str,
    user: &str,
    listen: &Listen,
) -> Result<(), String> {
    let response = http
        .post(format!("{url}/listen"))
        .query(&[("topic", listen.topic), ("key", &listen.key), ("user", user)])
        .header(notif::wire::TAB_HEADER, tab_id)
        .send()
        .await
        .map_err(|e| format!("listen: {e}"))?;
    if !response.status().is_success() {
        return Err(format!("listen {listen:?} refused: {}", response.status()));
    }
    Ok(())
}

impl Conn {
    /// Opens a stream as `user` and listens on `listens`; returns once every listen is confirmed.
    pub async fn open(
        target: Target,
        http: &reqwest::Client,
        url: &str,
        user: &str,
        listens: &[Listen],
    ) -> Result<Conn, String> {
        match target {
            Target::NotifWs => {
                let mut socket =
                    WsConn::connect(&ws_url(url, &format!("{}?user={user}", notif::wire::WS_PATH))).await?;
                let tab_id = hello_tab_id(&next_text(&mut socket).await?)?;
                for listen in listens {
                    notif_listen(http, url, &tab_id, user, listen).await?;
                }
                Ok(Conn::Ws {
                    socket: Box::new(socket),
                    socketio: false,
                })
            }
            Target::NotifSse => {
                let response = http
                    .get(format!("{url}{}?user={user}", notif::wire::STREAM_PATH))
                    .send()
                    .await
                    .map_err(|e| format!("stream: {e}"))?;
                let mut conn = Conn::Sse {
                    body: response.bytes_stream().boxed(),
                    buffer: Vec::new(),
                    last: String::new(),
                };
                let hello = conn.next_frame().await.ok_or("stream ended before its hello")?;
                let data = hello
                    .lines()
                    .find_map(|l| l.strip_prefix("data:"))
                    .unwrap_or("{}")
                    .trim();
                let tab_id = hello_tab_id(&format!("{{\"data\":{data}}}"))?;
                for listen in listens {
                    notif_listen(http, url, &tab_id, user, listen).await?;
                }
                Ok(conn)
            }
            Target::SocketIo => {
                let mut socket =
                    WsConn::connect(&ws_url(url, "/socket.io/?EIO=4&transport=websocket")).await?;
                let open = next_text(&mut socket).await?;
                if !open.starts_with('0') {
                    return Err(format!("engine.io open expected, got {open}"));
                }
                socket.send_text("40").await?;
                let connected = sio_next(&mut socket).await?;
                if !connected.starts_with("40") {
                    return Err(format!("socket.io connect expected, got {connected}"));
                }
                for (ack, listen) in listens.iter().enumerate() {
                    let join = format!(
                        "42{ack}[\"join\",{}]",
                        serde_json::Value::from(listen.key.as_str())
                    );
                    socket.send_text(&join).await?;
                    let expected = format!("43{ack}");
                    while !sio_next(&mut socket).await?.starts_with(&expected) {}
                }
                Ok(Conn::Ws {
                    socket: Box::new(socket),
                    socketio: true,
                })
            }
        }
    }

    /// The next SSE frame (text up to a blank line).
    async fn next_frame(&mut self) -> Option<String> {
        let Conn::Sse { body, buffer, .. } = self else {
            return None;
        };
        loop {
            if let Some(end) = buffer.windows(2).position(|w| w == b"\n\n") {
                let frame = String::from_utf8_lossy(&buffer[..end]).into_owned();
                buffer.drain(..end + 2);
                return Some(frame);
            }
            buffer.extend_from_slice(&body.next().await?.ok()?);
        }
    }

    /// The message text of the next notification; `None` once the stream ended. WebSocket
    /// messages are read in place: nothing is allocated per message.
    pub async fn next_message(&mut self) -> Option<&str> {
        match self {
            Conn::Sse { .. } => {
                let (frame, message) = loop {
                    let frame = self.next_frame().await?;
                    if frame.starts_with("event: notif") || frame.contains("\nevent: notif") {
                        if let Some(message) = notif_message(&frame) {
                            break (frame, message);
                        }
                    }
                };
                let Conn::Sse { last, .. } = self else {
                    return None;
                };
                *last = frame;
                Some(&last[message])
            }
            Conn::Ws {
                socket,
                socketio: true,
            } => {
                const PREFIX: &str = "42[\"notif\",\"";
                let message = |text: &str| {
                    let rest = text.strip_prefix(PREFIX)?;
                    Some(PREFIX.len()..PREFIX.len() + rest.trim_end_matches("\"]").len())
                };
                socket.next_matching(message, Some(("2", "3"))).await.ok()
            }
            Conn::Ws { socket, .. } => {
                let message = |text: &str| {
                    if text.starts_with("{\"event\":\"notif\"") {
                        notif_message(text)
                    } else {
                        None
                    }
                };
                socket.next_matching(message, None).await.ok()
            }
        }
    }

    /// Closes the stream as a tab does when it goes away.
    pub async fn close(self) {
        if let Conn::Ws { socket, .. } = self {
            socket.close().await;
        }
    }
}

/// Longest wait for one stream to open and confirm its listens.
const OPEN_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a stream is not open and listening.
pub enum NotOpen {
    /// Connected, but a listen was never confirmed within [`OPEN_TIMEOUT`] (the server lost it).
    Unconfirmed(String),
    /// Refused, closed or garbled.
    Failed(String),
}

impl From<NotOpen> for String {
    fn from(not_open: NotOpen) -> String {
        match not_open {
            NotOpen::Unconfirmed(e) | NotOpen::Failed(e) => e,
        }
    }
}

/// Opens one stream per `(user, listens)` of `plan`, `parallel` at a time; one result each.
pub async fn open_each(
    target: Target,
    http: &reqwest::Client,
    url: &str,
    plan: Vec<(String, Vec<Listen>)>,
    parallel: usize,
) -> Vec<Result<Conn, NotOpen>> {
    stream::iter(plan)
        .map(|(user, listens)| async move {
            // A connection that hangs must not stall the run.
            match tokio::time::timeout(OPEN_TIMEOUT, Conn::open(target, http, url, &user, &listens)).await {
                Ok(opened) => opened.map_err(NotOpen::Failed),
                Err(_) => Err(NotOpen::Unconfirmed(format!(
                    "{user}: not open and listening after {OPEN_TIMEOUT:?}"
                ))),
            }
        })
        .buffered(parallel)
        .collect()
        .await
}

/// Where the `message` string of a notif frame is, without parsing all of it: the generator
/// must stay cheaper than the server it measures.
pub(crate) fn notif_message(frame: &str) -> Option<Range<usize>> {
    let start = frame.rfind("\"message\":\"")? + "\"message\":\"".len();
    let end = frame[start..].find('"')?;
    Some(start..start + end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_message_of_a_frame() {
        let frame = r#"{"event":"notif","id":"a.1","data":{"topic":"group","key":"k0","message":"1:2:3"}}"#;
        assert_eq!(notif_message(frame).map(|r| &frame[r]), Some("1:2:3"));
        assert_eq!(notif_message("{}"), None);
    }
}

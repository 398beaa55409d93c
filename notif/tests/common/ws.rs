//! The WebSocket client helpers: reading messages and a hand-made upgrade request.

use std::time::Duration;

use futures::StreamExt;

/// A WebSocket stream as tests open it.
pub type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The next message `wanted` accepts, skipping others; panics after 5 s without one.
pub async fn next_message(
    socket: &mut Socket,
    wanted: impl Fn(&tokio_tungstenite::tungstenite::Message) -> bool,
) -> tokio_tungstenite::tungstenite::Message {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(5), socket.next())
            .await
            .expect("nothing within 5 s")
            .expect("socket ended")
            .unwrap();
        if wanted(&message) {
            return message;
        }
    }
}

/// The next text message (a frame), skipping control messages.
pub async fn next_text_message(socket: &mut Socket) -> String {
    match next_message(socket, |m| m.is_text()).await {
        tokio_tungstenite::tungstenite::Message::Text(text) => text.to_string(),
        _ => unreachable!("only text is wanted"),
    }
}

/// A WebSocket upgrade request for `user`'s new tab, as raw bytes (the RFC's example key), for
/// tests that drive the connection by hand.
pub fn ws_upgrade_request(user: &str) -> Vec<u8> {
    format!(
        "GET {} HTTP/1.1\r\nhost: test\r\nx-user: {user}\r\nconnection: Upgrade\r\n\
         upgrade: websocket\r\nsec-websocket-version: 13\r\n\
         sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        notif::wire::WS_PATH
    )
    .into_bytes()
}

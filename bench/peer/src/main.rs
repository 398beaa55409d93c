//! Benchmark peer: Socket.IO rooms on socketioxide, in its default configuration, driven by
//! notif's load generator (`bench <scenario> --target socketio`).
//!
//! `peer ADDR` serves Engine.IO v4 at `/socket.io/`: a `join` event with a room name joins that
//! room and then acknowledges (the generator counts a join only once acknowledged);
//! `POST /notify?key=K` emits event `notif` with the request body to room `K`.
use std::collections::HashMap;

use axum::{
    extract::{Query, State},
    http::StatusCode,
    routing::post,
};
use socketioxide::{
    extract::{AckSender, Data, SocketRef},
    SocketIo,
};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:3400".into());
    let (layer, io) = SocketIo::new_layer();
    io.ns("/", async |s: SocketRef| {
        s.on(
            "join",
            async |s: SocketRef, ack: AckSender, Data::<String>(room)| {
                s.join(room);
                ack.send(&"ok").ok();
            },
        );
    });
    let app = axum::Router::new()
        .route("/notify", post(notify))
        .with_state(io)
        .layer(layer);
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .map_err(|e| format!("cannot bind {addr}: {e}"))?;
    // TCP_NODELAY, as `notif::serve` and the floor's writer set it: the same socket options.
    let listener = axum::serve::ListenerExt::tap_io(listener, |stream| {
        let _ = stream.set_nodelay(true);
    });
    axum::serve(listener, app).await?;
    Ok(())
}

async fn notify(
    State(io): State<SocketIo>,
    Query(query): Query<HashMap<String, String>>,
    body: String,
) -> Result<&'static str, (StatusCode, &'static str)> {
    let key = query
        .get("key")
        .ok_or((StatusCode::BAD_REQUEST, "POST /notify?key=ROOM"))?;
    // A socket whose buffer is full drops the message (socketioxide reports it here, per
    // emit); the generator counts that as loss, so the publisher is answered as usual.
    io.to(key.clone()).emit("notif", &body).await.ok();
    Ok("ok")
}

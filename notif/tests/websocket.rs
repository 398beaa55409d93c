//! The WebSocket transport carries the same frames under the same resume rules as SSE.
mod common;

use std::time::Duration;

use common::{next_message, Socket, TestServer};
use notif::{wire::WsFrame, Config};
use tokio_tungstenite::tungstenite::{client::IntoClientRequest, Message};

async fn connect(server: &TestServer, user: &str, last_event_id: Option<&str>) -> Result<Socket, u16> {
    let query = last_event_id
        .map(|id| format!("?last_event_id={id}"))
        .unwrap_or_default();
    let mut request = format!("ws://{}{}{query}", server.addr, notif::wire::WS_PATH)
        .into_client_request()
        .unwrap();
    request.headers_mut().insert("x-user", user.parse().unwrap());
    match tokio_tungstenite::connect_async(request).await {
        Ok((socket, _)) => Ok(socket),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => Err(response.status().as_u16()),
        Err(other) => panic!("{other}"),
    }
}

fn assert_bye_disconnected(frame: WsFrame) {
    assert_eq!(
        (frame.event.as_str(), frame.data["reason"].as_str()),
        ("bye", Some("disconnected"))
    );
}

/// A new tab of `user` over a WebSocket, past its hello, listening on chat key `key`; its id.
async fn listening(server: &TestServer, user: &str, key: &str) -> (Socket, String) {
    let mut socket = connect(server, user, None).await.unwrap();
    let tab_id = next(&mut socket).await.data["client"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, body) = server
        .call_as(Some(user), Some(&tab_id), "t/listen_chat", &[("key", key)])
        .await;
    assert_eq!(status, 200, "{body}");
    (socket, tab_id)
}

/// Reconnects a tab of `user` that saw frames up to `last` (`<tab>.<seq>`); its hello.
async fn reconnect(server: &TestServer, user: &str, last: &str) -> (Socket, WsFrame) {
    let mut socket = connect(server, user, Some(last)).await.unwrap();
    let hello = next(&mut socket).await;
    (socket, hello)
}

/// What a hello says of a resume: whether it recovered, and which tab.
fn resumed(hello: &WsFrame) -> (Option<bool>, Option<&str>) {
    (hello.data["recovered"].as_bool(), hello.data["client"].as_str())
}

/// The next frame (a text message), skipping control messages.
async fn next(socket: &mut Socket) -> WsFrame {
    serde_json::from_str(&common::next_text_message(socket).await).unwrap()
}

#[tokio::test]
async fn frames_flow_and_a_reconnect_resumes() {
    let server = TestServer::with_config({
        let mut config = Config::default();
        config.resume_window = Duration::from_secs(30);
        config
    })
    .await;
    let mut socket = connect(&server, "alice", None).await.unwrap();
    let hello = next(&mut socket).await;
    assert_eq!(hello.event, "hello");
    assert_eq!(hello.data["recovered"], false);
    let tab_id = hello.data["client"].as_str().unwrap().to_owned();
    assert_eq!(hello.id.as_deref(), Some(format!("{tab_id}.0").as_str()));
    let (status, body) = server
        .call_as(Some("alice"), Some(&tab_id), "t/listen_chat", &[("key", "k")])
        .await;
    assert_eq!(status, 200, "{body}");

    server.notify_chat("k", "one").await;
    let one = next(&mut socket).await;
    assert_eq!(
        (one.event.as_str(), one.data["message"].as_str()),
        ("notif", Some("one"))
    );
    assert_eq!(one.id.as_deref(), Some(format!("{tab_id}.1").as_str()));
    socket.close(None).await.unwrap();
    server.notify_chat("k", "two").await;

    let (mut back, hello) = reconnect(&server, "alice", &format!("{tab_id}.1")).await;
    assert_eq!(resumed(&hello), (Some(true), Some(tab_id.as_str())));
    let two = next(&mut back).await;
    assert_eq!(two.data["message"], "two");
    assert_eq!(two.id.as_deref(), Some(format!("{tab_id}.2").as_str()));
}

#[tokio::test]
async fn bad_and_foreign_ids_are_refused_before_the_upgrade() {
    let server = TestServer::with_config({
        let mut config = Config::default();
        config.resume_window = Duration::from_secs(30);
        config
    })
    .await;
    let alice = server.tab(Some("alice")).await;
    assert_eq!(connect(&server, "alice", Some("nonsense")).await.err(), Some(400));
    assert_eq!(
        connect(&server, "mallory", Some(&format!("{}.0", alice.id)))
            .await
            .err(),
        Some(403)
    );
    assert_eq!(server.hub.metrics().tabs, 1);
}

#[tokio::test]
async fn sign_out_sends_bye_and_closes() {
    let server = TestServer::start().await;
    let mut socket = connect(&server, "alice", None).await.unwrap();
    next(&mut socket).await;
    server.hub.disconnect_identity(&Some("alice".into()));
    assert_bye_disconnected(next(&mut socket).await);
}

#[tokio::test]
async fn a_burst_arrives_whole_and_in_order_before_the_bye() {
    let server = TestServer::start().await;
    let (mut socket, tab_id) = listening(&server, "alice", "k").await;
    // Queued without yielding to the connection: it finds 200 frames at once and writes them in
    // batches, then the bye that followed them.
    for n in 1..=200 {
        assert_eq!(server.notify_chat("k", &n.to_string()).await, 1);
    }
    server.hub.disconnect_identity(&Some("alice".into()));
    for n in 1..=200 {
        let frame = next(&mut socket).await;
        assert_eq!(frame.data["message"], n.to_string());
        assert_eq!(frame.id, Some(format!("{tab_id}.{n}")));
    }
    assert_bye_disconnected(next(&mut socket).await);
}

#[tokio::test]
async fn idle_sockets_all_get_the_hubs_heartbeat() {
    let server = TestServer::with_config({
        let mut config = Config::default();
        config.heartbeat = Duration::from_millis(50);
        config
    })
    .await;
    let mut first = connect(&server, "alice", None).await.unwrap();
    let mut second = connect(&server, "bob", None).await.unwrap();
    for socket in [&mut first, &mut second] {
        for _ in 0..2 {
            next_message(socket, |m| matches!(m, Message::Ping(_))).await;
        }
    }
}

/// A tab keeps frames for a resume only until its client has them: the heartbeat asks a
/// WebSocket client to acknowledge them (a ping carrying the latest number, which the client's
/// pong carries back, as browsers answer pings by themselves). A resume from that number still
/// works; one from before it starts over, since those frames are gone.
#[tokio::test]
async fn frames_a_client_acknowledged_are_no_longer_kept_for_a_resume() {
    use futures::SinkExt;

    let server = TestServer::with_config({
        let mut config = Config::default();
        config.resume_window = Duration::from_secs(30);
        config.heartbeat = Duration::from_millis(50);
        config
    })
    .await;
    let (mut socket, tab_id) = listening(&server, "alice", "k").await;
    server.notify_chat("k", "one").await;
    server.notify_chat("k", "two").await;
    assert_eq!(next(&mut socket).await.data["message"], "one");
    assert_eq!(next(&mut socket).await.data["message"], "two");

    // tungstenite queues the pong to each ping it reads; the flush sends it.
    let two = 2u64.to_be_bytes();
    next_message(&mut socket, |m| matches!(m, Message::Ping(p) if p[..] == two)).await;
    socket.flush().await.unwrap();
    // The server reads a client's frames in order: once our own ping is answered, the pong
    // before it has been taken.
    socket.send(Message::Ping(b"after"[..].into())).await.unwrap();
    next_message(&mut socket, |m| *m == Message::Pong(b"after"[..].into())).await;
    assert_eq!(server.hub.metrics().replay_frames, 0, "frames 1 and 2 forgotten");
    socket.close(None).await.unwrap();

    let (mut back, hello) = reconnect(&server, "alice", &format!("{tab_id}.2")).await;
    assert_eq!(
        resumed(&hello),
        (Some(true), Some(tab_id.as_str())),
        "from the number acknowledged: resumed"
    );
    back.close(None).await.unwrap();
    let (_, hello) = reconnect(&server, "alice", &format!("{tab_id}.1")).await;
    assert_eq!(
        hello.data["recovered"], false,
        "frame 2 was acknowledged, so no longer kept: the tab starts over"
    );
}

/// Passes on several keys at once, from two worker threads, reach every tab whole and in order.
/// Each pass writes frames straight to the sockets (passes to 40 tabs go through the hub's writer
/// task), racing the other passes and the connections' own tasks: frames must still leave each
/// tab's queue in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_passes_reach_every_tab_whole_and_in_order() {
    const TABS: usize = 40;
    const KEYS: usize = 4;
    // 240 frames per tab: under the queue's cap (256), since the passes may outrun every write.
    const EACH: usize = 60;
    let server = TestServer::start().await;
    let mut sockets = Vec::new();
    for tab in 0..TABS {
        let user = format!("user{tab}");
        let mut socket = connect(&server, &user, None).await.unwrap();
        let tab_id = next(&mut socket).await.data["client"]
            .as_str()
            .unwrap()
            .to_owned();
        for key in 0..KEYS {
            let key = format!("k{key}");
            let (status, body) = server
                .call_as(Some(&user), Some(&tab_id), "t/listen_chat", &[("key", &key)])
                .await;
            assert_eq!(status, 200, "{body}");
        }
        sockets.push((tab_id, socket));
    }
    let readers: Vec<_> = sockets
        .into_iter()
        .map(|(tab_id, mut socket)| {
            tokio::spawn(async move {
                let mut last: [Option<usize>; KEYS] = [None; KEYS];
                for seq in 1..=KEYS * EACH {
                    let frame = next(&mut socket).await;
                    assert_eq!(
                        frame.id,
                        Some(format!("{tab_id}.{seq}")),
                        "numbered in order, none missing"
                    );
                    let message = frame.data["message"].as_str().unwrap().to_owned();
                    let (key, n) = message.split_once(':').unwrap();
                    let (key, n): (usize, usize) = (key.parse().unwrap(), n.parse().unwrap());
                    assert_eq!(n, last[key].map_or(0, |l| l + 1), "key k{key} out of order");
                    last[key] = Some(n);
                }
            })
        })
        .collect();
    let passes: Vec<_> = (0..KEYS)
        .map(|key| {
            let hub = server.hub.clone();
            tokio::spawn(async move {
                for n in 0..EACH {
                    let sent = hub
                        .notify::<common::Chat>(
                            &format!("k{key}"),
                            &format!("{key}:{n}"),
                            notif::Exclude::Nobody,
                        )
                        .await
                        .unwrap();
                    assert_eq!(sent, TABS);
                }
            })
        })
        .collect();
    for task in passes.into_iter().chain(readers) {
        task.await.unwrap();
    }
}

/// notif speaks the protocol itself: a client's ping gets its pong, and a client's close is
/// echoed with its code and ends the tab's connection.
#[tokio::test]
async fn pings_are_answered_and_a_close_is_echoed_and_ends_the_connection() {
    use futures::SinkExt;
    use tokio_tungstenite::tungstenite::protocol::{frame::coding::CloseCode, CloseFrame};

    let server = TestServer::start().await;
    let mut socket = connect(&server, "alice", None).await.unwrap();
    next(&mut socket).await;
    assert_eq!(server.hub.metrics().connected, 1);
    socket.send(Message::Ping(b"hi"[..].into())).await.unwrap();
    let pong = next_message(&mut socket, |m| matches!(m, Message::Pong(_))).await;
    assert_eq!(pong, Message::Pong(b"hi"[..].into()));

    socket
        .send(Message::Close(Some(CloseFrame {
            code: CloseCode::Away,
            reason: "".into(),
        })))
        .await
        .unwrap();
    let echoed = next_message(&mut socket, |m| matches!(m, Message::Close(_))).await;
    match echoed {
        Message::Close(Some(frame)) => assert_eq!(frame.code, CloseCode::Away),
        other => panic!("expected the close echoed with its code, got {other:?}"),
    }
    common::eventually("the tab's connection ended", || {
        server.hub.metrics().connected == 0
    })
    .await;
}

/// The bytes of a server's frame after the 101 answer: `(opcode, payload)`.
async fn raw_frame(socket: &mut tokio::net::TcpStream) -> (u8, Vec<u8>) {
    use tokio::io::AsyncReadExt;
    let mut head = [0u8; 2];
    socket.read_exact(&mut head).await.unwrap();
    let len = match head[1] {
        126 => usize::from(socket.read_u16().await.unwrap()),
        127 => usize::try_from(socket.read_u64().await.unwrap()).unwrap(),
        short => usize::from(short),
    };
    let mut payload = vec![0u8; len];
    socket.read_exact(&mut payload).await.unwrap();
    (head[0] & 0x0f, payload)
}

/// A client may send frames right behind its handshake, before the answer: hyper then reads
/// them with the request. Served by `notif::serve` (whose plain TCP sockets notif takes over
/// from hyper) and by `axum::serve` (whose connections stay behind hyper's `Upgraded`), the
/// ping sent that way is answered after the hello.
#[tokio::test]
async fn a_ping_sent_with_the_handshake_is_answered_under_either_server() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let ours = TestServer::start().await;
    let hub: notif::Hub<Option<String>> =
        notif::Hub::new(Config::default(), |_: &http::request::Parts| async {
            Some("alice".to_owned())
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let axums = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, hub.routes::<()>()).await });

    for addr in [ours.addr, axums] {
        let mut bytes = common::ws_upgrade_request("alice");
        // A masked ping carrying "early", as a client must send it.
        let mask = [1u8, 2, 3, 4];
        bytes.extend_from_slice(&[0x89, 0x80 | 5]);
        bytes.extend_from_slice(&mask);
        bytes.extend(b"early".iter().zip(mask.iter().cycle()).map(|(b, m)| b ^ m));
        let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
        socket.write_all(&bytes).await.unwrap();

        // The answer's head, byte by byte up to its blank line: the frames follow it.
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            head.push(socket.read_u8().await.unwrap());
        }
        let head = String::from_utf8(head).unwrap();
        assert!(head.starts_with("HTTP/1.1 101"), "{addr}: {head}");
        let (opcode, hello) = raw_frame(&mut socket).await;
        assert_eq!(opcode, 1, "{addr}: the hello, a text frame");
        assert!(String::from_utf8(hello).unwrap().contains("\"hello\""));
        assert_eq!(
            raw_frame(&mut socket).await,
            (0xa, b"early".to_vec()),
            "{addr}: the pong to the early ping"
        );
    }
}

/// A notify pass to 16 tabs times one of its 16 direct writes (`notif_notify_to_write_seconds`):
/// every pass adds one observation, unless that tab's socket was busy and its own task took the
/// frame (timed one frame in 16 per tab, then).
#[tokio::test]
async fn a_pass_to_sixteen_tabs_times_one_write_and_counts_its_topic() {
    let server = TestServer::start().await;
    let mut sockets = Vec::new();
    for i in 0..16 {
        sockets.push(listening(&server, &format!("user{i}"), "k").await.0);
    }
    for n in 1..=4 {
        assert_eq!(server.notify_chat("k", &n.to_string()).await, 16);
        for socket in &mut sockets {
            assert_eq!(next(socket).await.data["message"], n.to_string());
        }
    }
    let metrics = server.metrics().await;
    assert_eq!(metrics[r#"notif_topic_notifies_total{topic="chat"}"#], 4);
    assert_eq!(metrics[r#"notif_topic_deliveries_total{topic="chat"}"#], 64);
    let timed = metrics["notif_notify_to_write_seconds_count"];
    assert!((1..=8).contains(&timed), "{timed} of 64 writes timed");
    assert_eq!(
        metrics[r#"notif_notify_to_write_seconds_bucket{le="+Inf"}"#],
        timed
    );
}

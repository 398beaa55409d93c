//! Presence between demo processes over a real `redis-server`: two users in a room on two nodes
//! see each other; the node holding one of them is killed outright (SIGKILL), and the other
//! sees them leave within the node timeout: no ghost.
mod process;

use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::Value;
use tokio_tungstenite::tungstenite::{client::IntoClientRequest, Message};

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A tab on one node: its socket and id.
struct Tab {
    socket: Socket,
    tab_id: String,
    port: u16,
    cookie: String,
}

impl Tab {
    async fn open(port: u16, cookie: &str) -> Tab {
        let mut request = format!("ws://127.0.0.1:{port}/notif/ws")
            .into_client_request()
            .unwrap();
        request.headers_mut().insert("cookie", cookie.parse().unwrap());
        let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
        let hello = next_frame(&mut socket, Duration::from_secs(5))
            .await
            .expect("a hello");
        assert_eq!(hello["event"], "hello", "{hello}");
        let tab_id = hello["data"]["client"].as_str().unwrap().to_owned();
        Tab {
            socket,
            tab_id,
            port,
            cookie: cookie.to_owned(),
        }
    }

    async fn enter(&self, room: i64) {
        let response = reqwest::Client::new()
            .post(format!("http://127.0.0.1:{}/api/listen_room", self.port))
            .header("cookie", &self.cookie)
            .header("x-notif-client", &self.tab_id)
            .form(&[("room", room.to_string())])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{:?}", response.text().await);
    }

    /// Reads presence frames, keeping the list they describe, until it is `names` (sorted);
    /// panics after `within`.
    async fn until_present(&mut self, present: &mut Vec<String>, names: &[&str], within: Duration) {
        let deadline = Instant::now() + within;
        let mut wanted: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        wanted.sort();
        loop {
            let mut sorted = present.clone();
            sorted.sort();
            if sorted == wanted {
                return;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let frame = next_frame(&mut self.socket, left)
                .await
                .unwrap_or_else(|| panic!("present {present:?}, not {wanted:?}, after {within:?}"));
            let Some(change) = frame["data"].get("presence") else {
                continue;
            };
            let name = |v: &Value| v.as_str().unwrap().to_owned();
            if let Some(list) = change.get("present") {
                *present = list.as_array().unwrap().iter().map(name).collect();
            } else if let Some(who) = change.get("join") {
                present.push(name(who));
            } else if let Some(who) = change.get("leave") {
                let at = present
                    .iter()
                    .position(|p| *p == name(who))
                    .expect("leave of someone shown");
                present.remove(at);
            }
        }
    }
}

/// The next text frame as JSON; `None` if nothing comes within `within`.
async fn next_frame(socket: &mut Socket, within: Duration) -> Option<Value> {
    let deadline = Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline.into(), socket.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => return Some(serde_json::from_str(&text).unwrap()),
            Ok(Some(Ok(_))) => continue,
            _ => return None,
        }
    }
}

#[tokio::test]
async fn a_killed_node_s_users_leave_the_others_lists_within_the_node_timeout() {
    let ports = process::free_ports(3);
    let redis = process::start_redis(ports[2]).await;
    let dir = std::env::temp_dir().join(format!("notif-presence-{}-{}", std::process::id(), ports[0]));
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("demo.db");
    let env = [
        ("NOTIF_DB", db.to_str().unwrap().to_owned()),
        ("NOTIF_REDIS_URL", format!("redis://127.0.0.1:{}", ports[2])),
        ("NOTIF_NODE_HEARTBEAT_MS", "250".to_owned()),
        ("NOTIF_NODE_TIMEOUT_MS", "1000".to_owned()),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut first = process::start_server(ports[0], &env);
    process::ready(ports[0], &mut first).await.unwrap();
    let mut second = process::start_server(ports[1], &env);
    process::ready(ports[1], &mut second).await.unwrap();

    let ann = process::sign_in(&format!("http://127.0.0.1:{}", ports[0]), "ann").await;
    let bob = process::sign_in(&format!("http://127.0.0.1:{}", ports[1]), "bob").await;
    let mut ann_tab = Tab::open(ports[0], &ann).await;
    let mut bob_tab = Tab::open(ports[1], &bob).await;
    ann_tab.enter(2).await;
    bob_tab.enter(2).await;
    let (mut ann_sees, mut bob_sees) = (Vec::new(), Vec::new());
    ann_tab
        .until_present(&mut ann_sees, &["ann", "bob"], Duration::from_secs(5))
        .await;
    bob_tab
        .until_present(&mut bob_sees, &["ann", "bob"], Duration::from_secs(5))
        .await;

    // Ann's node dies without a word: bob sees her leave once it is counted gone.
    first.0.kill().unwrap();
    let _ = first.0.wait();
    let killed = Instant::now();
    bob_tab
        .until_present(&mut bob_sees, &["bob"], Duration::from_secs(5))
        .await;
    assert!(
        killed.elapsed() < Duration::from_millis(2500),
        "ann left bob's list {:?} after the kill: more than the 1 s timeout and a heartbeat",
        killed.elapsed()
    );
    drop(redis);
    let _ = std::fs::remove_dir_all(&dir);
}

//! Shared fixture: a real axum server on port 0 with a hub, test topics and server functions
//! that listen, plus a real SSE client over HTTP.
#![allow(dead_code)]

use std::{
    collections::{HashMap, HashSet},
    future::IntoFuture,
    net::SocketAddr,
    sync::{Mutex, OnceLock},
    time::Duration,
};

use axum::{routing::post, Router};
use futures::StreamExt;
use leptos::prelude::*;
use notif::{Config, Hub, Presence, SimpleTopic, Topic};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

pub type Viewer = Option<String>;

/// Everyone gets the text as is; the key "secret" is for "admin" only.
pub struct Chat;
impl SimpleTopic for Chat {
    const NAME: &'static str = "chat";
    type Key = String;
    type Message = String;
    type Identity = Viewer;

    async fn authorize(viewer: &Viewer, key: &String) -> bool {
        key != "secret" || viewer.as_deref() == Some("admin")
    }
}

/// A greeting made per identity: alice and bob get different texts, carol nothing.
pub struct Greeting;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GreetingEvent {
    /// Unique per test, to count `prepare` calls of that test alone.
    pub nonce: String,
}

impl Topic for Greeting {
    const NAME: &'static str = "greeting";
    type Key = String;
    type Event = GreetingEvent;
    type Message = String;
    type Identity = Viewer;

    async fn prepare(viewer: &Viewer, event: &GreetingEvent) -> Option<String> {
        *prepare_calls()
            .lock()
            .unwrap()
            .entry(event.nonce.clone())
            .or_default() += 1;
        match viewer.as_deref() {
            Some("alice") => Some("hi alice".into()),
            Some("bob") => Some("hello bob".into()),
            Some("dave") => Some("hi alice".into()),
            _ => None,
        }
    }
}

pub fn prepare_calls() -> &'static Mutex<HashMap<String, usize>> {
    static CALLS: OnceLock<Mutex<HashMap<String, usize>>> = OnceLock::new();
    CALLS.get_or_init(Default::default)
}

#[server(endpoint = "t/listen_chat")]
pub async fn listen_chat(key: String) -> Result<(), ServerFnError> {
    notif::listen::<Chat>(&key).await?;
    Ok(())
}

#[server(endpoint = "t/unlisten_chat")]
pub async fn unlisten_chat(key: String) -> Result<(), ServerFnError> {
    notif::unlisten::<Chat>(&key).await?;
    Ok(())
}

/// Notifies a chat key, leaving the calling tab out (if it is the caller's own).
#[server(endpoint = "t/post_chat")]
pub async fn post_chat(key: String, text: String) -> Result<usize, ServerFnError> {
    let hub = use_context::<Hub<Viewer>>().expect("a hub in context");
    let exclude = notif::caller::<Viewer>()
        .await
        .map_or(notif::Exclude::Nobody, notif::Exclude::Tab);
    Ok(hub.notify::<Chat>(&key, &text, exclude).await?)
}

/// A room with presence: listeners are shown to each other as "<user> (shown)"; "ghost" and
/// visitors who are not signed in are counted but never shown; the key "vip" is for "admin".
pub struct Lobby;
impl SimpleTopic for Lobby {
    const NAME: &'static str = "lobby";
    type Key = String;
    type Message = String;
    type Identity = Viewer;

    async fn authorize(viewer: &Viewer, key: &String) -> bool {
        key != "vip" || viewer.as_deref() == Some("admin")
    }
}

impl Presence for Lobby {
    type Public = String;

    async fn public(viewer: &Viewer) -> Option<String> {
        viewer
            .as_deref()
            .filter(|user| *user != "ghost")
            .map(|user| format!("{user} (shown)"))
    }
}

#[server(endpoint = "t/listen_lobby")]
pub async fn listen_lobby(key: String) -> Result<(), ServerFnError> {
    notif::listen::<Lobby>(&key).await?;
    Ok(())
}

#[server(endpoint = "t/unlisten_lobby")]
pub async fn unlisten_lobby(key: String) -> Result<(), ServerFnError> {
    notif::unlisten::<Lobby>(&key).await?;
    Ok(())
}

/// Users whose sessions were deleted: the fixture's `identify` no longer resolves them.
pub fn revoked() -> &'static Mutex<HashSet<String>> {
    static REVOKED: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    REVOKED.get_or_init(Default::default)
}

#[server(endpoint = "t/listen_greeting")]
pub async fn listen_greeting(key: String) -> Result<(), ServerFnError> {
    notif::listen::<Greeting>(&key).await?;
    Ok(())
}

/// A running server.
pub struct TestServer {
    pub addr: SocketAddr,
    pub hub: Hub<Viewer>,
    pub http: reqwest::Client,
    /// Starts `notif::serve`'s graceful shutdown.
    stop: Mutex<Option<tokio::sync::oneshot::Sender<()>>>,
    serving: Mutex<Option<tokio::task::JoinHandle<std::io::Result<()>>>>,
}

impl TestServer {
    pub async fn start() -> Self {
        Self::with_config(Config {
            resume_window: Duration::ZERO,
            ..Config::default()
        })
        .await
    }

    pub async fn with_config(config: Config) -> Self {
        Self::node(config, None).await
    }

    /// One node of several sharing `backplane` (or a lone hub without one).
    pub async fn node(
        config: Config,
        backplane: Option<std::sync::Arc<dyn notif::backplane::Backplane>>,
    ) -> Self {
        Self::serving(config, backplane, notif::Serve::DEFAULT_IDLE_TIMEOUT).await
    }

    /// Served by `notif::serve`, closing HTTP connections idle for `idle`.
    pub async fn serving(
        config: Config,
        backplane: Option<std::sync::Arc<dyn notif::backplane::Backplane>>,
        idle: Duration,
    ) -> Self {
        // Identity from a header: tests play several users without a login. A revoked user's
        // header no longer resolves, as a deleted session's cookie would not.
        let identify = |parts: &http::request::Parts| {
            let user = parts
                .headers
                .get("x-user")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
                .filter(|user| !revoked().lock().unwrap().contains(user));
            async move { user }
        };
        let mut config = config;
        config
            .identity_headers
            .push(http::HeaderName::from_static("x-user"));
        let hub: Hub<Viewer> = match backplane {
            Some(backplane) => Hub::with_backplane(config, backplane, identify),
            None => Hub::new(config, identify),
        }
        .with_topic::<Chat>()
        .with_topic::<Greeting>()
        .with_presence::<Lobby>();
        let context_hub = hub.clone();
        let metrics_hub = hub.clone();
        let router = Router::new()
            .merge(hub.routes())
            .route(
                "/metrics",
                axum::routing::get(move || {
                    let hub = metrics_hub.clone();
                    async move { hub.prometheus() }
                }),
            )
            .route(
                "/api/{*name}",
                post(move |request: axum::extract::Request| {
                    let hub = context_hub.clone();
                    leptos_axum::handle_server_fns_with_context(move || provide_context(hub.clone()), request)
                }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let serving = notif::serve(listener, router)
            .idle_timeout(idle)
            .with_graceful_shutdown(&hub, async move {
                let _ = stopped.await;
            });
        TestServer {
            addr,
            hub,
            http: reqwest::Client::new(),
            stop: Mutex::new(Some(stop)),
            serving: Mutex::new(Some(tokio::spawn(serving.into_future()))),
        }
    }

    /// Shuts the server down gracefully; panics unless it has stopped within 15 s (a WebSocket
    /// client that never answers the server's close holds it for 5).
    pub async fn shut_down(&self) {
        let _ = self
            .stop
            .lock()
            .unwrap()
            .take()
            .expect("not shut down yet")
            .send(());
        let serving = self.serving.lock().unwrap().take().unwrap();
        tokio::time::timeout(Duration::from_secs(15), serving)
            .await
            .expect("the server stops within 15 s")
            .unwrap()
            .unwrap();
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Opens a tab's stream as `user` and reads its hello.
    pub async fn tab(&self, user: Option<&str>) -> Tab {
        self.reconnect(user, None).await.expect("the stream opens")
    }

    /// Opens a stream as `user` naming `last_event_id` (as a browser's reconnect does) and
    /// reads its hello; on refusal, the status and reason.
    pub async fn reconnect(
        &self,
        user: Option<&str>,
        last_event_id: Option<&str>,
    ) -> Result<Tab, (u16, String)> {
        self.reconnect_from(user, last_event_id, None).await
    }

    /// Opens a stream as `tab`'s user resuming `tab` (its last event id and node), as a
    /// browser reconnecting through a load balancer does; on refusal, the status and reason.
    pub async fn resume(&self, tab: &Tab) -> Result<Tab, (u16, String)> {
        self.reconnect_from(tab.user.as_deref(), Some(&tab.last_id), tab.node.as_deref())
            .await
    }

    /// [`reconnect`](Self::reconnect), naming the node that held the tab.
    pub async fn reconnect_from(
        &self,
        user: Option<&str>,
        last_event_id: Option<&str>,
        node: Option<&str>,
    ) -> Result<Tab, (u16, String)> {
        let path = match node {
            Some(node) => format!("{}?{}={node}", notif::wire::STREAM_PATH, notif::wire::NODE_QUERY),
            None => notif::wire::STREAM_PATH.to_owned(),
        };
        let mut request = self.http.get(self.url(&path));
        if let Some(user) = user {
            request = request.header("x-user", user);
        }
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id);
        }
        let response = request.send().await.unwrap();
        if response.status() != 200 {
            return Err((response.status().as_u16(), response.text().await.unwrap()));
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let reader = tokio::spawn(read_events(response, tx));
        let mut tab = Tab {
            user: user.map(str::to_owned),
            id: String::new(),
            node: None,
            recovered: false,
            hello_data: String::new(),
            last_id: String::new(),
            events: rx,
            reader,
        };
        let hello = tab.next().await;
        assert_eq!(hello.event, "hello");
        tab.hello_data = hello.data.clone();
        let hello: notif::wire::Hello = serde_json::from_str(&hello.data).unwrap();
        tab.id = hello.tab_id;
        tab.node = hello.node;
        tab.recovered = hello.recovered;
        Ok(tab)
    }

    /// Calls a server function as `tab` (its user and its tab id); returns status and body.
    pub async fn call(&self, tab: &Tab, endpoint: &str, form: &[(&str, &str)]) -> (u16, String) {
        self.call_naming(
            tab.user.as_deref(),
            Some(&tab.id),
            tab.node.as_deref(),
            endpoint,
            form,
        )
        .await
    }

    pub async fn call_as(
        &self,
        user: Option<&str>,
        tab_id: Option<&str>,
        endpoint: &str,
        form: &[(&str, &str)],
    ) -> (u16, String) {
        self.call_naming(user, tab_id, None, endpoint, form).await
    }

    /// Calls a server function as `user` for tab `tab_id`, naming `node` as the tab's node.
    pub async fn call_naming(
        &self,
        user: Option<&str>,
        tab_id: Option<&str>,
        node: Option<&str>,
        endpoint: &str,
        form: &[(&str, &str)],
    ) -> (u16, String) {
        let mut request = self.http.post(self.url(&format!("/api/{endpoint}"))).form(form);
        if let Some(user) = user {
            request = request.header("x-user", user);
        }
        if let Some(tab_id) = tab_id {
            request = request.header(notif::wire::TAB_HEADER, tab_id);
        }
        if let Some(node) = node {
            request = request.header(notif::wire::NODE_HEADER, node);
        }
        let response = request.send().await.unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }

    /// Listens `tab` on a chat key and asserts it worked.
    pub async fn listen_chat(&self, tab: &Tab, key: &str) {
        let (status, body) = self.call(tab, "t/listen_chat", &[("key", key)]).await;
        assert_eq!(status, 200, "listen failed: {body}");
    }

    /// Calls `endpoint` (`t/listen_lobby`, ...) for `tab` on `key` and asserts it worked.
    pub async fn lobby(&self, tab: &Tab, endpoint: &str, key: &str) {
        let (status, body) = self.call(tab, endpoint, &[("key", key)]).await;
        assert_eq!(status, 200, "{endpoint} failed: {body}");
    }

    pub async fn notify_chat(&self, key: &str, text: &str) -> usize {
        self.hub
            .notify::<Chat>(&key.to_string(), &text.to_string(), notif::Exclude::Nobody)
            .await
            .unwrap()
    }

    /// Reads /metrics over HTTP.
    pub async fn metrics(&self) -> HashMap<String, u64> {
        let text = self
            .http
            .get(self.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .filter(|l| !l.starts_with('#'))
            // The last space: a label value may hold one. Whole numbers only: a histogram's
            // `_sum` and `le` bounds are not counts.
            .filter_map(|l| l.rsplit_once(' '))
            .filter_map(|(k, v)| Some((k.to_owned(), v.parse().ok()?)))
            .collect()
    }
}

/// One SSE event.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Event {
    pub event: String,
    pub id: String,
    pub data: String,
}

impl Event {
    pub fn message(&self) -> serde_json::Value {
        serde_json::from_str::<serde_json::Value>(&self.data).unwrap()["message"].clone()
    }
}

/// A tab: its stream, read by a background task.
pub struct Tab {
    pub user: Option<String>,
    pub id: String,
    /// The node holding the tab, as the hello named it.
    pub node: Option<String>,
    /// What the hello said.
    pub recovered: bool,
    /// The hello's data as the server sent it.
    pub hello_data: String,
    /// The `id:` of the last event read, as a browser remembers it.
    pub last_id: String,
    events: mpsc::UnboundedReceiver<Event>,
    reader: tokio::task::JoinHandle<()>,
}

impl Tab {
    /// The next event; panics after 5 s without one (a failure guard, not a wait).
    pub async fn next(&mut self) -> Event {
        let event = tokio::time::timeout(Duration::from_secs(5), self.events.recv())
            .await
            .expect("no event within 5 s")
            .expect("stream ended");
        if !event.id.is_empty() {
            self.last_id = event.id.clone();
        }
        event
    }

    /// The next notification's message text.
    pub async fn next_text(&mut self) -> String {
        let event = self.next().await;
        assert_eq!(event.event, "notif", "{event:?}");
        event.message().as_str().unwrap().to_owned()
    }

    /// The next frame, which must be a presence frame: what it says.
    pub async fn next_presence(&mut self) -> notif::wire::PresenceChange {
        let event = self.next().await;
        assert_eq!(event.event, "notif", "{event:?}");
        serde_json::from_str::<notif::wire::RawPresence>(&event.data)
            .unwrap_or_else(|e| panic!("not a presence frame ({e}): {}", event.data))
            .presence
    }

    /// Whether the stream has ended (after reading any events still queued).
    pub async fn ended(&mut self) -> bool {
        matches!(
            tokio::time::timeout(Duration::from_secs(5), self.events.recv()).await,
            Ok(None)
        )
    }

    /// What a browser remembers of this tab to resume it (user, id, node, last event id),
    /// without its stream.
    pub fn clone_for_resume(&self) -> Tab {
        let (_, events) = mpsc::unbounded_channel();
        Tab {
            user: self.user.clone(),
            id: self.id.clone(),
            node: self.node.clone(),
            recovered: self.recovered,
            hello_data: self.hello_data.clone(),
            last_id: self.last_id.clone(),
            events,
            reader: tokio::spawn(async {}),
        }
    }

    /// `tab` as a browser that still names `node` as holding it.
    pub fn naming(tab: &Tab, node: Option<String>) -> Tab {
        Tab {
            node,
            ..tab.clone_for_resume()
        }
    }

    /// Drops the connection, as closing a browser tab does.
    pub fn close(self) {
        self.reader.abort();
    }
}

pub async fn read_events(response: reqwest::Response, tx: mpsc::UnboundedSender<Event>) {
    let mut body = response.bytes_stream();
    let mut buffer = String::new();
    let mut event = Event::default();
    while let Some(Ok(chunk)) = body.next().await {
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find('\n') {
            let line: String = buffer.drain(..=end).collect();
            let line = line.trim_end_matches(['\n', '\r']);
            if line.is_empty() {
                let complete = !event.event.is_empty() || !event.data.is_empty();
                if complete && tx.send(std::mem::take(&mut event)).is_err() {
                    return;
                }
                continue;
            }
            if line.starts_with(':') {
                continue; // heartbeat comment
            }
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "event" => event.event = value.to_owned(),
                "id" => event.id = value.to_owned(),
                "data" => {
                    if !event.data.is_empty() {
                        event.data.push('\n');
                    }
                    event.data.push_str(value);
                }
                _ => {}
            }
        }
    }
}

/// A real `redis-server` on a free port, stopped when dropped. Fails (never skips) when Redis
/// is not installed: `scripts/setup` installs it.
pub struct RedisServer {
    pub port: u16,
    process: Option<std::process::Child>,
}

impl RedisServer {
    pub async fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut redis = RedisServer { port, process: None };
        redis.spawn().await;
        redis
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    async fn spawn(&mut self) {
        let child = std::process::Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server must be installed (scripts/setup installs it)");
        self.process = Some(child);
        for _ in 0..500 {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .is_ok()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("redis-server did not start on port {}", self.port);
    }

    /// Redis stops answering write commands (`PUBLISH` included) for `how_long`.
    pub async fn pause_writes(&self, how_long: Duration) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut redis = tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .unwrap();
        let command = format!("CLIENT PAUSE {} WRITE\r\n", how_long.as_millis());
        redis.write_all(command.as_bytes()).await.unwrap();
        let mut reply = [0; 5];
        redis.read_exact(&mut reply).await.unwrap();
        assert_eq!(&reply, b"+OK\r\n");
    }

    pub fn kill(&mut self) {
        if let Some(mut child) = self.process.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub async fn restart(&mut self) {
        self.kill();
        self.spawn().await;
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Polls `done` every few milliseconds; fails after 10 s (a guard, not a wait).
pub async fn eventually(what: &str, done: impl Fn() -> bool) {
    for _ in 0..2000 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("never happened: {what}");
}

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

/// A TCP relay to `upstream` that can be cut for good: every connection through it ends and new
/// ones are refused. A node reaching Redis only through it, once cut, falls silent to the others
/// as a killed process does.
pub struct Relay {
    pub port: u16,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    accepting: tokio::task::JoinHandle<()>,
}

impl Relay {
    pub async fn start(upstream: u16) -> std::sync::Arc<Relay> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let relay = std::sync::Arc::new_cyclic(|weak: &std::sync::Weak<Relay>| {
            let weak = weak.clone();
            Relay {
                port,
                tasks: Mutex::new(Vec::new()),
                accepting: tokio::spawn(async move {
                    while let Ok((mut inbound, _)) = listener.accept().await {
                        let Some(relay) = weak.upgrade() else { return };
                        let task = tokio::spawn(async move {
                            if let Ok(mut outbound) =
                                tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await
                            {
                                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                            }
                        });
                        relay.tasks.lock().unwrap().push(task);
                    }
                }),
            }
        });
        relay
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Ends every connection and refuses new ones.
    pub fn cut(&self) {
        self.accepting.abort();
        for task in self.tasks.lock().unwrap().drain(..) {
            task.abort();
        }
    }
}

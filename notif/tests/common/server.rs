//! `TestServer`: a real axum server on port 0 with a hub and the test topics, and the calls
//! tests make to it.

use std::{collections::HashMap, future::IntoFuture, net::SocketAddr, sync::Mutex, time::Duration};

use axum::{routing::post, Router};
use leptos::prelude::*;
use notif::{Config, Hub};
use tokio::sync::mpsc;

use super::{read_events, revoked, Chat, Greeting, Lobby, Tab, Viewer};

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
        Self::with_config({
            let mut config = Config::default();
            config.resume_window = Duration::ZERO;
            config
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

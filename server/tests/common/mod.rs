//! A demo server on port 0 over real HTTP, and the calls the tests make to it.
#![allow(dead_code)] // each test file uses some of these

use std::time::Duration;

use futures::StreamExt;
use leptos::prelude::LeptosOptions;
use reqwest::{header::HeaderMap, Client, RequestBuilder};

pub struct Server {
    pub base: String,
    pub port: u16,
}

impl Server {
    /// Starts the demo on a fresh database named after `name` (one per test process).
    pub async fn start(name: &str) -> Self {
        let db = std::env::temp_dir().join(format!("notif-{name}-test-{}.db", std::process::id()));
        let _ = std::fs::remove_file(&db);
        app::server::open_database(db.to_str().unwrap()).await.unwrap();
        let config = {
            let mut config = notif::Config::default();
            config.resume_window = Duration::ZERO;
            config
        };
        let hub = app::server::hub(config, None);
        let options = LeptosOptions::builder().output_name("notif-demo").build();
        let router = server::router(options, hub, server::same_origin::Policy::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        Server {
            base: format!("http://127.0.0.1:{port}"),
            port,
        }
    }

    /// A cookie-keeping client signed in as `name`.
    pub async fn user(&self, name: &str) -> Client {
        let http = Client::builder().cookie_store(true).build().unwrap();
        let (status, body, _) = send(self.api(&http, "sign_in").form(&[("name", name)])).await;
        assert_eq!(status, 200, "{body}");
        http
    }

    pub fn api(&self, http: &Client, endpoint: &str) -> RequestBuilder {
        http.post(format!("{}/api/{endpoint}", self.base))
    }

    /// A server function's answer to a same-origin call (as the app's own page makes it).
    pub async fn read(&self, http: &Client, endpoint: &str, form: &[(&str, &str)]) -> String {
        let request = self
            .api(http, endpoint)
            .header("origin", &self.base)
            .header("sec-fetch-site", "same-origin")
            .form(form);
        let (status, body, _) = send(request).await;
        assert_eq!(status, 200, "{endpoint}: {body}");
        body
    }

    pub async fn listens(&self) -> u64 {
        let text = reqwest::get(format!("{}/metrics", self.base))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let line = text.lines().find(|l| l.starts_with("notif_listens ")).unwrap();
        line["notif_listens ".len()..].parse().unwrap()
    }

    /// Opens an SSE stream as `http`'s user and returns its tab id (the stream stays open
    /// while the returned task runs).
    pub async fn tab(&self, http: &Client) -> (String, tokio::task::JoinHandle<()>) {
        let response = http
            .get(format!("{}{}", self.base, notif::wire::STREAM_PATH))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let mut body = response.bytes_stream();
        let mut text = String::new();
        while !text.contains("\n\n") {
            text.push_str(&String::from_utf8_lossy(&body.next().await.unwrap().unwrap()));
        }
        let data = text.lines().find_map(|l| l.strip_prefix("data:")).unwrap();
        let hello: notif::wire::Hello = serde_json::from_str(data.trim()).unwrap();
        let reader = tokio::spawn(async move { while let Some(Ok(_)) = body.next().await {} });
        (hello.tab_id, reader)
    }
}

pub async fn send(request: RequestBuilder) -> (u16, String, HeaderMap) {
    let response = request.send().await.unwrap();
    let (status, headers) = (response.status().as_u16(), response.headers().clone());
    (status, response.text().await.unwrap(), headers)
}

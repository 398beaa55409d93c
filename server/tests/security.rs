//! The demo's defences over real HTTP: cross-origin requests refused and changing nothing,
//! protective headers and a CSP whose nonce is the page's, markup in messages shown as text,
//! names and bodies with control characters refused, expired sessions anonymous.
//!
//! One test function: the app's database is process-wide and tied to one tokio runtime.
use std::time::Duration;

use futures::StreamExt;
use leptos::prelude::LeptosOptions;
use reqwest::{header::HeaderMap, Client, RequestBuilder};

struct Server {
    base: String,
    port: u16,
}

impl Server {
    async fn start() -> Self {
        let db = std::env::temp_dir().join(format!("notif-security-test-{}.db", std::process::id()));
        let _ = std::fs::remove_file(&db);
        app::server::open_database(db.to_str().unwrap()).await.unwrap();
        let config = notif::Config {
            resume_window: Duration::ZERO,
            ..notif::Config::default()
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
    async fn user(&self, name: &str) -> Client {
        let http = Client::builder().cookie_store(true).build().unwrap();
        let (status, body, _) = send(self.api(&http, "sign_in").form(&[("name", name)])).await;
        assert_eq!(status, 200, "{body}");
        http
    }

    fn api(&self, http: &Client, endpoint: &str) -> RequestBuilder {
        http.post(format!("{}/api/{endpoint}", self.base))
    }

    /// A server function's answer to a same-origin call (as the app's own page makes it).
    async fn read(&self, http: &Client, endpoint: &str, form: &[(&str, &str)]) -> String {
        let request = self
            .api(http, endpoint)
            .header("origin", &self.base)
            .header("sec-fetch-site", "same-origin")
            .form(form);
        let (status, body, _) = send(request).await;
        assert_eq!(status, 200, "{endpoint}: {body}");
        body
    }

    async fn listens(&self) -> u64 {
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
    async fn tab(&self, http: &Client) -> (String, tokio::task::JoinHandle<()>) {
        let response = http
            .get(format!("{}{}", self.base, notif::STREAM_PATH))
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
        let hello: notif::Hello = serde_json::from_str(data.trim()).unwrap();
        let reader = tokio::spawn(async move { while let Some(Ok(_)) = body.next().await {} });
        (hello.client, reader)
    }
}

async fn send(request: RequestBuilder) -> (u16, String, HeaderMap) {
    let response = request.send().await.unwrap();
    let (status, headers) = (response.status().as_u16(), response.headers().clone());
    (status, response.text().await.unwrap(), headers)
}

#[tokio::test]
async fn the_demo_defends_itself() {
    let server = Server::start().await;
    cross_origin_calls_are_refused_and_change_nothing(&server).await;
    same_origin_and_header_less_calls_work(&server).await;
    pages_carry_protective_headers_and_their_nonce(&server).await;
    markup_in_a_message_is_text_in_the_page(&server).await;
    control_characters_are_refused(&server).await;
    sessions_expire_on_the_server(&server).await;
}

async fn cross_origin_calls_are_refused_and_change_nothing(server: &Server) {
    let ann = server.user("ann").await;
    let (tab, reader) = server.tab(&ann).await;
    let sibling_port = format!("http://127.0.0.1:{}", server.port + 1);
    let sibling_host = format!("http://evil.127.0.0.1:{}", server.port);
    let evil: Vec<(&str, &str)> = vec![
        ("origin", "http://evil.example"),
        ("origin", &sibling_port),
        ("origin", &sibling_host),
        ("origin", "null"),
        ("sec-fetch-site", "cross-site"),
        ("sec-fetch-site", "same-site"),
    ];
    let calls: [(&str, Vec<(&str, &str)>); 7] = [
        ("post", vec![("room", "1"), ("body", "forged")]),
        ("follow", vec![("room", "1"), ("on", "true")]),
        ("mute", vec![("room", "1"), ("on", "true")]),
        ("listen_room", vec![("room", "1")]),
        ("unlisten_room", vec![("room", "1")]),
        ("sign_out", vec![]),
        ("sign_in", vec![("name", "mallory")]),
    ];
    for (endpoint, form) in &calls {
        for (name, value) in &evil {
            let mut request = server
                .api(&ann, endpoint)
                .header(*name, *value)
                .header(notif::CLIENT_HEADER, &tab)
                .form(form);
            if *name == "sec-fetch-site" {
                // A browser sends both; Sec-Fetch-Site decides even next to a matching Origin.
                request = request.header("origin", &server.base);
            }
            let (status, body, headers) = send(request).await;
            assert_eq!(status, 403, "{endpoint} with {name}: {value}: {body}");
            assert!(body.contains("cross-origin request refused"), "{body}");
            assert!(headers.get("set-cookie").is_none(), "{endpoint}: {headers:?}");
        }
        // A `text/plain` body, as a `no-cors` fetch or a plain HTML form can send.
        let encoded = form
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&");
        let request = server
            .api(&ann, endpoint)
            .header("origin", "http://evil.example")
            .header("content-type", "text/plain")
            .body(encoded);
        assert_eq!(send(request).await.0, 403, "{endpoint} as text/plain");
    }
    // Nothing happened: ann is still signed in (sign-out and sign-in refused), nothing was
    // posted, followed, muted or listened.
    assert_eq!(server.read(&ann, "whoami", &[]).await, "\"ann\"");
    let history = server.read(&ann, "room_history", &[("room", "1")]).await;
    assert!(!history.contains("forged"), "{history}");
    assert_eq!(server.read(&ann, "followed", &[]).await, "[]");
    let rooms: Vec<app::model::RoomSummary> =
        serde_json::from_str(&server.read(&ann, "rooms", &[]).await).unwrap();
    assert!(rooms.iter().all(|r| !r.muted && !r.followed), "{rooms:?}");
    assert_eq!(server.listens().await, 0);
    // Pages (GET) are not refused, whoever links to them.
    let page = ann
        .get(format!("{}/", server.base))
        .header("sec-fetch-site", "cross-site")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    reader.abort();
}

async fn same_origin_and_header_less_calls_work(server: &Server) {
    let bea = server.user("bea").await;
    let (tab, reader) = server.tab(&bea).await;
    let listen = |http: &Client| {
        server
            .api(http, "listen_room")
            .header(notif::CLIENT_HEADER, &tab)
            .form(&[("room", "2")])
    };
    let same_origin = [
        vec![
            ("origin", server.base.as_str()),
            ("sec-fetch-site", "same-origin"),
        ],
        vec![("origin", server.base.as_str())],
        vec![("sec-fetch-site", "same-origin")],
        vec![("sec-fetch-site", "none")],
        vec![],
    ];
    for headers in &same_origin {
        let mut request = listen(&bea);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let (status, body, _) = send(request).await;
        assert_eq!(status, 200, "{headers:?}: {body}");
    }
    assert_eq!(server.listens().await, 1);
    server
        .read(&bea, "post", &[("room", "2"), ("body", "from the page")])
        .await;
    let (status, _, _) = send(server.api(&bea, "follow").form(&[("room", "2"), ("on", "true")])).await;
    assert_eq!(status, 200, "curl-like: no Origin, no Sec-Fetch-Site");
    assert_eq!(server.read(&bea, "followed", &[]).await, "[2]");
    assert!(server
        .read(&bea, "room_history", &[("room", "2")])
        .await
        .contains("from the page"));
    // Anonymous tabs cannot listen, same origin or not.
    let nobody = Client::new();
    let (anonymous_tab, anonymous_reader) = server.tab(&nobody).await;
    let request = server
        .api(&nobody, "listen_room")
        .header(notif::CLIENT_HEADER, &anonymous_tab)
        .header("sec-fetch-site", "same-origin")
        .form(&[("room", "1")]);
    assert_eq!(send(request).await.0, 403);
    anonymous_reader.abort();
    reader.abort();
}

async fn pages_carry_protective_headers_and_their_nonce(server: &Server) {
    let (status, html, headers) = send(Client::new().get(format!("{}/", server.base))).await;
    assert_eq!(status, 200);
    let header = |name: &str| headers.get(name).map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(header("x-frame-options").as_deref(), Some("DENY"));
    assert_eq!(header("x-content-type-options").as_deref(), Some("nosniff"));
    assert_eq!(header("referrer-policy").as_deref(), Some("same-origin"));
    let csp = header("content-security-policy").expect("a CSP on the page");
    for directive in [
        "default-src 'self'",
        "connect-src 'self';",
        "object-src 'none'",
        "base-uri 'self'",
        "frame-ancestors 'none'",
        "'wasm-unsafe-eval'",
    ] {
        assert!(csp.contains(directive), "{directive} in {csp}");
    }
    let nonce = csp
        .split("'nonce-")
        .nth(1)
        .and_then(|rest| rest.split('\'').next())
        .expect("a nonce in script-src");
    assert!(nonce.len() >= 16, "{nonce}");
    // Every script of the page carries that nonce: the policy admits exactly them.
    let scripts = html.matches("<script").count();
    assert!(scripts >= 1, "{html}");
    assert_eq!(
        html.matches(&format!("<script nonce=\"{nonce}\"")).count()
            + html
                .matches(&format!("<script type=\"module\" nonce=\"{nonce}\""))
                .count(),
        scripts,
        "{html}"
    );
    // A fresh nonce per response.
    let (_, _, again) = send(Client::new().get(format!("{}/", server.base))).await;
    assert_ne!(
        again.get("content-security-policy").unwrap().to_str().unwrap(),
        csp
    );
    // Other responses are protected too (no CSP needed: they run no script).
    let (_, _, api) = send(Client::new().post(format!("{}/api/whoami", server.base))).await;
    assert_eq!(api.get("x-content-type-options").unwrap(), "nosniff");
    // The home page says plainly that a name is all it takes.
    assert!(html.contains("no passwords"), "{html}");
}

async fn markup_in_a_message_is_text_in_the_page(server: &Server) {
    let cal = server.user("cal").await;
    let markup = "<script>alert(1)</script><img src=x onerror=alert(2)>";
    server
        .read(&cal, "post", &[("room", "3"), ("body", markup)])
        .await;
    let html = cal
        .get(format!("{}/rooms/3", server.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        html.contains("&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;"),
        "the body is a text node: {html}"
    );
    assert!(!html.contains("<script>alert"), "{html}");
    assert!(!html.contains("<img src=x"), "{html}");
}

async fn control_characters_are_refused(server: &Server) {
    let http = Client::builder().cookie_store(true).build().unwrap();
    for name in ["eve\r\nSet-Cookie: admin=1", "eve\n", "e\u{1b}[31mve"] {
        let (status, body, headers) = send(server.api(&http, "sign_in").form(&[("name", name)])).await;
        assert_eq!(status, 400, "{name:?}: {body}");
        assert!(headers.get("set-cookie").is_none(), "{headers:?}");
    }
    let dan = server.user("dan").await;
    let (status, body, _) = send(
        server
            .api(&dan, "post")
            .form(&[("room", "1"), ("body", "hi\r\n\u{1b}[2Jthere")]),
    )
    .await;
    assert_eq!(
        (status, body.contains("control characters")),
        (400, true),
        "{body}"
    );
    server
        .read(&dan, "post", &[("room", "1"), ("body", "two\n\tlines")])
        .await;
}

async fn sessions_expire_on_the_server(server: &Server) {
    app::server::sessions::set_ttl(Duration::from_secs(60));
    let http = Client::builder().cookie_store(true).build().unwrap();
    let (status, _, headers) = send(server.api(&http, "sign_in").form(&[("name", "old")])).await;
    assert_eq!(status, 200);
    let cookie = headers.get("set-cookie").unwrap().to_str().unwrap();
    let (token, attributes) = cookie
        .strip_prefix("notif_demo_session=")
        .and_then(|rest| rest.split_once(';'))
        .unwrap();
    assert!(
        token.len() == 32 && token.bytes().all(|b| b.is_ascii_hexdigit()),
        "{cookie}"
    );
    assert_eq!(
        attributes, " Path=/; HttpOnly; SameSite=Lax; Max-Age=60",
        "{cookie}"
    );
    let lifetime: i64 = sqlx::query_scalar("SELECT expires_at - created_at FROM sessions WHERE token = ?")
        .bind(token)
        .fetch_one(app::server::db())
        .await
        .unwrap();
    assert!((59..=61).contains(&lifetime), "{lifetime}");
    assert_eq!(server.read(&http, "whoami", &[]).await, "\"old\"");

    // Past its expiry the session is nobody's, though the browser still sends the cookie...
    sqlx::query("UPDATE sessions SET expires_at = unixepoch() - 1 WHERE token = ?")
        .bind(token)
        .execute(app::server::db())
        .await
        .unwrap();
    assert_eq!(server.read(&http, "whoami", &[]).await, "null");
    let (status, _, _) = send(server.api(&http, "post").form(&[("room", "1"), ("body", "late")])).await;
    assert_eq!(status, 401);
    // ...and the next sign-in (anyone's) deletes it.
    server.user("new").await;
    let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sessions WHERE expires_at <= unixepoch()")
        .fetch_one(app::server::db())
        .await
        .unwrap();
    assert_eq!(left, 0);
    app::server::sessions::set_ttl(app::server::sessions::DEFAULT_TTL);
}

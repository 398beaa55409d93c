//! The demo app over real HTTP: sign-in cookies, rooms, prepare per user, the author's tab
//! excluded, bad input refused with 4xx, sign-out ending streams, counters back to zero.
//!
//! One test function: the app's database is process-wide and tied to one tokio runtime.
use std::{collections::HashMap, time::Duration};

use futures::StreamExt;
use leptos::prelude::LeptosOptions;
use tokio::sync::mpsc;

struct Server {
    base: String,
}

struct User {
    http: reqwest::Client,
    name: String,
}

struct Tab {
    id: String,
    events: mpsc::UnboundedReceiver<(String, String)>,
    reader: tokio::task::JoinHandle<()>,
    /// The presence frames' `presence` field, in order, set aside while reading other frames.
    presence: Vec<serde_json::Value>,
}

impl Server {
    async fn start() -> Self {
        let db = std::env::temp_dir().join(format!("notif-app-test-{}.db", std::process::id()));
        let _ = std::fs::remove_file(&db);
        app::server::open_database(db.to_str().unwrap()).await.unwrap();
        let config = {
            let mut config = notif::Config::default();
            config.resume_window = Duration::ZERO;
            config.heartbeat = Duration::from_millis(10);
            config
        };
        let hub = app::server::hub(config, None);
        let options = LeptosOptions::builder().output_name("notif-demo").build();
        let router = server::router(options, hub, server::same_origin::Policy::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        Server { base }
    }

    async fn user(&self, name: &str) -> User {
        let http = reqwest::Client::builder().cookie_store(true).build().unwrap();
        let user = User {
            http,
            name: name.into(),
        };
        let (status, body) = self.call(&user, None, "sign_in", &[("name", name)]).await;
        assert_eq!(status, 200, "{body}");
        user
    }

    async fn call(
        &self,
        user: &User,
        tab: Option<&Tab>,
        endpoint: &str,
        form: &[(&str, &str)],
    ) -> (u16, String) {
        let mut request = user.http.post(format!("{}/api/{endpoint}", self.base)).form(form);
        if let Some(tab) = tab {
            request = request.header(notif::wire::TAB_HEADER, &tab.id);
        }
        let response = request.send().await.unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }

    async fn tab(&self, user: &User) -> Tab {
        let response = user
            .http
            .get(format!("{}{}", self.base, notif::wire::STREAM_PATH))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let (tx, mut events) = mpsc::unbounded_channel();
        let reader = tokio::spawn(async move {
            let mut body = response.bytes_stream();
            let mut buffer = String::new();
            while let Some(Ok(chunk)) = body.next().await {
                buffer.push_str(&String::from_utf8_lossy(&chunk));
                while let Some(end) = buffer.find("\n\n") {
                    let block: String = buffer.drain(..end + 2).collect();
                    let field = |name: &str| {
                        block
                            .lines()
                            .find_map(|l| l.strip_prefix(name))
                            .map(|v| v.trim_start().to_owned())
                    };
                    if let (Some(event), Some(data)) = (field("event:"), field("data:")) {
                        let _ = tx.send((event, data));
                    }
                }
            }
        });
        let (event, data) = events.recv().await.unwrap();
        assert_eq!(event, "hello");
        let hello: notif::wire::Hello = serde_json::from_str(&data).unwrap();
        Tab {
            id: hello.tab_id,
            events,
            reader,
            presence: Vec::new(),
        }
    }

    async fn metrics(&self) -> HashMap<String, u64> {
        let text = reqwest::get(format!("{}/metrics", self.base))
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

impl Tab {
    /// The next room message as (body, mentions_me). Panics after 5 s (a guard, not a wait).
    async fn next_message(&mut self) -> (String, bool) {
        let (event, data) = self.next_event().await.expect("stream ended");
        assert_eq!(event, "notif", "{data}");
        let data: serde_json::Value = serde_json::from_str(&data).unwrap();
        let message = &data["message"];
        (
            message["message"]["body"].as_str().unwrap().to_owned(),
            message["mentions_me"].as_bool().unwrap(),
        )
    }

    /// The next frame but presence frames (kept in `presence`). Panics after 5 s.
    async fn next_event(&mut self) -> Option<(String, String)> {
        loop {
            let (event, data) = tokio::time::timeout(Duration::from_secs(5), self.events.recv())
                .await
                .expect("nothing within 5 s")?;
            let value: serde_json::Value = serde_json::from_str(&data).unwrap_or_default();
            match value.get("presence") {
                Some(presence) if event == "notif" => self.presence.push(presence.clone()),
                _ => return Some((event, data)),
            }
        }
    }
}

#[tokio::test]
async fn demo_app_end_to_end_over_http() {
    let server = Server::start().await;
    let (ann, bob, cat) = (
        server.user("ann").await,
        server.user("bob").await,
        server.user("cat").await,
    );
    let (status, body) = server.call(&ann, None, "whoami", &[]).await;
    assert_eq!((status, body.as_str()), (200, "\"ann\""));

    let mut ann_tab = server.tab(&ann).await;
    let mut bob_tab = server.tab(&bob).await;
    let mut cat_tab = server.tab(&cat).await;
    for (user, tab) in [(&ann, &ann_tab), (&bob, &bob_tab), (&cat, &cat_tab)] {
        let (status, body) = server
            .call(user, Some(tab), "listen_room", &[("room", "1")])
            .await;
        assert_eq!(status, 200, "{}: {body}", user.name);
    }
    // cat muted room 1: prepare gives her nothing from it.
    let (status, _) = server
        .call(&cat, None, "mute", &[("room", "1"), ("on", "true")])
        .await;
    assert_eq!(status, 200);
    // cat also listens to room 2, as a sentinel that shows she missed room 1's message.
    server
        .call(&cat, Some(&cat_tab), "listen_room", &[("room", "2")])
        .await;

    let (status, body) = server
        .call(
            &ann,
            Some(&ann_tab),
            "post",
            &[("room", "1"), ("body", "hello @bob")],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        bob_tab.next_message().await,
        ("hello @bob".into(), true),
        "bob is mentioned"
    );
    server
        .call(&bob, Some(&bob_tab), "post", &[("room", "2"), ("body", "in two")])
        .await;
    assert_eq!(
        cat_tab.next_message().await,
        ("in two".into(), false),
        "muted room 1 sent cat nothing"
    );
    // The author's own tab was excluded; the next thing it sees is bob's reply.
    server
        .call(&bob, Some(&bob_tab), "post", &[("room", "1"), ("body", "hi ann")])
        .await;
    assert_eq!(ann_tab.next_message().await, ("hi ann".into(), false));
    // Who is in room 1, by user name: ann saw herself, then bob and cat come in.
    assert_eq!(
        ann_tab.presence,
        [
            serde_json::json!({ "present": ["ann"] }),
            serde_json::json!({ "join": "bob" }),
            serde_json::json!({ "join": "cat" }),
        ]
    );

    // Who is typing: a notification to the room's other users, never to the typist's own tabs
    // (ann's next frame below is the sign-out's bye), and never stored (the history stays at two).
    for (user, tab) in [(&ann, &ann_tab), (&bob, &bob_tab)] {
        let (status, body) = server
            .call(user, Some(tab), "listen_typing", &[("room", "1")])
            .await;
        assert_eq!(status, 200, "{}: {body}", user.name);
    }
    let (status, _) = server
        .call(&ann, Some(&ann_tab), "listen_typing", &[("room", "99")])
        .await;
    assert_eq!(
        status, 403,
        "the room's authorization: no typing in unknown rooms"
    );
    let typing_in = |room: i64, (event, data): (String, String)| {
        let data: serde_json::Value = serde_json::from_str(&data).unwrap();
        assert_eq!(
            (event.as_str(), &data["topic"], &data["key"]),
            ("notif", &"typing".into(), &room.into())
        );
        data["message"].as_str().unwrap().to_owned()
    };
    let typing = |event| typing_in(1, event);
    // cat muted room 1: its typing does not reach her either; room 2's, the sentinel, does.
    for room in ["1", "2"] {
        let (status, body) = server
            .call(&cat, Some(&cat_tab), "listen_typing", &[("room", room)])
            .await;
        assert_eq!(status, 200, "cat: {body}");
    }
    assert_eq!(server.call(&bob, None, "typing", &[("room", "1")]).await.0, 200);
    assert_eq!(typing(ann_tab.next_event().await.unwrap()), "bob");
    assert_eq!(server.call(&ann, None, "typing", &[("room", "1")]).await.0, 200);
    assert_eq!(
        typing(bob_tab.next_event().await.unwrap()),
        "ann",
        "bob's own typing skipped him"
    );
    assert_eq!(server.call(&bob, None, "typing", &[("room", "2")]).await.0, 200);
    assert_eq!(
        typing_in(2, cat_tab.next_event().await.unwrap()),
        "bob",
        "muted room 1's typing sent cat nothing"
    );

    // History holds both, highlighted per viewer.
    let (status, body) = server.call(&bob, None, "room_history", &[("room", "1")]).await;
    assert_eq!(status, 200);
    let history: (String, Vec<app::model::RoomMessage>) = serde_json::from_str(&body).unwrap();
    assert_eq!(history.0, "general");
    assert_eq!(
        history.1.iter().map(|m| m.mentions_me).collect::<Vec<_>>(),
        [true, false]
    );

    // Bad input: a clear 4xx with a reason, and nothing stored or sent.
    let long = "x".repeat(501);
    for (form, want, reason) in [
        (vec![("room", "1"), ("body", "   ")], 400, "cannot be empty"),
        (vec![("room", "1"), ("body", long.as_str())], 400, "at most 500"),
        (vec![("room", "99"), ("body", "hi")], 404, "no room 99"),
        (vec![("room", "one"), ("body", "hi")], 400, ""),
        (vec![("body", "hi")], 400, ""),
    ] {
        let (status, body) = server.call(&ann, Some(&ann_tab), "post", &form).await;
        assert_eq!(status, want, "{form:?}: {body}");
        assert!(body.contains(reason), "{form:?}: {body}");
    }
    let huge = "x".repeat(server::MAX_REQUEST_BYTES + 1);
    let (status, _) = server
        .call(&ann, Some(&ann_tab), "post", &[("room", "1"), ("body", &huge)])
        .await;
    assert_eq!(status, 413);
    let anonymous = User {
        http: reqwest::Client::new(),
        name: "nobody".into(),
    };
    let (status, body) = server
        .call(&anonymous, None, "post", &[("room", "1"), ("body", "hi")])
        .await;
    assert_eq!((status, body.contains("Sign in")), (401, true));
    let (status, body) = server.call(&anonymous, None, "typing", &[("room", "1")]).await;
    assert_eq!((status, body.contains("Sign in")), (401, true));
    // Signed-out visitors get no stream (they all share one identity), hear nothing and read
    // nothing; a signed-in tab's id does not let them listen either.
    let tabs_before = server.metrics().await["notif_tabs"];
    let refused = anonymous
        .http
        .get(format!("{}{}", server.base, notif::wire::STREAM_PATH))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    assert_eq!(refused.text().await.unwrap(), "sign in to receive notifications");
    let metrics = server.metrics().await;
    assert_eq!(metrics["notif_tabs"], tabs_before);
    assert_eq!(metrics[r#"notif_streams_refused_total{reason="denied"}"#], 1);
    let (status, _) = server
        .call(&anonymous, Some(&ann_tab), "listen_room", &[("room", "1")])
        .await;
    assert_eq!(status, 403);
    let (status, body) = server
        .call(&anonymous, None, "room_history", &[("room", "1")])
        .await;
    assert_eq!((status, body.contains("Sign in to read rooms")), (401, true));
    let (status, body) = server
        .call(&ann, Some(&ann_tab), "listen_room", &[("room", "99")])
        .await;
    assert_eq!(status, 403, "authorize refuses unknown rooms: {body}");
    let (status, _) = server
        .call(&bob, Some(&ann_tab), "listen_room", &[("room", "2")])
        .await;
    assert_eq!(status, 403, "bob cannot use ann's tab");
    let (status, body) = server.call(&ann, None, "sign_in", &[("name", "two words")]).await;
    assert_eq!((status, body.contains("letters, digits")), (400, true));
    let (_, body) = server.call(&bob, None, "room_history", &[("room", "1")]).await;
    let history: (String, Vec<app::model::RoomMessage>) = serde_json::from_str(&body).unwrap();
    assert_eq!(history.1.len(), 2, "nothing was stored by the refused posts");

    // Sign-out ends every tab of that user at once.
    let mut ann_tab2 = server.tab(&ann).await;
    let (status, _) = server.call(&ann, None, "sign_out", &[]).await;
    assert_eq!(status, 200);
    for tab in [&mut ann_tab, &mut ann_tab2] {
        let (event, data) = tab.next_event().await.expect("a bye frame");
        assert_eq!(event, "bye", "{data}");
        assert!(tab.next_event().await.is_none(), "the stream ended");
    }
    let (_, body) = server.call(&ann, None, "whoami", &[]).await;
    assert_eq!(body, "null");

    // Everyone leaves: every gauge returns to zero.
    for tab in [bob_tab, cat_tab] {
        tab.reader.abort();
    }
    let mut metrics = server.metrics().await;
    for _ in 0..500 {
        if metrics["notif_tabs"] == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        metrics = server.metrics().await;
    }
    for gauge in ["notif_tabs", "notif_listens", "notif_keys", "notif_identities"] {
        assert_eq!(metrics[gauge], 0, "{gauge}: {metrics:?}");
    }
    assert!(metrics["notif_deliveries_total"] >= 3);
}

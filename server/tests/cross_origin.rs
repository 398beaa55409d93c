//! Cross-origin requests that could change state are refused with 403 and change nothing;
//! same-origin and header-less ones (curl, servers) work.
//!
//! One test function: the app's database is process-wide and tied to one tokio runtime.
mod common;

use common::{send, Server};
use reqwest::Client;

#[tokio::test]
async fn cross_origin_calls_are_refused() {
    let server = Server::start("cross").await;
    cross_origin_calls_are_refused_and_change_nothing(&server).await;
    same_origin_and_header_less_calls_work(&server).await;
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
                .header(notif::wire::TAB_HEADER, &tab)
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
            .header(notif::wire::TAB_HEADER, &tab)
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
    // Signed-out visitors get no tab, and cannot listen with a signed-in one's, same origin
    // or not.
    let nobody = Client::new();
    let refused = nobody
        .get(format!("{}{}", server.base, notif::wire::STREAM_PATH))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    let request = server
        .api(&nobody, "listen_room")
        .header(notif::wire::TAB_HEADER, &tab)
        .header("sec-fetch-site", "same-origin")
        .form(&[("room", "1")]);
    assert_eq!(send(request).await.0, 403);
    reader.abort();
}

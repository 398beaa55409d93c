//! Pages carry protective headers and a CSP whose nonce is the page's; markup in messages is
//! text in the page; names and bodies with control characters are refused; sessions expire.
//!
//! One test function: the app's database is process-wide and tied to one tokio runtime.
mod common;

use std::time::Duration;

use common::{send, Server};
use reqwest::Client;

#[tokio::test]
async fn pages_input_and_sessions_are_safe() {
    let server = Server::start("pages").await;
    pages_carry_protective_headers_and_their_nonce(&server).await;
    markup_in_a_message_is_text_in_the_page(&server).await;
    control_characters_are_refused(&server).await;
    sessions_expire_on_the_server(&server).await;
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

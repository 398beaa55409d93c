//! Sessions: a random cookie token names a user until the session's expiry, which the server
//! checks itself (the cookie's `Max-Age` is only a hint to the browser).
use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

use super::db;
use crate::model::Viewer;

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "notif_demo_session";

/// How long a session lasts unless [`set_ttl`] says otherwise: 7 days.
pub const DEFAULT_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// Longest lifetime accepted by [`set_ttl`] (10 years): keeps `now + ttl` far from overflow.
pub const MAX_TTL: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

static TTL_SECS: AtomicU64 = AtomicU64::new(DEFAULT_TTL.as_secs());

/// Sets the lifetime of sessions started from now on (whole seconds, 1 s to [`MAX_TTL`]).
pub fn set_ttl(ttl: Duration) {
    TTL_SECS.store(ttl.as_secs().clamp(1, MAX_TTL.as_secs()), Ordering::Relaxed);
}

/// The lifetime of new sessions.
pub fn ttl() -> Duration {
    Duration::from_secs(TTL_SECS.load(Ordering::Relaxed))
}

/// Starts a session for `user`, deleting expired ones on the way; returns the `Set-Cookie`
/// value, which carries the token and nothing of the user's input.
pub async fn start(user: &str) -> Result<String, sqlx::Error> {
    sqlx::query("DELETE FROM sessions WHERE expires_at <= unixepoch()")
        .execute(db())
        .await?;
    let token = new_token();
    let ttl = ttl().as_secs();
    sqlx::query("INSERT INTO sessions (token, user_name, expires_at) VALUES (?, ?, unixepoch() + ?)")
        .bind(&token)
        .bind(user)
        .bind(ttl as i64)
        .execute(db())
        .await?;
    Ok(format!(
        "{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age={ttl}"
    ))
}

/// Ends the session `token` names.
pub async fn end(token: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM sessions WHERE token = ?")
        .bind(token)
        .execute(db())
        .await?;
    Ok(())
}

/// The `Set-Cookie` value that makes the browser drop the session cookie.
pub fn removal_cookie() -> String {
    format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0")
}

/// The user a session token belongs to, while the session has not expired.
pub(crate) async fn viewer_with(token: Option<String>) -> Viewer {
    let token = token?;
    sqlx::query_scalar::<_, String>(
        "SELECT user_name FROM sessions WHERE token = ? AND expires_at > unixepoch()",
    )
    .bind(token)
    .fetch_optional(db())
    .await
    .ok()
    .flatten()
}

/// The session token in a request's cookies, if it is well-formed.
pub fn session_token(parts: &http::request::Parts) -> Option<String> {
    parts
        .headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.to_owned())
        .filter(|v| v.len() == 32 && v.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// A fresh token: 128 bits of OS randomness in hex.
pub fn new_token() -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("the operating system's random source failed");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

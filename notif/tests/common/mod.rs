//! Shared fixture: a real axum server on port 0 with a hub, test topics and server functions
//! that listen, plus a real SSE client over HTTP.
#![allow(dead_code)]

mod redis;
mod relay;
mod server;
mod sse;
mod topics;
mod ws;

use std::time::Duration;

// Every test binary compiles this module but uses only part of it, as with `dead_code` above.
#[allow(unused_imports)]
pub use self::{redis::*, relay::*, server::*, sse::*, topics::*, ws::*};

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

//! Open streams re-checked against their sessions. A stream is authorised once, when it opens;
//! a session deleted or expired elsewhere (not through `disconnect_identity`) would otherwise
//! keep its streams for as long as they stay open. So every `Config::revalidate` the hub runs
//! the app's `identify` again on what it kept of each open stream's request (the headers in
//! `Config::identity_headers`), and ends with `bye` (`disconnected`) every stream that no
//! longer resolves to the identity it was opened for.
use std::sync::OnceLock;

use futures::StreamExt;
use http::{request::Parts, HeaderName, HeaderValue};

use super::Hub;
use crate::{ByeReason, Identity, TabId};

/// The headers of a stream's request that `identify` reads, copied out of the request (a
/// clone would keep the whole request head's buffer alive).
pub(crate) type Credentials = Box<[(HeaderName, HeaderValue)]>;

/// Identity checks running at once during a pass: each may query a session store.
const AT_ONCE: usize = 16;

/// What of `parts` to keep for re-running `identify`: `names`' values, copied; `None` if the
/// request carries none of them.
pub(crate) fn credentials_of(parts: &Parts, names: &[HeaderName]) -> Option<Credentials> {
    let kept: Vec<_> = names
        .iter()
        .flat_map(|name| parts.headers.get_all(name).iter().map(move |value| (name, value)))
        .filter_map(|(name, value)| Some((name.clone(), HeaderValue::from_bytes(value.as_bytes()).ok()?)))
        .collect();
    (!kept.is_empty()).then(|| kept.into_boxed_slice())
}

/// A request head carrying only `credentials`, as `identify` sees it again.
fn request_with(credentials: Option<&Credentials>) -> Parts {
    let (mut parts, ()) = http::Request::new(()).into_parts();
    for (name, value) in credentials.into_iter().flat_map(|c| c.iter()) {
        parts.headers.append(name.clone(), value.clone());
    }
    parts
}

/// The hub's re-validation clock: started with the first stream, once.
#[derive(Default)]
pub(crate) struct Revalidation {
    started: OnceLock<()>,
}

impl<I: Identity> Hub<I> {
    /// Starts re-validating open streams every `Config::revalidate`, unless that is zero. The
    /// task holds the hub weakly: dropping the hub stops it.
    pub(crate) fn start_revalidation(&self) {
        let period = self.inner.config.revalidate;
        if period.is_zero() {
            return;
        }
        self.inner.revalidation.started.get_or_init(|| {
            self.spawn_clock(period, |hub| async move {
                hub.revalidate().await;
            });
        });
    }

    /// Ends every open stream whose request no longer resolves to its tab's identity; returns
    /// how many.
    pub(crate) async fn revalidate(&self) -> usize {
        let open = self.state().connected_credentials();
        let changed: Vec<(TabId, u32)> = futures::stream::iter(open)
            .map(|(tab_id, conn, identity, credentials)| async move {
                let now = self.identify(&request_with(credentials.as_ref())).await;
                (now != identity).then_some((tab_id, conn))
            })
            .buffer_unordered(AT_ONCE)
            .filter_map(std::future::ready)
            .collect()
            .await;
        let mut state = self.state();
        let mut ended = 0;
        for (tab_id, conn) in changed {
            // A tab resumed meanwhile was checked again as it resumed.
            if state.is_attached(tab_id, conn) {
                tracing::debug!(?tab_id, "notif: session no longer valid, stream ended");
                state.end(tab_id, ByeReason::Disconnected);
                ended += 1;
            }
        }
        ended
    }
}

#[cfg(test)]
mod tests {
    use std::{
        collections::HashSet,
        sync::{Arc, Mutex},
        time::Duration,
    };

    use super::*;
    use crate::{hub::Outgoing, Config};

    /// A hub whose identity is the `x-user` header, valid while that user's session exists.
    fn hub_with_sessions(sessions: Arc<Mutex<HashSet<String>>>) -> Hub<Option<String>> {
        let config = Config {
            revalidate: Duration::from_secs(60),
            identity_headers: vec![HeaderName::from_static("x-user")],
            ..Config::default()
        };
        Hub::new(config, move |parts: &Parts| {
            let user = parts
                .headers
                .get("x-user")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let valid = user.filter(|u| sessions.lock().unwrap().contains(u));
            async move { valid }
        })
    }

    fn request_of(user: &str) -> Parts {
        let request = http::Request::builder()
            .header("x-user", user)
            .header("accept", "*/*");
        request.body(()).unwrap().into_parts().0
    }

    #[test]
    fn only_the_named_headers_are_kept() {
        let names = [
            HeaderName::from_static("cookie"),
            HeaderName::from_static("x-user"),
        ];
        let kept = credentials_of(&request_of("alice"), &names).unwrap();
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].1, "alice");
        let none = http::Request::new(()).into_parts().0;
        assert!(credentials_of(&none, &names).is_none());
        assert_eq!(request_with(Some(&kept)).headers.get("x-user").unwrap(), "alice");
    }

    /// A tab that resumes with a new session's cookie is checked with that one from then on.
    #[tokio::test]
    async fn a_resumed_tab_is_checked_with_the_session_it_resumed_with() {
        // Sessions are tokens: `alice-1` and `alice-2` are both alice's.
        let sessions = Arc::new(Mutex::new(HashSet::from([
            "alice-1".to_owned(),
            "alice-2".to_owned(),
        ])));
        let valid = sessions.clone();
        let config = Config {
            identity_headers: vec![HeaderName::from_static("x-user")],
            ..Config::default()
        };
        let hub = Hub::new(config, move |parts: &Parts| {
            let token = parts.headers.get("x-user").and_then(|v| v.to_str().ok());
            let user = token
                .filter(|t| valid.lock().unwrap().contains(*t))
                .and_then(|t| t.split('-').next())
                .map(str::to_owned);
            async move { user }
        });
        let names = hub.config().identity_headers.clone();
        let alice = Some("alice".to_owned());
        let first = credentials_of(&request_of("alice-1"), &names);
        let (tab_id, rx) = hub.open_tab(alice.clone(), first).unwrap();
        drop(rx);
        hub.closed(tab_id, 0);
        let second = credentials_of(&request_of("alice-2"), &names);
        let _resumed = hub
            .resume(tab_id, None, &alice, 0, second)
            .await
            .map_err(|_| "resume")
            .unwrap();
        sessions.lock().unwrap().remove("alice-1");
        assert_eq!(hub.revalidate().await, 0, "checked with alice-2, which stands");
        sessions.lock().unwrap().remove("alice-2");
        assert_eq!(hub.revalidate().await, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_stream_whose_session_was_deleted_ends_within_the_interval() {
        let sessions = Arc::new(Mutex::new(HashSet::from(["alice".to_owned(), "bob".to_owned()])));
        let hub = hub_with_sessions(sessions.clone());
        let names = hub.config().identity_headers.clone();
        let mut tabs = Vec::new();
        for user in ["alice", "bob"] {
            let request = request_of(user);
            let identity = hub.identify(&request).await;
            tabs.push(hub.open_tab(identity, credentials_of(&request, &names)).unwrap());
        }
        hub.start_revalidation();
        tokio::time::sleep(Duration::from_secs(61)).await;
        assert_eq!(hub.metrics().connected, 2, "valid sessions keep their streams");

        sessions.lock().unwrap().remove("alice");
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert!(matches!(
            tabs[0].1.try_recv(),
            Ok(Outgoing::Bye(ByeReason::Disconnected))
        ));
        assert!(tabs[1].1.try_recv().is_err(), "bob's session still stands");
        assert_eq!((hub.metrics().tabs, hub.metrics().identities), (1, 1));
    }
}

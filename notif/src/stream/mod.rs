//! The stream endpoints: one connection per tab, Server-Sent Events or WebSocket, resumed after
//! a reconnect when the tab's missed frames are still buffered.
mod origin;
mod refused;
mod sse;
mod ws;

use std::{net::IpAddr, sync::Arc};

use axum::{extract::ConnectInfo, response::IntoResponse, routing::get, Router};

pub(crate) use origin::WebOrigin;
pub use refused::{StreamDenied, StreamRefused};

use crate::{
    hub::{credentials_of, queue, Latency, Outgoing, ResumeRefused, Slot},
    parse_event_id, Hello, Hub, Identity, TabId, LAST_EVENT_ID_HEADER, LAST_EVENT_ID_QUERY, NODE_QUERY,
    STREAM_PATH, WS_PATH,
};

/// The remote address of a stream request, as the per-address cap counts it: the peer
/// [`serve`](fn@crate::serve) (or axum's `into_make_service_with_connect_info`) saw, or, behind a
/// trusted proxy, the last address in `X-Forwarded-For` (the one the proxy itself added). An
/// IPv6 address counts as its /64: one subscriber usually holds a whole /64.
fn remote_address(parts: &http::request::Parts, trust_forwarded: bool) -> Option<IpAddr> {
    peer_address(parts, trust_forwarded).map(|ip| match ip.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) & !u128::from(u64::MAX)).into()),
        v4 => v4,
    })
}

fn peer_address(parts: &http::request::Parts, trust_forwarded: bool) -> Option<IpAddr> {
    if trust_forwarded {
        let forwarded = parts
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .last()
            .and_then(|last| last.trim().parse().ok());
        if forwarded.is_some() {
            return forwarded;
        }
    }
    parts
        .extensions
        .get::<ConnectInfo<std::net::SocketAddr>>()
        .map(|ConnectInfo(peer)| peer.ip())
}

/// The node a reconnect names as holding its tab (the `node` of its last hello), from the query.
fn node_named(parts: &http::request::Parts) -> Option<&str> {
    query_param(parts, NODE_QUERY)
}

/// The value of query parameter `name`, as sent.
fn query_param<'a>(parts: &'a http::request::Parts, name: &str) -> Option<&'a str> {
    parts
        .uri
        .query()?
        .split('&')
        .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
}

/// The frame a reconnect names as the last it saw, from the header or the query.
fn last_seen(parts: &http::request::Parts) -> Result<Option<(TabId, u64)>, StreamRefused> {
    let header = parts
        .headers
        .get(LAST_EVENT_ID_HEADER)
        .map(|v| v.to_str().unwrap_or("\u{0}"));
    match header.or(query_param(parts, LAST_EVENT_ID_QUERY)) {
        None | Some("") => Ok(None),
        Some(id) => parse_event_id(id)
            .map(Some)
            .map_err(|_| StreamRefused::BadLastEventId),
    }
}

/// The routes of [`Hub::routes`]: `GET /notif/stream` (Server-Sent Events) and `GET /notif/ws`
/// (WebSocket), the same frames under the same resume rules.
pub(crate) fn routes<I: Identity, S: Clone + Send + Sync + 'static>(hub: &Hub<I>) -> Router<S> {
    let (sse_hub, ws_hub) = (hub.clone(), hub.clone());
    Router::new()
        .route(
            STREAM_PATH,
            get(move |request: axum::extract::Request| {
                let hub = sse_hub.clone();
                async move {
                    let (parts, _body) = request.into_parts();
                    sse::open(&hub, &parts).await.into_response()
                }
            }),
        )
        .route(
            WS_PATH,
            get(move |request: axum::extract::Request| {
                let hub = ws_hub.clone();
                async move { ws::upgrade(hub, request).await }
            }),
        )
}

/// Starts a session for one connection: checks where the request comes from and who sends it,
/// then resumes the tab its `Last-Event-ID` names (here, or moved here from the node it names)
/// or registers a new one. A refusal is counted, and nothing is kept for it.
pub(crate) async fn start_session<I: Identity>(
    hub: &Hub<I>,
    parts: &http::request::Parts,
) -> Result<Session<I>, StreamRefused> {
    let session = admit_session(hub, parts).await;
    if let Err(refused) = &session {
        tracing::debug!(%refused, "notif: stream refused");
        hub.count_refused(refused);
    }
    session
}

async fn admit_session<I: Identity>(
    hub: &Hub<I>,
    parts: &http::request::Parts,
) -> Result<Session<I>, StreamRefused> {
    let config = hub.config();
    origin::check(parts, config)?;
    let last = last_seen(parts)?;
    let slot = hub.connection_slot(remote_address(parts, config.trust_forwarded))?;
    let identity = hub.identify(parts).await;
    hub.admits(&identity)?;
    let credentials = credentials_of(parts, &config.identity_headers);
    if let Some((tab_id, seen)) = last {
        match hub
            .resume(tab_id, node_named(parts), &identity, seen, credentials.clone())
            .await
        {
            Ok((resumed, rx)) => {
                let open = OpenTab {
                    slot,
                    tab_id,
                    conn: resumed.conn,
                    rx: Some(rx),
                };
                return Ok(Session {
                    tab_id,
                    node: hub.node(),
                    seen,
                    recovered: true,
                    replay: resumed.frames,
                    open,
                });
            }
            Err(ResumeRefused::Foreign) => return Err(StreamRefused::ForeignTab),
            Err(ResumeRefused::Gone) => hub.count_reset(),
        }
    }
    let (tab_id, rx) = hub.open_tab(identity, credentials)?;
    let open = OpenTab {
        slot,
        tab_id,
        conn: 0,
        rx: Some(rx),
    };
    Ok(Session {
        tab_id,
        node: hub.node(),
        seen: 0,
        recovered: false,
        replay: Vec::new(),
        open,
    })
}

/// One connection's frames: the hello, the replay, then live frames until either side ends it.
pub(crate) struct Session<I: Identity> {
    pub tab_id: TabId,
    /// The node holding the tab, with a backplane.
    pub node: Option<String>,
    /// The last frame the client has; the hello carries it as its id, so a drop during the
    /// replay that follows resumes from there again.
    pub seen: u64,
    pub recovered: bool,
    pub replay: Vec<(u64, Arc<str>)>,
    pub open: OpenTab<I>,
}

impl<I: Identity> Session<I> {
    pub fn hello(&self) -> Hello {
        Hello {
            tab_id: self.tab_id.to_string(),
            recovered: self.recovered,
            node: self.node.clone(),
        }
    }

    pub fn hello_id(&self) -> String {
        format!("{}.{}", self.tab_id, self.seen)
    }
}

/// A tab's open connection. Dropping it (the connection ended) starts the tab's resume window
/// and gives its place in the connection counts back.
pub(crate) struct OpenTab<I: Identity> {
    slot: Slot<I>,
    tab_id: TabId,
    conn: u32,
    rx: Option<queue::Receiver<Outgoing>>,
}

impl<I: Identity> OpenTab<I> {
    /// The next frame; `None` once the stream is over (after a `bye`, or the tab was dropped).
    pub async fn next(&mut self) -> Option<Outgoing> {
        let frame = self.rx.as_mut()?.recv().await?;
        Some(self.taken(frame))
    }

    /// Taken by the connection's own task, to be written at once (over SSE, handed to the
    /// response body): a sample of these is timed, as a sample of a notify pass's direct
    /// writes is (`hub/writes.rs`).
    fn taken(&mut self, frame: Outgoing) -> Outgoing {
        match &frame {
            Outgoing::Notif { seq, at, .. } => {
                if Latency::samples(*seq, self.tab_id.to_bytes()[15]) {
                    self.slot.hub.latency().observe(*at);
                }
            }
            // Nothing follows a bye.
            Outgoing::Bye(_) => self.rx = None,
        }
        frame
    }
}

impl<I: Identity> Drop for OpenTab<I> {
    fn drop(&mut self) {
        tracing::debug!(tab_id = ?self.tab_id, "notif: stream closed");
        self.slot.hub.closed(self.tab_id, self.conn);
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn parts(query: &str, header: Option<&[u8]>) -> Option<http::request::Parts> {
        let mut request = http::Request::builder().uri(format!("/notif/stream?{query}"));
        if let Some(value) = header {
            request = request.header(LAST_EVENT_ID_HEADER, http::HeaderValue::from_bytes(value).ok()?);
        }
        Some(request.body(()).ok()?.into_parts().0)
    }

    #[test]
    fn the_header_wins_over_the_query_and_empty_means_none() {
        let id = "0123456789abcdef0123456789abcdef";
        let both = parts(
            &format!("last_event_id={id}.1"),
            Some(format!("{id}.2").as_bytes()),
        )
        .unwrap();
        assert_eq!(last_seen(&both).unwrap().unwrap().1, 2);
        assert_eq!(last_seen(&parts("last_event_id=", None).unwrap()), Ok(None));
        assert_eq!(last_seen(&parts("", Some(b"")).unwrap()), Ok(None));
        assert_eq!(
            last_seen(&parts("", Some(b"\xff\xfe")).unwrap()),
            Err(StreamRefused::BadLastEventId)
        );
    }

    #[test]
    fn an_ipv6_peer_counts_as_its_64_and_a_mapped_ipv4_as_itself() {
        let with_peer = |peer: &str| {
            let mut parts = parts("", None).unwrap();
            parts
                .extensions
                .insert(ConnectInfo(peer.parse::<std::net::SocketAddr>().unwrap()));
            remote_address(&parts, false).map(|ip| ip.to_string())
        };
        assert_eq!(
            with_peer("[2001:db8:1:2:aaaa::1]:5000").as_deref(),
            Some("2001:db8:1:2::")
        );
        assert_eq!(
            with_peer("[2001:db8:1:2:bbbb::9]:5000").as_deref(),
            Some("2001:db8:1:2::")
        );
        assert_eq!(with_peer("[::ffff:10.0.0.7]:5000").as_deref(), Some("10.0.0.7"));
        assert_eq!(with_peer("10.0.0.7:5000").as_deref(), Some("10.0.0.7"));
        assert_eq!(remote_address(&parts("", None).unwrap(), false), None);
    }

    proptest! {
        #[test]
        fn hostile_queries_and_headers_never_panic(query in "[ -~]{0,80}", header in proptest::collection::vec(any::<u8>(), 0..80)) {
            if let Some(parts) = parts(&query, Some(&header)) {
                let _ = last_seen(&parts);
            }
            if let Some(parts) = parts(&query, None) {
                let _ = last_seen(&parts);
            }
        }
    }
}

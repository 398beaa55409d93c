//! The stream endpoint: one Server-Sent Events response per tab, resumed after a reconnect when
//! the tab's missed frames are still buffered.
use std::{convert::Infallible, sync::Arc, time::Duration};

use axum::{
    response::{
        sse::{Event, KeepAlive, Sse},
        IntoResponse, Response,
    },
    routing::get,
    Router,
};
use futures::{stream, Stream, StreamExt};
use http::StatusCode;
use tokio::sync::mpsc;

use crate::{
    hub::{Outgoing, ResumeRefused},
    parse_event_id, Bye, ClientId, Hello, Hub, Identity, EVENT_BYE, EVENT_HELLO, EVENT_NOTIF,
    LAST_EVENT_ID_HEADER, LAST_EVENT_ID_QUERY, STREAM_PATH,
};

/// A stream request refused before any frame was sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StreamRefused {
    /// `Last-Event-ID` (or `last_event_id`) is not an id this server sends.
    #[error("Last-Event-ID must be <client>.<seq> as sent in `id:` lines; omit it to start a new stream")]
    BadLastEventId,
    /// The named tab belongs to another identity.
    #[error("this tab belongs to another session; omit Last-Event-ID to start a new stream")]
    ForeignClient,
}

impl IntoResponse for StreamRefused {
    fn into_response(self) -> Response {
        let status = match self {
            StreamRefused::BadLastEventId => StatusCode::BAD_REQUEST,
            StreamRefused::ForeignClient => StatusCode::FORBIDDEN,
        };
        (status, self.to_string()).into_response()
    }
}

/// The frame a reconnect names as the last it saw, from the header or the query.
fn last_seen(parts: &http::request::Parts) -> Result<Option<(ClientId, u64)>, StreamRefused> {
    let header = parts
        .headers
        .get(LAST_EVENT_ID_HEADER)
        .map(|v| v.to_str().unwrap_or("\u{0}"));
    let query = parts.uri.query().and_then(|q| {
        q.split('&')
            .find_map(|pair| pair.strip_prefix(LAST_EVENT_ID_QUERY)?.strip_prefix('='))
    });
    match header.or(query) {
        None | Some("") => Ok(None),
        Some(id) => parse_event_id(id)
            .map(Some)
            .map_err(|_| StreamRefused::BadLastEventId),
    }
}

impl<I: Identity> Hub<I> {
    /// The routes notif serves: `GET /notif/stream`. Merge them into the app's router.
    pub fn routes<S: Clone + Send + Sync + 'static>(&self) -> Router<S> {
        let hub = self.clone();
        Router::new().route(
            STREAM_PATH,
            get(move |request: axum::extract::Request| {
                let hub = hub.clone();
                async move {
                    let (parts, _body) = request.into_parts();
                    hub.open_stream(&parts).await
                }
            }),
        )
    }

    /// Answers one stream request: resolves the identity, resumes the tab its `Last-Event-ID`
    /// names or registers a new one, and streams frames until either side ends it.
    pub async fn open_stream(
        &self,
        parts: &http::request::Parts,
    ) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>> + Send + 'static>, StreamRefused> {
        let last = last_seen(parts)?;
        let identity = self.identify(parts).await;
        let resumed = match last {
            Some((client, seen)) => match self.resume(client, &identity, seen) {
                Ok((resumed, rx)) => Some((client, seen, resumed, rx)),
                Err(ResumeRefused::Foreign) => return Err(StreamRefused::ForeignClient),
                Err(ResumeRefused::Gone) => {
                    self.count_reset();
                    None
                }
            },
            None => None,
        };
        let (client, seen, conn, replay, rx) = match resumed {
            Some((client, seen, resumed, rx)) => (client, seen, resumed.conn, resumed.frames, rx),
            None => {
                let (client, rx) = self.open(identity);
                (client, 0, 0, Vec::new(), rx)
            }
        };
        tracing::debug!(
            ?client,
            recovered = last.is_some() && conn > 0,
            "notif: stream opened"
        );
        // The hello's id is the last frame the client has: a drop during the replay that
        // follows resumes from there again.
        let hello = Event::default()
            .event(EVENT_HELLO)
            .id(format!("{client}.{seen}"))
            .retry(self.config().retry)
            .json_data(Hello {
                client: client.to_string(),
                recovered: conn > 0,
            })
            .unwrap_or_default();
        let replay: Vec<Result<Event, Infallible>> = replay
            .into_iter()
            .map(|(seq, data)| Ok(notif_event(client, seq, &data)))
            .collect();
        let open = OpenTab {
            hub: self.clone(),
            client,
            conn,
            rx: Some(rx),
        };
        let frames = stream::unfold(open, |mut open| async move {
            let frame = open.rx.as_mut()?.recv().await?;
            let event = open.event(frame);
            Some((Ok(event), open))
        });
        let heartbeat = self.config().heartbeat.max(Duration::from_millis(1));
        Ok(Sse::new(
            stream::once(async move { Ok(hello) })
                .chain(stream::iter(replay))
                .chain(frames),
        )
        .keep_alive(KeepAlive::new().interval(heartbeat).text("hb")))
    }
}

fn notif_event(client: ClientId, seq: u64, data: &Arc<str>) -> Event {
    Event::default()
        .event(EVENT_NOTIF)
        .id(format!("{client}.{seq}"))
        .data(&**data)
}

/// A tab's open connection. Dropping it (the connection ended) starts the tab's resume window.
struct OpenTab<I: Identity> {
    hub: Hub<I>,
    client: ClientId,
    conn: u64,
    rx: Option<mpsc::Receiver<Outgoing>>,
}

impl<I: Identity> OpenTab<I> {
    fn event(&mut self, frame: Outgoing) -> Event {
        match frame {
            Outgoing::Notif { seq, data } => notif_event(self.client, seq, &data),
            Outgoing::Bye(reason) => {
                // Nothing follows a bye: the next poll ends the stream.
                self.rx = None;
                Event::default()
                    .event(EVENT_BYE)
                    .json_data(Bye { reason })
                    .unwrap_or_default()
            }
        }
    }
}

impl<I: Identity> Drop for OpenTab<I> {
    fn drop(&mut self) {
        tracing::debug!(client = ?self.client, "notif: stream closed");
        self.hub.closed(self.client, self.conn);
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

//! The stream endpoint: one Server-Sent Events response per tab.
use std::{convert::Infallible, time::Duration};

use axum::{
    response::sse::{Event, KeepAlive, Sse},
    routing::get,
    Router,
};
use futures::{stream, Stream, StreamExt};
use tokio::sync::mpsc;

use crate::{
    hub::Outgoing, Bye, ClientId, Hello, Hub, Identity, EVENT_BYE, EVENT_HELLO, EVENT_NOTIF, STREAM_PATH,
};

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

    /// Answers one stream request: resolves the identity, registers the tab, and streams its
    /// frames until either side ends it.
    pub async fn open_stream(
        &self,
        parts: &http::request::Parts,
    ) -> Sse<impl Stream<Item = Result<Event, Infallible>> + Send + 'static> {
        let identity = self.identify(parts).await;
        let (client, rx) = self.open(identity);
        tracing::debug!(?client, "notif: stream opened");
        let hello = Event::default()
            .event(EVENT_HELLO)
            .retry(self.config().retry)
            .json_data(Hello {
                client: client.to_string(),
                recovered: false,
            })
            .unwrap_or_default();
        let open = OpenTab {
            hub: self.clone(),
            client,
            rx: Some(rx),
        };
        let frames = stream::unfold(open, |mut open| async move {
            let frame = open.rx.as_mut()?.recv().await?;
            let event = open.event(frame);
            Some((Ok(event), open))
        });
        Sse::new(stream::once(async move { Ok(hello) }).chain(frames)).keep_alive(
            KeepAlive::new()
                .interval(heartbeat(self.config().heartbeat))
                .text("hb"),
        )
    }
}

fn heartbeat(interval: Duration) -> Duration {
    interval.max(Duration::from_millis(1))
}

/// A tab's open stream. Dropping it (the connection ended) starts the tab's resume window.
struct OpenTab<I: Identity> {
    hub: Hub<I>,
    client: ClientId,
    rx: Option<mpsc::Receiver<Outgoing>>,
}

impl<I: Identity> OpenTab<I> {
    fn event(&mut self, frame: Outgoing) -> Event {
        match frame {
            Outgoing::Notif { seq, data } => Event::default()
                .event(EVENT_NOTIF)
                .id(format!("{}.{seq}", self.client))
                .data(&*data),
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
        self.hub.closed(self.client);
    }
}

//! Server-Sent Events transport: for browsers' `EventSource`, curl and any HTTP client.
use std::{convert::Infallible, sync::Arc, time::Duration};

use axum::response::sse::{Event, KeepAlive, Sse};
use futures::{stream, Stream, StreamExt};

use super::StreamRefused;
use crate::{hub::Outgoing, Bye, Hub, Identity, TabId, EVENT_BYE, EVENT_HELLO, EVENT_NOTIF};

/// Answers one SSE stream request: resolves the identity, resumes the tab its `Last-Event-ID`
/// names or registers a new one, and streams frames until either side ends it.
pub(super) async fn open<I: Identity>(
    hub: &Hub<I>,
    parts: &http::request::Parts,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>> + Send + 'static>, StreamRefused> {
    let session = super::start_session(hub, parts).await?;
    let tab_id = session.tab_id;
    let hello = Event::default()
        .event(EVENT_HELLO)
        .id(session.hello_id())
        .retry(hub.config().retry)
        .json_data(session.hello())
        .unwrap_or_default();
    let replay: Vec<Result<Event, Infallible>> = session
        .replay
        .iter()
        .map(|(seq, data)| Ok(notif_event(tab_id, *seq, data)))
        .collect();
    let frames = stream::unfold(session.open, move |mut open| async move {
        let event = match open.next().await? {
            Outgoing::Notif { seq, data, .. } => notif_event(tab_id, seq, &data),
            Outgoing::Bye(reason) => Event::default()
                .event(EVENT_BYE)
                .json_data(Bye { reason })
                .unwrap_or_default(),
        };
        Some((Ok(event), open))
    });
    let heartbeat = hub.config().heartbeat.max(Duration::from_millis(1));
    Ok(Sse::new(
        stream::once(async move { Ok(hello) })
            .chain(stream::iter(replay))
            .chain(frames),
    )
    .keep_alive(KeepAlive::new().interval(heartbeat).text("hb")))
}

fn notif_event(tab_id: TabId, seq: u64, data: &Arc<str>) -> Event {
    Event::default()
        .event(EVENT_NOTIF)
        .id(format!("{tab_id}.{seq}"))
        .data(&**data)
}

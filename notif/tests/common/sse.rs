//! The SSE client: a tab's stream over HTTP, read into `Event`s.

use std::time::Duration;

use futures::StreamExt;
use tokio::sync::mpsc;

/// One SSE event.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Event {
    pub event: String,
    pub id: String,
    pub data: String,
}

impl Event {
    pub fn message(&self) -> serde_json::Value {
        serde_json::from_str::<serde_json::Value>(&self.data).unwrap()["message"].clone()
    }
}

/// A tab: its stream, read by a background task.
pub struct Tab {
    pub user: Option<String>,
    pub id: String,
    /// The node holding the tab, as the hello named it.
    pub node: Option<String>,
    /// What the hello said.
    pub recovered: bool,
    /// The hello's data as the server sent it.
    pub hello_data: String,
    /// The `id:` of the last event read, as a browser remembers it.
    pub last_id: String,
    pub(super) events: mpsc::UnboundedReceiver<Event>,
    pub(super) reader: tokio::task::JoinHandle<()>,
}

impl Tab {
    /// The next event; panics after 5 s without one (a failure guard, not a wait).
    pub async fn next(&mut self) -> Event {
        let event = tokio::time::timeout(Duration::from_secs(5), self.events.recv())
            .await
            .expect("no event within 5 s")
            .expect("stream ended");
        if !event.id.is_empty() {
            self.last_id = event.id.clone();
        }
        event
    }

    /// The next notification's message text.
    pub async fn next_text(&mut self) -> String {
        let event = self.next().await;
        assert_eq!(event.event, "notif", "{event:?}");
        event.message().as_str().unwrap().to_owned()
    }

    /// The next frame, which must be a presence frame: what it says.
    pub async fn next_presence(&mut self) -> notif::wire::PresenceChange {
        let event = self.next().await;
        assert_eq!(event.event, "notif", "{event:?}");
        serde_json::from_str::<notif::wire::RawPresence>(&event.data)
            .unwrap_or_else(|e| panic!("not a presence frame ({e}): {}", event.data))
            .presence
    }

    /// Whether the stream has ended (after reading any events still queued).
    pub async fn ended(&mut self) -> bool {
        matches!(
            tokio::time::timeout(Duration::from_secs(5), self.events.recv()).await,
            Ok(None)
        )
    }

    /// What a browser remembers of this tab to resume it (user, id, node, last event id),
    /// without its stream.
    pub fn clone_for_resume(&self) -> Tab {
        let (_, events) = mpsc::unbounded_channel();
        Tab {
            user: self.user.clone(),
            id: self.id.clone(),
            node: self.node.clone(),
            recovered: self.recovered,
            hello_data: self.hello_data.clone(),
            last_id: self.last_id.clone(),
            events,
            reader: tokio::spawn(async {}),
        }
    }

    /// `tab` as a browser that still names `node` as holding it.
    pub fn naming(tab: &Tab, node: Option<String>) -> Tab {
        Tab {
            node,
            ..tab.clone_for_resume()
        }
    }

    /// Drops the connection, as closing a browser tab does.
    pub fn close(self) {
        self.reader.abort();
    }
}

pub async fn read_events(response: reqwest::Response, tx: mpsc::UnboundedSender<Event>) {
    let mut body = response.bytes_stream();
    let mut buffer = String::new();
    let mut event = Event::default();
    while let Some(Ok(chunk)) = body.next().await {
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find('\n') {
            let line: String = buffer.drain(..=end).collect();
            let line = line.trim_end_matches(['\n', '\r']);
            if line.is_empty() {
                let complete = !event.event.is_empty() || !event.data.is_empty();
                if complete && tx.send(std::mem::take(&mut event)).is_err() {
                    return;
                }
                continue;
            }
            if line.starts_with(':') {
                continue; // heartbeat comment
            }
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "event" => event.event = value.to_owned(),
                "id" => event.id = value.to_owned(),
                "data" => {
                    if !event.data.is_empty() {
                        event.data.push('\n');
                    }
                    event.data.push_str(value);
                }
                _ => {}
            }
        }
    }
}

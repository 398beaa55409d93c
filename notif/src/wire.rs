//! The wire protocol between the server and the browser client, for other clients and tools
//! (an app using notif's own browser half never touches it; docs/PROTOCOL.md has the whole of it).
//!
//! One stream per tab: a WebSocket at [`WS_PATH`] (what the browser client uses, one JSON text
//! message per frame, [`WsFrame`]), or the same frames as Server-Sent Events at [`STREAM_PATH`].
//! The first frame is `hello` ([`Hello`]); notifications are `notif` frames whose data is
//! `{"topic": .., "key": .. | null, "message": ..}` ([`RawNotification`]) and whose id is
//! `<tab>.<seq>`, the tab's id and the frame's number ([`parse_event_id`]); a `bye` frame ([`Bye`]) says why the server ended the
//! stream. Server functions that listen carry the tab's id in [`TAB_HEADER`] and, with several
//! server nodes, the node holding it in [`NODE_HEADER`]; a reconnect names its last frame in
//! [`LAST_EVENT_ID_HEADER`] or [`LAST_EVENT_ID_QUERY`] and its node in [`NODE_QUERY`].
//!
//! ```
//! let hello: notif::wire::Hello =
//!     serde_json::from_str(r#"{"client":"0123456789abcdef0123456789abcdef","recovered":false}"#).unwrap();
//! assert!(!hello.recovered);
//! ```
use serde::{Deserialize, Serialize};

/// Path of the stream endpoint.
pub const STREAM_PATH: &str = "/notif/stream";
/// Path of the WebSocket endpoint: the same frames as the stream, one JSON text message each
/// (`{"event": .., "id": .., "data": ..}`), under the same resume rules.
pub const WS_PATH: &str = "/notif/ws";
/// Request header naming the calling tab's id in server function calls (its wire name,
/// `x-notif-client`, predates the word "tab").
pub const TAB_HEADER: &str = "x-notif-client";
/// Request header naming the node holding the calling tab (the `node` of its last [`Hello`]) in
/// server function calls, so that a call another node receives reaches the tab.
pub const NODE_HEADER: &str = "x-notif-node";
/// Query parameter of a reconnect naming the node that held the tab, so that the tab moves to
/// the node it reconnects to.
pub const NODE_QUERY: &str = "node";
/// SSE event name of the first frame.
pub const EVENT_HELLO: &str = "hello";
/// SSE event name of notifications.
pub const EVENT_NOTIF: &str = "notif";
/// SSE event name of the last frame the server sends before it ends a stream.
pub const EVENT_BYE: &str = "bye";

/// Request header a reconnecting client names its last frame in (browsers send it by themselves).
pub const LAST_EVENT_ID_HEADER: &str = "last-event-id";
/// Query parameter with the same meaning, for clients that cannot set headers.
pub const LAST_EVENT_ID_QUERY: &str = "last_event_id";

/// An event id that is not `<tab>.<seq>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("an event id is <tab>.<seq>: 32 lowercase hex digits, a dot, and a decimal sequence number, as sent in `id:` lines")]
pub struct BadEventId;

/// Parses an event id, `<tab>.<seq>`, as sent in every frame's `id:` line.
///
/// # Errors
///
/// [`BadEventId`] when there is no dot, the part before it is not 32 lowercase hex digits, or
/// the part after it is not a decimal number that fits in a `u64`.
///
/// ```
/// let (tab_id, seq) = notif::wire::parse_event_id("0123456789abcdef0123456789abcdef.42").unwrap();
/// assert_eq!((tab_id.to_string().len(), seq), (32, 42));
/// assert!(notif::wire::parse_event_id("0123456789abcdef0123456789abcdef.-1").is_err());
/// ```
pub fn parse_event_id(id: &str) -> Result<(crate::TabId, u64), BadEventId> {
    let (tab_id, seq) = id.split_once('.').ok_or(BadEventId)?;
    if seq.is_empty() || seq.len() > 20 || !seq.bytes().all(|b| b.is_ascii_digit()) {
        return Err(BadEventId);
    }
    Ok((
        tab_id.parse().map_err(|_| BadEventId)?,
        seq.parse().map_err(|_| BadEventId)?,
    ))
}

/// First frame of every stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Hello {
    /// The tab's id, to send in [`TAB_HEADER`]. Named `client` on the wire, where it predates
    /// the word "tab".
    #[serde(rename = "client")]
    pub tab_id: String,
    /// Whether this connection resumed an earlier one. `false`: the server knows no earlier
    /// listens of this tab, so the tab must listen again.
    pub recovered: bool,
    /// With several server nodes, the id of the one holding the tab now: sent back in
    /// [`NODE_HEADER`] and in a reconnect's [`NODE_QUERY`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

/// Why the server ended a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum ByeReason {
    /// Every tab of this identity was disconnected (sign-out).
    Disconnected,
    /// The tab did not read fast enough and its queue filled up.
    Lagged,
    /// The server is shutting down.
    Shutdown,
    /// The connection between server nodes was lost: this tab may have missed notifications
    /// from other nodes, so it starts over.
    Resync,
}

/// Last frame of a stream the server ends on purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Bye {
    /// Why.
    pub reason: ByeReason,
}

/// A notification frame as the browser decodes it before it knows the topic's types.
#[derive(Debug, Clone, Deserialize)]
#[non_exhaustive]
pub struct RawNotification {
    /// Topic name.
    pub topic: String,
    /// The key as JSON, `null` for a notification sent to an identity without a key.
    pub key: serde_json::Value,
    /// The message as JSON.
    pub message: serde_json::Value,
}

/// A `notif` frame whose data has `presence` instead of `message`: who is on a key of a topic
/// with [`Presence`](crate::Presence), sent only to tabs listening on that key.
#[derive(Debug, Clone, Deserialize)]
#[non_exhaustive]
pub struct RawPresence {
    /// Topic name.
    pub topic: String,
    /// The key as JSON.
    pub key: serde_json::Value,
    /// What changed.
    pub presence: PresenceChange,
}

/// What a presence frame says, each identity in its public form (`Presence::Public` as JSON).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum PresenceChange {
    /// Everyone on the key now, the listening tab's own identity included: sent to a tab right
    /// after each of its listens on the key.
    Present(Vec<serde_json::Value>),
    /// An identity's first tab started listening.
    Join(serde_json::Value),
    /// An identity's last tab stopped listening.
    Leave(serde_json::Value),
}

/// One frame as a WebSocket text message carries it.
#[derive(Debug, Clone, Deserialize)]
#[non_exhaustive]
pub struct WsFrame {
    /// `hello`, `notif` or `bye`.
    pub event: String,
    /// The frame's id (`<tab>.<seq>`), where the SSE frame has an `id:` line.
    #[serde(default)]
    pub id: Option<String>,
    /// What the SSE frame's `data:` line holds, as JSON (not as a string).
    pub data: serde_json::Value,
}

/// Encodes a frame as a WebSocket text message; `data` must be JSON. The id is written in
/// place: one allocation per frame.
#[cfg(feature = "ssr")]
pub(crate) fn encode_ws(event: &str, id: Option<std::fmt::Arguments<'_>>, data: &str) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(88 + data.len());
    out.push_str("{\"event\":\"");
    out.push_str(event);
    out.push('"');
    if let Some(id) = id {
        out.push_str(",\"id\":\"");
        let _ = out.write_fmt(id);
        out.push('"');
    }
    out.push_str(",\"data\":");
    out.push_str(data);
    out.push('}');
    out
}

/// Encodes a notification's data line once; the result is shared by every recipient.
#[cfg(feature = "ssr")]
pub(crate) fn encode_notification(topic: &str, key_json: &str, message_json: &str) -> String {
    encode_keyed(topic, key_json, &[",\"message\":", message_json, "}"])
}

/// Encodes a presence frame's data line: `change` is `present`, `join` or `leave`, and `value_json`
/// the list or the identity's public form.
#[cfg(feature = "ssr")]
pub(crate) fn encode_presence(topic: &str, key_json: &str, change: &str, value_json: &str) -> String {
    encode_keyed(
        topic,
        key_json,
        &[",\"presence\":{\"", change, "\":", value_json, "}}"],
    )
}

/// `{"topic":<topic>,"key":<key_json>` followed by `rest`, in one allocation.
#[cfg(feature = "ssr")]
fn encode_keyed(topic: &str, key_json: &str, rest: &[&str]) -> String {
    let topic = serde_json::to_string(topic).unwrap_or_else(|_| "\"\"".into());
    let len = 17 + topic.len() + key_json.len() + rest.iter().map(|part| part.len()).sum::<usize>();
    let mut out = String::with_capacity(len);
    for part in ["{\"topic\":", &topic, ",\"key\":", key_json]
        .into_iter()
        .chain(rest.iter().copied())
    {
        out.push_str(part);
    }
    out
}

#[cfg(all(test, feature = "ssr"))]
mod tests {
    use super::*;

    #[test]
    fn encoded_notification_decodes() {
        let data = encode_notification("room", "7", r#"{"text":"hi \"you\""}"#);
        let raw: RawNotification = serde_json::from_str(&data).unwrap();
        assert_eq!(raw.topic, "room");
        assert_eq!(raw.key, serde_json::json!(7));
        assert_eq!(raw.message["text"], "hi \"you\"");
    }

    #[test]
    fn encoded_presence_decodes() {
        let data = encode_presence("room", "7", "join", "\"Ann\"");
        let raw: RawPresence = serde_json::from_str(&data).unwrap();
        assert_eq!(
            (raw.topic.as_str(), raw.key.clone()),
            ("room", serde_json::json!(7))
        );
        assert_eq!(raw.presence, PresenceChange::Join("Ann".into()));
        let data = encode_presence("room", "7", "present", "[\"Ann\",\"Bo\"]");
        let raw: RawPresence = serde_json::from_str(&data).unwrap();
        assert_eq!(
            raw.presence,
            PresenceChange::Present(vec!["Ann".into(), "Bo".into()])
        );
        assert!(
            serde_json::from_str::<RawNotification>(&data).is_err(),
            "no message: not a notification"
        );
    }
}

// proptest does not build for wasm32 (its random source); the browser tests skip these.
#[cfg(all(test, not(target_arch = "wasm32")))]
mod properties {
    use proptest::prelude::*;

    use super::*;
    use crate::TabId;

    proptest! {
        #[test]
        fn any_string_parses_or_is_refused_without_panicking(s in "\\PC*") {
            let _ = parse_event_id(&s);
            let _ = s.parse::<TabId>();
        }

        #[test]
        fn near_misses_are_refused(hex in "[0-9a-f]{32}", seq in any::<u64>(), junk in "[^0-9]") {
            let trailing = format!("{hex}.{seq}{junk}");
            let separator = format!("{hex}{junk}{seq}");
            let short = format!("{}.{seq}", &hex[1..]);
            prop_assert!(parse_event_id(&trailing).is_err());
            prop_assert!(parse_event_id(&separator).is_err() || junk == ".");
            prop_assert!(parse_event_id(&short).is_err());
        }

        #[test]
        fn every_id_the_server_writes_parses_back(raw in any::<u128>(), seq in any::<u64>()) {
            let tab_id: TabId = format!("{raw:032x}").parse().unwrap();
            let written = format!("{}.{}", tab_id, seq);
            prop_assert_eq!(parse_event_id(&written), Ok((tab_id, seq)));
        }
    }
}

// proptest does not build for wasm32 (its random source); the browser tests skip these.
#[cfg(all(test, not(target_arch = "wasm32")))]
mod decoding_properties {
    use proptest::prelude::*;

    use super::*;

    /// JSON-ish bytes: often objects with the frames' field names, sometimes noise.
    fn jsonish() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            prop::collection::vec(any::<u8>(), 0..64),
            "[{}\\[\\]\":,a-z0-9 ]{0,64}".prop_map(String::into_bytes),
            (
                prop::sample::select(vec![
                    "client",
                    "recovered",
                    "reason",
                    "event",
                    "id",
                    "data",
                    "topic",
                    "key",
                    "message",
                    "presence",
                    "join"
                ]),
                "(true|false|null|-?[0-9]{1,3}|\"[a-z\\\\\u{e9}]{0,8}\"|\\{\\}|\\[1\\])",
            )
                .prop_map(|(field, value)| format!("{{\"{field}\":{value}}}").into_bytes()),
        ]
    }

    proptest! {
        #[test]
        fn any_bytes_decode_to_a_frame_or_an_error_without_panicking(bytes in jsonish()) {
            let _ = serde_json::from_slice::<Hello>(&bytes);
            let _ = serde_json::from_slice::<Bye>(&bytes);
            let _ = serde_json::from_slice::<WsFrame>(&bytes);
            let _ = serde_json::from_slice::<RawNotification>(&bytes);
            let _ = serde_json::from_slice::<RawPresence>(&bytes);
        }
    }

    #[cfg(feature = "ssr")]
    proptest! {
        #[test]
        fn what_the_server_encodes_the_browser_decodes(
            topic in "\\PC{0,16}",
            key in prop_oneof![Just(serde_json::Value::Null), any::<i64>().prop_map(Into::into), "\\PC{0,16}".prop_map(Into::into)],
            text in "\\PC{0,32}",
            seq in any::<u64>(),
        ) {
            let key_json = serde_json::to_string(&key).unwrap();
            let message = serde_json::json!({ "text": text });
            let data = encode_notification(&topic, &key_json, &message.to_string());
            let tab_id = crate::TabId::random();
            let frame: WsFrame = serde_json::from_str(&encode_ws(EVENT_NOTIF, Some(format_args!("{tab_id}.{seq}")), &data)).unwrap();
            prop_assert_eq!(frame.event.as_str(), EVENT_NOTIF);
            prop_assert_eq!(parse_event_id(frame.id.as_deref().unwrap()), Ok((tab_id, seq)));
            let raw: RawNotification = serde_json::from_value(frame.data).unwrap();
            prop_assert_eq!(raw.topic, topic);
            prop_assert_eq!(raw.key, key);
            prop_assert_eq!(raw.message, message);
        }
    }
}

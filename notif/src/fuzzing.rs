//! Entry points for the fuzz targets in `notif/fuzz/` (feature `fuzzing`); not an API. Each
//! takes arbitrary bytes, runs the code a client's input reaches, and panics only when that code
//! breaks one of its own promises (a frame read differently in pieces than whole, an accepted
//! id that does not parse back, a key delivered as another key).
//!
//! The WebSocket parts are private to `stream::ws`; their entry points are implemented there
//! (`stream/ws/fuzz.rs`), on the types declared here.
use crate::{
    parse_event_id,
    wire::{PresenceChange, RawPresence},
    Bye, Hello, Hub, Presence, RawNotification, SimpleTopic, TabId, WsFrame,
};

/// The WebSocket reader and handshake.
pub struct Ws;

/// The stream endpoints' request parsing.
pub struct Stream;

/// Event ids and tab ids as clients send them back: `parse_event_id`, `TabId::from_str`,
/// and the `Last-Event-ID` header and `last_event_id` query reader, on the same bytes.
pub fn event_id(input: &[u8]) {
    let text = String::from_utf8_lossy(input);
    let parsed = parse_event_id(&text);
    if let Ok((tab_id, seq)) = parsed {
        assert_eq!(parse_event_id(&format!("{tab_id}.{seq}")), Ok((tab_id, seq)));
    }
    if let Ok(tab_id) = text.parse::<TabId>() {
        assert_eq!(
            tab_id.to_string(),
            text,
            "an accepted id is written back as it came"
        );
    }
    let header = Stream::last_seen(Some(input), None);
    match std::str::from_utf8(input) {
        Ok(id) if !id.is_empty() && http::HeaderValue::from_bytes(input).is_ok() => {
            assert_eq!(header.ok().flatten(), parsed.ok(), "the header reads as the id");
        }
        _ => {}
    }
    let _ = Stream::last_seen(None, Some(&text));
}

/// A topic whose keys and messages are any JSON, with presence: its listeners are shown by
/// their names, any text.
struct AnyJson;

impl SimpleTopic for AnyJson {
    const NAME: &'static str = "fuzz";
    type Key = serde_json::Value;
    type Message = serde_json::Value;
    type Identity = Option<String>;
}

impl Presence for AnyJson {
    type Public = Option<String>;

    async fn public(name: &Option<String>) -> Option<Option<String>> {
        Some(name.clone())
    }
}

thread_local! {
    static RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a runtime for the fuzz target");
}

/// What a browser decodes (`Hello`, `Bye`, `WsFrame`, `RawNotification`, `RawPresence`), then, if
/// the bytes are JSON, a listen and a notify on them as a key, by a tab whose identity's name is
/// the bytes as text: a key the hub accepts reaches its listener as the same key, in its
/// presence list and in its notification, and the list shows the name as it was.
pub fn wire_frames(input: &[u8]) {
    let _ = serde_json::from_slice::<Hello>(input);
    let _ = serde_json::from_slice::<Bye>(input);
    let _ = serde_json::from_slice::<WsFrame>(input);
    let _ = serde_json::from_slice::<RawNotification>(input);
    let _ = serde_json::from_slice::<RawPresence>(input);
    let Ok(key) = serde_json::from_slice::<serde_json::Value>(input) else {
        return;
    };
    let name = String::from_utf8_lossy(input).into_owned();
    RUNTIME.with(|runtime| runtime.block_on(listen_and_notify(key, name)));
}

async fn listen_and_notify(key: serde_json::Value, name: String) {
    // No re-validation clock: a task per hub would pile up over the fuzzer's runs.
    let config = crate::Config {
        revalidate: std::time::Duration::ZERO,
        ..crate::Config::default()
    };
    let hub: Hub<Option<String>> = Hub::new(config, |_| async { None }).with_presence::<AnyJson>();
    let identity = Some(name.clone());
    let Ok((tab_id, mut rx)) = hub.open_tab(identity.clone(), None) else {
        return;
    };
    if hub.listen::<AnyJson>(tab_id, &identity, &key).await.is_err() {
        // Too long once serialised: nobody listens on it.
        let sent = hub
            .notify::<AnyJson>(&key, &serde_json::Value::Null, crate::Exclude::Nobody)
            .await;
        assert_eq!(sent.ok(), Some(0));
        return;
    }
    let sent = hub
        .notify::<AnyJson>(&key, &serde_json::Value::Null, crate::Exclude::Nobody)
        .await
        .expect("a key that could be listened on can be notified");
    assert_eq!(sent, 1);
    let Ok(crate::hub::Outgoing::Notif { data, .. }) = rx.try_recv() else {
        panic!("the listener got no presence list");
    };
    let raw: RawPresence = serde_json::from_str(&data).expect("a presence frame decodes");
    assert_eq!(raw.topic, AnyJson::NAME);
    if !has_float(&key) {
        assert_eq!(raw.key, key, "the key as listened on, in the presence list");
    }
    assert_eq!(
        raw.presence,
        PresenceChange::Present(vec![name.into()]),
        "the listener's own name, as it was"
    );
    let Ok(crate::hub::Outgoing::Notif { data, .. }) = rx.try_recv() else {
        panic!("the listener got no notification");
    };
    let raw: RawNotification = serde_json::from_str(&data).expect("a notification decodes");
    assert_eq!(raw.topic, AnyJson::NAME);
    if !has_float(&key) {
        // Floats may not survive a round trip through text bit for bit.
        assert_eq!(raw.key, key, "the key as listened on");
    }
    hub.unlisten::<AnyJson>(tab_id, &identity, &key)
        .expect("a key listened on can be unlistened");
    assert_eq!(hub.metrics().listens, 0);
    let count = hub
        .presence::<AnyJson>(&key)
        .await
        .expect("a listened key is a valid key");
    assert_eq!((count.tabs, count.identities), (0, 0), "nobody stays on the key");
}

fn has_float(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::Number(n) => n.is_f64(),
        serde_json::Value::Array(items) => items.iter().any(has_float),
        serde_json::Value::Object(fields) => fields.values().any(has_float),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The committed seeds, and the inputs of crashes once found (kept as seeds), run clean.
    #[test]
    fn every_seed_runs_clean_through_its_target() {
        let corpus = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
        type Target = (&'static str, fn(&[u8]));
        let targets: [Target; 4] = [
            ("ws_frame", Ws::read),
            ("ws_handshake", Ws::handshake),
            ("event_id", event_id),
            ("wire", wire_frames),
        ];
        for (target, run) in targets {
            let mut seeds = 0;
            for file in std::fs::read_dir(corpus.join(target)).unwrap() {
                let path = file.unwrap().path();
                if path.file_name().unwrap().to_string_lossy().starts_with("seed-") {
                    run(&std::fs::read(&path).unwrap());
                    seeds += 1;
                }
            }
            assert!(seeds > 0, "{target} has seeds");
        }
    }
}

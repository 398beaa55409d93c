//! docs/PROTOCOL.md's examples, checked against the code: every frame it shows decodes into the
//! wire type its event names, every id parses, every header and path it writes is the one the
//! server reads, and each kind of frame has exactly the fields a real server sends.
mod common;

use std::collections::BTreeSet;

use common::TestServer;
use notif::{
    backplane::{Backplane, MemoryBackplane},
    wire::{self, parse_event_id, Bye, Hello, PresenceChange, RawNotification, RawPresence, WsFrame},
    Config,
};
use serde_json::Value;

const PROTOCOL: &str = include_str!("../../docs/PROTOCOL.md");

/// The code blocks of PROTOCOL.md: their language tag and lines.
fn blocks() -> Vec<(String, Vec<&'static str>)> {
    let mut blocks = Vec::new();
    let mut open: Option<(String, Vec<&str>)> = None;
    for line in PROTOCOL.lines() {
        match (line.strip_prefix("```"), open.take()) {
            (Some(tag), None) => open = Some((tag.to_owned(), Vec::new())),
            (Some(_), Some(block)) => blocks.push(block),
            (None, Some((tag, mut lines))) => {
                lines.push(line);
                open = Some((tag, lines));
            }
            (None, None) => {}
        }
    }
    blocks
}

fn keys(value: &Value) -> BTreeSet<String> {
    value
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default()
}

/// The frames the document shows, as (event, id, data): SSE blocks and WebSocket lines.
fn documented_frames() -> Vec<(String, Option<String>, Value)> {
    let mut frames = Vec::new();
    for (tag, lines) in blocks() {
        if tag == "json" {
            for line in lines {
                let frame: WsFrame = serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}"));
                frames.push((frame.event, frame.id, frame.data));
            }
            continue;
        }
        if !lines.iter().any(|l| l.starts_with("data: ")) {
            continue;
        }
        let field = |name: &str| lines.iter().find_map(|l| l.strip_prefix(name)).map(str::to_owned);
        let data = field("data: ").unwrap();
        // A block with `data:` alone is a hello's data, shown on its own.
        let event = field("event: ").unwrap_or_else(|| "hello".into());
        let data: Value = serde_json::from_str(&data).unwrap_or_else(|e| panic!("{data}: {e}"));
        frames.push((event, field("id: "), data));
    }
    frames
}

#[test]
fn every_documented_frame_decodes_and_every_id_parses() {
    let frames = documented_frames();
    assert!(frames.len() >= 7, "the examples were found: {frames:?}");
    for (event, id, data) in frames {
        if let Some(id) = &id {
            parse_event_id(id).unwrap_or_else(|_| panic!("{event} id {id}"));
        }
        match event.as_str() {
            wire::EVENT_HELLO => {
                let hello: Hello = serde_json::from_value(data.clone()).expect("a hello");
                if let Some(id) = id {
                    assert_eq!(
                        id.split('.').next(),
                        Some(hello.tab_id.as_str()),
                        "a hello's id names its client"
                    );
                }
            }
            wire::EVENT_NOTIF if data.get("presence").is_some() => {
                let _: RawPresence = serde_json::from_value(data).expect("a presence frame");
            }
            wire::EVENT_NOTIF => {
                let _: RawNotification = serde_json::from_value(data).expect("a notification");
            }
            wire::EVENT_BYE => {
                let _: Bye = serde_json::from_value(data).expect("a bye");
            }
            other => panic!("PROTOCOL.md shows an event the protocol has not: {other}"),
        }
    }
}

#[test]
fn the_documented_paths_and_headers_are_the_ones_the_server_reads() {
    let mut requests = Vec::new();
    for (_, lines) in blocks() {
        if let Some(first) = lines.first() {
            if first.starts_with("GET ") || first.starts_with("POST ") {
                requests.push(lines);
            }
        }
    }
    assert!(requests.len() >= 3, "{requests:?}");
    let paths = [wire::STREAM_PATH, wire::WS_PATH];
    let headers = [wire::TAB_HEADER, wire::NODE_HEADER, wire::LAST_EVENT_ID_HEADER];
    for lines in requests {
        let path = lines[0].split(' ').nth(1).unwrap();
        if lines[0].starts_with("GET ") {
            assert!(paths.contains(&path), "{path}");
        }
        for line in &lines[1..] {
            let Some((name, _)) = line.split_once(": ") else {
                continue;
            };
            let name = name.to_ascii_lowercase();
            if name.starts_with("x-notif") || name == "last-event-id" {
                assert!(headers.contains(&name.as_str()), "{name}");
            }
        }
    }
}

/// The fields of each documented frame are the fields a real server sends: a doc that keeps a
/// removed field, or misses a new one, fails here.
#[tokio::test]
async fn documented_frames_have_the_fields_a_real_server_sends() {
    let lone = TestServer::start().await;
    let bus = MemoryBackplane::new();
    let node: std::sync::Arc<dyn Backplane> = bus.node();
    let clustered = TestServer::node(Config::default(), Some(node)).await;
    let mut hellos = BTreeSet::new();
    // Presence frames, as (the data's fields, the `presence` object's fields).
    let mut presences = BTreeSet::new();
    for server in [&lone, &clustered] {
        let mut tab = server.tab(Some("ann")).await;
        let hello: Value = serde_json::from_str(&tab.hello_data).unwrap();
        hellos.insert(keys(&hello));
        server.listen_chat(&tab, "k").await;
        server.notify_chat("k", "hi").await;
        let notif: Value = serde_json::from_str(&tab.next().await.data).unwrap();
        assert_eq!(keys(&notif), keys_of(&["key", "message", "topic"]));
        // Presence: the list after a listen, then another identity's join and leave.
        server.lobby(&tab, "t/listen_lobby", "hall").await;
        let bob = server.tab(Some("bob")).await;
        server.lobby(&bob, "t/listen_lobby", "hall").await;
        server.lobby(&bob, "t/unlisten_lobby", "hall").await;
        for _ in 0..3 {
            let data: Value = serde_json::from_str(&tab.next().await.data).unwrap();
            presences.insert((keys(&data), keys(&data["presence"])));
        }
        server.hub.disconnect_identity(&Some("ann".into()));
        let bye = tab.next().await;
        let bye: Value = serde_json::from_str(&bye.data).unwrap();
        assert_eq!(keys(&bye), keys_of(&["reason"]));
    }
    let documented: BTreeSet<BTreeSet<String>> = documented_frames()
        .iter()
        .filter(|(event, _, _)| event == wire::EVENT_HELLO)
        .map(|(_, _, data)| keys(data))
        .collect();
    assert_eq!(
        documented, hellos,
        "the hellos shown are the hellos sent, one node and several"
    );
    let documented: BTreeSet<_> = documented_frames()
        .iter()
        .filter(|(event, _, data)| event == wire::EVENT_NOTIF && data.get("presence").is_some())
        .map(|(_, _, data)| (keys(data), keys(&data["presence"])))
        .collect();
    assert_eq!(
        documented, presences,
        "the presence frames shown are the ones sent: present, join, leave"
    );
    for (event, _, data) in documented_frames() {
        let expected = match event.as_str() {
            wire::EVENT_NOTIF if data.get("presence").is_some() => keys_of(&["key", "presence", "topic"]),
            wire::EVENT_NOTIF => keys_of(&["key", "message", "topic"]),
            wire::EVENT_BYE => keys_of(&["reason"]),
            _ => continue,
        };
        assert_eq!(keys(&data), expected, "{event}");
    }
}

fn keys_of(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|n| n.to_string()).collect()
}

/// The presence examples say what the text around them says: a list naming several, a join, a
/// leave of someone the list named, for the same topic and key, in consecutive frames.
#[test]
fn the_presence_examples_tell_one_story() {
    let presence: Vec<(Option<String>, RawPresence)> = documented_frames()
        .into_iter()
        .filter(|(event, _, data)| event == wire::EVENT_NOTIF && data.get("presence").is_some())
        .map(|(_, id, data)| (id, serde_json::from_value(data).unwrap()))
        .collect();
    let changes: Vec<&PresenceChange> = presence.iter().map(|(_, raw)| &raw.presence).collect();
    let [PresenceChange::Present(all), PresenceChange::Join(_), PresenceChange::Leave(gone)] = changes[..]
    else {
        panic!("present, join, leave: {changes:?}");
    };
    assert!(all.len() > 1 && all.contains(gone), "{all:?} then {gone}");
    let seqs: Vec<u64> = presence
        .iter()
        .map(|(id, _)| parse_event_id(id.as_deref().expect("numbered")).unwrap().1)
        .collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");
    assert!(presence
        .iter()
        .all(|(_, raw)| (raw.topic.as_str(), &raw.key) == ("room", &serde_json::json!(1))));
}

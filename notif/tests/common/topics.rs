//! The test topics (Chat, Greeting, Lobby with presence) and the server functions that listen
//! to them.

use std::{
    collections::{HashMap, HashSet},
    sync::{Mutex, OnceLock},
};

use leptos::prelude::*;
use notif::{Hub, Presence, SimpleTopic, Topic};
use serde::{Deserialize, Serialize};

pub type Viewer = Option<String>;

/// Everyone gets the text as is; the key "secret" is for "admin" only.
pub struct Chat;
impl SimpleTopic for Chat {
    const NAME: &'static str = "chat";
    type Key = String;
    type Message = String;
    type Identity = Viewer;

    async fn authorize(viewer: &Viewer, key: &String) -> bool {
        key != "secret" || viewer.as_deref() == Some("admin")
    }
}

/// A greeting made per identity: alice and bob get different texts, carol nothing.
pub struct Greeting;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GreetingEvent {
    /// Unique per test, to count `prepare` calls of that test alone.
    pub nonce: String,
}

impl Topic for Greeting {
    const NAME: &'static str = "greeting";
    type Key = String;
    type Event = GreetingEvent;
    type Message = String;
    type Identity = Viewer;

    async fn prepare(viewer: &Viewer, event: &GreetingEvent) -> Option<String> {
        *prepare_calls()
            .lock()
            .unwrap()
            .entry(event.nonce.clone())
            .or_default() += 1;
        match viewer.as_deref() {
            Some("alice") => Some("hi alice".into()),
            Some("bob") => Some("hello bob".into()),
            Some("dave") => Some("hi alice".into()),
            _ => None,
        }
    }
}

pub fn prepare_calls() -> &'static Mutex<HashMap<String, usize>> {
    static CALLS: OnceLock<Mutex<HashMap<String, usize>>> = OnceLock::new();
    CALLS.get_or_init(Default::default)
}

#[server(endpoint = "t/listen_chat")]
pub async fn listen_chat(key: String) -> Result<(), ServerFnError> {
    notif::listen::<Chat>(&key).await?;
    Ok(())
}

#[server(endpoint = "t/unlisten_chat")]
pub async fn unlisten_chat(key: String) -> Result<(), ServerFnError> {
    notif::unlisten::<Chat>(&key).await?;
    Ok(())
}

/// Notifies a chat key, leaving the calling tab out (if it is the caller's own).
#[server(endpoint = "t/post_chat")]
pub async fn post_chat(key: String, text: String) -> Result<usize, ServerFnError> {
    let hub = use_context::<Hub<Viewer>>().expect("a hub in context");
    let exclude = notif::caller::<Viewer>()
        .await
        .map_or(notif::Exclude::Nobody, notif::Exclude::Tab);
    Ok(hub.notify::<Chat>(&key, &text, exclude).await?)
}

/// A room with presence: listeners are shown to each other as "<user> (shown)"; "ghost" and
/// visitors who are not signed in are counted but never shown; the key "vip" is for "admin".
pub struct Lobby;
impl SimpleTopic for Lobby {
    const NAME: &'static str = "lobby";
    type Key = String;
    type Message = String;
    type Identity = Viewer;

    async fn authorize(viewer: &Viewer, key: &String) -> bool {
        key != "vip" || viewer.as_deref() == Some("admin")
    }
}

impl Presence for Lobby {
    type Public = String;

    async fn public(viewer: &Viewer) -> Option<String> {
        viewer
            .as_deref()
            .filter(|user| *user != "ghost")
            .map(|user| format!("{user} (shown)"))
    }
}

#[server(endpoint = "t/listen_lobby")]
pub async fn listen_lobby(key: String) -> Result<(), ServerFnError> {
    notif::listen::<Lobby>(&key).await?;
    Ok(())
}

#[server(endpoint = "t/unlisten_lobby")]
pub async fn unlisten_lobby(key: String) -> Result<(), ServerFnError> {
    notif::unlisten::<Lobby>(&key).await?;
    Ok(())
}

/// Users whose sessions were deleted: the fixture's `identify` no longer resolves them.
pub fn revoked() -> &'static Mutex<HashSet<String>> {
    static REVOKED: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    REVOKED.get_or_init(Default::default)
}

#[server(endpoint = "t/listen_greeting")]
pub async fn listen_greeting(key: String) -> Result<(), ServerFnError> {
    notif::listen::<Greeting>(&key).await?;
    Ok(())
}

//! The browser half in headless Chromium (`wasm-bindgen-test`; `./scripts/test` runs them).
//! No socket: the tests hand the tab its frames themselves (`tab()` opens none under `cfg(test)`),
//! and the listen calls are local functions that write down when they start and end.
//!
//! Every test runs in the same page, so the tab is shared: each test uses a topic of its own.
use std::{cell::RefCell, rc::Rc};

use leptos::{mount::mount_to, prelude::*};
use wasm_bindgen_test::*;

use super::{connection, held_key, tab};
use crate::{listening::Listening, Hello, SimpleTopic, WsFrame, EVENT_HELLO, EVENT_NOTIF};

wasm_bindgen_test_configure!(run_in_browser);

/// What the listen calls did, in order: `"listen 1"`, `"listen 1 done"`, `"unlisten 1"`...
#[derive(Clone, Default)]
struct Calls(Rc<RefCell<Vec<String>>>);

impl Calls {
    /// A listen or unlisten call that logs its start and end and takes `ms` to answer. Lazy,
    /// like a server function's future: nothing is sent before it is polled.
    fn call(
        &self,
        what: &'static str,
        ms: u32,
    ) -> impl Fn(i64) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>>>> {
        let log = self.0.clone();
        move |key| {
            let log = log.clone();
            Box::pin(async move {
                log.borrow_mut().push(format!("{what} {key}"));
                if ms > 0 {
                    gloo_timers::future::TimeoutFuture::new(ms).await;
                }
                log.borrow_mut().push(format!("{what} {key} done"));
                Ok(())
            })
        }
    }

    fn take(&self) -> Vec<String> {
        std::mem::take(&mut self.0.borrow_mut())
    }
}

/// Lets spawned tasks and effects run.
async fn settle(ms: u32) {
    gloo_timers::future::TimeoutFuture::new(ms).await;
}

/// A mounted component: dropping it unmounts it and cleans it up.
type Mounted = Box<dyn std::any::Any>;

/// Mounts a component that listens on `key` of topic `T`, and hands back what it got.
fn mount<T: crate::Topic<Key = i64>>(
    key: impl Into<Signal<i64>> + 'static,
    calls: &Calls,
    listen_ms: u32,
) -> (Mounted, Listening<T>, Signal<crate::ConnectionState>) {
    let got = Rc::new(RefCell::new(None));
    let (listen, unlisten) = (calls.call("listen", listen_ms), calls.call("unlisten", 0));
    let handle = mount_to(document().body().unwrap(), {
        let got = got.clone();
        move || {
            let listening = crate::use_listen::<T>(key, listen, unlisten);
            *got.borrow_mut() = Some((listening, crate::connection_state()));
        }
    });
    let (listening, state) = got.borrow_mut().take().unwrap();
    (Box::new(handle), listening, state)
}

fn frame(event: &str, id: Option<&str>, data: serde_json::Value) {
    let frame = WsFrame {
        event: event.to_owned(),
        id: id.map(str::to_owned),
        data,
    };
    connection::on_frame(&tab(), frame);
}

fn hello(recovered: bool) {
    let hello = Hello {
        tab_id: "tab-under-test".to_owned(),
        recovered,
        node: None,
    };
    frame(EVENT_HELLO, None, serde_json::to_value(hello).unwrap());
}

fn notify<T: crate::Topic>(key: i64, message: &str) {
    let data = serde_json::json!({ "topic": T::NAME, "key": key, "message": message });
    frame(EVENT_NOTIF, Some("tab-under-test.1"), data);
}

macro_rules! topic {
    ($name:ident, $wire:literal) => {
        struct $name;
        impl SimpleTopic for $name {
            const NAME: &'static str = $wire;
            type Key = i64;
            type Message = String;
            type Identity = ();
        }
    };
}

topic!(Lifetime, "lifetime");
topic!(Ordering, "ordering");
topic!(Reset, "reset");
topic!(Retry, "retry");

/// The order that used to panic: the first component to touch the tab's signals (connection
/// state, the topic's slot, the key's counter) unmounts while a second one still uses them.
#[wasm_bindgen_test]
async fn browser_wide_state_outlives_the_component_that_first_used_it() {
    let calls = Calls::default();
    let (first, _, _) = mount::<Lifetime>(1, &calls, 0);
    let latest_anywhere = Rc::new(RefCell::new(None));
    settle(20).await;
    assert_eq!(calls.take(), ["listen 1", "listen 1 done"]);

    let (second, listening, state) = mount::<Lifetime>(Signal::stored(1), &calls, 0);
    let watcher = mount_to(document().body().unwrap(), {
        let latest_anywhere = latest_anywhere.clone();
        move || *latest_anywhere.borrow_mut() = Some(crate::latest_notification::<Lifetime>())
    });
    settle(20).await;
    assert_eq!(
        listening.confirmed_listens().get_untracked(),
        1,
        "the key's count is shared"
    );
    drop(first);
    settle(20).await;
    assert!(
        calls.take().is_empty(),
        "the second component still holds the key"
    );

    hello(true);
    assert_eq!(state.get_untracked(), crate::ConnectionState::Live);
    notify::<Lifetime>(1, "after the first left");
    notify::<Lifetime>(2, "another key");
    assert_eq!(
        listening.latest().get_untracked().as_deref(),
        Some("after the first left")
    );
    let anywhere = latest_anywhere.borrow().unwrap().get_untracked().unwrap();
    assert_eq!(
        (anywhere.key, anywhere.message.as_str()),
        (Some(2), "another key")
    );

    hello(false);
    settle(20).await;
    assert_eq!(calls.take(), ["listen 1", "listen 1 done"]);
    assert_eq!(
        listening.confirmed_listens().get_untracked(),
        2,
        "the re-listen is seen by the holder left"
    );

    drop(second);
    drop(watcher);
    settle(20).await;
    assert_eq!(calls.take(), ["unlisten 1", "unlisten 1 done"]);
}

/// An unlisten never overtakes the listen before it on the same key; other keys do not wait.
#[wasm_bindgen_test]
async fn calls_for_one_key_go_out_one_after_the_other() {
    let calls = Calls::default();
    let (handle, _, _) = mount::<Ordering>(7, &calls, 60);
    settle(20).await;
    assert_eq!(calls.0.borrow().as_slice(), ["listen 7"]);
    // Unmounted while its listen is on the way; then mounted again, and another key meanwhile.
    drop(handle);
    let (again, _, _) = mount::<Ordering>(7, &calls, 60);
    let (other, _, _) = mount::<Ordering>(8, &calls, 0);
    settle(250).await;
    let log = calls.take();
    let on = |key: &str| {
        log.iter()
            .filter(|c| c.ends_with(key) || c.contains(&format!(" {key} ")))
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(
        on("7"),
        [
            "listen 7",
            "listen 7 done",
            "unlisten 7",
            "unlisten 7 done",
            "listen 7",
            "listen 7 done"
        ],
        "{log:?}"
    );
    let done_7 = log.iter().position(|c| c == "listen 7 done").unwrap();
    let start_8 = log.iter().position(|c| c == "listen 8").unwrap();
    assert!(start_8 < done_7, "key 8 waited for key 7: {log:?}");

    // A key that changes under a mounted component: the old one unlistened, the new listened.
    let key = RwSignal::new(20);
    let (follows, listening, _) = mount::<Ordering>(key, &calls, 0);
    settle(20).await;
    key.set(21);
    settle(20).await;
    assert_eq!(
        calls.take(),
        [
            "listen 20",
            "listen 20 done",
            "unlisten 20",
            "unlisten 20 done",
            "listen 21",
            "listen 21 done"
        ]
    );
    notify::<Ordering>(20, "old key");
    assert_eq!(listening.latest().get_untracked(), None);
    notify::<Ordering>(21, "new key");
    assert_eq!(listening.latest().get_untracked().as_deref(), Some("new key"));
    drop((again, other, follows));
    settle(20).await;
}

/// `recovered: false` after the first hello: the server forgot every listen, each held key is
/// listened again (once, whatever the number of holders); `recovered: true`: nothing is resent.
#[wasm_bindgen_test]
async fn a_reset_listens_again_on_every_held_key() {
    let calls = Calls::default();
    hello(true); // not the tab's first hello, whatever ran before
    let (a, first, _) = mount::<Reset>(30, &calls, 0);
    let (b, second, _) = mount::<Reset>(30, &calls, 0);
    let (c, other, _) = mount::<Reset>(31, &calls, 0);
    settle(20).await;
    let mut log = calls.take();
    log.sort();
    assert_eq!(
        log,
        ["listen 30", "listen 30 done", "listen 31", "listen 31 done"]
    );
    let resets = crate::resets().get_untracked();

    hello(true);
    settle(20).await;
    assert!(calls.take().is_empty(), "a resumed stream keeps its listens");

    hello(false);
    settle(20).await;
    let mut log = calls.take();
    log.sort();
    assert_eq!(
        log,
        ["listen 30", "listen 30 done", "listen 31", "listen 31 done"]
    );
    assert_eq!(crate::resets().get_untracked(), resets + 1);
    assert_eq!(first.confirmed_listens().get_untracked(), 2);
    assert_eq!(second.confirmed_listens().get_untracked(), 2);
    assert_eq!(other.confirmed_listens().get_untracked(), 2);
    drop((a, b, c));
    settle(20).await;
}

/// Backoff: the ceiling 1 s after the first failure, doubling up to 30 s; each delay in the upper
/// half of its range, wherever the random draw falls.
#[wasm_bindgen_test]
fn reconnect_delays_grow_to_30_s_and_stay_in_the_upper_half() {
    let ceiling = |failures: u32| (500u64 << failures.min(6)).min(30_000) as u32;
    assert_eq!(
        (1..=7).map(ceiling).collect::<Vec<_>>(),
        [1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000]
    );
    for failures in (1..=40).chain([u32::MAX]) {
        let top = ceiling(failures);
        assert_eq!(
            connection::backoff_ms(failures, 0.0),
            top / 2,
            "failures {failures}"
        );
        assert!(connection::backoff_ms(failures, 0.999_999) <= top);
        assert!(connection::backoff_ms(failures, 0.999_999) >= top - top / 1000);
        for _ in 0..200 {
            let delay = connection::backoff_ms(failures, js_sys::Math::random());
            assert!(
                (top / 2..=top).contains(&delay),
                "{delay} ms after {failures} failures"
            );
        }
    }
    assert_eq!(connection::backoff_ms(1, 0.0), 500, "the shortest wait is 0.5 s");
    // Jitter: tabs dropped together spread over the range.
    let delays: Vec<u32> = (0..500)
        .map(|_| connection::backoff_ms(10, js_sys::Math::random()))
        .collect();
    let (low, high) = (delays.iter().min().unwrap(), delays.iter().max().unwrap());
    assert!(*low < 16_000 && *high > 29_000, "delays from {low} to {high} ms");
}

/// The reconnect URL resumes after the last frame, on the node the last hello named.
#[wasm_bindgen_test]
fn the_reconnect_url_names_the_last_frame_and_the_node() {
    use crate::{LAST_EVENT_ID_QUERY, NODE_QUERY, WS_PATH};
    let url = connection::stream_url(false, "example.com:3000", None, None);
    assert_eq!(url, format!("ws://example.com:3000{WS_PATH}"));
    let url = connection::stream_url(true, "example.com", Some("c1.7"), Some("node-b"));
    assert_eq!(
        url,
        format!("wss://example.com{WS_PATH}?{LAST_EVENT_ID_QUERY}=c1.7&{NODE_QUERY}=node-b")
    );
    let url = connection::stream_url(false, "h", Some("c1.7"), None);
    assert_eq!(url, format!("ws://h{WS_PATH}?{LAST_EVENT_ID_QUERY}=c1.7"));
}

/// Which hellos send a held key's listen again.
#[wasm_bindgen_test]
fn a_hello_listens_again_after_a_reset_or_a_failed_call() {
    use connection::listens_again;
    // (first hello, recovered, the last call failed) → listen again
    assert!(
        !listens_again(true, false, false),
        "the first hello: listens are on their way"
    );
    assert!(
        !listens_again(false, true, false),
        "resumed: the server kept the listen"
    );
    assert!(listens_again(false, false, false), "reset: the server forgot it");
    assert!(
        listens_again(false, true, true),
        "failed while offline: sent again"
    );
    assert!(listens_again(true, false, true));
}

/// A refused listen's reason follows the key: the refused key shows it, an allowed key shows
/// none, and a second holder of the refused key sees the same reason.
#[wasm_bindgen_test]
async fn a_listen_error_belongs_to_its_key() {
    topic!(Refused, "t-refused");
    let listen = |key: i64| async move {
        match key % 2 {
            0 => Ok(()),
            _ => Err(format!("not allowed to listen on {key}")),
        }
    };
    let unlisten = |_key: i64| async { Ok::<(), String>(()) };
    let key = RwSignal::new(1i64);
    let got = Rc::new(RefCell::new(Vec::new()));
    let handle = mount_to(document().body().unwrap(), {
        let got = got.clone();
        move || {
            let first = crate::use_listen::<Refused>(key, listen, unlisten);
            let second = crate::use_listen::<Refused>(1, listen, unlisten);
            got.borrow_mut().extend([first, second]);
        }
    });
    let (first, second) = (got.borrow()[0], got.borrow()[1]);
    settle(20).await;
    let refusal = Some("not allowed to listen on 1".to_owned());
    assert_eq!(first.listen_error().get_untracked(), refusal);
    assert_eq!(
        second.listen_error().get_untracked(),
        refusal,
        "shared by the key's holders"
    );
    key.set(2);
    settle(20).await;
    assert_eq!(first.listen_error().get_untracked(), None, "key 2 was allowed");
    assert_eq!(first.confirmed_listens().get_untracked(), 1);
    assert_eq!(
        second.listen_error().get_untracked(),
        refusal,
        "key 1 still refused"
    );
    drop(handle);
    settle(20).await;
}

/// A listen that failed is sent again by the next hello, even a resumed one; its error shows
/// until one succeeds.
#[wasm_bindgen_test]
async fn a_failed_listen_is_sent_again_by_the_next_hello() {
    let log = Rc::new(RefCell::new(Vec::<String>::new()));
    let fail = Rc::new(std::cell::Cell::new(true));
    let listen = {
        let (log, fail) = (log.clone(), fail.clone());
        move |key: i64| {
            let (log, fail) = (log.clone(), fail.get());
            async move {
                log.borrow_mut().push(format!("listen {key}"));
                if fail {
                    Err("offline")
                } else {
                    Ok(())
                }
            }
        }
    };
    let unlisten = |_key: i64| async { Ok::<(), &'static str>(()) };
    let got = Rc::new(RefCell::new(None));
    let handle = mount_to(document().body().unwrap(), {
        let got = got.clone();
        move || *got.borrow_mut() = Some(crate::use_listen::<Retry>(40, listen, unlisten))
    });
    let listening = got.borrow_mut().take().unwrap();
    settle(20).await;
    assert_eq!(log.borrow().as_slice(), ["listen 40"]);
    assert_eq!(listening.confirmed_listens().get_untracked(), 0);
    assert_eq!(
        listening.listen_error().get_untracked().as_deref(),
        Some("offline")
    );
    fail.set(false);
    hello(true);
    settle(20).await;
    assert_eq!(log.borrow().as_slice(), ["listen 40", "listen 40"]);
    assert_eq!(listening.confirmed_listens().get_untracked(), 1);
    assert_eq!(
        listening.listen_error().get_untracked(),
        None,
        "the retry succeeded"
    );
    hello(true);
    settle(20).await;
    assert_eq!(log.borrow().len(), 2, "once confirmed, a resume sends nothing");
    drop(handle);
    settle(20).await;
}

/// A topic with presence (its public form: a name).
macro_rules! presence_topic {
    ($name:ident, $wire:literal) => {
        topic!($name, $wire);
        impl crate::Presence for $name {
            type Public = String;
        }
    };
}

presence_topic!(Here, "here");
presence_topic!(Together, "together");
presence_topic!(Moving, "moving");

/// Mounts a component that listens on `key`; hands back its handle and who is present there.
fn mount_present<T: crate::Presence<Key = i64, Public = String>>(
    key: impl Into<Signal<i64>> + 'static,
    calls: &Calls,
) -> (Mounted, Listening<T>, Signal<Vec<String>>) {
    let (handle, listening, _) = mount::<T>(key, calls, 0);
    (handle, listening, listening.present())
}

/// A presence frame of topic `T` on `key`: `change` is `{"present": [..]}`, `{"join": ..}` or
/// `{"leave": ..}`.
fn presence<T: crate::Topic>(key: i64, change: serde_json::Value) {
    let data = serde_json::json!({ "topic": T::NAME, "key": key, "presence": change });
    frame(EVENT_NOTIF, Some("tab-under-test.2"), data);
}

/// The list the server sends after a listen, then joins and leaves; equal public forms are
/// kept once each; frames for a key the tab does not hold change nothing.
#[wasm_bindgen_test]
async fn the_present_list_then_joins_and_leaves() {
    use serde_json::json;
    let calls = Calls::default();
    let (handle, listening, present) = mount_present::<Here>(50, &calls);
    settle(20).await;
    assert_eq!(calls.take(), ["listen 50", "listen 50 done"]);
    assert!(
        present.get_untracked().is_empty(),
        "nothing before the server's list"
    );

    presence::<Here>(50, json!({ "present": ["Ann", "Bo"] }));
    assert_eq!(present.get_untracked(), ["Ann", "Bo"]);
    // Another identity that shows as "Bo" too: two entries, and one leave removes one.
    presence::<Here>(50, json!({ "join": "Bo" }));
    assert_eq!(present.get_untracked(), ["Ann", "Bo", "Bo"]);
    presence::<Here>(50, json!({ "leave": "Bo" }));
    assert_eq!(present.get_untracked(), ["Ann", "Bo"]);
    // Someone not listed (past the list's cap): nothing to remove.
    presence::<Here>(50, json!({ "leave": "Cy" }));
    assert_eq!(present.get_untracked(), ["Ann", "Bo"]);
    // An entry of another type is skipped, not a panic.
    presence::<Here>(50, json!({ "join": 7 }));
    assert_eq!(present.get_untracked(), ["Ann", "Bo"]);

    // Another key, not held: ignored, and no state is made for it.
    presence::<Here>(51, json!({ "present": ["Dee"] }));
    presence::<Here>(51, json!({ "join": "Eve" }));
    assert_eq!(present.get_untracked(), ["Ann", "Bo"]);
    assert!(!tab().held.borrow().contains_key(&held_key::<Here>(&51)));

    // A new list (after a re-listen) replaces the old one.
    presence::<Here>(50, json!({ "present": ["Bo"] }));
    assert_eq!(present.get_untracked(), ["Bo"]);
    // The topic's notifications still arrive as before.
    notify::<Here>(50, "still a message");
    assert_eq!(
        listening.latest().get_untracked().as_deref(),
        Some("still a message")
    );
    assert_eq!(present.get_untracked(), ["Bo"]);

    drop(handle);
    settle(20).await;
    assert_eq!(calls.take(), ["unlisten 50", "unlisten 50 done"]);
}

/// Components holding the same key see one list; it goes with the last of them, and later
/// frames for the key are dropped without a panic.
#[wasm_bindgen_test]
async fn holders_of_a_key_share_its_list_until_the_last_lets_go() {
    use serde_json::json;
    let calls = Calls::default();
    let (first, _, seen_first) = mount_present::<Together>(60, &calls);
    settle(20).await;
    presence::<Together>(60, json!({ "present": ["Ann"] }));
    let (second, _, seen_second) = mount_present::<Together>(60, &calls);
    settle(20).await;
    assert_eq!(
        calls.take(),
        ["listen 60", "listen 60 done"],
        "one listen for both"
    );
    assert_eq!(
        seen_second.get_untracked(),
        ["Ann"],
        "a later holder sees the list already in"
    );
    presence::<Together>(60, json!({ "join": "Bo" }));
    assert_eq!(seen_first.get_untracked(), ["Ann", "Bo"]);
    assert_eq!(seen_second.get_untracked(), ["Ann", "Bo"]);

    let id = held_key::<Together>(&60);
    let list = tab().held.borrow().get(&id).unwrap().present;
    drop(first);
    settle(20).await;
    presence::<Together>(60, json!({ "join": "Cy" }));
    assert_eq!(
        seen_second.get_untracked(),
        ["Ann", "Bo", "Cy"],
        "the list outlives the first holder"
    );

    drop(second);
    settle(20).await;
    assert_eq!(calls.take(), ["unlisten 60", "unlisten 60 done"]);
    assert!(!tab().held.borrow().contains_key(&id));
    assert_eq!(list.try_get_untracked(), None, "disposed with the last holder");
    presence::<Together>(60, json!({ "leave": "Ann" }));
    presence::<Together>(60, json!({ "present": ["Ann"] }));

    // Held again: a fresh list, empty until the server's.
    let (again, _, seen_again) = mount_present::<Together>(60, &calls);
    settle(20).await;
    assert!(seen_again.get_untracked().is_empty());
    presence::<Together>(60, json!({ "present": ["Bo"] }));
    assert_eq!(seen_again.get_untracked(), ["Bo"]);
    drop(again);
    settle(20).await;
}

/// When the key changes, the list is the new key's: empty until its list arrives, and the old
/// key's frames no longer count.
#[wasm_bindgen_test]
async fn the_present_list_follows_the_key() {
    use serde_json::json;
    let calls = Calls::default();
    let key = RwSignal::new(70);
    let (handle, _, present) = mount_present::<Moving>(key, &calls);
    settle(20).await;
    presence::<Moving>(70, json!({ "present": ["Ann"] }));
    assert_eq!(present.get_untracked(), ["Ann"]);

    key.set(71);
    settle(20).await;
    assert_eq!(
        calls.take(),
        [
            "listen 70",
            "listen 70 done",
            "unlisten 70",
            "unlisten 70 done",
            "listen 71",
            "listen 71 done"
        ]
    );
    assert!(
        present.get_untracked().is_empty(),
        "the new key's list is not in yet"
    );
    presence::<Moving>(70, json!({ "join": "Old" }));
    presence::<Moving>(71, json!({ "present": ["Bo", "Cy"] }));
    assert_eq!(present.get_untracked(), ["Bo", "Cy"]);
    drop(handle);
    settle(20).await;
}

presence_topic!(Late, "late");

/// A component asking who is present only after the server's list arrived (in an event
/// handler, a child mounted later) still sees it: the tab keeps a held key's presence from its
/// listen on.
#[wasm_bindgen_test]
async fn the_list_is_kept_for_a_holder_that_asks_late() {
    use serde_json::json;
    let calls = Calls::default();
    let got = Rc::new(RefCell::new(None));
    let (listen, unlisten) = (calls.call("listen", 0), calls.call("unlisten", 0));
    let handle = mount_to(document().body().unwrap(), {
        let got = got.clone();
        move || {
            *got.borrow_mut() = Some(crate::use_listen::<Late>(60, listen, unlisten));
        }
    });
    let listening: Listening<Late> = got.borrow_mut().take().unwrap();
    settle(20).await;
    presence::<Late>(60, json!({ "present": ["Ann"] }));
    presence::<Late>(60, json!({ "join": "Bo" }));
    assert_eq!(listening.present().get_untracked(), ["Ann", "Bo"]);
    drop(handle);
    settle(20).await;
}

//! The browser implementation behind [`crate::client`]: one `EventSource` per tab (one wasm
//! instance per tab, so thread-local state is per tab).
//!
//! `web_sys::EventSource` is used directly rather than gloo-net's wrapper because gloo hides the
//! `error` events fired while the browser is reconnecting, and those are what turn the
//! indicator to "reconnecting".
use std::{
    any::Any,
    cell::{Cell, RefCell},
    collections::HashMap,
    future::Future,
    pin::Pin,
    rc::Rc,
};

use futures::channel::oneshot;
use leptos::{prelude::*, task::spawn_local};
use wasm_bindgen::{closure::Closure, JsCast};

use crate::{
    client::{ConnectionState, Notification},
    Hello, RawNotification, Topic, EVENT_BYE, EVENT_HELLO, EVENT_NOTIF, LAST_EVENT_ID_QUERY, STREAM_PATH,
};

/// A notification handler registered by a component, with its id for removal.
type Handler<T> = (u64, Rc<dyn Fn(Notification<T>)>);
/// Decodes a raw frame of one topic and hands it to that topic's slot.
type Dispatch = Rc<dyn Fn(RawNotification)>;

type Relisten = Rc<dyn Fn() -> Pin<Box<dyn Future<Output = bool>>>>;

/// A key held by one or more mounted components.
struct Held {
    holders: usize,
    relisten: Relisten,
    confirmed: RwSignal<u64>,
}

struct TopicSlot<T: Topic> {
    latest: RwSignal<Option<Notification<T>>>,
    handlers: RefCell<Vec<Handler<T>>>,
}

struct Tab {
    state: RwSignal<ConnectionState>,
    resets: RwSignal<u64>,
    client: RefCell<Option<String>>,
    had_hello: Cell<bool>,
    /// The stream was opened once; after that only failures and the network reopen it.
    started: Cell<bool>,
    id_waiters: RefCell<Vec<oneshot::Sender<()>>>,
    topics: RefCell<HashMap<&'static str, Rc<dyn Any>>>,
    dispatch: RefCell<HashMap<&'static str, Dispatch>>,
    held: RefCell<HashMap<String, Held>>,
    source: RefCell<Option<web_sys::EventSource>>,
    /// The `id:` of the last frame received, to resume from when the stream is reopened.
    last_id: RefCell<Option<String>>,
    failures: Cell<u32>,
    next_handler: Cell<u64>,
}

thread_local! {
    static TAB: Rc<Tab> = Rc::new(Tab {
        state: RwSignal::new(ConnectionState::Connecting),
        resets: RwSignal::new(0),
        client: RefCell::new(None),
        had_hello: Cell::new(false),
        started: Cell::new(false),
        id_waiters: RefCell::new(Vec::new()),
        topics: RefCell::new(HashMap::new()),
        dispatch: RefCell::new(HashMap::new()),
        held: RefCell::new(HashMap::new()),
        source: RefCell::new(None),
        last_id: RefCell::new(None),
        failures: Cell::new(0),
        next_handler: Cell::new(0),
    });
}

/// The tab, with its stream opened if it is not yet.
fn tab() -> Rc<Tab> {
    let tab = TAB.with(Rc::clone);
    if !tab.started.replace(true) {
        watch_network(&tab);
        open(&tab);
    }
    tab
}

/// Follows the browser's online state: an open connection may outlive the network silently,
/// so going offline closes it (the indicator turns "reconnecting") and coming back online
/// reopens it at once, resuming where it stopped.
fn watch_network(tab: &Rc<Tab>) {
    let Some(window) = web_sys::window() else { return };
    let offline = Closure::<dyn FnMut(web_sys::Event)>::new({
        let tab = tab.clone();
        move |_| {
            if let Some(source) = tab.source.borrow_mut().take() {
                source.close();
            }
            lost(&tab);
        }
    });
    let online = Closure::<dyn FnMut(web_sys::Event)>::new({
        let tab = tab.clone();
        move |_| {
            tab.failures.set(0);
            if tab.source.borrow().is_none() {
                open(&tab);
            }
        }
    });
    let _ = window.add_event_listener_with_callback("offline", offline.as_ref().unchecked_ref());
    let _ = window.add_event_listener_with_callback("online", online.as_ref().unchecked_ref());
    offline.forget();
    online.forget();
}

fn open(tab: &Rc<Tab>) {
    // The browser's own reconnects send Last-Event-ID; a reopened source must name it itself.
    let url = match tab.last_id.borrow().as_deref() {
        Some(id) => format!("{STREAM_PATH}?{LAST_EVENT_ID_QUERY}={id}"),
        None => STREAM_PATH.to_owned(),
    };
    let source = match web_sys::EventSource::new(&url) {
        Ok(source) => source,
        Err(error) => {
            leptos::logging::error!("notif: cannot open {STREAM_PATH}: {error:?}");
            return;
        }
    };
    listen_event(tab, &source, EVENT_HELLO, {
        let tab = tab.clone();
        move |data| on_hello(&tab, data)
    });
    listen_event(tab, &source, EVENT_NOTIF, {
        let tab = tab.clone();
        move |data| match serde_json::from_str::<RawNotification>(&data) {
            Ok(raw) => {
                let dispatch = tab.dispatch.borrow().get(raw.topic.as_str()).cloned();
                if let Some(dispatch) = dispatch {
                    dispatch(raw);
                }
            }
            Err(error) => leptos::logging::warn!("notif: unreadable notification: {error}"),
        }
    });
    listen_event(tab, &source, EVENT_BYE, {
        let tab = tab.clone();
        move |_| lost(&tab)
    });
    let on_error = Closure::<dyn FnMut(web_sys::Event)>::new({
        let tab = tab.clone();
        move |_| {
            lost(&tab);
            let closed = tab
                .source
                .borrow()
                .as_ref()
                .is_some_and(|s| s.ready_state() == web_sys::EventSource::CLOSED);
            if closed {
                // The browser gave up (an HTTP error, not a dropped line): reopen with backoff.
                reopen_later(&tab);
            }
        }
    });
    source.set_onerror(Some(on_error.as_ref().unchecked_ref()));
    on_error.forget();
    *tab.source.borrow_mut() = Some(source);
}

fn listen_event(
    tab: &Rc<Tab>,
    source: &web_sys::EventSource,
    name: &str,
    handler: impl Fn(String) + 'static,
) {
    let tab = tab.clone();
    let closure = Closure::<dyn FnMut(web_sys::MessageEvent)>::new(move |event: web_sys::MessageEvent| {
        let id = event.last_event_id();
        if !id.is_empty() {
            *tab.last_id.borrow_mut() = Some(id);
        }
        if let Some(data) = event.data().as_string() {
            handler(data);
        }
    });
    let _ = source.add_event_listener_with_callback(name, closure.as_ref().unchecked_ref());
    // Lives as long as the tab: the source is never dropped, only replaced after a failure.
    closure.forget();
}

fn reopen_later(tab: &Rc<Tab>) {
    if let Some(source) = tab.source.borrow_mut().take() {
        source.close();
    }
    let failures = tab.failures.get().saturating_add(1);
    tab.failures.set(failures);
    // Exponential backoff from 0.5 s up to 30 s, each delay drawn from its upper half so that
    // tabs a server restart dropped together do not come back together.
    let ceiling = (500u32 << failures.min(6)).min(30_000) as f64;
    let delay = (ceiling * (0.5 + js_sys::Math::random() / 2.0)) as u32;
    let tab = tab.clone();
    spawn_local(async move {
        gloo_timers::future::TimeoutFuture::new(delay).await;
        if tab.source.borrow().is_none() {
            open(&tab);
        }
    });
}

fn lost(tab: &Tab) {
    tab.client.borrow_mut().take();
    if tab.had_hello.get() {
        tab.state.set(ConnectionState::Reconnecting);
    }
}

fn on_hello(tab: &Rc<Tab>, data: String) {
    let Ok(hello) = serde_json::from_str::<Hello>(&data) else {
        leptos::logging::warn!("notif: unreadable hello frame");
        return;
    };
    let first = !tab.had_hello.replace(true);
    tab.failures.set(0);
    *tab.client.borrow_mut() = Some(hello.client);
    tab.state.set(ConnectionState::Live);
    for waiter in tab.id_waiters.borrow_mut().drain(..) {
        let _ = waiter.send(());
    }
    if !hello.recovered && !first {
        // The server forgot this tab: listen again on everything held, then tell the app.
        let relistens: Vec<(Relisten, RwSignal<u64>)> = tab
            .held
            .borrow()
            .values()
            .map(|h| (h.relisten.clone(), h.confirmed))
            .collect();
        for (relisten, confirmed) in relistens {
            spawn_local(async move {
                if relisten().await {
                    confirmed.update(|n| *n += 1);
                }
            });
        }
        tab.resets.update(|n| *n += 1);
    }
}

/// Waits until the tab's stream is open and returns its id; `None` after 15 s without one.
pub(crate) async fn wait_client_id() -> Option<String> {
    let tab = tab();
    if let Some(id) = tab.client.borrow().clone() {
        return Some(id);
    }
    let (tx, rx) = oneshot::channel();
    tab.id_waiters.borrow_mut().push(tx);
    let timeout = gloo_timers::future::TimeoutFuture::new(15_000);
    futures::future::select(rx, timeout).await;
    let id = tab.client.borrow().clone();
    id
}

pub fn connection_state() -> Signal<ConnectionState> {
    tab().state.into()
}

pub fn resets() -> Signal<u64> {
    tab().resets.into()
}

pub fn client_id() -> Option<String> {
    TAB.with(|tab| tab.client.borrow().clone())
}

fn slot<T: Topic>() -> Rc<TopicSlot<T>> {
    let tab = tab();
    if let Some(slot) = tab.topics.borrow().get(T::NAME) {
        if let Ok(slot) = slot.clone().downcast::<TopicSlot<T>>() {
            return slot;
        }
    }
    let slot = Rc::new(TopicSlot::<T> {
        latest: RwSignal::new(None),
        handlers: RefCell::new(Vec::new()),
    });
    let dispatch = {
        let slot = slot.clone();
        move |raw: RawNotification| {
            let key = if raw.key.is_null() {
                None
            } else {
                serde_json::from_value(raw.key).ok()
            };
            let Ok(message) = serde_json::from_value::<T::Message>(raw.message) else {
                leptos::logging::warn!("notif: a {} message does not match its type", T::NAME);
                return;
            };
            let notification = Notification::<T> { key, message };
            let handlers: Vec<_> = slot.handlers.borrow().iter().map(|(_, h)| h.clone()).collect();
            for handler in handlers {
                handler(notification.clone());
            }
            slot.latest.set(Some(notification));
        }
    };
    tab.topics.borrow_mut().insert(T::NAME, slot.clone());
    tab.dispatch.borrow_mut().insert(T::NAME, Rc::new(dispatch));
    slot
}

pub fn notifications<T: Topic>() -> Signal<Option<Notification<T>>> {
    slot::<T>().latest.into()
}

pub fn on_notification<T: Topic>(handler: impl Fn(Notification<T>) + 'static) {
    let topic_slot = slot::<T>();
    let tab = tab();
    let id = tab.next_handler.get();
    tab.next_handler.set(id + 1);
    topic_slot.handlers.borrow_mut().push((id, Rc::new(handler)));
    // Cleanup closures must be Send; the slot is thread-local, so look it up again there.
    on_cleanup(move || {
        let slot = slot::<T>();
        slot.handlers.borrow_mut().retain(|(h, _)| *h != id);
    });
}

fn held_key<T: Topic>(key: &T::Key) -> String {
    format!("{}\0{}", T::NAME, serde_json::to_string(key).unwrap_or_default())
}

pub fn use_listen<T, L, LF, U, UF, E>(key: Signal<T::Key>, listen: L, unlisten: U) -> Signal<u64>
where
    T: Topic,
    L: Fn(T::Key) -> LF + Clone + 'static,
    LF: Future<Output = Result<(), E>> + 'static,
    U: Fn(T::Key) -> UF + Clone + 'static,
    UF: Future<Output = Result<(), E>> + 'static,
    E: std::fmt::Display + 'static,
{
    let confirmed = RwSignal::new(0u64);
    let current: Rc<RefCell<Option<T::Key>>> = Rc::new(RefCell::new(None));
    let release = {
        let unlisten = unlisten.clone();
        move |key: T::Key| {
            let tab = tab();
            let id = held_key::<T>(&key);
            let mut held = tab.held.borrow_mut();
            let Some(entry) = held.get_mut(&id) else { return };
            entry.holders -= 1;
            if entry.holders == 0 {
                held.remove(&id);
                let call = unlisten(key);
                spawn_local(async move {
                    if let Err(error) = call.await {
                        leptos::logging::warn!("notif: unlisten failed: {error}");
                    }
                });
            }
        }
    };
    let hold = {
        let current = current.clone();
        let release = release.clone();
        move |key: T::Key| {
            if current.borrow().as_ref() == Some(&key) {
                return;
            }
            if let Some(old) = current.borrow_mut().replace(key.clone()) {
                release(old);
            }
            let tab = tab();
            let id = held_key::<T>(&key);
            let mut held = tab.held.borrow_mut();
            if let Some(entry) = held.get_mut(&id) {
                entry.holders += 1;
                let shared = entry.confirmed;
                shared.with_untracked(|n| confirmed.set(*n));
                return;
            }
            let listen = listen.clone();
            let relisten: Relisten = Rc::new(move || {
                let call = listen(key.clone());
                Box::pin(async move {
                    match call.await {
                        Ok(()) => true,
                        Err(error) => {
                            leptos::logging::warn!("notif: listen failed: {error}");
                            false
                        }
                    }
                })
            });
            held.insert(
                id,
                Held {
                    holders: 1,
                    relisten: relisten.clone(),
                    confirmed,
                },
            );
            drop(held);
            spawn_local(async move {
                if relisten().await {
                    confirmed.update(|n| *n += 1);
                }
            });
        }
    };
    Effect::new(move |_| hold(key.get()));
    let current = send_wrapper::SendWrapper::new((current, release));
    on_cleanup(move || {
        let (current, release) = current.take();
        let key = current.borrow_mut().take();
        if let Some(key) = key {
            release(key);
        }
    });
    confirmed.into()
}

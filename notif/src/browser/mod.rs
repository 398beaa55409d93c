//! The browser implementation behind [`crate::listening`]: one WebSocket per tab (one wasm
//! instance per tab, so thread-local state is per tab), carrying the frames of the SSE stream,
//! opened with gloo-net (already in the wasm through server_fn).
//!
//! Why not `EventSource`: browsers allow six HTTP/1.1 connections per host, and one open SSE
//! stream per tab takes one of them for good, so a seventh tab's server function calls hang.
//! WebSockets do not count against that limit. The SSE endpoint stays for other clients.
mod connection;
mod presence;
pub use presence::present;
use presence::route_presence;
use std::{
    any::Any,
    cell::{Cell, RefCell},
    collections::HashMap,
    future::Future,
    pin::Pin,
    rc::Rc,
};

use futures::{
    channel::oneshot,
    future::{FutureExt, Shared},
};
use leptos::{prelude::*, task::spawn_local};

use crate::{
    listening::{ConnectionState, ListenCall, Listening, Notification},
    RawNotification, Topic,
};

/// A notification handler registered by a component, with its id for removal.
type Handler<T> = (u64, Rc<dyn Fn(Notification<T>)>);
/// Decodes a raw frame of one topic and hands it to that topic's slot.
type Dispatch = Rc<dyn Fn(RawNotification)>;
/// Decodes a presence frame of one topic and updates the held key's list.
type PresenceDispatch = Rc<dyn Fn(crate::wire::RawPresence)>;

type Relisten = Rc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<(), String>>>>>;

/// A key held by one or more mounted components.
struct Held {
    /// The key's id in `ThisTab::held` and `ThisTab::calls`.
    id: String,
    holders: usize,
    relisten: Relisten,
    /// Shared by every holder; owned by the tab (`ThisTab::root`), disposed when the last holder
    /// lets go.
    confirmed: RwSignal<u64>,
    /// Why the last listen call failed (network down, server refused), as its error said;
    /// `None` once one succeeded. The next hello retries a failed one, so a listen sent while
    /// the network was away is not lost for good. Shared like `confirmed`.
    error: RwSignal<Option<String>>,
    /// Who is on the key, as the presence frames said (public forms as JSON; empty for a topic
    /// without presence): kept from the listen on, typed when read (`Listening::present`), so
    /// the list sent right after the listen is never missed. Shared like `confirmed`.
    present: RwSignal<Vec<serde_json::Value>>,
}

impl Held {
    /// Calls the listen server function again; counts it in `confirmed` once it returns Ok.
    fn listen(&self) {
        let (call, confirmed, error) = ((self.relisten)(), self.confirmed, self.error);
        in_order(
            &self.id,
            Box::pin(async move {
                let result = call.await;
                // Disposed if the last holder let go meanwhile: nobody reads them any more.
                if result.is_ok() {
                    confirmed.try_update(|n| *n += 1);
                }
                error.try_set(result.err());
            }),
        );
    }
}

type PendingCall = Pin<Box<dyn Future<Output = ()>>>;

/// Runs `call` once every call made before it for the same key has finished. Listen and
/// unlisten calls travel on separate HTTP requests; unordered, an unlisten overtaking the listen
/// it follows (a component unmounted while its listen was on the way) would leave the server
/// listening for the rest of the tab's life.
fn in_order(id: &str, call: PendingCall) {
    let tab = tab();
    let previous = tab.calls.borrow_mut().remove(id);
    let chained = async move {
        if let Some(previous) = previous {
            previous.await;
        }
        call.await;
    }
    .boxed_local()
    .shared();
    tab.calls.borrow_mut().insert(id.to_owned(), chained.clone());
    let id = id.to_owned();
    spawn_local(async move {
        chained.clone().await;
        // The last call of its key: nothing to wait for any more.
        let mut calls = tab.calls.borrow_mut();
        if calls.get(&id).is_some_and(|tail| tail.ptr_eq(&chained)) {
            calls.remove(&id);
        }
    });
}

struct TopicSlot<T: Topic> {
    latest: RwSignal<Option<Notification<T>>>,
    handlers: RefCell<Vec<Handler<T>>>,
}

struct ThisTab {
    /// The owner of every browser-wide signal (connection state, resets, topic slots, the
    /// counters of held keys): a root that lives as long as the tab, so none of them is disposed
    /// with the component that happened to use it first.
    root: Owner,
    state: RwSignal<ConnectionState>,
    resets: RwSignal<u64>,
    id: RefCell<Option<String>>,
    /// The server node holding the tab, as the last hello named it: calls and reconnects name it
    /// so that any node reaches the tab.
    node: RefCell<Option<String>>,
    had_hello: Cell<bool>,
    /// The stream was opened once; after that only failures and the network reopen it.
    started: Cell<bool>,
    id_waiters: RefCell<Vec<oneshot::Sender<()>>>,
    topics: RefCell<HashMap<&'static str, Rc<dyn Any>>>,
    dispatch: RefCell<HashMap<&'static str, Dispatch>>,
    /// Per topic listened on, its presence frames' handler.
    presence: RefCell<HashMap<&'static str, PresenceDispatch>>,
    held: RefCell<HashMap<String, Held>>,
    /// Per key, the last listen or unlisten call still running: the next one waits for it.
    calls: RefCell<HashMap<String, Shared<PendingCall>>>,
    socket: RefCell<Option<connection::Socket>>,
    /// How many sockets the tab opened: numbers them.
    sockets: Cell<u64>,
    /// The `id:` of the last frame received, to resume from when the stream is reopened.
    last_id: RefCell<Option<String>>,
    failures: Cell<u32>,
    next_handler: Cell<u64>,
}

thread_local! {
    static TAB: Rc<ThisTab> = Rc::new({
        let root = page_root();
        let (state, resets) = root.with(|| (RwSignal::new(ConnectionState::Connecting), RwSignal::new(0)));
        ThisTab {
        root,
        state,
        resets,
        id: RefCell::new(None),
        node: RefCell::new(None),
        had_hello: Cell::new(false),
        started: Cell::new(false),
        id_waiters: RefCell::new(Vec::new()),
        topics: RefCell::new(HashMap::new()),
        dispatch: RefCell::new(HashMap::new()),
        presence: RefCell::new(HashMap::new()),
        held: RefCell::new(HashMap::new()),
        calls: RefCell::new(HashMap::new()),
        socket: RefCell::new(None),
        sockets: Cell::new(0),
        last_id: RefCell::new(None),
        failures: Cell::new(0),
        next_handler: Cell::new(0),
        }
    });
}

/// A root owner for the page's lifetime. `Owner::new_root` also makes itself the current owner:
/// the caller's (a component's) is put back.
fn page_root() -> Owner {
    let current = Owner::current();
    let root = Owner::new_root(None);
    match current {
        Some(current) => current.set(),
        None => root.clone().unset(),
    }
    root
}

/// The tab, with its connection opened if it is not yet.
fn tab() -> Rc<ThisTab> {
    let tab = TAB.with(Rc::clone);
    // Unit tests drive the tab by hand (`tests.rs`): no socket.
    if !cfg!(test) && !tab.started.replace(true) {
        connection::watch_network(&tab);
        connection::open_socket(&tab);
    }
    tab
}

/// Waits until the tab's stream is open and returns its id and the node holding it; `None`
/// after 15 s without one.
pub(crate) async fn wait_tab_id() -> Option<(String, Option<String>)> {
    let tab = tab();
    let current = || {
        let id = tab.id.borrow().clone()?;
        Some((id, tab.node.borrow().clone()))
    };
    if let Some(current) = current() {
        return Some(current);
    }
    let (tx, rx) = oneshot::channel();
    tab.id_waiters.borrow_mut().push(tx);
    let timeout = gloo_timers::future::TimeoutFuture::new(15_000);
    futures::future::select(rx, timeout).await;
    current()
}

pub fn connection_state() -> Signal<ConnectionState> {
    tab().state.into()
}

pub fn resets() -> Signal<u64> {
    tab().resets.into()
}

pub fn tab_id() -> Option<String> {
    TAB.with(|tab| tab.id.borrow().clone())
}

fn slot<T: Topic>() -> Rc<TopicSlot<T>> {
    let tab = tab();
    if let Some(slot) = tab.topics.borrow().get(T::NAME) {
        if let Ok(slot) = slot.clone().downcast::<TopicSlot<T>>() {
            return slot;
        }
    }
    let slot = Rc::new(TopicSlot::<T> {
        latest: tab.root.with(|| RwSignal::new(None)),
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

pub fn latest_notification<T: Topic>() -> Signal<Option<Notification<T>>> {
    slot::<T>().latest.into()
}

/// Calls `handler` with the messages notified on the current value of `key`, until the current
/// owner is cleaned up.
pub fn on_message<T: Topic>(key: Signal<T::Key>, handler: impl Fn(T::Message) + 'static) {
    on_notification::<T>(move |n| {
        let on_key = n
            .key
            .as_ref()
            .is_some_and(|k| key.try_with_untracked(|key| key == k).unwrap_or(false));
        if on_key {
            handler(n.message);
        }
    });
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

pub fn use_listen<T: Topic>(
    key: Signal<T::Key>,
    listen: impl ListenCall<T::Key>,
    unlisten: impl ListenCall<T::Key>,
) -> Listening<T> {
    let listen: Rc<dyn ListenCall<T::Key>> = Rc::new(listen);
    let unlisten: Rc<dyn ListenCall<T::Key>> = Rc::new(unlisten);
    route_presence::<T>();
    // The counter and the listen error of the key held now (shared with its other holders),
    // and its latest message: this component's own.
    let counter = RwSignal::new(None::<RwSignal<u64>>);
    let failure = RwSignal::new(None::<RwSignal<Option<String>>>);
    // The id of the key held now, for its per-key state of other kinds (presence).
    let holding = RwSignal::new(None::<String>);
    let latest = RwSignal::new(None::<T::Message>);
    let current: Rc<RefCell<Option<T::Key>>> = Rc::new(RefCell::new(None));
    let release = move |key: T::Key| {
        let tab = tab();
        let id = held_key::<T>(&key);
        let mut held = tab.held.borrow_mut();
        let Some(entry) = held.get_mut(&id) else { return };
        entry.holders -= 1;
        if entry.holders == 0 {
            let entry = held.remove(&id).expect("just found");
            drop(held);
            entry.confirmed.dispose();
            entry.error.dispose();
            entry.present.dispose();
            let call = unlisten.call(key);
            in_order(
                &id,
                Box::pin(async move {
                    if let Err(error) = call.await {
                        leptos::logging::warn!("notif: unlisten failed: {error}");
                    }
                }),
            );
        }
    };
    let release = Rc::new(release);
    let hold = {
        let current = current.clone();
        let release = release.clone();
        move |key: T::Key| {
            if current.borrow().as_ref() == Some(&key) {
                return;
            }
            let old = current.borrow_mut().replace(key.clone());
            if let Some(old) = old {
                release(old);
                latest.set(None);
            }
            let tab = tab();
            let id = held_key::<T>(&key);
            let mut held = tab.held.borrow_mut();
            if let Some(entry) = held.get_mut(&id) {
                entry.holders += 1;
                counter.set(Some(entry.confirmed));
                failure.set(Some(entry.error));
                holding.set(Some(id));
                return;
            }
            let listen = listen.clone();
            let relisten: Relisten = Rc::new(move || {
                let call = listen.call(key.clone());
                Box::pin(async move {
                    let result = call.await;
                    if let Err(error) = &result {
                        leptos::logging::warn!("notif: listen failed: {error}");
                    }
                    result
                })
            });
            let entry = Held {
                id: id.clone(),
                holders: 1,
                relisten,
                confirmed: tab.root.with(|| RwSignal::new(0)),
                error: tab.root.with(|| RwSignal::new(None)),
                present: tab.root.with(|| RwSignal::new(Vec::new())),
            };
            counter.set(Some(entry.confirmed));
            failure.set(Some(entry.error));
            entry.listen();
            held.insert(id.clone(), entry);
            holding.set(Some(id));
        }
    };
    Effect::new(move |_| hold(key.get()));
    on_message::<T>(key, move |message| latest.set(Some(message)));
    let current = send_wrapper::SendWrapper::new((current, release));
    on_cleanup(move || {
        let (current, release) = current.take();
        let key = current.borrow_mut().take();
        if let Some(key) = key {
            release(key);
        }
    });
    Listening {
        key,
        latest: latest.into(),
        confirmed: Signal::derive(move || counter.get().and_then(|shared| shared.try_get()).unwrap_or(0)),
        listen_error: Signal::derive(move || failure.get().and_then(|shared| shared.try_get()).flatten()),
        held: holding.into(),
    }
}

#[cfg(test)]
mod tests;

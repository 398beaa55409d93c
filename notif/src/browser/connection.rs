//! The tab's connection: a WebSocket to the hub (gloo-net's, the browser's own underneath: it
//! answers the server's pings by itself), reopened with backoff after a drop, closed when the
//! browser goes offline and reopened when it comes back, always resuming from the last frame
//! received.
use std::rc::Rc;

use futures::{
    channel::oneshot,
    future::{select, Either},
    StreamExt,
};
use gloo_net::websocket::{futures::WebSocket, Message};
use leptos::{prelude::*, task::spawn_local};
use wasm_bindgen::{closure::Closure, JsCast};

use super::{ConnectionState, ThisTab};
use crate::{
    wire::RawPresence, Bye, ByeReason, Hello, RawNotification, WsFrame, EVENT_BYE, EVENT_HELLO, EVENT_NOTIF,
    LAST_EVENT_ID_QUERY, NODE_QUERY, WS_PATH,
};

/// The open socket's reading task. Dropping this stops the task, which drops the socket (and so
/// closes it) without scheduling a reconnect.
pub(super) struct Socket {
    /// Which of the tab's sockets this is: a task whose socket was replaced does nothing more.
    number: u64,
    _stop: oneshot::Sender<()>,
}

/// The stream's address: `ws(s)://<host><WS_PATH>`, resuming after `last_id` on `node` (the
/// node named by the last hello) when known.
pub(super) fn stream_url(secure: bool, host: &str, last_id: Option<&str>, node: Option<&str>) -> String {
    let scheme = if secure { "wss" } else { "ws" };
    match (last_id, node) {
        (Some(id), Some(node)) => {
            format!("{scheme}://{host}{WS_PATH}?{LAST_EVENT_ID_QUERY}={id}&{NODE_QUERY}={node}")
        }
        (Some(id), None) => format!("{scheme}://{host}{WS_PATH}?{LAST_EVENT_ID_QUERY}={id}"),
        _ => format!("{scheme}://{host}{WS_PATH}"),
    }
}

fn url(tab: &ThisTab) -> Option<String> {
    let location = web_sys::window()?.location();
    let secure = location.protocol().ok()? == "https:";
    let host = location.host().ok()?;
    Some(stream_url(
        secure,
        &host,
        tab.last_id.borrow().as_deref(),
        tab.node.borrow().as_deref(),
    ))
}

pub(super) fn open_socket(tab: &Rc<ThisTab>) {
    let Some(url) = url(tab) else { return };
    let socket = match WebSocket::open(&url) {
        Ok(socket) => socket,
        Err(error) => {
            leptos::logging::error!("notif: cannot open {url}: {error}");
            reopen_later(tab);
            return;
        }
    };
    let number = tab.sockets.get() + 1;
    tab.sockets.set(number);
    let (stop, stopped) = oneshot::channel::<()>();
    // Replacing an older socket drops it: its task stops and closes it.
    tab.socket.borrow_mut().replace(Socket { number, _stop: stop });
    let tab = tab.clone();
    spawn_local(async move {
        let (mut socket, mut stopped) = (socket, stopped);
        loop {
            // Shut first: once the socket is dropped from the tab, nothing more of it is read.
            match select(&mut stopped, socket.next()).await {
                // Shut (offline, or replaced): dropping the socket closes it.
                Either::Left(_) => return,
                Either::Right((Some(Ok(Message::Text(text))), _)) => {
                    match serde_json::from_str::<WsFrame>(&text) {
                        Ok(frame) => on_frame(&tab, frame),
                        Err(error) => leptos::logging::warn!("notif: unreadable frame: {error}"),
                    }
                }
                Either::Right((Some(Ok(Message::Bytes(_))), _)) => {}
                // Refused, dropped, closed by the server (the browser reports an error, then
                // the close): reconnect.
                Either::Right((Some(Err(_)) | None, _)) => break,
            }
        }
        drop(socket);
        let current = tab.socket.borrow().as_ref().is_some_and(|s| s.number == number);
        if current {
            tab.socket.borrow_mut().take();
            lost(&tab);
            reopen_later(&tab);
        }
    });
}

pub(super) fn on_frame(tab: &Rc<ThisTab>, frame: WsFrame) {
    if let Some(id) = frame.id {
        *tab.last_id.borrow_mut() = Some(id);
    }
    match frame.event.as_str() {
        EVENT_HELLO => match serde_json::from_value::<Hello>(frame.data) {
            Ok(hello) => on_hello(tab, hello),
            Err(error) => leptos::logging::warn!("notif: unreadable hello: {error}"),
        },
        // Presence (`Listening::present`): `presence` where a notification has `message`.
        EVENT_NOTIF if frame.data.get("presence").is_some() => {
            match serde_json::from_value::<RawPresence>(frame.data) {
                Ok(raw) => {
                    let dispatch = tab.presence.borrow().get(raw.topic.as_str()).cloned();
                    if let Some(dispatch) = dispatch {
                        dispatch(raw);
                    }
                }
                Err(error) => leptos::logging::warn!("notif: unreadable presence: {error}"),
            }
        }
        EVENT_NOTIF => match serde_json::from_value::<RawNotification>(frame.data) {
            Ok(raw) => {
                let dispatch = tab.dispatch.borrow().get(raw.topic.as_str()).cloned();
                if let Some(dispatch) = dispatch {
                    dispatch(raw);
                }
            }
            Err(error) => leptos::logging::warn!("notif: unreadable notification: {error}"),
        },
        // The server closes right after; the socket's task then reconnects.
        EVENT_BYE => {
            let bye = serde_json::from_value::<Bye>(frame.data);
            if let Ok(Bye {
                reason: ByeReason::Disconnected,
            }) = bye
            {
                // The identity was signed out or its session ended: the server forgot the tab
                // and its listens now. The app refetches at once, as whoever it is now; the
                // stream may not come back (an app may refuse signed-out visitors). If it does,
                // its hello is a reset too: what was sent before the listens went out again.
                tab.resets.update(|n| *n += 1);
            }
            lost(tab);
        }
        _ => {}
    }
}

/// Follows the browser's online state: an open connection may outlive the network silently,
/// so going offline closes it (the indicator turns "reconnecting") and coming back online
/// reopens it at once, resuming where it stopped.
pub(super) fn watch_network(tab: &Rc<ThisTab>) {
    let Some(window) = web_sys::window() else { return };
    let offline = Closure::<dyn FnMut(web_sys::Event)>::new({
        let tab = tab.clone();
        move |_| {
            // Dropped: its task closes it.
            tab.socket.borrow_mut().take();
            lost(&tab);
        }
    });
    let online = Closure::<dyn FnMut(web_sys::Event)>::new({
        let tab = tab.clone();
        move |_| {
            tab.failures.set(0);
            if tab.socket.borrow().is_none() {
                open_socket(&tab);
            }
        }
    });
    let _ = window.add_event_listener_with_callback("offline", offline.as_ref().unchecked_ref());
    let _ = window.add_event_listener_with_callback("online", online.as_ref().unchecked_ref());
    // Both live as long as the tab.
    offline.forget();
    online.forget();
}

/// The delay in milliseconds before the next attempt after `failures` failures in a row (from
/// 1), `random` drawn from `[0, 1)`: exponential backoff from 0.5 s up to 30 s, each delay drawn
/// from the upper half of its range (`[ceiling / 2, ceiling]`, the ceiling 1 s after the first
/// failure, doubling up to 30 s) so that tabs a server restart dropped together do not come back
/// together.
pub(super) fn backoff_ms(failures: u32, random: f64) -> u32 {
    let ceiling = (500u32 << failures.min(6)).min(30_000) as f64;
    (ceiling * (0.5 + random.clamp(0.0, 1.0) / 2.0)) as u32
}

fn reopen_later(tab: &Rc<ThisTab>) {
    let failures = tab.failures.get().saturating_add(1);
    tab.failures.set(failures);
    let delay = backoff_ms(failures, js_sys::Math::random());
    let tab = tab.clone();
    spawn_local(async move {
        gloo_timers::future::TimeoutFuture::new(delay).await;
        let online = web_sys::window().map(|w| w.navigator().on_line()).unwrap_or(true);
        if online && tab.socket.borrow().is_none() {
            open_socket(&tab);
        }
    });
}

fn lost(tab: &ThisTab) {
    tab.id.borrow_mut().take();
    if tab.had_hello.get() {
        tab.state.set(ConnectionState::Reconnecting);
    }
}

fn on_hello(tab: &Rc<ThisTab>, hello: Hello) {
    let first = !tab.had_hello.replace(true);
    tab.failures.set(0);
    *tab.id.borrow_mut() = Some(hello.tab_id);
    *tab.node.borrow_mut() = hello.node;
    tab.state.set(ConnectionState::Live);
    for waiter in tab.id_waiters.borrow_mut().drain(..) {
        let _ = waiter.send(());
    }
    let reset = !hello.recovered && !first;
    for held in tab.held.borrow().values() {
        if listens_again(first, hello.recovered, held.error.with_untracked(Option::is_some)) {
            held.listen();
        }
    }
    if reset {
        tab.resets.update(|n| *n += 1);
    }
}

/// Whether a hello makes a held key listen again. After a reset (`recovered: false` after the
/// tab's first hello) the server forgot every listen: all are sent again. After a resume the
/// listens stand, but one that failed meanwhile (sent while offline) is retried. The first hello
/// finds listens on their way already.
pub(super) fn listens_again(first_hello: bool, recovered: bool, failed: bool) -> bool {
    (!recovered && !first_hello) || failed
}

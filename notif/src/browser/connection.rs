//! The tab's connection: a WebSocket to the hub, reopened with backoff after a drop, closed when
//! the browser goes offline and reopened when it comes back, always resuming from the last frame
//! received.
use std::rc::Rc;

use leptos::{prelude::*, task::spawn_local};
use wasm_bindgen::{closure::Closure, JsCast};

use super::{ConnectionState, Tab};
use crate::{
    Bye, ByeReason, Hello, RawNotification, WsFrame, EVENT_BYE, EVENT_HELLO, EVENT_NOTIF,
    LAST_EVENT_ID_QUERY, NODE_QUERY, WS_PATH,
};

/// An open WebSocket and the handlers it calls; dropping it detaches them.
pub(super) struct Socket {
    socket: web_sys::WebSocket,
    _on_message: Closure<dyn FnMut(web_sys::MessageEvent)>,
    _on_close: Closure<dyn FnMut(web_sys::Event)>,
}

impl Socket {
    /// Closes the socket without its close handler scheduling a reconnect.
    fn shut(self) {
        self.socket.set_onmessage(None);
        self.socket.set_onclose(None);
        let _ = self.socket.close();
    }
}

fn url(tab: &Tab) -> Option<String> {
    let location = web_sys::window()?.location();
    let scheme = if location.protocol().ok()? == "https:" {
        "wss"
    } else {
        "ws"
    };
    let host = location.host().ok()?;
    Some(
        match (tab.last_id.borrow().as_deref(), tab.node.borrow().as_deref()) {
            (Some(id), Some(node)) => {
                format!("{scheme}://{host}{WS_PATH}?{LAST_EVENT_ID_QUERY}={id}&{NODE_QUERY}={node}")
            }
            (Some(id), None) => format!("{scheme}://{host}{WS_PATH}?{LAST_EVENT_ID_QUERY}={id}"),
            _ => format!("{scheme}://{host}{WS_PATH}"),
        },
    )
}

pub(super) fn open(tab: &Rc<Tab>) {
    let Some(url) = url(tab) else { return };
    let socket = match web_sys::WebSocket::new(&url) {
        Ok(socket) => socket,
        Err(error) => {
            leptos::logging::error!("notif: cannot open {url}: {error:?}");
            reopen_later(tab);
            return;
        }
    };
    let on_message = Closure::<dyn FnMut(web_sys::MessageEvent)>::new({
        let tab = tab.clone();
        move |event: web_sys::MessageEvent| {
            let Some(text) = event.data().as_string() else {
                return;
            };
            match serde_json::from_str::<WsFrame>(&text) {
                Ok(frame) => on_frame(&tab, frame),
                Err(error) => leptos::logging::warn!("notif: unreadable frame: {error}"),
            }
        }
    });
    // `close` follows every failure (refused, dropped, closed by the server): reconnect then.
    let on_close = Closure::<dyn FnMut(web_sys::Event)>::new({
        let tab = tab.clone();
        move |_| {
            if let Some(socket) = tab.socket.borrow_mut().take() {
                socket.shut();
            }
            lost(&tab);
            reopen_later(&tab);
        }
    });
    socket.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    socket.set_onclose(Some(on_close.as_ref().unchecked_ref()));
    if let Some(old) = tab.socket.borrow_mut().replace(Socket {
        socket,
        _on_message: on_message,
        _on_close: on_close,
    }) {
        old.shut();
    }
}

pub(super) fn on_frame(tab: &Rc<Tab>, frame: WsFrame) {
    if let Some(id) = frame.id {
        *tab.last_id.borrow_mut() = Some(id);
    }
    match frame.event.as_str() {
        EVENT_HELLO => match serde_json::from_value::<Hello>(frame.data) {
            Ok(hello) => on_hello(tab, hello),
            Err(error) => leptos::logging::warn!("notif: unreadable hello: {error}"),
        },
        EVENT_NOTIF => match serde_json::from_value::<RawNotification>(frame.data) {
            Ok(raw) => {
                let dispatch = tab.dispatch.borrow().get(raw.topic.as_str()).cloned();
                if let Some(dispatch) = dispatch {
                    dispatch(raw);
                }
            }
            Err(error) => leptos::logging::warn!("notif: unreadable notification: {error}"),
        },
        // The server closes right after; the close handler reconnects.
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
pub(super) fn watch_network(tab: &Rc<Tab>) {
    let Some(window) = web_sys::window() else { return };
    let offline = Closure::<dyn FnMut(web_sys::Event)>::new({
        let tab = tab.clone();
        move |_| {
            if let Some(socket) = tab.socket.borrow_mut().take() {
                socket.shut();
            }
            lost(&tab);
        }
    });
    let online = Closure::<dyn FnMut(web_sys::Event)>::new({
        let tab = tab.clone();
        move |_| {
            tab.failures.set(0);
            if tab.socket.borrow().is_none() {
                open(&tab);
            }
        }
    });
    let _ = window.add_event_listener_with_callback("offline", offline.as_ref().unchecked_ref());
    let _ = window.add_event_listener_with_callback("online", online.as_ref().unchecked_ref());
    // Both live as long as the tab.
    offline.forget();
    online.forget();
}

fn reopen_later(tab: &Rc<Tab>) {
    let failures = tab.failures.get().saturating_add(1);
    tab.failures.set(failures);
    // Exponential backoff from 0.5 s up to 30 s, each delay drawn from its upper half so that
    // tabs a server restart dropped together do not come back together.
    let ceiling = (500u32 << failures.min(6)).min(30_000) as f64;
    let delay = (ceiling * (0.5 + js_sys::Math::random() / 2.0)) as u32;
    let tab = tab.clone();
    spawn_local(async move {
        gloo_timers::future::TimeoutFuture::new(delay).await;
        let online = web_sys::window().map(|w| w.navigator().on_line()).unwrap_or(true);
        if online && tab.socket.borrow().is_none() {
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

fn on_hello(tab: &Rc<Tab>, hello: Hello) {
    let first = !tab.had_hello.replace(true);
    tab.failures.set(0);
    *tab.client.borrow_mut() = Some(hello.client);
    *tab.node.borrow_mut() = hello.node;
    tab.state.set(ConnectionState::Live);
    for waiter in tab.id_waiters.borrow_mut().drain(..) {
        let _ = waiter.send(());
    }
    // After a reset the server forgot every listen: listen again on everything held. After a
    // resume the listens stand, but one that failed meanwhile (sent while offline) is retried.
    let reset = !hello.recovered && !first;
    for held in tab.held.borrow().values() {
        if reset || held.failed.get() {
            held.listen();
        }
    }
    if reset {
        tab.resets.update(|n| *n += 1);
    }
}

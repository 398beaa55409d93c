//! Presence in the browser: every held key keeps its presence frames (public forms as JSON)
//! from its listen on; `Listening::present` types them when read.
use std::rc::Rc;

use leptos::prelude::*;

use super::{held_key, tab};
use crate::{
    wire::{PresenceChange, RawPresence},
    Presence, Topic,
};

/// `Listening::present`: the list of the key `held` names, in `T`'s public form.
pub fn present<T: Presence>(held: Signal<Option<String>>) -> Signal<Vec<T::Public>> {
    Signal::derive(move || {
        let Some(id) = held.get() else {
            return Vec::new();
        };
        let list = tab().held.borrow().get(&id).map(|entry| entry.present);
        // Disposed if the last holder let go meanwhile: this one is leaving too.
        let raw = list.and_then(|list| list.try_get()).unwrap_or_default();
        raw.into_iter()
            .filter_map(|value| match serde_json::from_value::<T::Public>(value) {
                Ok(public) => Some(public),
                Err(_) => {
                    leptos::logging::warn!("notif: a {} presence entry does not match its type", T::NAME);
                    None
                }
            })
            .collect()
    })
}

/// Routes `T`'s presence frames to the held keys' lists (registered by `use_listen`).
pub(super) fn route_presence<T: Topic>() {
    tab()
        .presence
        .borrow_mut()
        .entry(T::NAME)
        .or_insert_with(|| Rc::new(on_presence::<T>));
}

/// A presence frame of `T`: the whole list replaces the held key's, a join adds one entry, a
/// leave removes one equal entry. Frames for keys this tab does not hold are dropped.
fn on_presence<T: Topic>(raw: RawPresence) {
    let Ok(key) = serde_json::from_value::<T::Key>(raw.key) else {
        leptos::logging::warn!("notif: a {} presence key does not match its type", T::NAME);
        return;
    };
    let Some(list) = tab()
        .held
        .borrow()
        .get(&held_key::<T>(&key))
        .map(|entry| entry.present)
    else {
        return;
    };
    match raw.presence {
        PresenceChange::Present(all) => {
            list.try_set(all);
        }
        PresenceChange::Join(one) => {
            list.try_update(|all| all.push(one));
        }
        PresenceChange::Leave(one) => {
            list.try_update(|all| {
                if let Some(at) = all.iter().position(|p| *p == one) {
                    all.remove(at);
                }
            });
        }
    }
}

//! The bell: counts new messages in followed rooms while the user looks elsewhere.
use leptos::prelude::*;

use super::shared;
use crate::{
    api::{listen_room, unlisten_room},
    topics::RoomTopic,
};

#[component]
pub fn Bell() -> impl IntoView {
    let shared = shared();
    let followed = shared.followed;
    let count = RwSignal::new(0u32);
    notif::on_notification::<RoomTopic>(move |n| {
        let Some(room) = n.key else { return };
        let follows = followed
            .get_untracked()
            .and_then(|r| r.ok())
            .is_some_and(|rooms| rooms.contains(&room));
        if follows && shared.current_room.get_untracked() != Some(room) {
            count.update(|c| *c += 1);
        }
    });
    let rooms = move || followed.get().and_then(|r| r.ok()).unwrap_or_default();
    view! {
        <For each=rooms key=|room| *room let:room>
            <BellListen room/>
        </For>
        <button class="bell" title="New messages in rooms you follow" on:click=move |_| count.set(0)>
            "🔔 "
            <span class="bell-count">{move || count.get()}</span>
        </button>
    }
}

/// Listens on one followed room while it is followed.
#[component]
fn BellListen(room: i64) -> impl IntoView {
    notif::use_listen::<RoomTopic>(room, listen_room, unlisten_room);
}

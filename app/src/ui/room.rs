//! A room: its history, then its new messages live while the page is open.
use leptos::{html, prelude::*};
use leptos_router::hooks::use_params_map;

use super::shared;
use crate::{
    api::{error_text, listen_room, room_history, unlisten_room, PostMessage},
    model::RoomMessage,
    topics::RoomTopic,
};

#[component]
pub fn RoomPage() -> impl IntoView {
    let params = use_params_map();
    let room = move || params.read().get("id").and_then(|id| id.parse::<i64>().ok());
    move || match room() {
        Some(room) => view! { <RoomView room/> }.into_any(),
        None => view! { <p class="error">"There is no such room."</p> }.into_any(),
    }
}

#[component]
fn RoomView(room: i64) -> impl IntoView {
    let shared = shared();
    shared.current_room.set(Some(room));
    on_cleanup(move || shared.current_room.set(None));

    // Listen first; every confirmed (re)listen and every reset refetches the history, so nothing
    // posted between the history read and the listen falls through.
    let key = Signal::stored(room);
    let listened = notif::use_listen::<RoomTopic, _, _, _, _, _>(key, listen_room, unlisten_room);
    let resets = notif::resets();
    let history = Resource::new(
        move || (listened.get(), resets.get()),
        move |_| room_history(room),
    );
    let live = RwSignal::new(Vec::<RoomMessage>::new());
    notif::on_notification::<RoomTopic>(move |n| {
        if n.key == Some(room) {
            live.update(|list| list.push(n.message));
        }
    });

    let post = ServerAction::<PostMessage>::new();
    let input = NodeRef::<html::Input>::new();
    Effect::new(move |_| {
        if let Some(Ok(message)) = post.value().get() {
            live.update(|list| list.push(message));
            if let Some(input) = input.get() {
                input.set_value("");
            }
        }
    });
    let post_error = move || match post.value().get() {
        Some(Err(e)) => Some(view! { <p class="error post-error">{error_text(&e)}</p> }),
        _ => None,
    };

    view! {
        <Transition fallback=|| view! { <p>"Loading…"</p> }>
            {move || history.get().map(|result| match result {
                Err(e) => view! { <p class="error">{error_text(&e)}</p> }.into_any(),
                Ok((name, past)) => {
                    let messages = move || merge(&past, &live.get());
                    view! {
                        <h1>"#"{name.clone()}</h1>
                        <ul class="messages">
                            <For each=messages key=|m| m.message.id let:m>
                                <li class="message" class:mention=m.mentions_me data-id=m.message.id>
                                    <b class="author">{m.message.author.clone()}</b>
                                    ": "
                                    <span class="body">{m.message.body.clone()}</span>
                                </li>
                            </For>
                        </ul>
                    }.into_any()
                }
            })}
        </Transition>
        <ActionForm action=post attr:class="post">
            <input type="hidden" name="room" value=room/>
            <input name="body" node_ref=input placeholder="Message (mention someone with @name)" autocomplete="off"/>
            <button type="submit">"Send"</button>
        </ActionForm>
        {post_error}
    }
}

/// History plus live messages, each once, in id order.
fn merge(past: &[RoomMessage], live: &[RoomMessage]) -> Vec<RoomMessage> {
    let mut all: Vec<RoomMessage> = past.to_vec();
    for message in live {
        if !all.iter().any(|m| m.message.id == message.message.id) {
            all.push(message.clone());
        }
    }
    all.sort_by_key(|m| m.message.id);
    all
}

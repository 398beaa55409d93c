//! A room: its history, then its new messages, who is in it and who is typing, live while the page is
//! open. The view stays mounted when the room changes (links between rooms), so the listens follow the key.
use std::time::Duration;

use leptos::{html, prelude::*};
use leptos_router::{components::A, hooks::use_params_map};

use super::shared;
use crate::{
    api::{
        error_text, list_rooms, listen_room, listen_typing, room_history, unlisten_room, unlisten_typing,
        PostMessage, Typing,
    },
    model::RoomMessage,
    topics::{RoomTopic, TypingTopic},
};

#[component]
pub fn RoomPage() -> impl IntoView {
    let params = use_params_map();
    let room = Memo::new(move |_| params.read().get("id").and_then(|id| id.parse::<i64>().ok()));
    let valid = Memo::new(move |_| room.get().is_some());
    move || match valid.get() {
        true => view! { <RoomView room=Signal::derive(move || room.get().unwrap_or_default())/> }.into_any(),
        false => view! { <p class="error">"There is no such room."</p> }.into_any(),
    }
}

#[component]
fn RoomView(room: Signal<i64>) -> impl IntoView {
    let shared = shared();
    Effect::new(move |_| shared.current_room.set(Some(room.get())));
    on_cleanup(move || shared.current_room.set(None));

    // Listen first; every confirmed (re)listen and every reset refetches the history, so nothing
    // posted between the history read and the listen falls through.
    let listening = notif::use_listen::<RoomTopic>(room, listen_room, unlisten_room);
    let (listened, resets) = (listening.confirmed_listens(), notif::resets());
    // Who is in the room now (this tab's user too), live: empty until the listen lands.
    let present = listening.present();
    let present_names = move || {
        let mut names = present.get();
        names.sort();
        names
    };
    let history = Resource::new(
        move || (room.get(), listened.get(), resets.get()),
        |(room, _, _)| room_history(room),
    );
    let rooms = Resource::new(|| (), |_| list_rooms());
    // A read that failed (the network went away mid-request) is read again once the stream is
    // live again, rather than leaving an error or a missing list on the page.
    let state = notif::connection_state();
    Effect::new(move |_| {
        if state.get() == notif::ConnectionState::Live {
            if history.get_untracked().is_some_and(|r| r.is_err()) {
                history.refetch();
            }
            if rooms.get_untracked().is_some_and(|r| r.is_err()) {
                rooms.refetch();
            }
        }
    });
    let live = RwSignal::new(Vec::<RoomMessage>::new());
    // Who else is typing: each name with the number of its last notification, which a timer
    // 3 s later compares to drop the name unless a newer one came.
    let typing = RwSignal::new(Vec::<(String, u64)>::new());
    Effect::new(move |_| {
        room.track();
        live.set(Vec::new());
        typing.set(Vec::new());
    });
    listening.on_message(move |message| live.update(|list| list.push(message)));
    // A post ends its author's typing.
    listening.on_message(move |m| typing.update(|list| list.retain(|(name, _)| *name != m.message.author)));
    let typists = notif::use_listen::<TypingTopic>(room, listen_typing, unlisten_typing);
    let count = StoredValue::new(0u64);
    typists.on_message(move |name| {
        count.update_value(|n| *n += 1);
        let n = count.get_value();
        typing.update(|list| {
            list.retain(|(other, _)| *other != name);
            list.push((name.clone(), n));
        });
        let expire = move || typing.update(|list| list.retain(|(who, at)| (who, *at) != (&name, n)));
        set_timeout(expire, Duration::from_secs(3));
    });
    let typing_text = move || {
        let names: Vec<String> = typing.get().into_iter().map(|(name, _)| name).collect();
        match names.len() {
            0 => String::new(),
            1 => format!("{} is typing…", names[0]),
            _ => format!("{} are typing…", names.join(", ")),
        }
    };
    // This tab says it is typing at most every 2 s.
    let (say_typing, quiet) = (ServerAction::<Typing>::new(), StoredValue::new(false));
    let on_input = move |_| {
        if !quiet.get_value() {
            quiet.set_value(true);
            say_typing.dispatch(Typing {
                room: room.get_untracked(),
            });
            set_timeout(move || quiet.set_value(false), Duration::from_secs(2));
        }
    };

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
        <Transition fallback=|| ()>
            {move || rooms.get().and_then(|r| r.ok()).map(|rooms| view! {
                <nav class="room-links">
                    {rooms.into_iter().map(|r| view! {
                        <A href=format!("/rooms/{}", r.id)>{format!("#{}", r.name)}</A>
                    }).collect_view()}
                </nav>
            })}
        </Transition>
        <ul class="present" aria-label="In this room">
            {move || present_names().into_iter().map(|name| view! { <li>{name}</li> }).collect_view()}
        </ul>
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
        <p class="typing" aria-live="polite">{typing_text}</p>
        <ActionForm action=post attr:class="post">
            <input type="hidden" name="room" value=move || room.get()/>
            <input name="body" node_ref=input on:input=on_input placeholder="Message (mention someone with @name)" autocomplete="off"/>
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

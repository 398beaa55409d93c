//! Home: sign in, or the list of rooms with follow and mute switches.
use leptos::prelude::*;
use leptos_router::components::A;

use super::{reload, shared};
use crate::api::{error_text, list_rooms, SetFollow, SetMute, SignIn};

#[component]
pub fn Home() -> impl IntoView {
    let viewer = shared().viewer;
    view! {
        <Transition fallback=|| view! { <p>"Loading…"</p> }>
            {move || match viewer.get().map(|v| v.ok().flatten()) {
                None => None,
                Some(None) => Some(view! { <SignInForm/> }.into_any()),
                Some(Some(_)) => Some(view! { <RoomList/> }.into_any()),
            }}
        </Transition>
    }
}

#[component]
fn SignInForm() -> impl IntoView {
    let sign_in = ServerAction::<SignIn>::new();
    Effect::new(move |_| {
        if let Some(Ok(_)) = sign_in.value().get() {
            reload("/");
        }
    });
    let error = move || match sign_in.value().get() {
        Some(Err(e)) => Some(view! { <p class="error">{error_text(&e)}</p> }),
        _ => None,
    };
    view! {
        <h1>"Sign in"</h1>
        <p class="no-password">
            "This demo has no passwords: whoever types a name is that user. That is on purpose: "
            "notif takes a user's identity from whatever sign-in an app already has, and this "
            "demo has none worth the name. Do not type anything private here."
        </p>
        <ActionForm action=sign_in attr:class="sign-in">
            <input name="name" placeholder="Your name" autocomplete="off"/>
            <button type="submit">"Sign in"</button>
        </ActionForm>
        {error}
    }
}

#[component]
fn RoomList() -> impl IntoView {
    let shared = shared();
    let (follow, mute) = (shared.follow, shared.mute);
    let rooms = Resource::new(
        move || (follow.version().get(), mute.version().get()),
        |_| list_rooms(),
    );
    view! {
        <h1>"Rooms"</h1>
        <Transition fallback=|| view! { <p>"Loading…"</p> }>
            {move || rooms.get().map(|result| match result {
                Err(e) => view! { <p class="error">{error_text(&e)}</p> }.into_any(),
                Ok(rooms) => view! {
                    <ul class="rooms">
                        {rooms.into_iter().map(|room| {
                            let (id, followed, muted) = (room.id, room.followed, room.muted);
                            let (name, label) = (room.name.clone(), format!("#{}", room.name));
                            view! {
                                <li data-room=name>
                                    <A href=format!("/rooms/{id}")>{label}</A>
                                    <button class="follow" on:click=move |_| { follow.dispatch(SetFollow { room: id, on: !followed }); }>
                                        {if followed { "Unfollow" } else { "Follow" }}
                                    </button>
                                    <button class="mute" on:click=move |_| { mute.dispatch(SetMute { room: id, on: !muted }); }>
                                        {if muted { "Unmute" } else { "Mute" }}
                                    </button>
                                </li>
                            }
                        }).collect_view()}
                    </ul>
                }.into_any(),
            })}
        </Transition>
    }
}

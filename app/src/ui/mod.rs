//! Components: the shell, the header (who, bell, connection), and the routes.
mod bell;
mod home;
mod room;

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, MetaTags, Stylesheet, Title};
use leptos_router::{
    components::{Route, Router, Routes, A},
    path,
};

use crate::{
    api::{followed_rooms, whoami, SetFollow, SetMute, SignOut},
    model::Viewer,
};

/// The HTML document around the app, and (on the server) the policy that admits its scripts.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    #[cfg(feature = "ssr")]
    crate::server::csp::declare(&options);
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <AutoReload options=options.clone()/>
                <HydrationScripts options/>
                <MetaTags/>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

/// What the pages share: the viewer, preference actions, the room on screen.
#[derive(Clone, Copy)]
pub(crate) struct Shared {
    pub viewer: Resource<Result<Viewer, ServerFnError>>,
    /// Rooms the viewer follows. Created here, not in the bell: resources are matched between
    /// server and browser by creation order, and the bell renders inside a `Transition`.
    pub followed: Resource<Result<Vec<i64>, ServerFnError>>,
    pub follow: ServerAction<SetFollow>,
    pub mute: ServerAction<SetMute>,
    /// The room whose page is open, if any: the bell does not count it.
    pub current_room: RwSignal<Option<i64>>,
}

pub(crate) fn shared() -> Shared {
    expect_context::<Shared>()
}

/// Sends the browser to `href` with a full page load, so the tab's stream reopens under the new
/// identity.
pub(crate) fn reload(href: &str) {
    let _ = window().location().set_href(href);
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    let follow = ServerAction::<SetFollow>::new();
    let shared = Shared {
        viewer: Resource::new(|| (), |_| whoami()),
        followed: Resource::new(move || follow.version().get(), |_| followed_rooms()),
        follow,
        mute: ServerAction::new(),
        current_room: RwSignal::new(None),
    };
    provide_context(shared);
    // Effects run only in the browser, once hydrated: tests wait for this before clicking.
    let hydrated = RwSignal::new(false);
    Effect::new(move |_| hydrated.set(true));
    view! {
        <Stylesheet id="leptos" href="/pkg/notif-demo.css"/>
        <Title text="notif demo"/>
        <Router>
            <Header/>
            <main data-hydrated=move || hydrated.get().to_string()>
                <Routes fallback=|| view! { <p class="error">"There is no such page."</p> }>
                    <Route path=path!("/") view=home::Home/>
                    <Route path=path!("/rooms/:id") view=room::RoomPage/>
                </Routes>
            </main>
        </Router>
    }
}

#[component]
fn Header() -> impl IntoView {
    let viewer = shared().viewer;
    let sign_out = ServerAction::<SignOut>::new();
    Effect::new(move |_| {
        if let Some(Ok(())) = sign_out.value().get() {
            reload("/");
        }
    });
    view! {
        <header>
            <A href="/">"notif demo"</A>
            // Signed-out visitors get no stream (see `server::hub`): nothing to show them.
            <Transition fallback=|| ()>
                {move || {
                    viewer.get().and_then(|v| v.ok()).flatten().map(|name| {
                        view! {
                            <ConnectionIndicator/>
                            <bell::Bell/>
                            <span class="who">{name}</span>
                            <button class="sign-out" on:click=move |_| { sign_out.dispatch(SignOut {}); }>
                                "Sign out"
                            </button>
                        }
                    })
                }}
            </Transition>
        </header>
    }
}

/// Shows the tab's stream state: connecting, live or reconnecting; `data-resets` counts the
/// reconnects that could not resume (the page refetched what it shows).
#[component]
fn ConnectionIndicator() -> impl IntoView {
    let state = notif::connection_state();
    let resets = notif::resets();
    let title = move || match resets.get() {
        0 => "notifications".to_owned(),
        n => format!("notifications; started over {n} time(s) after losing the connection"),
    };
    view! {
        <span class="conn" data-state=move || state.get().to_string() data-resets=move || resets.get() title=title>
            {move || state.get().to_string()}
        </span>
    }
}

//! The smallest complete Leptos app using notif: a shared counter. Each click notifies the
//! `clicks` key; every open tab shows the new count live.
#![allow(missing_docs)]
use leptos::prelude::*;

/// What tabs listen on: a counter, by number (this app has one, number 1); each listener gets
/// its new count.
pub struct Clicks;
impl notif::SimpleTopic for Clicks {
    const NAME: &'static str = "clicks";
    type Key = u32;
    type Message = u64;
    type Identity = ();
}

#[cfg(feature = "ssr")]
static COUNT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Listens the calling tab, then reads the count: nothing can fall between the two.
#[server(endpoint = "clicks/listen", client = notif::TabClient)]
pub async fn listen_clicks(key: u32) -> Result<u64, ServerFnError> {
    notif::listen::<Clicks>(&key).await?;
    Ok(COUNT.load(std::sync::atomic::Ordering::Relaxed))
}

#[server(endpoint = "clicks/unlisten", client = notif::TabClient)]
pub async fn unlisten_clicks(key: u32) -> Result<(), ServerFnError> {
    notif::unlisten::<Clicks>(&key).await?;
    Ok(())
}

/// Counts a click and tells every tab listening.
#[server(endpoint = "clicks/click")]
pub async fn click() -> Result<u64, ServerFnError> {
    let hub = use_context::<notif::Hub<()>>().ok_or_else(|| ServerFnError::new("no hub"))?;
    let count = COUNT.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
    hub.notify::<Clicks>(&1, &count, notif::Exclude::Nobody).await?;
    Ok(count)
}

#[component]
pub fn App() -> impl IntoView {
    let count = RwSignal::new(None::<u64>);
    // The listen's answer is the count when it started; notifications follow.
    let listen = move |key: u32| async move {
        count.set(Some(listen_clicks(key).await?));
        Ok::<(), ServerFnError>(())
    };
    let clicks = notif::use_listen::<Clicks>(1, listen, unlisten_clicks);
    clicks.on_message(move |n| count.set(Some(n)));
    let press = Action::new(|_: &()| click());
    view! {
        <main>
            <h1>"Clicks"</h1>
            <p class="count">{move || count.get().map_or("…".to_string(), |n| n.to_string())}</p>
            <button class="click" on:click=move |_| { press.dispatch(()); }>"Click"</button>
            <p class="conn">{move || notif::connection_state().get().to_string()}</p>
        </main>
    }
}

pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <HydrationScripts options/>
            </head>
            <body><App/></body>
        </html>
    }
}

#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(App);
}

//! Serves the minimal app: the hub's stream routes, the server functions, the page.
use leptos::prelude::*;
use leptos_axum::{generate_route_list, LeptosRoutes};
use minimal::{shell, App};

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let options = get_configuration(None)
        .expect("leptos configuration")
        .leptos_options;
    let addr = options.site_addr;
    // Everyone is the same identity, `()`: a demo counter has no users.
    let hub: notif::Hub<()> = notif::Hub::new(notif::Config::default(), |_| async {});
    let context_hub = hub.clone();
    let app = axum::Router::new()
        .merge(hub.routes())
        .leptos_routes_with_context(
            &options,
            generate_route_list(App),
            move || provide_context(context_hub.clone()),
            {
                let options = options.clone();
                move || shell(options.clone())
            },
        )
        .fallback(leptos_axum::file_and_error_handler(shell))
        .with_state(options);
    notif::serve(notif::bind(addr)?, app)
        .with_graceful_shutdown(&hub, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
}

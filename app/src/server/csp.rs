//! The pages' Content-Security-Policy. Scripts run only from this origin or inline with this
//! response's nonce (Leptos puts it on its hydration, streaming and reload scripts), wasm may
//! be compiled, and the page connects only back to its own origin (server functions and the
//! notification WebSocket: CSP Level 3 counts `ws://` to the page's host and port as `'self'`).
//! Nothing may frame the page, load plugins or rebase its links. Declared from inside the
//! render, which is where the nonce is known.
use leptos::{config::LeptosOptions, nonce::use_nonce, prelude::use_context};

/// Sets the policy on the response being rendered (call it from the shell).
pub fn declare(options: &LeptosOptions) {
    let Some(response) = use_context::<leptos_axum::ResponseOptions>() else {
        return;
    };
    let policy = policy(use_nonce().as_deref(), reload_port(options));
    if let Ok(value) = http::HeaderValue::from_str(&policy) {
        response.insert_header(http::header::CONTENT_SECURITY_POLICY, value);
    }
}

/// The port `cargo leptos watch`'s reload script connects to, when it is on the page
/// (`AutoReload` renders it only while `LEPTOS_WATCH` is set).
fn reload_port(options: &LeptosOptions) -> Option<u32> {
    std::env::var("LEPTOS_WATCH")
        .is_ok()
        .then(|| options.reload_external_port.unwrap_or(options.reload_port))
}

/// The policy for a page whose inline scripts carry `nonce`.
pub fn policy(nonce: Option<&str>, reload_port: Option<u32>) -> String {
    let nonce = nonce.map(|n| format!(" 'nonce-{n}'")).unwrap_or_default();
    // The reload script connects to the page's host name on another port (dev only).
    let reload = reload_port
        .map(|port| format!(" ws://*:{port} wss://*:{port}"))
        .unwrap_or_default();
    format!(
        "default-src 'self'; script-src 'self'{nonce} 'wasm-unsafe-eval'; \
         connect-src 'self'{reload}; object-src 'none'; base-uri 'self'; form-action 'self'; \
         frame-ancestors 'none'"
    )
}

#[cfg(test)]
mod tests {
    use super::policy;

    #[test]
    fn the_nonce_admits_inline_scripts_and_the_reload_port_only_in_watch_mode() {
        let page = policy(Some("abc"), None);
        assert!(
            page.contains("script-src 'self' 'nonce-abc' 'wasm-unsafe-eval';"),
            "{page}"
        );
        assert!(page.contains("connect-src 'self';"), "{page}");
        assert!(page.contains("frame-ancestors 'none'"), "{page}");
        let watched = policy(Some("abc"), Some(3001));
        assert!(
            watched.contains("connect-src 'self' ws://*:3001 wss://*:3001;"),
            "{watched}"
        );
    }
}

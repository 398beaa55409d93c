//! Refuses cross-origin requests that can change state (every method but GET, HEAD and OPTIONS)
//! with 403 and a reason, before any server function runs. A page elsewhere, including on a
//! sibling port or subdomain (same *site*, so `SameSite=Lax` cookies still go along), cannot
//! then post, follow, mute, listen or sign out as the user whose browser visits it; nor with a
//! `text/plain` body, since the check ignores the content type.
//!
//! The rule OWASP, Rails and Phoenix apply:
//! 1. `Sec-Fetch-Site`, sent by every current browser, must be `same-origin` (or `none`: typed
//!    by the user);
//! 2. without it, `Origin` must be this server's: equal to `NOTIF_PUBLIC_ORIGIN` when that is
//!    set, else naming the request's `Host` (any scheme). `Origin: null` is refused;
//! 3. with neither, the request did not come from a browser page (curl, another server, tests),
//!    which holds no visitor's cookies: it goes through.
use axum::{
    extract::{Request, State},
    http::{header, HeaderMap, Method, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
};

/// Where browsers reach this server, when the `Host` it sees is not that (a proxy rewrites it)
/// or the scheme must be pinned (`https://` behind a TLS proxy).
#[derive(Clone, Debug, Default)]
pub struct Policy {
    /// `scheme://host[:port]`, normalized (lower case, no default port).
    public_origin: Option<String>,
}

impl Policy {
    /// The policy for an origin such as `https://chat.example.com` (no path).
    pub fn public_origin(origin: &str) -> Result<Self, String> {
        let normalized = normalize(origin).ok_or_else(|| {
            format!("{origin:?} is not an origin: expected scheme://host[:port], as http://127.0.0.1:3000")
        })?;
        Ok(Policy {
            public_origin: Some(normalized),
        })
    }

    /// From `NOTIF_PUBLIC_ORIGIN` (unset or empty: compare with `Host`).
    pub fn from_env() -> Result<Self, String> {
        match std::env::var("NOTIF_PUBLIC_ORIGIN") {
            Ok(origin) if !origin.is_empty() => {
                Self::public_origin(&origin).map_err(|e| format!("NOTIF_PUBLIC_ORIGIN: {e}"))
            }
            _ => Ok(Policy::default()),
        }
    }

    /// Why a request with this method and these headers is refused, if it is.
    pub fn refusal(&self, method: &Method, headers: &HeaderMap) -> Option<String> {
        if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
            return None;
        }
        let text = |name| headers.get(name).map(|v| v.to_str().unwrap_or(""));
        if let Some(site) = text("sec-fetch-site") {
            return (!matches!(site, "same-origin" | "none"))
                .then(|| format!("cross-origin request refused (Sec-Fetch-Site: {site})"));
        }
        let origin = text(header::ORIGIN.as_str())?;
        let refused = || Some(format!("cross-origin request refused (Origin: {origin})"));
        let Some(origin_norm) = normalize(origin) else {
            return refused(); // `null` and anything else that names no origin
        };
        let same = match &self.public_origin {
            Some(public) => origin_norm == *public,
            None => text(header::HOST.as_str()).is_some_and(|host| {
                let scheme = &origin_norm[..origin_norm.find("://").unwrap_or(0)];
                normalize(&format!("{scheme}://{host}")).as_deref() == Some(origin_norm.as_str())
            }),
        };
        if same {
            None
        } else {
            refused()
        }
    }
}

/// `scheme://host[:port]` in lower case without the scheme's default port; `None` for
/// anything else (a path, user info, `null`, an unknown scheme).
fn normalize(origin: &str) -> Option<String> {
    let origin = origin.trim().to_ascii_lowercase();
    let (scheme, authority) = origin.split_once("://")?;
    let default_port = match scheme {
        "http" => ":80",
        "https" => ":443",
        _ => return None,
    };
    let ok = |c: char| c.is_ascii_alphanumeric() || ".-:[]".contains(c);
    if authority.is_empty() || !authority.chars().all(ok) {
        return None;
    }
    let authority = authority.strip_suffix(default_port).unwrap_or(authority);
    Some(format!("{scheme}://{authority}"))
}

/// The middleware: 403 with the reason as a plain-text body, or on to the app.
pub async fn refuse_cross_origin(State(policy): State<Policy>, request: Request, next: Next) -> Response {
    match policy.refusal(request.method(), request.headers()) {
        Some(reason) => (StatusCode::FORBIDDEN, reason).into_response(),
        None => next.run(request).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn refused(policy: &Policy, method: Method, headers: &[(&'static str, &'static str)]) -> bool {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.insert(*name, HeaderValue::from_static(value));
        }
        policy.refusal(&method, &map).is_some()
    }

    #[test]
    fn posts_from_other_origins_are_refused() {
        let p = Policy::default();
        let host = ("host", "127.0.0.1:3000");
        for origin in [
            "http://evil.example",
            "http://127.0.0.1:3001",
            "http://evil.127.0.0.1:3000",
            "null",
            "http://127.0.0.1:3000/path",
            "ftp://127.0.0.1:3000",
        ] {
            assert!(refused(&p, Method::POST, &[host, ("origin", origin)]), "{origin}");
        }
        for site in ["cross-site", "same-site", ""] {
            assert!(
                refused(&p, Method::POST, &[host, ("sec-fetch-site", site)]),
                "{site}"
            );
        }
        // Sec-Fetch-Site decides when present, whatever Origin says.
        let same = ("origin", "http://127.0.0.1:3000");
        assert!(refused(
            &p,
            Method::POST,
            &[host, same, ("sec-fetch-site", "cross-site")]
        ));
        assert!(refused(
            &p,
            Method::DELETE,
            &[host, ("origin", "http://evil.example")]
        ));
        assert!(
            refused(&p, Method::POST, &[("origin", "http://127.0.0.1:3000")]),
            "no Host"
        );
    }

    #[test]
    fn same_origin_header_less_and_safe_requests_go_through() {
        let p = Policy::default();
        let host = ("host", "127.0.0.1:3000");
        assert!(!refused(
            &p,
            Method::POST,
            &[host, ("sec-fetch-site", "same-origin")]
        ));
        assert!(!refused(&p, Method::POST, &[host, ("sec-fetch-site", "none")]));
        assert!(!refused(
            &p,
            Method::POST,
            &[host, ("origin", "http://127.0.0.1:3000")]
        ));
        assert!(!refused(
            &p,
            Method::POST,
            &[("host", "Example.com"), ("origin", "https://example.com:443")]
        ));
        assert!(!refused(
            &p,
            Method::POST,
            &[("host", "example.com:80"), ("origin", "http://example.com")]
        ));
        assert!(!refused(&p, Method::POST, &[host]), "curl, servers, tests");
        for method in [Method::GET, Method::HEAD, Method::OPTIONS] {
            assert!(!refused(
                &p,
                method,
                &[
                    host,
                    ("origin", "http://evil.example"),
                    ("sec-fetch-site", "cross-site")
                ]
            ));
        }
    }

    #[test]
    fn a_public_origin_pins_scheme_host_and_port() {
        let p = Policy::public_origin("https://Chat.Example.com:443").unwrap();
        let proxied = ("host", "127.0.0.1:3000");
        assert!(!refused(
            &p,
            Method::POST,
            &[proxied, ("origin", "https://chat.example.com")]
        ));
        assert!(refused(
            &p,
            Method::POST,
            &[proxied, ("origin", "http://chat.example.com")]
        ));
        assert!(refused(
            &p,
            Method::POST,
            &[proxied, ("origin", "http://127.0.0.1:3000")]
        ));
        assert!(Policy::public_origin("chat.example.com").is_err());
        assert!(Policy::public_origin("https://chat.example.com/").is_err());
    }
}

//! Which pages may open a stream. Browsers send cookies on a cross-site WebSocket handshake and
//! `SameSite=Lax` does not stop a sibling subdomain, so a stream is refused unless its `Origin`
//! is the server's own (the origin its `Host` names) or one the app listed; as Phoenix,
//! ActionCable and Centrifugo do, and OWASP's WebSocket cheat sheet asks.
use std::fmt;

use http::{header, request::Parts, uri::Authority};

use super::StreamRefused;
use crate::Config;

/// A web origin: scheme, host and port, as browsers write it in `Origin` (RFC 6454), with the
/// scheme's default port left out and letters lowercased so that equal origins compare equal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WebOrigin {
    scheme: String,
    host: String,
    port: Option<u16>,
}

impl WebOrigin {
    /// `scheme://host[:port]` with nothing after it; `None` for anything else (`null`, a path,
    /// user info, a wildcard).
    pub fn parse(text: &str) -> Option<WebOrigin> {
        let (scheme, authority) = text.split_once("://")?;
        let valid_scheme = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
        if !valid_scheme {
            return None;
        }
        Self::from_parts(scheme, authority)
    }

    /// The origin of `scheme` and an `authority` (`host[:port]`, as in a `Host` header).
    fn from_parts(scheme: &str, authority: &str) -> Option<WebOrigin> {
        if authority.is_empty() || authority.contains(['@', '/', '?', '#', '*']) {
            return None;
        }
        // `Authority` would take a port past 65535 as no port at all.
        let after_host = authority.rsplit_once(']').map_or(authority, |(_, rest)| rest);
        if let Some((_, port)) = after_host.rsplit_once(':') {
            port.parse::<u16>().ok()?;
        }
        let authority: Authority = authority.parse().ok()?;
        let scheme = scheme.to_ascii_lowercase();
        let default = match scheme.as_str() {
            "http" | "ws" => Some(80),
            "https" | "wss" => Some(443),
            _ => None,
        };
        Some(WebOrigin {
            host: authority.host().to_ascii_lowercase(),
            port: authority.port_u16().filter(|port| Some(*port) != default),
            scheme,
        })
    }

    /// The origin the request was sent to: its `Host` (or the URI's authority) and the scheme
    /// of the connection (plain HTTP unless the URI says otherwise), or those a trusted proxy
    /// forwarded.
    fn of_server(parts: &Parts, trust_forwarded: bool) -> Option<WebOrigin> {
        let forwarded = |name: &str| {
            trust_forwarded
                .then(|| parts.headers.get(name)?.to_str().ok()?.split(',').next())
                .flatten()
                .map(str::trim)
        };
        let scheme = forwarded("x-forwarded-proto")
            .or(parts.uri.scheme_str())
            .unwrap_or("http");
        let host = match forwarded("x-forwarded-host") {
            Some(host) => host,
            None => match parts.headers.get(header::HOST) {
                Some(host) => host.to_str().ok()?,
                None => parts.uri.authority()?.as_str(),
            },
        };
        Self::from_parts(scheme, host)
    }
}

impl fmt::Display for WebOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.scheme, self.host)?;
        match self.port {
            Some(port) => write!(f, ":{port}"),
            None => Ok(()),
        }
    }
}

/// Refuses a stream request from an origin `config` does not allow, before anything is
/// resolved or allocated for it.
pub(crate) fn check(parts: &Parts, config: &Config) -> Result<(), StreamRefused> {
    let mut values = parts.headers.get_all(header::ORIGIN).iter();
    let Some(value) = values.next() else {
        // Browsers leave `Origin` off some cross-site requests (a no-cors `fetch`, an `<img>`)
        // but say where they come from in `Sec-Fetch-Site`; curl and apps send neither.
        let site = parts.headers.get("sec-fetch-site").map(|v| v.as_bytes());
        if site.is_some_and(|site| site != b"same-origin" && site != b"none") {
            return Err(StreamRefused::ForeignOrigin);
        }
        return match config.require_origin {
            true => Err(StreamRefused::NoOrigin),
            false => Ok(()),
        };
    };
    if values.next().is_some() {
        return Err(StreamRefused::ForeignOrigin);
    }
    let value = value.to_str().map_err(|_| StreamRefused::ForeignOrigin)?;
    if value.trim() == "null" {
        // Sandboxed frames, `file:` pages, some redirects: no origin anyone can vouch for.
        return Err(StreamRefused::NullOrigin);
    }
    let origin = WebOrigin::parse(value.trim()).ok_or(StreamRefused::ForeignOrigin)?;
    let own = WebOrigin::of_server(parts, config.trust_forwarded);
    let listed = || {
        config
            .allowed_origins
            .iter()
            .any(|allowed| WebOrigin::parse(allowed).as_ref() == Some(&origin))
    };
    if own.as_ref() == Some(&origin) || listed() {
        Ok(())
    } else {
        Err(StreamRefused::ForeignOrigin)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn request(host: &str, origin: Option<&str>, extra: &[(&str, &str)]) -> Parts {
        let mut request = http::Request::builder().uri("/notif/ws").header("host", host);
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        for (name, value) in extra {
            request = request.header(*name, *value);
        }
        request.body(()).unwrap().into_parts().0
    }

    #[test]
    fn origins_compare_as_browsers_write_them() {
        let parse = |s| WebOrigin::parse(s).map(|o| o.to_string());
        assert_eq!(
            parse("HTTP://Example.COM:80").as_deref(),
            Some("http://example.com")
        );
        assert_eq!(
            parse("https://example.com:443").as_deref(),
            Some("https://example.com")
        );
        assert_eq!(
            parse("https://example.com:8443").as_deref(),
            Some("https://example.com:8443")
        );
        assert_eq!(parse("http://[::1]:3000").as_deref(), Some("http://[::1]:3000"));
        for bad in [
            "null",
            "example.com",
            "http://",
            "http://a.example.com/",
            "http://user@example.com",
            "http://*.example.com",
            "http://example.com:99999",
            "1http://example.com",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn only_the_servers_own_origin_and_listed_ones_may_open_a_stream() {
        let config = Config::default();
        let check = |origin, host| check(&request(host, origin, &[]), &config);
        assert_eq!(check(Some("http://app.test:3000"), "app.test:3000"), Ok(()));
        assert_eq!(check(Some("http://APP.test"), "app.test:80"), Ok(()));
        assert_eq!(check(None, "app.test:3000"), Ok(()), "curl sends no Origin");
        for (origin, refused) in [
            ("http://evil.example", StreamRefused::ForeignOrigin),
            ("http://sub.app.test:3000", StreamRefused::ForeignOrigin),
            ("https://app.test:3000", StreamRefused::ForeignOrigin),
            ("http://app.test:3001", StreamRefused::ForeignOrigin),
            ("http://app.test:3000.evil.example", StreamRefused::ForeignOrigin),
            ("null", StreamRefused::NullOrigin),
            ("garbage", StreamRefused::ForeignOrigin),
        ] {
            assert_eq!(check(Some(origin), "app.test:3000"), Err(refused), "{origin}");
        }
        for site in ["cross-site", "same-site"] {
            let no_origin = request("app.test", None, &[("sec-fetch-site", site)]);
            assert_eq!(
                super::check(&no_origin, &config),
                Err(StreamRefused::ForeignOrigin),
                "{site}"
            );
        }
        for site in ["same-origin", "none"] {
            let no_origin = request("app.test", None, &[("sec-fetch-site", site)]);
            assert_eq!(super::check(&no_origin, &config), Ok(()), "{site}");
        }
        let two = request(
            "app.test",
            Some("http://app.test"),
            &[("origin", "http://app.test")],
        );
        assert_eq!(super::check(&two, &config), Err(StreamRefused::ForeignOrigin));
    }

    #[test]
    fn settings_add_origins_require_one_or_trust_a_proxy() {
        let config = Config {
            allowed_origins: vec!["https://other.example".into()],
            require_origin: true,
            ..Config::default()
        };
        let host = "app.test";
        assert_eq!(
            check(&request(host, Some("https://other.example:443"), &[]), &config),
            Ok(())
        );
        assert_eq!(
            check(&request(host, None, &[]), &config),
            Err(StreamRefused::NoOrigin)
        );
        let proxied = request(
            "10.0.0.5:3000",
            Some("https://app.example.com"),
            &[
                ("x-forwarded-proto", "https"),
                ("x-forwarded-host", "app.example.com"),
            ],
        );
        assert_eq!(
            check(&proxied, &Config::default()),
            Err(StreamRefused::ForeignOrigin)
        );
        let trusting = Config {
            trust_forwarded: true,
            ..Config::default()
        };
        assert_eq!(check(&proxied, &trusting), Ok(()));
    }

    proptest! {
        #[test]
        fn any_origin_header_is_an_answer_never_a_panic(origin in proptest::collection::vec(any::<u8>(), 0..60), host in "[ -~]{0,40}") {
            let Ok(origin) = http::HeaderValue::from_bytes(&origin) else { return Ok(()) };
            let Ok(host) = http::HeaderValue::from_str(&host) else { return Ok(()) };
            let mut parts = request("x", None, &[]);
            parts.headers.insert(header::HOST, host);
            parts.headers.insert(header::ORIGIN, origin);
            let _ = check(&parts, &Config::default());
        }
    }
}

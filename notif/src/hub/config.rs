//! Hub configuration, with documented defaults and env var overrides.
use std::time::Duration;

/// Limits and timings of a [`Hub`](crate::Hub). `Config::default()` is what the docs promise;
/// [`Config::from_env`] reads overrides.
///
/// Settings may be added in later versions, so a `Config` is not built field by field: start
/// from `Config::default()` or `Config::from_env()` and set what differs.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// let mut config = notif::Config::default();
/// config.resume_window = Duration::from_secs(60);
/// config.allowed_origins = vec!["https://app.example.com".into()];
/// # let _ = config;
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// How long a tab's state outlives its stream (`NOTIF_RESUME_WINDOW_MS`, default 30 s).
    pub resume_window: Duration,
    /// Frames queued per tab before it counts as lagging and is cut (`NOTIF_QUEUE_CAPACITY`, default 256).
    pub queue_capacity: usize,
    /// Frames kept per tab for replay after a reconnect (`NOTIF_REPLAY_CAPACITY`, default 256).
    /// A tab that missed more than this starts over with `recovered: false`.
    pub replay_capacity: usize,
    /// Largest encoded notification `notify` accepts (`NOTIF_MAX_MESSAGE_BYTES`, default 64 KiB).
    pub max_message_bytes: usize,
    /// Keys one tab may listen on at once (`NOTIF_MAX_LISTENS`, default 256).
    pub max_listens_per_tab: usize,
    /// How often an idle stream gets something, so proxies do not close it
    /// (`NOTIF_HEARTBEAT_MS`, default 15 s). WebSocket: one clock per hub pings every socket
    /// that wrote nothing since its last tick; browsers answer by themselves, and when the tab
    /// keeps frames for a resume the ping asks for an acknowledgement, after which its replay
    /// buffer drops them. SSE: a `:hb` comment after each interval with no frame sent.
    pub heartbeat: Duration,
    /// SSE only: the `retry:` sent with `hello`, how long an `EventSource` waits before it
    /// reconnects (`NOTIF_RETRY_MS`, default 1 s). WebSocket streams do not use it: notif's
    /// own browser half reconnects with its own backoff (0.5 s to 30 s, with jitter).
    pub retry: Duration,
    /// Messages from other nodes waiting to be applied before this node counts as fallen
    /// behind: it then drops them and resets the tabs listening on their keys, which start over
    /// (`NOTIF_BACKPLANE_BACKLOG`, default 65,536). Bounds a node's memory when the others
    /// notify faster than it can deliver.
    pub backplane_backlog: usize,
    /// Origins allowed to open a stream besides the server's own, exactly as browsers send
    /// them (`https://app.example.com`; no wildcard, no path): `NOTIF_ALLOWED_ORIGINS`, comma
    /// separated, default none. The server's own origin is the one the request's `Host` names.
    pub allowed_origins: Vec<String>,
    /// Refuse streams whose request carries no `Origin` (`NOTIF_REQUIRE_ORIGIN=true`, default
    /// false: curl, native apps and other servers send none, and no browser omits it on a
    /// WebSocket handshake).
    pub require_origin: bool,
    /// Take the server's own scheme and host from `X-Forwarded-Proto` and `X-Forwarded-Host`,
    /// and a stream's remote address from the last `X-Forwarded-For` entry
    /// (`NOTIF_TRUST_FORWARDED=true`, default false). Turn on only behind a proxy that sets
    /// these headers itself, replacing what clients sent.
    pub trust_forwarded: bool,
    /// Tabs one identity may hold, connected or within their resume window
    /// (`NOTIF_MAX_TABS_PER_IDENTITY`, default 64). At the cap, a new tab takes the place of the
    /// identity's oldest disconnected tab; when every one is connected, the stream is refused
    /// (429). An identity many people share (anonymous visitors) shares this cap.
    pub max_tabs_per_identity: usize,
    /// Stream connections open at once from one remote address
    /// (`NOTIF_MAX_STREAMS_PER_ADDRESS`, default 256); beyond, refused (429).
    pub max_streams_per_address: usize,
    /// How often every open stream's identity is resolved again from the request that opened
    /// it; a stream whose request no longer resolves to the same identity (its session was
    /// deleted or expired) ends with `bye` `disconnected` (`NOTIF_REVALIDATE_MS`, default 5
    /// minutes; 0: never).
    pub revalidate: Duration,
    /// The request headers the hub's `identify` reads, kept per open stream so re-validation
    /// can run it again (default `cookie` and `authorization`). If `identify` reads anything
    /// else, list it here, or turn re-validation off (`revalidate` zero): a stream whose
    /// identity cannot be resolved again from these is ended at the first re-validation.
    pub identity_headers: Vec<http::HeaderName>,
    /// How long a graceful shutdown waits for streams to take their `bye` and close
    /// (`NOTIF_SHUTDOWN_MS`, default 10 s).
    pub shutdown_timeout: Duration,
    /// With a backplane, how long a node shutting down keeps its tabs after their `bye`, so the
    /// nodes their browsers reconnect to can take them over with what they missed
    /// (`NOTIF_DRAIN_MS`, default 10 s; 0: none, the tabs start over). At most
    /// `resume_window`: a tab is not kept longer than that anyway.
    pub drain: Duration,
    /// With a backplane, how long a node stays subscribed to a key after its last local
    /// listener left (`NOTIF_UNSUBSCRIBE_AFTER_MS`, default 10 s): tabs moving between nodes
    /// often bring a listener back at once, and an unbroken subscription lets the node tell a
    /// lost message from one it was not subscribed for.
    pub unsubscribe_after: Duration,
    /// With a backplane, how often a node tells the others it is alive
    /// (`NOTIF_NODE_HEARTBEAT_MS`, default 1 s).
    pub node_heartbeat: Duration,
    /// With a backplane, how long a node may stay silent before the others count it gone and
    /// drop the identities it had present (`NOTIF_NODE_TIMEOUT_MS`, default 3 s: a few
    /// heartbeats). A node that was only slow is heard again and its presence comes back.
    pub node_timeout: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            resume_window: Duration::from_secs(30),
            queue_capacity: 256,
            replay_capacity: 256,
            max_message_bytes: 64 * 1024,
            max_listens_per_tab: 256,
            heartbeat: Duration::from_secs(15),
            retry: Duration::from_secs(1),
            backplane_backlog: 65_536,
            allowed_origins: Vec::new(),
            require_origin: false,
            trust_forwarded: false,
            max_tabs_per_identity: 64,
            max_streams_per_address: 256,
            revalidate: Duration::from_secs(300),
            identity_headers: vec![http::header::COOKIE, http::header::AUTHORIZATION],
            shutdown_timeout: Duration::from_secs(10),
            drain: Duration::from_secs(10),
            unsubscribe_after: Duration::from_secs(10),
            node_heartbeat: Duration::from_secs(1),
            node_timeout: Duration::from_secs(3),
        }
    }
}

/// An env var that is set but unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name}={value:?} is not valid: expected {expected}")]
#[non_exhaustive]
pub struct ConfigError {
    /// The variable.
    pub name: &'static str,
    /// What it holds.
    pub value: String,
    /// What it should hold.
    pub expected: &'static str,
}

impl Config {
    /// How long a node shutting down keeps its tabs: `drain`, at most `resume_window`.
    pub(crate) fn drain(&self) -> Duration {
        self.drain.min(self.resume_window)
    }

    /// Defaults, overridden by these env vars (each also named on its field); an unset variable
    /// keeps its default:
    ///
    /// - limits: `NOTIF_RESUME_WINDOW_MS`, `NOTIF_QUEUE_CAPACITY`, `NOTIF_REPLAY_CAPACITY`,
    ///   `NOTIF_MAX_MESSAGE_BYTES`, `NOTIF_MAX_LISTENS`, `NOTIF_HEARTBEAT_MS`, `NOTIF_RETRY_MS`;
    /// - who may open streams, caps, sessions, shutdown: `NOTIF_ALLOWED_ORIGINS`,
    ///   `NOTIF_REQUIRE_ORIGIN`, `NOTIF_TRUST_FORWARDED`, `NOTIF_MAX_TABS_PER_IDENTITY`,
    ///   `NOTIF_MAX_STREAMS_PER_ADDRESS`, `NOTIF_REVALIDATE_MS`, `NOTIF_SHUTDOWN_MS`;
    /// - several nodes: `NOTIF_BACKPLANE_BACKLOG`, `NOTIF_DRAIN_MS`, `NOTIF_UNSUBSCRIBE_AFTER_MS`,
    ///   `NOTIF_NODE_HEARTBEAT_MS`, `NOTIF_NODE_TIMEOUT_MS`.
    ///
    /// It reads nothing else (`identity_headers` has no variable). Whether the hub is one node
    /// of several is the backplane's to say ([`Hub::with_backplane`](crate::Hub::with_backplane);
    /// `RedisBackplane::from_env` reads `NOTIF_REDIS_URL`), and how long an idle HTTP connection
    /// stays open is [`Serve::idle_timeout`](crate::Serve::idle_timeout)'s (the demo server
    /// reads its own `NOTIF_HTTP_IDLE_MS`), as docs/OPERATIONS.md shows.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the first variable that is set but unusable: a value that is
    /// not a whole number, or is below its minimum (64 for `NOTIF_MAX_MESSAGE_BYTES`; 1 for
    /// `NOTIF_QUEUE_CAPACITY`, `NOTIF_MAX_LISTENS`, `NOTIF_BACKPLANE_BACKLOG`,
    /// `NOTIF_MAX_TABS_PER_IDENTITY`, `NOTIF_MAX_STREAMS_PER_ADDRESS`, `NOTIF_HEARTBEAT_MS`,
    /// `NOTIF_NODE_HEARTBEAT_MS` and `NOTIF_NODE_TIMEOUT_MS`); a flag other than `true`,
    /// `false`, `1` or `0`; an entry of `NOTIF_ALLOWED_ORIGINS` that is not
    /// `scheme://host[:port]` alone.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut config = Config::default();
        let number = |name: &'static str, min: u64| -> Result<Option<u64>, ConfigError> {
            let Some(value) = get(name) else { return Ok(None) };
            match value.trim().parse::<u64>() {
                Ok(n) if n >= min => Ok(Some(n)),
                _ => Err(ConfigError {
                    name,
                    value,
                    expected: match min {
                        0 => "a whole number",
                        1 => "a whole number of at least 1",
                        _ => "a whole number of at least 64",
                    },
                }),
            }
        };
        if let Some(ms) = number("NOTIF_RESUME_WINDOW_MS", 0)? {
            config.resume_window = Duration::from_millis(ms);
        }
        if let Some(n) = number("NOTIF_QUEUE_CAPACITY", 1)? {
            config.queue_capacity = n as usize;
        }
        if let Some(n) = number("NOTIF_REPLAY_CAPACITY", 0)? {
            config.replay_capacity = n as usize;
        }
        if let Some(n) = number("NOTIF_MAX_MESSAGE_BYTES", 64)? {
            config.max_message_bytes = n as usize;
        }
        if let Some(n) = number("NOTIF_MAX_LISTENS", 1)? {
            config.max_listens_per_tab = n as usize;
        }
        if let Some(ms) = number("NOTIF_HEARTBEAT_MS", 1)? {
            config.heartbeat = Duration::from_millis(ms);
        }
        if let Some(ms) = number("NOTIF_RETRY_MS", 0)? {
            config.retry = Duration::from_millis(ms);
        }
        if let Some(n) = number("NOTIF_BACKPLANE_BACKLOG", 1)? {
            config.backplane_backlog = n as usize;
        }
        if let Some(n) = number("NOTIF_MAX_TABS_PER_IDENTITY", 1)? {
            config.max_tabs_per_identity = n as usize;
        }
        if let Some(n) = number("NOTIF_MAX_STREAMS_PER_ADDRESS", 1)? {
            config.max_streams_per_address = n as usize;
        }
        if let Some(ms) = number("NOTIF_REVALIDATE_MS", 0)? {
            config.revalidate = Duration::from_millis(ms);
        }
        if let Some(ms) = number("NOTIF_SHUTDOWN_MS", 0)? {
            config.shutdown_timeout = Duration::from_millis(ms);
        }
        if let Some(ms) = number("NOTIF_DRAIN_MS", 0)? {
            config.drain = Duration::from_millis(ms);
        }
        if let Some(ms) = number("NOTIF_UNSUBSCRIBE_AFTER_MS", 0)? {
            config.unsubscribe_after = Duration::from_millis(ms);
        }
        if let Some(ms) = number("NOTIF_NODE_HEARTBEAT_MS", 1)? {
            config.node_heartbeat = Duration::from_millis(ms);
        }
        if let Some(ms) = number("NOTIF_NODE_TIMEOUT_MS", 1)? {
            config.node_timeout = Duration::from_millis(ms);
        }
        let flag = |name: &'static str| -> Result<Option<bool>, ConfigError> {
            let Some(value) = get(name) else { return Ok(None) };
            match value.trim() {
                "1" | "true" => Ok(Some(true)),
                "0" | "false" => Ok(Some(false)),
                _ => Err(ConfigError {
                    name,
                    value,
                    expected: "true or false",
                }),
            }
        };
        if let Some(on) = flag("NOTIF_REQUIRE_ORIGIN")? {
            config.require_origin = on;
        }
        if let Some(on) = flag("NOTIF_TRUST_FORWARDED")? {
            config.trust_forwarded = on;
        }
        if let Some(value) = get("NOTIF_ALLOWED_ORIGINS") {
            config.allowed_origins = value
                .split(',')
                .map(str::trim)
                .filter(|origin| !origin.is_empty())
                .map(|origin| {
                    crate::stream::WebOrigin::parse(origin)
                        .map(|o| o.to_string())
                        .ok_or_else(|| ConfigError {
                            name: "NOTIF_ALLOWED_ORIGINS",
                            value: value.clone(),
                            expected: "origins such as https://app.example.com, comma separated",
                        })
                })
                .collect::<Result<_, _>>()?;
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_overrides_and_rejects_garbage() {
        let config = Config::from_lookup(|n| (n == "NOTIF_RESUME_WINDOW_MS").then(|| "0".into())).unwrap();
        assert_eq!(config.resume_window, Duration::ZERO);
        assert_eq!(config.queue_capacity, 256);
        let err = Config::from_lookup(|n| (n == "NOTIF_QUEUE_CAPACITY").then(|| "0".into())).unwrap_err();
        assert_eq!(err.name, "NOTIF_QUEUE_CAPACITY");
        assert!(Config::from_lookup(|n| (n == "NOTIF_MAX_LISTENS").then(|| "lots".into())).is_err());
        let config = Config::from_lookup(|n| (n == "NOTIF_BACKPLANE_BACKLOG").then(|| "16".into())).unwrap();
        assert_eq!(config.backplane_backlog, 16);
    }

    #[test]
    fn security_settings_read_from_env() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |n: &str| pairs.iter().find(|(k, _)| *k == n).map(|(_, v)| v.to_string())
        };
        let config = Config::from_lookup(env(&[
            (
                "NOTIF_ALLOWED_ORIGINS",
                "https://a.example.com, http://b.example.com:8080",
            ),
            ("NOTIF_REQUIRE_ORIGIN", "true"),
            ("NOTIF_MAX_TABS_PER_IDENTITY", "3"),
            ("NOTIF_REVALIDATE_MS", "0"),
        ]))
        .unwrap();
        assert_eq!(
            config.allowed_origins,
            ["https://a.example.com", "http://b.example.com:8080"]
        );
        assert!(config.require_origin && !config.trust_forwarded);
        assert_eq!(config.max_tabs_per_identity, 3);
        assert_eq!(config.revalidate, Duration::ZERO);
        for bad in [
            ("NOTIF_ALLOWED_ORIGINS", "*.example.com"),
            ("NOTIF_ALLOWED_ORIGINS", "https://a.example.com/path"),
            ("NOTIF_REQUIRE_ORIGIN", "yes please"),
            ("NOTIF_MAX_TABS_PER_IDENTITY", "0"),
        ] {
            let err = Config::from_lookup(|n| (n == bad.0).then(|| bad.1.to_owned())).unwrap_err();
            assert_eq!(err.name, bad.0);
        }
    }

    #[test]
    fn several_nodes_settings_read_from_env_and_the_drain_stays_within_the_window() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |n: &str| pairs.iter().find(|(k, _)| *k == n).map(|(_, v)| v.to_string())
        };
        let config = Config::from_lookup(env(&[
            ("NOTIF_DRAIN_MS", "2500"),
            ("NOTIF_UNSUBSCRIBE_AFTER_MS", "0"),
            ("NOTIF_NODE_HEARTBEAT_MS", "200"),
            ("NOTIF_NODE_TIMEOUT_MS", "700"),
        ]))
        .unwrap();
        assert_eq!(config.drain(), Duration::from_millis(2500));
        assert_eq!(config.unsubscribe_after, Duration::ZERO);
        assert_eq!(
            (config.node_heartbeat, config.node_timeout),
            (Duration::from_millis(200), Duration::from_millis(700))
        );
        let err = Config::from_lookup(env(&[("NOTIF_NODE_HEARTBEAT_MS", "0")])).unwrap_err();
        assert_eq!(err.name, "NOTIF_NODE_HEARTBEAT_MS");
        let config = Config::from_lookup(env(&[
            ("NOTIF_DRAIN_MS", "60000"),
            ("NOTIF_RESUME_WINDOW_MS", "5000"),
        ]))
        .unwrap();
        assert_eq!(
            config.drain(),
            Duration::from_secs(5),
            "a tab is not kept past its window"
        );
        let err = Config::from_lookup(env(&[("NOTIF_DRAIN_MS", "soon")])).unwrap_err();
        assert_eq!(err.name, "NOTIF_DRAIN_MS");
    }
}

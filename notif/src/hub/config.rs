//! Hub configuration, with documented defaults and env var overrides.
use std::time::Duration;

/// Limits and timings of a [`Hub`](crate::Hub). `Config::default()` is what the docs promise;
/// [`Config::from_env`] reads overrides.
#[derive(Debug, Clone, PartialEq, Eq)]
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
    /// Interval of the heartbeat comment (`NOTIF_HEARTBEAT_MS`, default 15 s).
    pub heartbeat: Duration,
    /// Reconnect delay advertised to browsers with `retry:` (`NOTIF_RETRY_MS`, default 1 s).
    pub retry: Duration,
    /// Messages from other nodes waiting to be applied before this node counts as fallen
    /// behind: it then drops them and resets the tabs listening on their keys, which start over
    /// (`NOTIF_BACKPLANE_BACKLOG`, default 65,536). Bounds a node's memory when the others
    /// notify faster than it can deliver.
    pub backplane_backlog: usize,
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
        }
    }
}

/// An env var that is set but unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name}={value:?} is not valid: expected {expected}")]
pub struct ConfigError {
    /// The variable.
    pub name: &'static str,
    /// What it holds.
    pub value: String,
    /// What it should hold.
    pub expected: &'static str,
}

impl Config {
    /// Defaults, overridden by the `NOTIF_*` env vars named on each field.
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
}

//! What crosses nodes, as JSON, after the origin's header (see `node.rs`).
use serde::{Deserialize, Serialize};

use super::{calls, PresenceNews};

/// What crosses nodes, after the origin's header (see `node.rs`). Keys, events and messages
/// travel as the JSON text their node made, so every node derives the same key ids from them.
#[derive(Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub(super) enum Body {
    Notify {
        topic: String,
        key: String,
        event: String,
        exclude: WireExclude,
    },
    Send {
        topic: String,
        identity: String,
        key: String,
        message: String,
    },
    UnlistenIdentity {
        topic: String,
        identity: String,
        key: String,
    },
    Disconnect {
        identity: String,
    },
    /// The origin dropped publishes for these keys (ids; `None`: any key or identity operation):
    /// listeners elsewhere may have missed them.
    Lost {
        keys: Option<Vec<String>>,
    },
    /// A request to the node holding a tab, on that node's channel.
    Call {
        id: u64,
        from: String,
        call: calls::Call,
    },
    /// The answer to a call, on the calling node's channel.
    Reply {
        id: u64,
        reply: calls::Reply,
    },
    /// Presence on a key (id) of a topic with presence, on the key's channel.
    Presence {
        key: String,
        news: PresenceNews,
    },
    /// The origin is alive, on the control channel, every `Config::node_heartbeat`.
    Alive,
}

#[derive(Serialize, Deserialize)]
pub(super) enum WireExclude {
    Nobody,
    // "Client" on the backplane (rolling upgrades): a tab.
    #[serde(rename = "Client")]
    Tab(String),
    Identity(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_excluded_tab_keeps_its_backplane_name() {
        let json =
            serde_json::to_string(&WireExclude::Tab("0123456789abcdef0123456789abcdef".into())).unwrap();
        assert_eq!(json, r#"{"Client":"0123456789abcdef0123456789abcdef"}"#);
    }
}

//! A call and its answer as they cross the backplane. The tab's id is `client` there, its name
//! before tabs were called tabs: nodes of both versions meet during a rolling upgrade.
use serde::{Deserialize, Serialize};

use crate::ListenError;

/// What one node asks the node holding a tab. The tab's id is `client` on the backplane, its name
/// before tabs were called tabs: nodes of both versions meet during a rolling upgrade.
#[derive(Serialize, Deserialize, Debug)]
#[serde(tag = "call", rename_all = "kebab-case")]
pub(in crate::hub::cluster) enum Call {
    Listen {
        #[serde(rename = "client")]
        tab_id: String,
        identity: String,
        key: String,
    },
    Unlisten {
        #[serde(rename = "client")]
        tab_id: String,
        identity: String,
        key: String,
    },
    Owns {
        #[serde(rename = "client")]
        tab_id: String,
        identity: String,
    },
    /// The first step of a move: what the tab listens on.
    Describe {
        #[serde(rename = "client")]
        tab_id: String,
        identity: String,
    },
    /// The second: hand the tab over (see `moves.rs`).
    Take {
        #[serde(rename = "client")]
        tab_id: String,
        identity: String,
        seen: u64,
        keys: Vec<String>,
    },
    /// Not about a tab: who listens on a key (id) there, with how many tabs each.
    Present { key: String },
}

impl Call {
    pub(super) fn tab_id(&self) -> &str {
        match self {
            Call::Listen { tab_id, .. }
            | Call::Unlisten { tab_id, .. }
            | Call::Owns { tab_id, .. }
            | Call::Describe { tab_id, .. }
            | Call::Take { tab_id, .. } => tab_id,
            Call::Present { .. } => "",
        }
    }
}

/// The answer to a [`Call`].
#[derive(Serialize, Deserialize, Debug)]
#[serde(tag = "reply", rename_all = "kebab-case")]
pub(in crate::hub::cluster) enum Reply {
    Done,
    Refused {
        refusal: Refusal,
    },
    Owns {
        owns: bool,
    },
    Described {
        keys: Vec<String>,
    },
    /// Identities (JSON) on a key, with their tabs there.
    Present {
        identities: Vec<(String, u64)>,
    },
    /// The tab, handed over: its latest frame's number, the frames after the one its browser
    /// saw, its listens, and where the old node stopped delivering: the number of the last
    /// message it applied from each node (itself included).
    Taken {
        seq: u64,
        frames: Vec<String>,
        keys: Vec<String>,
        cut: Vec<(String, u64)>,
    },
}

/// A call refused by the node holding the tab.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub(in crate::hub::cluster) enum Refusal {
    // Named "client" on the backplane since before tabs were called tabs: nodes of both
    // versions must understand each other during a rolling upgrade.
    #[serde(rename = "unknown-client")]
    UnknownTab,
    #[serde(rename = "foreign-client")]
    ForeignTab,
    TooManyListens {
        cap: usize,
    },
    /// The node holding the tab cannot deliver this topic's notifications from other nodes.
    UnknownTopic,
    /// The tab's listens changed since it was described: describe it again.
    Changed,
    /// Its missed frames are no longer kept.
    Gone,
}

impl Refusal {
    pub(super) fn of(error: &ListenError) -> Self {
        match error {
            ListenError::ForeignTab => Refusal::ForeignTab,
            ListenError::TooManyListens { cap } => Refusal::TooManyListens { cap: *cap },
            _ => Refusal::UnknownTab,
        }
    }

    pub(super) fn error(self, topic: &str) -> ListenError {
        match self {
            Refusal::ForeignTab => ListenError::ForeignTab,
            Refusal::TooManyListens { cap } => ListenError::TooManyListens { cap },
            Refusal::UnknownTopic => ListenError::UnknownTopic(topic.to_owned()),
            Refusal::UnknownTab | Refusal::Changed | Refusal::Gone => ListenError::UnknownTab,
        }
    }
}

pub(in crate::hub::cluster) fn refused(refusal: Refusal) -> Reply {
    Reply::Refused { refusal }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_and_replies_cross_as_json_and_back() {
        let call = Call::Take {
            tab_id: "0123456789abcdef0123456789abcdef".into(),
            identity: "\"ann\"".into(),
            seen: 7,
            keys: vec!["chat\u{0}\"k\"".into()],
        };
        let json = serde_json::to_string(&call).unwrap();
        assert!(matches!(
            serde_json::from_str::<Call>(&json).unwrap(),
            Call::Take { seen: 7, ref keys, .. } if keys.len() == 1
        ));
        let reply = refused(Refusal::TooManyListens { cap: 3 });
        let json = serde_json::to_string(&reply).unwrap();
        assert!(matches!(
            serde_json::from_str::<Reply>(&json).unwrap(),
            Reply::Refused {
                refusal: Refusal::TooManyListens { cap: 3 }
            }
        ));
        assert_eq!(
            Refusal::of(&ListenError::ForeignTab).error("chat"),
            ListenError::ForeignTab,
            "a refusal comes back as it was made"
        );
    }

    /// The backplane's JSON is what nodes of another version read during a rolling upgrade:
    /// renaming the Rust names must not change it.
    #[test]
    fn the_backplane_keeps_its_names() {
        let call = Call::Owns {
            tab_id: "0123456789abcdef0123456789abcdef".into(),
            identity: "null".into(),
        };
        assert_eq!(
            serde_json::to_string(&call).unwrap(),
            r#"{"call":"owns","client":"0123456789abcdef0123456789abcdef","identity":"null"}"#
        );
        assert_eq!(
            serde_json::to_string(&refused(Refusal::UnknownTab)).unwrap(),
            r#"{"reply":"refused","refusal":"unknown-client"}"#
        );
        assert_eq!(
            serde_json::to_string(&refused(Refusal::ForeignTab)).unwrap(),
            r#"{"reply":"refused","refusal":"foreign-client"}"#
        );
    }
}

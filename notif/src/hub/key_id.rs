//! What tabs listen on: a topic's name and a key serialised to JSON, as one shared string
//! (also the name a key has between nodes).
use std::sync::Arc;

use crate::{ListenError, Topic};

/// A topic and a serialised key: what tabs listen on. Cheap to clone.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct KeyId(Arc<str>);

/// Longest key accepted by a listen, serialised: keys name things, they do not carry them.
const MAX_KEY_BYTES: usize = 1024;

impl KeyId {
    pub fn new<T: Topic>(key: &T::Key) -> Result<Self, ListenError> {
        let json = serde_json::to_string(key).map_err(|e| ListenError::BadKey(e.to_string()))?;
        if json == "null" {
            // `null` is the key of a message sent to an identity without one: the browser could
            // not tell this key's notifications from those.
            return Err(ListenError::BadKey(
                "a key must not serialise to null (`()`, `None`): use a number or a string".into(),
            ));
        }
        if json.len() > MAX_KEY_BYTES {
            return Err(ListenError::BadKey(format!(
                "{} bytes serialised, more than the {MAX_KEY_BYTES} allowed",
                json.len()
            )));
        }
        Ok(Self::from_json(T::NAME, &json))
    }

    pub fn from_json(topic: &str, key_json: &str) -> Self {
        // A NUL cannot occur in a topic name written in Rust source nor unescaped in JSON.
        KeyId(format!("{topic}\0{key_json}").into())
    }

    /// The key whose [`as_str`](Self::as_str) is `id` (as another node named it).
    pub fn from_id(id: &str) -> Self {
        KeyId(id.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name of the key's topic.
    pub fn topic(&self) -> &str {
        self.0.split_once('\0').map_or("", |(topic, _)| topic)
    }

    /// The key's JSON, as it was serialised.
    pub fn key_json(&self) -> &str {
        self.0.split_once('\0').map_or("", |(_, json)| json)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SimpleTopic;

    struct Unit;
    impl SimpleTopic for Unit {
        const NAME: &'static str = "unit";
        type Key = Option<u32>;
        type Message = u32;
        type Identity = ();
    }

    #[test]
    fn a_key_that_serialises_to_null_is_refused_with_a_reason() {
        assert!(
            matches!(KeyId::new::<Unit>(&None), Err(ListenError::BadKey(reason)) if reason.contains("null"))
        );
        assert_eq!(KeyId::new::<Unit>(&Some(1)).unwrap().key_json(), "1");
    }
}

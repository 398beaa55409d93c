//! Tab identifiers.
//!
//! Every stream (one per browser tab) gets a [`TabId`]: 128 bits of OS randomness, written as
//! 32 lowercase hex digits. It is bound to the identity that opened the stream; the server refuses
//! it from anyone else.
//!
//! ```
//! use notif::TabId;
//!
//! let id: TabId = "0123456789abcdef0123456789abcdef".parse().unwrap();
//! assert_eq!(id.to_string(), "0123456789abcdef0123456789abcdef");
//! assert!("not-an-id".parse::<TabId>().is_err());
//! ```
use std::{fmt, str::FromStr};

/// A tab's stream identifier: 128 random bits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TabId(u128);

impl TabId {
    /// A fresh id from the operating system's random source.
    #[cfg(feature = "ssr")]
    pub fn random() -> Self {
        let mut bytes = [0u8; 16];
        // The OS source failing is not recoverable: no id can be trusted without it.
        getrandom::fill(&mut bytes).expect("the operating system's random source failed");
        TabId(u128::from_le_bytes(bytes))
    }

    /// The id's bytes in the order its hex digits are written.
    #[cfg(feature = "ssr")]
    pub(crate) fn to_bytes(self) -> [u8; 16] {
        self.0.to_be_bytes()
    }
}

impl fmt::Display for TabId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let digits = crate::hex::hex(&self.0.to_be_bytes());
        f.write_str(std::str::from_utf8(&digits).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for TabId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Only a prefix: ids are credentials and logs are not secret.
        write!(f, "TabId({:08x}…)", (self.0 >> 96) as u32)
    }
}

/// A string that is not a tab id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a tab id is 32 lowercase hex digits, as sent in the stream's hello frame")]
pub struct BadTabId;

impl FromStr for TabId {
    type Err = BadTabId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() != 32 || !s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(BadTabId);
        }
        u128::from_str_radix(s, 16).map(TabId).map_err(|_| BadTabId)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_rejects_everything_but_32_lowercase_hex() {
        for bad in [
            "",
            "0",
            "+123456789abcdef0123456789abcdef",
            "0123456789ABCDEF0123456789ABCDEF",
            "0123456789abcdef0123456789abcdef0",
            "0123456789abcdef0123456789abcde\u{e9}",
        ] {
            assert_eq!(bad.parse::<TabId>(), Err(BadTabId), "{bad:?}");
        }
    }

    #[cfg(feature = "ssr")]
    #[test]
    fn random_ids_round_trip_and_differ() {
        let a = TabId::random();
        let b = TabId::random();
        assert_ne!(a, b);
        assert_eq!(a.to_string().parse::<TabId>(), Ok(a));
    }
}

// proptest does not build for wasm32 (its random source); the browser tests skip these.
#[cfg(all(test, not(target_arch = "wasm32")))]
mod properties {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn hex_is_the_ids_32_lowercase_digits_and_parses_back(raw in any::<u128>()) {
            let written = crate::hex::hex(&raw.to_be_bytes());
            prop_assert_eq!(std::str::from_utf8(&written).unwrap(), format!("{raw:032x}"));
            prop_assert_eq!(format!("{raw:032x}").parse::<TabId>(), Ok(TabId(raw)));
        }

        #[test]
        fn any_string_is_an_id_written_as_it_came_or_refused(s in "[0-9a-fA-F+\\-x]{30,34}|\\PC{0,40}") {
            if let Ok(id) = s.parse::<TabId>() {
                prop_assert_eq!(id.to_string(), s);
            }
        }
    }
}

//! Who published a message between nodes, and where it stands among that node's messages.
//!
//! Every hub with a backplane draws a [`NodeId`] when it starts (a restarted process is a new
//! node) and numbers everything it publishes, 1, 2, 3…, in the order it publishes. Redis keeps
//! one publisher's order, so a node that saw message `n` of an origin has seen every message of
//! that origin before `n` on the channels it subscribes to: a tab moving between nodes is cut
//! over at one such number per origin (see `moves.rs`).
use std::{fmt, str::FromStr};

/// A node's id: 64 bits of OS randomness, written as 16 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct NodeId(u64);

impl NodeId {
    pub fn random() -> Self {
        let mut bytes = [0u8; 8];
        getrandom::fill(&mut bytes).expect("the operating system's random source failed");
        NodeId(u64::from_le_bytes(bytes))
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeId({self})")
    }
}

/// Not 16 lowercase hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BadNodeId;

impl FromStr for NodeId {
    type Err = BadNodeId;

    fn from_str(s: &str) -> Result<Self, BadNodeId> {
        if s.len() != 16 || !s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(BadNodeId);
        }
        u64::from_str_radix(s, 16).map(NodeId).map_err(|_| BadNodeId)
    }
}

/// Where a frame comes from: the node that published it and its number there. A hub without
/// a backplane stamps nothing ([`Origin::HERE`]).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct Origin {
    pub node: NodeId,
    pub seq: u64,
}

impl Origin {
    /// A frame no other node saw: a hub without a backplane.
    pub const HERE: Origin = Origin {
        node: NodeId(0),
        seq: 0,
    };
}

/// A message between nodes as bytes: `<node> <seq> <body>`, the body being JSON. The header is
/// written apart from the body so the body can be encoded before its number is known.
pub(crate) fn frame(origin: Origin, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 40);
    out.extend_from_slice(format!("{} {} ", origin.node, origin.seq).as_bytes());
    out.extend_from_slice(body);
    out
}

/// The origin and body of a message from [`frame`]; `None` if it is not one.
pub(crate) fn unframe(payload: &[u8]) -> Option<(Origin, &[u8])> {
    let node = std::str::from_utf8(payload.get(..16)?).ok()?.parse().ok()?;
    let rest = payload.get(16..)?.strip_prefix(b" ")?;
    let space = rest.iter().position(|&b| b == b' ')?;
    let digits = std::str::from_utf8(&rest[..space]).ok()?;
    let canonical = digits == "0" || !digits.starts_with('0');
    if digits.is_empty() || digits.len() > 20 || !canonical || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((
        Origin {
            node,
            seq: digits.parse().ok()?,
        },
        &rest[space + 1..],
    ))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn a_message_keeps_its_origin_and_body() {
        let origin = Origin {
            node: NodeId::random(),
            seq: 42,
        };
        let framed = frame(origin, br#"{"op":"x"}"#);
        assert_eq!(unframe(&framed), Some((origin, &br#"{"op":"x"}"#[..])));
        assert_eq!(origin.node.to_string().parse(), Ok(origin.node));
        for bad in [
            &b""[..],
            b"0123456789abcdef",
            b"0123456789abcdef  {}",
            b"0123456789ABCDEF 1 {}",
        ] {
            assert_eq!(unframe(bad), None, "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn any_payload_is_a_message_or_refused(payload in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Some((origin, body)) = unframe(&payload) {
                prop_assert_eq!(frame(origin, body), payload);
            }
        }
    }
}

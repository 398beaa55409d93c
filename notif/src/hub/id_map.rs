//! Tables keyed by tab: ids are random, so they need no keyed hash.
use crate::TabId;

/// Tables keyed by tab. Ids are random, so their low 64 bits already make a good hash: the
/// delivery path skips the keyed hash (SipHash) that guards tables with keys clients choose.
pub(super) type IdMap<V> = std::collections::HashMap<TabId, V, IdHash>;
/// A set of tabs; see [`IdMap`].
pub(super) type IdSet = std::collections::HashSet<TabId, IdHash>;
pub(super) type IdHash = std::hash::BuildHasherDefault<IdHasher>;

/// See [`IdMap`].
#[derive(Default)]
pub(super) struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        // Not what `TabId` feeds (it writes one u128), but correct for anything else.
        for &byte in bytes {
            self.0 = (self.0.rotate_left(5) ^ u64::from(byte)).wrapping_mul(0x517c_c1b7_2722_0a95);
        }
    }

    fn write_u128(&mut self, n: u128) {
        self.0 ^= n as u64;
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

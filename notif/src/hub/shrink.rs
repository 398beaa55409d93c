//! Tables and vectors sized for what they hold: memory given back after a crowd of tabs has
//! left, and the small vectors most tabs and identities keep (a tab's keys, an identity's tabs)
//! grown one slot at a time. A `Vec`'s first allocation is four elements (64 bytes for one
//! tab); held once per tab and per key, that was ~0.17 KiB of every idle tab's ~2 KiB.
use std::collections::{HashMap, HashSet};

/// Tables keep their largest capacity unless told: after a crowd leaves, give most of it back
/// (amortised: a table is rebuilt only once three quarters of it emptied), and all of it once
/// the last entry is gone. A small table left allocated outlives the crowd that grew it and
/// pins the allocator's pages around it.
pub(super) fn shrink<T: Shrink>(table: &mut T) {
    let (len, capacity) = (table.len(), table.capacity());
    if (len == 0 && capacity > 0) || (capacity > 64 && len < capacity / 4) {
        table.shrink_to(len * 2);
    }
}

pub(super) trait Shrink {
    fn len(&self) -> usize;
    fn capacity(&self) -> usize;
    fn shrink_to(&mut self, min: usize);
}

impl<K: Eq + std::hash::Hash, V, S: std::hash::BuildHasher> Shrink for HashMap<K, V, S> {
    fn len(&self) -> usize {
        HashMap::len(self)
    }
    fn capacity(&self) -> usize {
        HashMap::capacity(self)
    }
    fn shrink_to(&mut self, min: usize) {
        HashMap::shrink_to(self, min)
    }
}

impl<K: Eq + std::hash::Hash, S: std::hash::BuildHasher> Shrink for HashSet<K, S> {
    fn len(&self) -> usize {
        HashSet::len(self)
    }
    fn capacity(&self) -> usize {
        HashSet::capacity(self)
    }
    fn shrink_to(&mut self, min: usize) {
        HashSet::shrink_to(self, min)
    }
}

/// How long a tab's keys and an identity's tabs grow one slot at a time.
const TIGHT: usize = 8;

/// Pushes onto a vector that is usually tiny: room for exactly its elements up to [`TIGHT`],
/// the usual doubling beyond (a listen or a new tab is not a hot path; the memory is held for
/// as long as the tab lives).
pub(super) fn push_tight<T>(vec: &mut Vec<T>, item: T) {
    push_exact_up_to(vec, item, TIGHT);
}

/// Pushes with room for exactly the elements while there are fewer than `exact`.
pub(super) fn push_exact_up_to<T>(vec: &mut Vec<T>, item: T, exact: usize) {
    if vec.len() == vec.capacity() && vec.len() < exact {
        vec.reserve_exact(1);
    }
    vec.push(item);
}

/// Gives back a vector's spare room once half of it is unused.
pub(super) fn trim<T>(vec: &mut Vec<T>) {
    if vec.capacity() > 2 * vec.len().max(1) {
        vec.shrink_to_fit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tight_pushes_leave_no_room_until_eight() {
        let mut vec = Vec::new();
        for n in 1..=8 {
            push_tight(&mut vec, n);
            assert_eq!(vec.capacity(), n);
        }
        push_tight(&mut vec, 9);
        assert!(vec.capacity() >= 16, "doubling beyond");
    }

    #[test]
    fn a_table_emptied_gives_its_capacity_back() {
        let mut table: HashMap<u32, u32> = (0..10_000).map(|i| (i, i)).collect();
        let full = table.capacity();
        for i in 0..9_990 {
            table.remove(&i);
            shrink(&mut table);
        }
        assert!(
            table.capacity() < full / 100,
            "{} of {full} kept",
            table.capacity()
        );
        assert_eq!(table.len(), 10);
    }

    /// A table that counts its rebuilds. Its capacity alone cannot tell: a removal that leaves a
    /// tombstone lowers what `capacity` reports, by how the (randomly seeded) hashes fell.
    struct Counted(HashSet<u32>, usize);

    impl Shrink for Counted {
        fn len(&self) -> usize {
            self.0.len()
        }
        fn capacity(&self) -> usize {
            self.0.capacity()
        }
        fn shrink_to(&mut self, min: usize) {
            self.1 += 1;
            self.0.shrink_to(min)
        }
    }

    #[test]
    fn a_table_emptied_entirely_keeps_nothing() {
        let mut table = Counted((0..20).collect(), 0);
        for i in 0..20 {
            table.0.remove(&i);
            shrink(&mut table);
            if i < 19 {
                assert_eq!(table.1, 0, "a small table is not rebuilt on the way");
            }
        }
        assert_eq!(table.1, 1, "rebuilt once, when emptied");
        assert_eq!(table.0.capacity(), 0);
    }
}

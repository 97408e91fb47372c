//! [`KeyIndex`]: a conflating table's map from resident key to slot number.
//!
//! Open addressing with linear probing over a power-of-two array of `u64` entries, each
//! the high half of the key's hash (a *tag*) and its slot number + 1 (0: empty), kept at
//! most half full. The keys themselves stay in the slots, with their full hash: the
//! index never hashes a key, so growing it and removing from it run no user code; only
//! [`find`](KeyIndex::find) calls the key's `Eq`, and it changes nothing.
//!
//! Why not `std`'s `HashMap<K, u32>`: its lookup (SIMD group probe, tag broadcast,
//! bucket arithmetic, the empty-map check) costs about 33 instructions for a `u32` key
//! with ahash; this one, a hit on its first probe, about 20. A conflating publish does one
//! lookup per channel, so that is most of what the table adds beyond its lock.
//!
//! Removal shifts the entries after the removed one back (no tombstones), so a lookup
//! for an absent key stops at the first empty entry.

/// Key hash → slot number, for keys whose hashes the caller keeps (see the module docs).
pub(super) struct KeyIndex {
    /// A power of two long; `0` is an empty entry, else `tag << 32 | (slot + 1)`.
    entries: Box<[u64]>,
    /// Entries in use; at most half of `entries.len()`.
    len: usize,
}

/// The bits of an entry that hold its tag.
const TAG_BITS: u64 = 0xffff_ffff_0000_0000;

/// An entry's tag: the hash's high half.
#[inline(always)]
fn tag(hash: u64) -> u64 {
    hash & TAG_BITS
}

/// Where the probe for `hash` starts: its low bits (the tag is the high half).
#[inline(always)]
fn home(hash: u64, mask: usize) -> usize {
    hash as usize & mask
}

#[inline(always)]
fn entry(hash: u64, slot: u32) -> u64 {
    tag(hash) | (u64::from(slot) + 1)
}

impl KeyIndex {
    /// An empty index (8 entries: one cache line).
    pub(super) fn new() -> Self {
        Self {
            entries: vec![0; 8].into_boxed_slice(),
            len: 0,
        }
    }

    /// The slot of the key `is_key` accepts among those whose hash is `hash`, if
    /// resident. `is_key(slot)` compares the slot's key with the one looked up.
    #[inline(always)]
    pub(super) fn find(&self, hash: u64, mut is_key: impl FnMut(u32) -> bool) -> Option<u32> {
        let mask = self.entries.len() - 1;
        let mut at = home(hash, mask);
        loop {
            let found = self.entries[at];
            if found == 0 {
                return None;
            }
            if found & TAG_BITS == tag(hash) {
                let slot = (found as u32).wrapping_sub(1);
                if is_key(slot) {
                    return Some(slot);
                }
            }
            at = (at + 1) & mask;
        }
    }

    /// Adds `slot`, holding a key that is not resident, whose hash is `hash`. `hash_of`
    /// gives the hash of every slot already indexed (to re-place them if the index
    /// grows).
    pub(super) fn insert(&mut self, hash: u64, slot: u32, hash_of: impl Fn(u32) -> u64) {
        if (self.len + 1) * 2 > self.entries.len() {
            self.grow(&hash_of);
        }
        self.place(entry(hash, slot), hash);
        self.len += 1;
    }

    /// Removes `slot`, indexed under `hash`. `hash_of` as for [`insert`](Self::insert).
    pub(super) fn remove(&mut self, hash: u64, slot: u32, hash_of: impl Fn(u32) -> u64) {
        let mask = self.entries.len() - 1;
        let wanted = entry(hash, slot);
        let mut hole = home(hash, mask);
        loop {
            match self.entries[hole] {
                0 => {
                    debug_assert!(false, "slot {slot} is not indexed");
                    return;
                }
                found if found == wanted => break,
                _ => hole = (hole + 1) & mask,
            }
        }
        // Shift back every entry after the hole that may move there (its home, where its
        // probe starts, is not after the hole), so every probe still reaches its entry
        // before an empty one.
        let mut at = hole;
        loop {
            at = (at + 1) & mask;
            let found = self.entries[at];
            if found == 0 {
                break;
            }
            let home = home(hash_of((found as u32).wrapping_sub(1)), mask);
            if at.wrapping_sub(home) & mask >= at.wrapping_sub(hole) & mask {
                self.entries[hole] = found;
                hole = at;
            }
        }
        self.entries[hole] = 0;
        self.len -= 1;
    }

    /// Puts `value` in the first empty entry from `hash`'s home on.
    fn place(&mut self, value: u64, hash: u64) {
        let mask = self.entries.len() - 1;
        let mut at = home(hash, mask);
        while self.entries[at] != 0 {
            at = (at + 1) & mask;
        }
        self.entries[at] = value;
    }

    /// Doubles the entries and re-places every indexed slot.
    #[cold]
    fn grow(&mut self, hash_of: &impl Fn(u32) -> u64) {
        let doubled = vec![0; self.entries.len() * 2].into_boxed_slice();
        let old = std::mem::replace(&mut self.entries, doubled);
        for found in old.iter().copied().filter(|&found| found != 0) {
            self.place(found, hash_of((found as u32).wrapping_sub(1)));
        }
    }

    /// Entries, used or not.
    #[cfg(test)]
    fn capacity(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    /// Colliding hashes (same home, same tag), removal in the middle of a run, growth
    /// and wrap-around at the array's end, against a model.
    #[test]
    fn matches_a_model() {
        // slot → hash: several share a home (low bits) and tag (high bits).
        let hashes: Vec<u64> = (0..40u64)
            .map(|i| ((i % 3) << 32) | (7 + (i % 4) * 8))
            .collect();
        let hash_of = |slot: u32| hashes[slot as usize];
        let mut index = KeyIndex::new();
        let mut model = std::collections::BTreeSet::new();
        let mut seed = 1u64;
        for step in 0..2000 {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let slot = (seed >> 33) as u32 % 40;
            if model.contains(&slot) {
                index.remove(hash_of(slot), slot, hash_of);
                model.remove(&slot);
            } else {
                index.insert(hash_of(slot), slot, hash_of);
                model.insert(slot);
            }
            for probe in 0..40u32 {
                let found = index.find(hash_of(probe), |s| s == probe);
                assert_eq!(found.is_some(), model.contains(&probe), "step {step}");
            }
            assert!(index.len * 2 <= index.capacity());
        }
    }
}

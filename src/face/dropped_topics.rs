//! Which topics' frames the tap's full queue refused, and how many: so the forwarder can
//! number them as if it had sent them, and receivers count every such loss as a gap.
//!
//! A broadcast that finds the forwarder's queue full must not wait, lock or allocate,
//! yet the frame's loss must reach the receivers: they count a loss only as a jump in an
//! (origin, topic) stream's sequence numbers, so the forwarder has to skip exactly as
//! many numbers of that topic as frames were refused. The broadcast records the loss
//! here — one compare-and-swap on a fixed table, made once per bridge — and the
//! forwarder, before it numbers a batch, takes every count out and skips that many
//! numbers per topic.
//!
//! # The table
//!
//! A fixed array of [`SLOTS`] words, open addressing with a short probe. Each word packs
//! a topic's hash (its high 48 bits, never 0) and a count (16 bits): one atomic word, so
//! the forwarder takes a slot — key and count together — with one `swap(0)`, and a
//! broadcast that raced with it fails its compare-and-swap and probes again. A count
//! that would overflow continues in another slot with the same key (the forwarder adds
//! them up). Keys are 48 bits, so two topics collide once in about 2^24 topics; the
//! forwarder's numbering is keyed the same way, so a collision only makes two topics
//! share one stream of numbers (receivers see false gaps there, never miss a true one).
//!
//! When no slot is free within [`PROBE`] steps (more than a few thousand distinct
//! topics refused between two drains of the table), the loss is counted in
//! [`untracked`](DroppedTopics::untracked) instead: still dropped, but no receiver will
//! see it as a gap.
//!
//! # Memory orders
//!
//! A frame refused before a later frame of the same thread was queued must be counted
//! before that later frame is numbered. The broadcast records the loss (Relaxed
//! compare-and-swap), then sets `dirty` (Release); its next `try_send` that succeeds
//! is a release on the queue, and the forwarder's `recv` of that frame an acquire:
//! the forwarder, which drains the table after receiving a batch and before numbering
//! it, sees the loss. The `dirty` flag's Acquire swap pairs with the Release store for
//! losses recorded by threads whose frames it has not received yet (they may be counted
//! one batch earlier than their position: a gap shifts, the total does not).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Slots in the table (32 KiB).
pub(crate) const SLOTS: usize = 4096;
/// Most slots a record looks at before giving up.
pub(crate) const PROBE: usize = 64;
/// Bits of a slot that count.
const COUNT_BITS: u32 = 16;
const COUNT_MASK: u64 = (1 << COUNT_BITS) - 1;

/// The key a topic's hash is recorded and numbered under: its high 48 bits, never 0.
pub(crate) fn drop_key(topic_hash: u64) -> u64 {
    (topic_hash >> COUNT_BITS).max(1)
}

/// Per-topic counts of refused frames, until the forwarder takes them.
pub(crate) struct DroppedTopics {
    slots: Box<[AtomicU64]>,
    /// Set when a count is recorded; cleared by the forwarder before it drains.
    dirty: AtomicBool,
    /// Refused frames no slot could record.
    untracked: AtomicU64,
}

impl Default for DroppedTopics {
    fn default() -> Self {
        Self {
            slots: (0..SLOTS).map(|_| AtomicU64::new(0)).collect(),
            dirty: AtomicBool::new(false),
            untracked: AtomicU64::new(0),
        }
    }
}

impl DroppedTopics {
    /// Records one refused frame of the topic whose hash is `topic_hash`. Lock-free, no
    /// allocation.
    pub(crate) fn record(&self, topic_hash: u64) {
        let key = drop_key(topic_hash);
        let start = (topic_hash as usize) % SLOTS;
        for step in 0..PROBE {
            let slot = &self.slots[(start + step) % SLOTS];
            let mut seen = slot.load(Ordering::Relaxed);
            loop {
                let next = if seen == 0 {
                    (key << COUNT_BITS) | 1
                } else if seen >> COUNT_BITS == key && seen & COUNT_MASK < COUNT_MASK {
                    seen + 1
                } else {
                    break; // another topic's slot, or a full count: probe on
                };
                // Relaxed: ordered for the forwarder by `dirty` and the queue (above).
                match slot.compare_exchange_weak(seen, next, Ordering::Relaxed, Ordering::Relaxed) {
                    Ok(_) => {
                        // Release pairs with the Acquire swap in `drain`.
                        self.dirty.store(true, Ordering::Release);
                        return;
                    }
                    Err(now) => seen = now,
                }
            }
        }
        self.untracked.fetch_add(1, Ordering::Relaxed);
    }

    /// Takes every recorded count out, calling `each(key, count)` (a key may come more
    /// than once). For the forwarder only.
    pub(crate) fn drain(&self, mut each: impl FnMut(u64, u64)) {
        // Acquire pairs with the Release store in `record`.
        if !self.dirty.swap(false, Ordering::Acquire) {
            return;
        }
        for slot in self.slots.iter() {
            if slot.load(Ordering::Relaxed) == 0 {
                continue;
            }
            let taken = slot.swap(0, Ordering::Acquire);
            if taken != 0 {
                each(taken >> COUNT_BITS, taken & COUNT_MASK);
            }
        }
    }

    /// Refused frames no slot could record (receivers never see these as gaps).
    pub(crate) fn untracked(&self) -> u64 {
        self.untracked.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn drained(table: &DroppedTopics) -> HashMap<u64, u64> {
        let mut out = HashMap::new();
        table.drain(|key, n| *out.entry(key).or_default() += n);
        out
    }

    #[test]
    fn counts_per_topic_and_drains_once() {
        let table = DroppedTopics::default();
        let (a, b) = (0x1234_5678_9abc_def0_u64, 0x0fed_cba9_8765_4321_u64);
        for _ in 0..3 {
            table.record(a);
        }
        table.record(b);
        let got = drained(&table);
        assert_eq!(got[&drop_key(a)], 3);
        assert_eq!(got[&drop_key(b)], 1);
        assert!(drained(&table).is_empty());
    }

    #[test]
    fn a_full_count_continues_in_another_slot() {
        let table = DroppedTopics::default();
        for _ in 0..(COUNT_MASK + 5) {
            table.record(42 << 16);
        }
        assert_eq!(drained(&table)[&42], COUNT_MASK + 5);
    }

    #[test]
    fn a_full_neighbourhood_counts_untracked() {
        let table = DroppedTopics::default();
        // PROBE + 1 topics whose hashes start at the same slot.
        for i in 0..=PROBE as u64 {
            table.record((i + 1) << 32);
        }
        assert_eq!(table.untracked(), 1);
        assert_eq!(drained(&table).values().sum::<u64>(), PROBE as u64);
    }

    #[test]
    fn concurrent_records_are_all_counted() {
        let table = std::sync::Arc::new(DroppedTopics::default());
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let table = std::sync::Arc::clone(&table);
                std::thread::spawn(move || {
                    for i in 0..10_000u64 {
                        table.record(((i % 7) + t) << 20);
                    }
                })
            })
            .collect();
        let mut total = 0;
        while threads.iter().any(|t| !t.is_finished()) {
            total += drained(&table).values().sum::<u64>();
        }
        total += drained(&table).values().sum::<u64>();
        assert_eq!(total + table.untracked(), 40_000);
    }
}

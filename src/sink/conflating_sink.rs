//! The conflating flavour: at most one pending item per key, a newer item for a pending
//! key replacing it where it stands.
//!
//! The consumer side is the public [`ConflatingChannel`](crate::ConflatingChannel); this
//! is the publisher side, which lives in the snapshot and is shared by every broadcast,
//! plus the [`Pending`] token the two sides pass between them.
//!
//! # How it works
//!
//! Two structures per channel:
//!
//! - a **table** behind one lock ([`ParkLock`]: no poisoning, parks when contended): an
//!   index from key to slot number ([`KeyIndex`], by the
//!   key's hash, computed before the lock), and the slots, one per *resident* key, each
//!   holding the key, its hash and, while the key is pending, its latest item;
//! - a bounded queue of **tokens**, one per pending key, in the order the keys became
//!   pending. It is the queue the consumer waits on (what `select!` sees).
//!
//! A publish computes the key (outside the lock), then under the lock looks it up and
//! either finds it pending and swaps the new item into its slot (the token stays where it
//! is in the queue: *replaced in place*, so a busy key cannot push the others back), or
//! finds it idle or absent, puts the item in its slot and, after unlocking, queues a
//! token for it. Opening a token ([`Pending::take`]) takes the item out of its slot under
//! the lock.
//!
//! The consumer therefore always takes the latest item of a key: a publish that lands
//! before the take replaces the item the token will yield; one that lands after it finds
//! the key no longer pending and queues a new token. Either way the last publish for a
//! key is the last item the consumer receives for it.
//!
//! # Resident keys
//!
//! A taken key stays in the table, idle, so that its next item — the common case when
//! the consumer keeps up — costs one hash lookup rather than a hash insert now and a
//! removal at the take. At most `capacity` keys are resident. A key that is not resident
//! gets a new slot while fewer are, else the slot of the key that went idle longest
//! (taken from a queue of idle slots, skipping those pending again since; it is evicted:
//! its index entry removed, the slot re-keyed). So a channel whose keys churn pays what it
//! paid before this cache (an insert and a removal per new key), and one with a stable
//! set of keys pays neither.
//!
//! # Invariants (under the table lock)
//!
//! 1. A queued or popped-but-unopened token names a slot that holds an item; only that
//!    token empties it.
//! 2. So tokens in the queue ≤ slots holding an item ≤ resident keys ≤ capacity: queuing
//!    a token never finds the queue full (the code still handles it, by dropping).
//! 3. Every resident slot that holds no item is in the idle queue, so a new key finds a
//!    slot whenever fewer than `capacity` keys are pending.
//! 4. An index entry never names a slot holding another key: eviction removes the old
//!    key's entry before the slot takes the new key.
//!
//! A key's `Hash` runs before the lock; inside it, its `Eq` runs only in lookups and its
//! `Clone` before anything changes, and the index never hashes (slots keep their keys'
//! hashes). So a panicking key leaves every invariant intact; the broadcast loop closes
//! the channel as for any panicking sink, so it receives nothing more anyway.
//!
//! # Cost
//!
//! Per publish: the key function, its hash, one clone of the item, one uncontended
//! lock/unlock (a compare-and-swap and a swap) and one index lookup (a hit on its first
//! probe: one load, a tag compare and the key's `Eq`); for a key that was not pending,
//! also a slot write and one token push (an `Arc` clone); for a key that was not
//! resident either, an index insert (and, evicting, a removal). Per receive: a token pop
//! and the lock. Instructions (`scripts/callgrind_conflation.sh`, per extra channel of a
//! publish, 2026-12-07): a new key 219 (240 behind `std`'s mutex and `HashMap`; 305–311
//! when every new key was a hash insert and every take a removal), a replace 120 (was
//! 142) — `DropOldest`: 119 with room, 390 full. Of a new key's 219, the token push
//! (crossbeam's `try_send`) is about 85, as for `DropOldest`; the hash about 11, the
//! index probe 17, lock and unlock 8. Memory per channel, at most: the token queue
//! (`capacity` × 24 bytes — a 16-byte token and crossbeam's stamp — allocated up
//! front), `capacity` slots of `(K, u64, Option<M>)` and 4-byte idle-queue entries
//! (grown as keys arrive, never shrunk) and an index of 8-byte entries, between 2 and 4
//! per resident key (at most half full; it grows, never shrinks).

use std::collections::VecDeque;
use std::fmt;
use std::hash::Hash;

use super::key_index::KeyIndex;
use super::{Delivery, SinkState, Status};
use crate::sync::queue::{self, Receiver, Sender, TrySendError};
use crate::sync::{Arc, ParkLock};
use crate::vocab::error::Error;
use crate::vocab::stats::ConflationCount;

/// What [`KeyedTable::offer`] did with an item.
enum Offer {
    /// Its key was pending: the item replaced the pending one.
    Replaced,
    /// Its key was not pending: the item sits in this slot, which needs a token.
    New(u32),
    /// Its key was not pending and `capacity` keys are.
    Full,
}

/// The table with its key type erased, so that neither the sink nor the tokens name `K`.
trait Table<T>: Send + Sync {
    /// Stores a clone of `item` under its key and, if the key was not pending, queues a
    /// token for it on `sink`: one dynamic call per delivery does all of it.
    fn send(&self, item: &T, sink: &ConflatingSink<T>, state: &SinkState) -> Delivery;
    /// Takes the item out of `slot` and frees its key. Called once per token.
    fn take(&self, slot: u32) -> T;
}

/// The table of one channel: a key function and the keys it has seen lately.
struct KeyedTable<K, T, F> {
    /// Maps an item to its key; runs on the publisher's thread, outside the lock.
    key: F,
    /// The most distinct keys pending at once, and the most keys kept in the table.
    capacity: usize,
    /// Items replaced so far.
    conflated: Arc<ConflationCount>,
    /// Hashes keys, outside the lock.
    hasher: ahash::RandomState,
    /// Everything the lock protects.
    slots: ParkLock<Slots<K, T>>,
}

/// The keys kept in the table (*resident*: pending, or idle and kept so that their next
/// item finds them without a hash insert) and their items.
struct Slots<K, T> {
    /// Resident key → its slot (by the hash each slot keeps).
    index: KeyIndex,
    /// One per resident key, at most `capacity`; never shrunk.
    slots: Vec<Slot<K, T>>,
    /// Slots that went idle, oldest first: the candidates for eviction when a new key
    /// needs a slot and all `capacity` are taken. A listed slot may have become pending
    /// again since; eviction skips it (and unlists it: its next take lists it again).
    idle: VecDeque<u32>,
}

/// One resident key.
struct Slot<K, T> {
    key: K,
    /// The key's hash, for the index.
    hash: u64,
    /// The key's latest item while it is pending; `None` while it is idle.
    item: Option<T>,
    /// Whether the slot's number is in [`Slots::idle`].
    listed: bool,
}

impl<K: Hash + Eq + Clone, T> Slots<K, T> {
    /// The slot of `key`, whose hash is `hash`, if it is resident.
    #[inline(always)]
    fn find(&self, key: &K, hash: u64) -> Option<u32> {
        let slots = &self.slots;
        self.index
            .find(hash, |slot| slots[slot as usize].key == *key)
    }

    /// [`KeyedTable::offer`] for a key that is not resident: a slot for it, or `Full`.
    /// Out of line: a resident key's publish, the common case, stays small.
    #[cold]
    #[inline(never)]
    fn offer_new_key(&mut self, key: &K, hash: u64, item: T, capacity: usize) -> Offer {
        // `None` when `capacity` keys are pending: every slot is taken and none is idle.
        let Some(slot) = self.claim(key, hash, capacity) else {
            return Offer::Full;
        };
        self.slots[slot as usize].item = Some(item);
        Offer::New(slot)
    }

    /// A slot for `key` (hash `hash`), which is not resident and whose item will be
    /// pending: a new one while fewer than `capacity` keys are resident, else the oldest
    /// idle one, evicted. `None` when every slot is pending.
    fn claim(&mut self, key: &K, hash: u64, capacity: usize) -> Option<u32> {
        // The key's `Clone` runs before anything changes: if it panics, nothing has.
        let Self { index, slots, idle } = self;
        if slots.len() < capacity {
            let key = key.clone();
            let slot = slots.len() as u32;
            slots.push(Slot {
                key,
                hash,
                item: None,
                listed: false,
            });
            index.insert(hash, slot, |s| slots[s as usize].hash);
            return Some(slot);
        }
        while let Some(&slot) = idle.front() {
            let entry = &mut slots[slot as usize];
            if entry.item.is_some() {
                // Pending again since it was listed: its next take lists it anew.
                idle.pop_front();
                entry.listed = false;
                continue;
            }
            let key = key.clone();
            idle.pop_front();
            entry.listed = false;
            // Evict: unindex the old key (no user code runs), re-key the slot, index it.
            let old_hash = entry.hash;
            index.remove(old_hash, slot, |s| slots[s as usize].hash);
            let entry = &mut slots[slot as usize];
            let old_key = std::mem::replace(&mut entry.key, key);
            entry.hash = hash;
            index.insert(hash, slot, |s| slots[s as usize].hash);
            // The table is consistent again before the old key's `Drop` runs.
            drop(old_key);
            return Some(slot);
        }
        None
    }
}

impl<K, T, F> Table<T> for KeyedTable<K, T, F>
where
    K: Hash + Eq + Clone + Send,
    T: Clone + Send,
    F: Fn(&T) -> K + Send + Sync,
{
    fn send(&self, item: &T, sink: &ConflatingSink<T>, state: &SinkState) -> Delivery {
        match self.offer(item) {
            Offer::Replaced => Delivery::Delivered,
            Offer::New(slot) => sink.queue_token(slot, state),
            Offer::Full => {
                // Drop-newest, counted: the pending keys keep their places.
                state.count_dropped(1);
                Delivery::Dropped {
                    frames: 1,
                    delivered: false,
                }
            }
        }
    }

    fn take(&self, slot: u32) -> T {
        self.take_item(slot)
    }
}

impl<K, T, F> KeyedTable<K, T, F>
where
    K: Hash + Eq + Clone + Send,
    T: Clone + Send,
    F: Fn(&T) -> K + Send + Sync,
{
    /// Stores a clone of `item` under its key.
    #[inline(always)]
    fn offer(&self, item: &T) -> Offer {
        // User code (key function, clones) runs before the lock: a panic there leaves the
        // table untouched. The key, and an item replaced, are dropped after the unlock.
        let key = (self.key)(item);
        let hash = self.hasher.hash_one(&key);
        let item = item.clone();
        let mut replaced = None;
        let offer = self.slots.with(|slots| {
            // The common case, whether the consumer keeps up or not: a resident key, one
            // index lookup and no insert.
            let Some(slot) = slots.find(&key, hash) else {
                return slots.offer_new_key(&key, hash, item, self.capacity);
            };
            let entry = &mut slots.slots[slot as usize];
            match &mut entry.item {
                Some(stored) => {
                    replaced = Some(std::mem::replace(stored, item));
                    self.conflated.add();
                    Offer::Replaced
                }
                None => {
                    // A resident key that is idle: at most `capacity - 1` others are
                    // pending, so there is room.
                    entry.item = Some(item);
                    Offer::New(slot)
                }
            }
        });
        drop(replaced);
        offer
    }

    /// Takes the item out of `slot`; its key stays resident, idle.
    fn take_item(&self, slot: u32) -> T {
        self.slots.with(|slots| {
            let entry = &mut slots.slots[slot as usize];
            let item = entry
                .item
                .take()
                .expect("a token's slot holds its item until the token takes it");
            // The key stays resident (idle): its next item needs no hash insert.
            if !entry.listed {
                entry.listed = true;
                slots.idle.push_back(slot);
            }
            item
        })
    }
}

/// The table behind one pointer: tokens and the sink share it through an `Arc` of this
/// sized wrapper (loom's `Arc` cannot hold a `dyn` directly).
struct Shared<T> {
    table: Box<dyn Table<T>>,
}

/// One pending key of a [`ConflatingChannel`](crate::ConflatingChannel): what its
/// receiver yields. [`take`](Self::take) it for the key's latest item.
///
/// The item is taken when the token is opened, not when it was queued: a publish for the
/// same key that lands in between replaces what `take` returns. Dropping a token
/// unopened discards its item (it counts as received).
#[must_use = "a pending item is only received by `take`; dropping it discards the item"]
pub struct Pending<M> {
    /// The channel's table.
    shared: Arc<Shared<M>>,
    /// The slot holding this key's item.
    slot: u32,
    /// Set by `take`, so `drop` knows the slot is already empty.
    taken: bool,
}

impl<M> Pending<M> {
    /// The key's latest item. Frees the key: the next publish for it queues a new token.
    pub fn take(mut self) -> M {
        self.taken = true;
        self.shared.table.take(self.slot)
    }
}

impl<M> Drop for Pending<M> {
    fn drop(&mut self) {
        if !self.taken {
            drop(self.shared.table.take(self.slot));
        }
    }
}

impl<M> fmt::Debug for Pending<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pending")
            .field("slot", &self.slot)
            .finish_non_exhaustive()
    }
}

/// The publishing half of a conflating channel.
pub(crate) struct ConflatingSink<T> {
    /// The pending items, shared with every token.
    shared: Arc<Shared<T>>,
    /// Where tokens for newly pending keys go.
    tokens: Sender<Pending<T>>,
}

/// What [`ConflatingSink::new`] makes: the sink, the consumer's receiver of tokens, and
/// the channel's replacement counter.
pub(crate) type ConflatingParts<T> = (
    ConflatingSink<T>,
    Receiver<Pending<T>>,
    Arc<ConflationCount>,
);

impl<T: Clone + Send + 'static> ConflatingSink<T> {
    /// A sink keeping at most `capacity` (at least 1) pending keys, keyed by `key`.
    pub(crate) fn new<K, F>(capacity: usize, key: F) -> ConflatingParts<T>
    where
        K: Hash + Eq + Clone + Send + 'static,
        F: Fn(&T) -> K + Send + Sync + 'static,
    {
        debug_assert!(validate_capacity(capacity).is_ok());
        let conflated = Arc::new(ConflationCount::new());
        let table = KeyedTable {
            key,
            capacity,
            conflated: Arc::clone(&conflated),
            hasher: ahash::RandomState::new(),
            slots: ParkLock::new(Slots {
                index: KeyIndex::new(),
                slots: Vec::new(),
                idle: VecDeque::new(),
            }),
        };
        let shared = Arc::new(Shared {
            table: Box::new(table),
        });
        let (tokens, receiver) = queue::bounded(capacity);
        (ConflatingSink { shared, tokens }, receiver, conflated)
    }
}

/// The largest capacity a conflating channel accepts: slot numbers are `u32`.
const MAX_CAPACITY: usize = u32::MAX as usize;

/// Checks a conflating channel's capacity (the most keys pending at once).
pub(crate) fn validate_capacity(capacity: usize) -> Result<(), Error> {
    if (1..=MAX_CAPACITY).contains(&capacity) {
        Ok(())
    } else {
        Err(Error::InvalidConfig(
            "conflating channel capacity must be between 1 and u32::MAX",
        ))
    }
}

impl<T> ConflatingSink<T> {
    /// One dynamic call into the table, which does the rest, so the broadcast walk stays
    /// as small as it was without this flavour.
    #[inline]
    pub(crate) fn send(&self, item: &T, state: &SinkState) -> Delivery {
        self.shared.table.send(item, self, state)
    }

    /// Queues the token of a newly pending key.
    #[inline(always)]
    fn queue_token(&self, slot: u32, state: &SinkState) -> Delivery {
        let token = Pending {
            shared: Arc::clone(&self.shared),
            slot,
            taken: false,
        };
        match self.tokens.try_send(token) {
            Ok(()) => Delivery::Delivered,
            // Unreachable while invariant 2 holds (see the module docs); the token's drop
            // frees the slot, and the item counts as dropped.
            Err(TrySendError::Full(token)) => {
                drop(token);
                state.count_dropped(1);
                Delivery::Dropped {
                    frames: 1,
                    delivered: false,
                }
            }
            // The consumer's receiver is gone; the token's drop frees the slot.
            Err(TrySendError::Disconnected(token)) => {
                drop(token);
                if state.close(Status::ConsumerGone) {
                    Delivery::Closed { dropped: 0 }
                } else {
                    Delivery::Skipped
                }
            }
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    type Item = (u32, u32);

    fn sink(capacity: usize) -> (ConflatingSink<Item>, Receiver<Pending<Item>>, SinkState) {
        let (sink, tokens, _) = ConflatingSink::new(capacity, |item: &Item| item.0);
        (sink, tokens, SinkState::new())
    }

    /// The next token's item.
    fn next(tokens: &Receiver<Pending<Item>>) -> Item {
        tokens.try_recv().expect("a key is pending").take()
    }

    /// A consumer that keeps up with more keys than `capacity` never loses one: each new
    /// key evicts an idle one.
    #[test]
    fn keys_beyond_capacity_evict_idle_ones() {
        let (sink, tokens, state) = sink(2);
        for seq in 0..100 {
            let item = (seq % 7, seq);
            assert_eq!(sink.send(&item, &state), Delivery::Delivered);
            assert_eq!(next(&tokens), item);
        }
        assert_eq!(state.dropped(), 0);
    }

    /// A key whose `Clone` panics while it claims an idle key's slot changes nothing:
    /// the idle key stays resident and listed, and the next try evicts it. (Cloning after
    /// unlisting the slot, this test fails: the slot is lost to eviction and key 2's next
    /// publish is dropped.)
    #[test]
    fn a_key_clone_panicking_at_eviction_loses_no_slot() {
        use std::cell::Cell;
        thread_local!(static PANIC: Cell<bool> = const { Cell::new(false) });
        #[derive(PartialEq, Eq, Hash)]
        struct Key(u32);
        impl Clone for Key {
            fn clone(&self) -> Self {
                assert!(!PANIC.with(Cell::get), "clone refused");
                Key(self.0)
            }
        }
        let (sink, tokens, _) = ConflatingSink::new(1, |item: &Item| Key(item.0));
        let state = SinkState::new();
        assert_eq!(sink.send(&(1, 0), &state), Delivery::Delivered);
        assert_eq!(next(&tokens), (1, 0)); // key 1 idle, listed
        PANIC.with(|p| p.set(true));
        let caught =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| sink.send(&(2, 1), &state)));
        PANIC.with(|p| p.set(false));
        assert!(caught.is_err());
        assert_eq!(sink.send(&(2, 2), &state), Delivery::Delivered); // evicts key 1
        assert_eq!(next(&tokens), (2, 2));
        assert_eq!(sink.send(&(1, 3), &state), Delivery::Delivered); // evicts key 2
        assert_eq!(next(&tokens), (1, 3));
        assert_eq!(state.dropped(), 0);
    }

    /// Eviction skips a key that became pending again after it was listed idle, and a
    /// key evicted and back later is a new key again.
    #[test]
    fn eviction_never_takes_a_pending_key() {
        let (sink, tokens, state) = sink(2);
        let send = |item: Item| sink.send(&item, &state);
        assert_eq!(send((1, 0)), Delivery::Delivered);
        assert_eq!(send((2, 1)), Delivery::Delivered);
        assert_eq!(next(&tokens), (1, 0)); // key 1 idle, listed first
        assert_eq!(send((1, 2)), Delivery::Delivered); // pending again, still listed
        assert_eq!(next(&tokens), (2, 1)); // key 2 idle, listed second
        assert_eq!(send((3, 3)), Delivery::Delivered); // evicts key 2, not key 1
        assert_eq!(send((1, 4)), Delivery::Delivered); // replaces key 1's pending item
        assert!(matches!(send((2, 5)), Delivery::Dropped { .. })); // both keys pending
        assert_eq!(next(&tokens), (1, 4));
        assert_eq!(next(&tokens), (3, 3));
        assert!(tokens.try_recv().is_err());
        assert_eq!(send((2, 6)), Delivery::Delivered);
        assert_eq!(next(&tokens), (2, 6));
        assert_eq!(state.dropped(), 1);
    }
}

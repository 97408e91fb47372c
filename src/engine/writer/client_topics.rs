//! [`ClientTopics`]: the topics one client subscribed to by name, as the writer's client
//! record keeps them — in 16 bytes.
//!
//! # Why not a `SmallVec`
//!
//! Every registered client pays for this inline in the writer's client table, whose
//! slots (a std `HashMap`'s) sit between half and seven eighths full: a byte here costs
//! 1.1–2.1 bytes per client. `SmallVec<[Arc<str>; 1]>` keeps one name inline and is 24
//! bytes (a length word beside the name's fat pointer); this keeps one name inline in 16,
//! using the name pointer's niche to tell "one" from "none or several". At 1,000,000
//! callback clients (`benches/memory.rs`) the table's entry went from 40 to 32 bytes,
//! 16.8 bytes less per client.
//!
//! The price is a client's second topic: two or more names live in a boxed slice behind a
//! thin box, 16 bytes more than the `SmallVec`'s spilled list. The slice has room to
//! grow (empty slots after the names, half again when full, as the `SmallVec` grew), so
//! a subscribe does not reallocate it each time: exact-length, ten clients subscribing
//! to 100 topics each paid about 120 more instructions per subscribe (the setup of
//! `floor_callgrind mutate_pre 1000`, callgrind). Looking a name up scans the slots, a
//! test for an empty one beside each name compare: about 2 instructions per name more
//! than the `SmallVec`'s slice, next to a compare of ~20 (names of equal length).
//!
//! # Why a hash set past a few dozen names
//!
//! The scan is the cheapest lookup for the few names most clients have, and a quadratic
//! one for a client that subscribes to many: a strategy thread subscribing to 40,000
//! symbols one call at a time paid 58 µs per subscribe and 37 µs per unsubscribe, 1.9
//! and 1.0 µs with 1,000 (now 0.73 and 0.42 µs, and 0.44 and 0.28; 2026-12-07,
//! `benches/mutations.rs -- one_client`). Past [`SCAN_LIMIT`] names they move to a hash set
//! (ahash, keyed per set), so a lookup costs the same at any count; below half of it they
//! move back, so a client near the limit does not convert on every call. The set sits
//! behind the same thin box as the slots, so a client with one topic still pays 16 bytes
//! and one with a few still pays one small allocation.

use std::collections::HashSet;
use std::sync::Arc;

/// A client's topic names, each the very `Arc` its snapshot entry holds: a subscription
/// costs a pointer here, not another copy of the name.
pub(crate) struct ClientTopics(Names);

/// Sixteen bytes: `Several` fits beside the niche of `One`'s pointer.
enum Names {
    /// Exactly one: most clients of a per-user-topic server have one topic of their own.
    One(Arc<str>),
    /// None (`None`), or two or more. A `Box<Store>` is a thin pointer, where a boxed
    /// slice's fat one would make this 24 bytes.
    Several(Option<Box<Store>>),
}

/// Two or more names: scanned while they are few, hashed when they are many.
enum Store {
    /// Up to [`SCAN_LIMIT`] names, then empty slots (room to grow).
    Slots(Box<[Option<Arc<str>>]>),
    /// More than [`SCAN_LIMIT`] names (until fewer than half of it are left). Boxed so
    /// that the store stays 24 bytes — one small allocation for the clients with a few
    /// names — where the set inline (64 bytes with its hasher's keys) made it 72.
    #[allow(clippy::box_collection)]
    Set(Box<HashSet<Arc<str>, ahash::RandomState>>),
}

/// The most names kept in slots and found by scanning: at ~20 instructions a compare,
/// scanning this many costs about what hashing the name and probing a set does.
const SCAN_LIMIT: usize = 32;

const _: () = assert!(std::mem::size_of::<ClientTopics>() == 16);

impl ClientTopics {
    /// No topics.
    pub(crate) fn new() -> Self {
        Self(Names::Several(None))
    }

    /// The names, in no particular order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Arc<str>> {
        let mut one = None;
        let mut slots: &[Option<Arc<str>>] = &[];
        let mut set = None;
        match &self.0 {
            Names::One(name) => one = Some(name),
            Names::Several(Some(store)) => match &**store {
                Store::Slots(names) => slots = names,
                Store::Set(names) => set = Some(names.iter()),
            },
            Names::Several(None) => {}
        }
        one.into_iter()
            .chain(slots.iter().map_while(Option::as_ref))
            .chain(set.into_iter().flatten())
    }

    /// Number of names.
    pub(crate) fn len(&self) -> usize {
        match &self.0 {
            Names::One(_) => 1,
            Names::Several(Some(store)) => match &**store {
                // The names come first: a binary search for the first empty slot.
                Store::Slots(slots) => slots.partition_point(Option::is_some),
                Store::Set(set) => set.len(),
            },
            Names::Several(None) => 0,
        }
    }

    /// Whether `name` is among them.
    pub(crate) fn contains(&self, name: &str) -> bool {
        match &self.0 {
            Names::One(only) => **only == *name,
            Names::Several(Some(store)) => match &**store {
                Store::Slots(slots) => position(slots, name).is_some(),
                Store::Set(set) => set.contains(name),
            },
            Names::Several(None) => false,
        }
    }

    /// Adds `name` (not already among them).
    pub(crate) fn push(&mut self, name: Arc<str>) {
        debug_assert!(!self.contains(&name));
        let len = self.len();
        match &mut self.0 {
            Names::Several(None) => self.0 = Names::One(name),
            Names::One(_) => {
                let Names::One(first) = std::mem::replace(&mut self.0, Names::Several(None)) else {
                    unreachable!("matched One")
                };
                let slots = vec![Some(first), Some(name)].into_boxed_slice();
                self.0 = Names::Several(Some(Box::new(Store::Slots(slots))));
            }
            Names::Several(Some(store)) => match &mut **store {
                Store::Set(set) => {
                    set.insert(name);
                }
                Store::Slots(slots) if len < slots.len() => slots[len] = Some(name),
                Store::Slots(slots) if len == SCAN_LIMIT => {
                    // Too many to scan: every name moves to a set.
                    let mut set =
                        HashSet::with_capacity_and_hasher(len + 1, ahash::RandomState::new());
                    set.extend(slots.iter_mut().map_while(Option::take));
                    set.insert(name);
                    **store = Store::Set(Box::new(set));
                }
                Store::Slots(slots) => {
                    // Full: half again (at least one, at most up to the scan limit), the
                    // rest of the room empty.
                    let room = (len + (len / 2).max(1)).min(SCAN_LIMIT);
                    let mut grown = std::mem::take(slots).into_vec();
                    grown.reserve_exact(room - len);
                    grown.push(Some(name));
                    grown.resize_with(room, || None);
                    *slots = grown.into_boxed_slice();
                }
            },
        }
    }

    /// Removes `name`. Returns whether it was among them.
    pub(crate) fn remove(&mut self, name: &str) -> bool {
        let len = self.len();
        match &mut self.0 {
            Names::One(only) if **only == *name => self.0 = Names::Several(None),
            Names::One(_) | Names::Several(None) => return false,
            Names::Several(Some(store)) => match &mut **store {
                Store::Slots(slots) => {
                    let Some(position) = position(slots, name) else {
                        return false;
                    };
                    // The last name takes the removed one's place.
                    slots.swap(position, len - 1);
                    slots[len - 1] = None;
                    if len == 2 {
                        let only = slots[0].take().expect("one left");
                        self.0 = Names::One(only);
                    }
                }
                Store::Set(set) => {
                    if !set.remove(name) {
                        return false;
                    }
                    if set.len() < SCAN_LIMIT / 2 {
                        // Few enough to scan again, with room to grow before the limit.
                        let mut slots: Vec<Option<Arc<str>>> = set.drain().map(Some).collect();
                        slots.resize_with(SCAN_LIMIT, || None);
                        **store = Store::Slots(slots.into_boxed_slice());
                    }
                }
            },
        }
        true
    }
}

/// Where `name` is among `slots`: a plain scan (the empty slots never match), without
/// stopping at the first empty one, which cost a branch per name.
fn position(slots: &[Option<Arc<str>>], name: &str) -> Option<usize> {
    slots.iter().position(|t| t.as_deref() == Some(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Random pushes and removes against a `Vec`, through every shape (none, one, several,
    /// a set, back to several, one and none): a few names, then enough to cross the scan
    /// limit both ways, with pushes and removes weighted so the count drifts up and down.
    #[test]
    fn matches_a_vec_under_random_operations() {
        check_against_a_vec(6, 5_000);
        check_against_a_vec(3 * SCAN_LIMIT, 16_000);
    }

    fn check_against_a_vec(distinct: usize, steps: usize) {
        let names: Vec<Arc<str>> = (0..distinct).map(|i| Arc::from(format!("t{i}"))).collect();
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let mut topics = ClientTopics::new();
        let mut model: Vec<Arc<str>> = Vec::new();
        let (mut sets, mut scans_after_a_set) = (0, 0);
        for step in 0..steps {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let name = &names[(state % distinct as u64) as usize];
            // Push-heavy for a stretch, then remove-heavy: the count sweeps the range.
            let push_heavy = (step / 2_000) % 2 == 0;
            let draw = (state >> 8) % 4;
            if (push_heavy && draw != 0) || (!push_heavy && draw == 0) {
                if !model.contains(name) {
                    topics.push(Arc::clone(name));
                    model.push(Arc::clone(name));
                }
            } else {
                let was = model.iter().position(|t| t == name);
                if let Some(position) = was {
                    model.swap_remove(position);
                }
                assert_eq!(topics.remove(name), was.is_some());
            }
            assert_eq!(topics.len(), model.len());
            let mut got: Vec<&str> = topics.iter().map(|t| &**t).collect();
            let mut want: Vec<&str> = model.iter().map(|t| &**t).collect();
            got.sort_unstable();
            want.sort_unstable();
            assert_eq!(got, want);
            for name in &names {
                assert_eq!(topics.contains(name), model.contains(name));
            }
            match &topics.0 {
                Names::Several(Some(store)) => match **store {
                    Store::Set(_) => sets += 1,
                    Store::Slots(_) if sets > 0 => scans_after_a_set += 1,
                    Store::Slots(_) => {}
                },
                Names::One(_) | Names::Several(None) => {}
            }
        }
        if distinct > SCAN_LIMIT {
            assert!(
                sets > 0 && scans_after_a_set > 0,
                "both ways across the limit"
            );
        }
        // Every name the list held is released with it: no count left behind.
        drop(topics);
        drop(model);
        assert!(names.iter().all(|n| Arc::strong_count(n) == 1));
    }
}

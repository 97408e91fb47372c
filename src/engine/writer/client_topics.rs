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

use std::sync::Arc;

/// A client's topic names, each the very `Arc` its snapshot entry holds: a subscription
/// costs a pointer here, not another copy of the name.
pub(crate) struct ClientTopics(Names);

/// Sixteen bytes: `Several` fits beside the niche of `One`'s pointer.
enum Names {
    /// Exactly one: most clients of a per-user-topic server have one topic of their own.
    One(Arc<str>),
    /// None (`None`), or two or more: the names first, then empty slots. A `Box<[_]>` is a
    /// fat pointer (16 bytes), and would make this 24; boxed once more, it is a thin one.
    Several(Option<Box<Slots>>),
}

/// Two or more names, then empty slots (room to grow).
type Slots = Box<[Option<Arc<str>>]>;

const _: () = assert!(std::mem::size_of::<ClientTopics>() == 16);

impl ClientTopics {
    /// No topics.
    pub(crate) fn new() -> Self {
        Self(Names::Several(None))
    }

    /// The names, in no particular order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Arc<str>> {
        let (one, slots): (Option<&Arc<str>>, &[Option<Arc<str>>]) = match &self.0 {
            Names::One(name) => (Some(name), &[]),
            Names::Several(Some(slots)) => (None, slots),
            Names::Several(None) => (None, &[]),
        };
        one.into_iter()
            .chain(slots.iter().map_while(Option::as_ref))
    }

    /// Number of names.
    pub(crate) fn len(&self) -> usize {
        match &self.0 {
            Names::One(_) => 1,
            // The names come first: a binary search for the first empty slot.
            Names::Several(Some(slots)) => slots.partition_point(Option::is_some),
            Names::Several(None) => 0,
        }
    }

    /// Whether `name` is among them.
    pub(crate) fn contains(&self, name: &str) -> bool {
        self.position(name).is_some()
    }

    /// Where `name` is: a plain scan of the slots (the empty ones never match), without
    /// stopping at the first empty one, which cost a branch per name.
    fn position(&self, name: &str) -> Option<usize> {
        match &self.0 {
            Names::One(only) => (**only == *name).then_some(0),
            Names::Several(Some(slots)) => slots.iter().position(|t| t.as_deref() == Some(name)),
            Names::Several(None) => None,
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
                self.0 = Names::Several(Some(Box::new(slots)));
            }
            Names::Several(Some(slots)) if len < slots.len() => slots[len] = Some(name),
            Names::Several(Some(slots)) => {
                // Full: half again (at least one), the rest of the room empty.
                let room = len + (len / 2).max(1);
                let mut grown = std::mem::take(&mut **slots).into_vec();
                grown.reserve_exact(room - len);
                grown.push(Some(name));
                grown.resize_with(room, || None);
                **slots = grown.into_boxed_slice();
            }
        }
    }

    /// Removes `name`. Returns whether it was among them.
    pub(crate) fn remove(&mut self, name: &str) -> bool {
        let Some(position) = self.position(name) else {
            return false;
        };
        let len = self.len();
        match &mut self.0 {
            Names::One(_) => self.0 = Names::Several(None),
            Names::Several(Some(slots)) => {
                // The last name takes the removed one's place.
                slots.swap(position, len - 1);
                slots[len - 1] = None;
                if len == 2 {
                    let only = slots[0].take().expect("one left");
                    self.0 = Names::One(only);
                }
            }
            Names::Several(None) => unreachable!("found a name in an empty list"),
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Random pushes and removes of a few names against a `Vec`, through every shape
    /// (none, one, several, back to one and none).
    #[test]
    fn matches_a_vec_under_random_operations() {
        let names: Vec<Arc<str>> = (0..6).map(|i| Arc::from(format!("t{i}"))).collect();
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let mut topics = ClientTopics::new();
        let mut model: Vec<Arc<str>> = Vec::new();
        for _ in 0..5_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let name = &names[(state % 6) as usize];
            if (state >> 8) % 2 == 0 {
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
        }
        // Every name the list held is released with it: no count left behind.
        drop(topics);
        drop(model);
        assert!(names.iter().all(|n| Arc::strong_count(n) == 1));
    }
}

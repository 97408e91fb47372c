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
//! The price is a client's second topic: two or more names live in an exact-length
//! boxed slice behind a thin box (16 bytes more than the `SmallVec`'s spilled list of
//! two; from five names on it is no larger, having no spare capacity). Each change to a
//! list of two or more reallocates it, O(topics of that client), as the subscribe's own
//! duplicate scan already is.

use std::sync::Arc;

/// A client's topic names, each the very `Arc` its snapshot entry holds: a subscription
/// costs a pointer here, not another copy of the name.
pub(crate) struct ClientTopics(Names);

/// Sixteen bytes: `Several` fits beside the niche of `One`'s pointer.
enum Names {
    /// Exactly one: most clients of a per-user-topic server have one topic of their own.
    One(Arc<str>),
    /// None (`None`), or two or more. A `Box<[_]>` is a fat pointer (16 bytes), and
    /// would make this 24; boxed once more, it is a thin one.
    Several(Option<Box<Box<[Arc<str>]>>>),
}

const _: () = assert!(std::mem::size_of::<ClientTopics>() == 16);

impl ClientTopics {
    /// No topics.
    pub(crate) fn new() -> Self {
        Self(Names::Several(None))
    }

    /// The names, in no particular order.
    pub(crate) fn as_slice(&self) -> &[Arc<str>] {
        match &self.0 {
            Names::One(name) => std::slice::from_ref(name),
            Names::Several(Some(names)) => names,
            Names::Several(None) => &[],
        }
    }

    /// Number of names.
    pub(crate) fn len(&self) -> usize {
        self.as_slice().len()
    }

    /// Whether `name` is among them.
    pub(crate) fn contains(&self, name: &str) -> bool {
        self.as_slice().iter().any(|t| **t == *name)
    }

    /// Adds `name` (not already among them).
    pub(crate) fn push(&mut self, name: Arc<str>) {
        debug_assert!(!self.contains(&name));
        self.0 = match std::mem::replace(&mut self.0, Names::Several(None)) {
            Names::Several(None) => Names::One(name),
            Names::One(first) => Names::Several(Some(Box::new(Box::new([first, name])))),
            Names::Several(Some(mut names)) => {
                let mut list = std::mem::take(&mut *names).into_vec();
                list.reserve_exact(1);
                list.push(name);
                *names = list.into_boxed_slice();
                Names::Several(Some(names))
            }
        };
    }

    /// Removes `name`. Returns whether it was among them.
    pub(crate) fn remove(&mut self, name: &str) -> bool {
        let Some(position) = self.as_slice().iter().position(|t| **t == *name) else {
            return false;
        };
        self.0 = match std::mem::replace(&mut self.0, Names::Several(None)) {
            Names::One(_) => Names::Several(None),
            Names::Several(Some(mut names)) => {
                let mut list = std::mem::take(&mut *names).into_vec();
                list.swap_remove(position);
                if list.len() == 1 {
                    Names::One(list.pop().expect("one left"))
                } else {
                    *names = list.into_boxed_slice();
                    Names::Several(Some(names))
                }
            }
            Names::Several(None) => unreachable!("found a name in an empty list"),
        };
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
            let mut got: Vec<&str> = topics.as_slice().iter().map(|t| &**t).collect();
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

//! [`Subscribers`]: a topic's subscriber list in the snapshot — one recipient inline, more
//! in a vector — in 32 bytes, the size of the one recipient.
//!
//! # Why one inline, and why not a `SmallVec`
//!
//! Most topics of a server are per-user topics (direct messages, one player's state) with
//! one subscriber, and every inline slot is paid by every topic: measured at 1M clients
//! with a topic each, 4 inline slots cost 48 B more per topic than 1. A topic of two or
//! more keeps them in a heap list (one more pointer to follow per broadcast).
//!
//! `SmallVec<[Recipient<T>; 1]>` is 40 bytes: its length-or-capacity word sits beside
//! the inline recipient. Here the variant is told by a niche of the recipient itself (a
//! tag value its optional queue sender never takes), and the vector's three words fit
//! beside that byte, so the list is exactly one recipient's 32 bytes and every topic
//! entry 8 bytes smaller (`benches/memory.rs`: 1,000,000 clients with a topic each). A
//! broadcast reads the list as a slice either way: one compare picks inline or heap, as
//! the `SmallVec`'s capacity compare did.

use std::ops::Deref;

use super::recipient::Recipient;
use crate::vocab::client::ClientId;

/// A topic's subscribers, each client at most once, in client id order (the writer keeps
/// both: `broadcast_from` finds its sender by binary search).
pub(crate) enum Subscribers<T> {
    /// Exactly one.
    One(Recipient<T>),
    /// Any other number (none only while the writer builds or drops an entry; one only
    /// in a copy made with room, about to take another).
    Many(Vec<Recipient<T>>),
}

// Under loom the recipient's queue and sink pointers are loom's, of other sizes.
#[cfg(not(loom))]
const _: () = assert!(std::mem::size_of::<Subscribers<()>>() == 32);

impl<T> Subscribers<T> {
    /// No subscribers yet (a topic being made).
    pub(crate) fn new() -> Self {
        Subscribers::Many(Vec::new())
    }

    /// Appends `subscriber` (whose id is above every other's), growing a full list as
    /// [`insert`](Self::insert) does.
    pub(crate) fn push(&mut self, subscriber: Recipient<T>) {
        let at = self.len();
        self.insert(at, subscriber);
    }

    /// Puts `subscriber` at `at`, the later ones moving up (the writer picks `at` to keep
    /// the id order). A full heap list grows by half again (at least one): lists here are
    /// long-lived and mostly short, so the default growth (to 4, then doubling) would
    /// leave most of each allocation empty; 1.5× keeps waste under a third while staying
    /// amortised O(1) per push. (The writer's copies are made with exactly the room they
    /// need, see [`copy_with_room`](Self::copy_with_room): this growth serves a batch
    /// that adds several subscribers to one topic.)
    pub(crate) fn insert(&mut self, at: usize, subscriber: Recipient<T>) {
        match self {
            Subscribers::One(_) => {
                let Subscribers::One(only) = std::mem::replace(self, Subscribers::Many(Vec::new()))
                else {
                    unreachable!("matched One")
                };
                let list = if at == 0 {
                    vec![subscriber, only]
                } else {
                    vec![only, subscriber]
                };
                *self = Subscribers::Many(list);
            }
            Subscribers::Many(list) if list.is_empty() => *self = Subscribers::One(subscriber),
            Subscribers::Many(list) => {
                if list.len() == list.capacity() {
                    list.reserve_exact((list.len() / 2).max(1));
                }
                list.insert(at, subscriber);
            }
        }
    }

    /// Removes and returns the subscriber at `index`, keeping the others' order. A heap
    /// list left with one subscriber moves it inline and frees the list.
    pub(crate) fn remove(&mut self, index: usize) -> Recipient<T> {
        match self {
            Subscribers::One(_) => {
                assert_eq!(index, 0, "index out of bounds");
                let Subscribers::One(only) = std::mem::replace(self, Subscribers::Many(Vec::new()))
                else {
                    unreachable!("matched One")
                };
                only
            }
            Subscribers::Many(list) => {
                let removed = list.remove(index);
                if list.len() == 1 {
                    let only = list.pop().expect("one left");
                    *self = Subscribers::One(only);
                }
                removed
            }
        }
    }

    /// A copy with room for `extra` more (the writer's copy for a subscribe): inline if
    /// it stays one, else a heap list of exactly the length it will have.
    pub(crate) fn copy_with_room(&self, extra: usize) -> Self {
        if extra == 0 {
            return self.clone();
        }
        let mut list = Vec::with_capacity(self.len() + extra);
        list.extend(self.iter().cloned());
        Subscribers::Many(list)
    }

    /// A copy without client `id`, in the same order (the writer's copy for an
    /// unsubscribe): at its new length, inline when one is left.
    pub(crate) fn copy_without(&self, id: ClientId) -> Self {
        if let [a, b] = &self[..] {
            if a.id == id {
                return Subscribers::One(b.clone());
            }
            if b.id == id {
                return Subscribers::One(a.clone());
            }
        }
        let mut list = Vec::with_capacity(self.len().saturating_sub(1));
        list.extend(self.iter().filter(|s| s.id != id).cloned());
        Subscribers::Many(list)
    }
}

impl<T> Extend<Recipient<T>> for Subscribers<T> {
    /// Appends each (in id order, above every present subscriber).
    fn extend<I: IntoIterator<Item = Recipient<T>>>(&mut self, subscribers: I) {
        for subscriber in subscribers {
            self.push(subscriber);
        }
    }
}

impl<T> Deref for Subscribers<T> {
    type Target = [Recipient<T>];

    /// The broadcast's read: one compare picks the inline recipient or the heap list.
    #[inline(always)]
    fn deref(&self) -> &[Recipient<T>] {
        match self {
            Subscribers::One(only) => std::slice::from_ref(only),
            Subscribers::Many(list) => list,
        }
    }
}

impl<T> Clone for Subscribers<T> {
    /// An exact copy (a heap list at exactly its length).
    fn clone(&self) -> Self {
        match self {
            Subscribers::One(only) => Subscribers::One(only.clone()),
            Subscribers::Many(list) => Subscribers::Many(list.clone()),
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::mem::size_of;

    use super::*;
    use crate::sink::{CallbackSink, Sink};
    use crate::sync::Arc;
    use crate::vocab::client::ClientId;

    #[test]
    fn the_list_is_one_recipient_long() {
        assert_eq!(size_of::<Subscribers<bytes::Bytes>>(), 32);
        assert_eq!(size_of::<Recipient<bytes::Bytes>>(), 32);
    }

    /// Inserts in id order, removes, and the writer's two copies, through every shape
    /// (one, several, back to one, none), against a sorted `Vec`; every sink reference
    /// is released with the list.
    #[test]
    fn matches_a_sorted_vec_under_changes_and_copies() {
        let sink = Arc::new(Sink::callback(
            ClientId::from_raw(0),
            CallbackSink::new(|_: &u32| {}),
        ));
        let recipient = |id| Recipient::new(ClientId::from_raw(id), Arc::clone(&sink));
        let ids = |list: &[Recipient<u32>]| list.iter().map(|r| r.id).collect::<Vec<_>>();
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut list = Subscribers::new();
        let mut model: Vec<ClientId> = Vec::new();
        for _ in 0..5_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let id = ClientId::from_raw(state % 12);
            let at = model.partition_point(|m| *m < id);
            let present = model.get(at) == Some(&id);
            match ((state >> 8) % 4, present) {
                (0, false) => {
                    list.insert(at, recipient(id.as_u64()));
                    model.insert(at, id);
                }
                (1, false) => {
                    list = list.copy_with_room(1);
                    list.insert(at, recipient(id.as_u64()));
                    model.insert(at, id);
                }
                (2, true) => {
                    assert_eq!(list.remove(at).id, model.remove(at));
                }
                (3, true) if model.len() > 1 => {
                    list = list.copy_without(id);
                    model.remove(at);
                }
                _ => continue,
            }
            assert_eq!(ids(&list), model);
            assert_eq!(ids(&list.clone()), model);
            assert_eq!(matches!(list, Subscribers::One(_)), model.len() == 1);
        }
        list.extend([recipient(100), recipient(101)]);
        assert_eq!(list.len(), model.len() + 2);
        drop(list);
        assert_eq!(Arc::strong_count(&sink), 1);
    }
}

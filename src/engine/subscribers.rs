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

/// A topic's subscribers, each client at most once (the writer keeps that invariant).
pub(crate) enum Subscribers<T> {
    /// Exactly one.
    One(Recipient<T>),
    /// Any other number (none only while the writer is about to drop the entry).
    Many(Vec<Recipient<T>>),
}

// Under loom the recipient's queue and sink pointers are loom's, of other sizes.
#[cfg(not(loom))]
const _: () = assert!(std::mem::size_of::<Subscribers<()>>() == 32);

impl<T> Subscribers<T> {
    /// A list of one.
    pub(crate) fn one(subscriber: Recipient<T>) -> Self {
        Subscribers::One(subscriber)
    }

    /// Appends `subscriber`, growing a full list by [`headroom`].
    pub(crate) fn push(&mut self, subscriber: Recipient<T>) {
        match self {
            Subscribers::One(_) => {
                let Subscribers::One(first) =
                    std::mem::replace(self, Subscribers::Many(Vec::new()))
                else {
                    unreachable!("matched One")
                };
                *self = Subscribers::Many(vec![first, subscriber]);
            }
            Subscribers::Many(list) if list.is_empty() => *self = Subscribers::One(subscriber),
            Subscribers::Many(list) => {
                if list.len() == list.capacity() {
                    list.reserve_exact(headroom(list.len()));
                }
                list.push(subscriber);
            }
        }
    }

    /// Removes and returns the subscriber at `index`; the last one takes its place. A
    /// heap list left with one subscriber moves it inline and frees the list.
    pub(crate) fn swap_remove(&mut self, index: usize) -> Recipient<T> {
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
                let removed = list.swap_remove(index);
                if list.len() == 1 {
                    let only = list.pop().expect("one left");
                    *self = Subscribers::One(only);
                }
                removed
            }
        }
    }
}

impl<T> Extend<Recipient<T>> for Subscribers<T> {
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
    /// The writer's copy-on-write of an entry, about to change: [`headroom`] to spare.
    fn clone(&self) -> Self {
        match self {
            Subscribers::One(only) => Subscribers::One(only.clone()),
            Subscribers::Many(list) => {
                let mut copy = Vec::with_capacity(list.len() + headroom(list.len()));
                copy.extend(list.iter().cloned());
                Subscribers::Many(copy)
            }
        }
    }
}

/// Room a heap list of `len` is given beyond its length, when it is copied or found
/// full: an eighth (at least one).
///
/// Lists here are long-lived and mostly short, and a writer batch copies the list of
/// each topic it changes (a published snapshot still reads the old one) and usually
/// pushes one subscriber to it: so the copy is where the list is made tight, with room
/// for that one push (no second allocation). Growing a full list by an eighth is still
/// amortised O(1) per push (a batch that adds many subscribers to one topic copies
/// each about eight times). A `SmallVec`'s copy, rounded up to a power of two, left
/// up to half of each list empty (`benches/memory.rs`, 100,000 topics of 10, 20, 30
/// subscribers).
fn headroom(len: usize) -> usize {
    (len / 8).max(1)
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

    /// Pushes and swap-removes through every shape (one, several, back to one, none),
    /// against a `Vec`; every sink reference is released with the list.
    #[test]
    fn matches_a_vec_under_pushes_and_removes() {
        let sink = Arc::new(Sink::callback(
            ClientId::from_raw(0),
            CallbackSink::new(|_: &u32| {}),
        ));
        let recipient = |id| Recipient::new(ClientId::from_raw(id), Arc::clone(&sink));
        let ids = |list: &[Recipient<u32>]| list.iter().map(|r| r.id).collect::<Vec<_>>();
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next_id = 0;
        let mut list = Subscribers::one(recipient(next_id));
        let mut model = vec![ClientId::from_raw(next_id)];
        for _ in 0..5_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            if model.is_empty() || (model.len() < 9 && state % 2 == 0) {
                next_id += 1;
                list.push(recipient(next_id));
                model.push(ClientId::from_raw(next_id));
            } else {
                let index = (state >> 8) as usize % model.len();
                assert_eq!(list.swap_remove(index).id, model.swap_remove(index));
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

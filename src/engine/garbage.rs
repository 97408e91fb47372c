//! [`Owned`]: the pointer of the topic trie's nodes and entries — one owner, no count —
//! and the per-publication [`Garbage`] that replaces reference counting.
//!
//! # Why
//!
//! The trie is persistent: a batch copies the path it changes, and the snapshot it
//! replaced keeps pointing at the originals. With counted pointers ([`WriterRc`]) copying
//! a node takes a reference to each of its children (up to 32 increments) and freeing the
//! replaced snapshot walks its unshared nodes to release them again (32 decrements each).
//! A per-call subscribe at 1,000 topics copies two nodes and frees two: 64 count touches,
//! each a cache miss on a cold child at 100,000 topics.
//!
//! Here every node and entry has exactly one owner: the writer's working tree. A
//! published snapshot owns nothing; it is a view of the tree as it was when published,
//! kept valid by the rule below. So:
//!
//! - Each allocation is stamped with the *epoch* (publications of its map so far) it was
//!   made in. The working tree may change one in place iff its stamp is the current
//!   epoch: no published snapshot can point at it.
//! - Changing an older node copies it bitwise into a new one (its children now belong
//!   to the copy, nothing counted) and puts the original, a *husk*, in the epoch's
//!   garbage; freeing a husk frees its allocation only, never its children. An older
//!   entry is cloned (its subscriber list is a real copy) and the original goes to the
//!   garbage whole.
//! - Anything older the working tree drops (a removed topic's entry) goes to the garbage
//!   too. Something stamped with the current epoch is freed at once.
//!
//! Measured with callgrind (`benches/floor_callgrind.rs`, whole program, the difference
//! of two pair counts, per mutation): one call per mutation 5,846 → 3,618 instructions at
//! 1,000 topics and 7,907 → 4,051 at 100,000; `apply` batches of 256, 1,997 → 1,856 at
//! 1,000 and 3,033 → 2,238 at 100,000. Copying a node with one `memcpy` straight into
//! its new allocation, rather than slot by slot, is about 1,600 of the 2,200 saved per
//! call at 1,000 topics: the slot loop cost more than the counts it touched. Lookups are
//! unchanged (a cold-topic broadcast: 7.0 L1 data misses both ways). A pool reusing the
//! husks' allocations for the next copies, tried, saved the `malloc`/`free` calls but
//! cost as much in its own bookkeeping (3,618 → 3,674): not kept.
//!
//! # The rule that makes it sound
//!
//! The garbage of the batch that publishes snapshot `S(e+1)` holds only what `S(e)` and
//! older snapshots can reach (the working tree stopped pointing at it during that
//! epoch). It is freed only once `S(e)` and every snapshot published before it is freed,
//! by the writer, which frees a snapshot only when no broadcast holds it (`Arc::get_mut`,
//! whose Acquire pairs with the Release of each reader's drop). `retired.rs` keeps that
//! order: the garbage rides on the record of `S(e)` and is dropped when that record and
//! all older ones are gone. The loom model `loom-tests/tests/trie_garbage.rs` fails when
//! the garbage is freed one publication early.
//!
//! Under loom every allocation carries a loom `UnsafeCell` that broadcasts read and the
//! free writes, and freed memory is leaked rather than returned: a free racing with a
//! broadcast's read fails the model instead of reading freed memory.
//!
//! [`WriterRc`]: super::writer_rc::WriterRc

// The crate denies `unsafe`; this file is a measured exception (see "Why" and
// `topic_map.rs`).
#![allow(unsafe_code)]

use std::marker::PhantomData;
use std::ops::Deref;
use std::ptr::NonNull;

/// A pointer to a `T` owned by the working tree (or by nobody, in a published view:
/// module docs), stamped with the epoch it was made in.
pub(crate) struct Owned<T> {
    inner: NonNull<Inner<T>>,
    /// Owns an `Inner<T>` (for drop check and variance).
    _owns: PhantomData<Inner<T>>,
}

/// Laid out as `WriterRc`'s `Inner` was (a word and the value), so slots and entries
/// keep their alignment (a cold broadcast's cache misses depend on it).
struct Inner<T> {
    /// The epoch this allocation was made in. Written once, before it is shared.
    stamp: u64,
    value: T,
    /// Read by every dereference, written by the free: a free racing with a reader
    /// fails a loom model (module docs).
    #[cfg(loom)]
    alive: crate::sync::UnsafeCell<()>,
}

// SAFETY: an `Owned` moved to or shared with another thread only gives that thread `&T`
// (which `T: Sync` allows) unless the thread holds the writer role, the only one that
// changes, copies or frees an `Owned` (module docs); the role's lock orders those.
// `T: Send`: the value may be dropped on whichever thread holds the role.
unsafe impl<T: Send + Sync> Send for Owned<T> {}
// SAFETY: as for `Send`: through `&Owned<T>` another thread can only read `T`.
unsafe impl<T: Send + Sync> Sync for Owned<T> {}

impl<T> Owned<T> {
    /// A new allocation, stamped `epoch` (the working map's current one).
    pub(crate) fn new(value: T, epoch: u64) -> Self {
        let inner = Box::new(Inner {
            stamp: epoch,
            value,
            #[cfg(loom)]
            alive: crate::sync::UnsafeCell::new(()),
        });
        Self {
            inner: NonNull::from(Box::leak(inner)),
            _owns: PhantomData,
        }
    }

    #[inline(always)]
    fn inner(&self) -> &Inner<T> {
        // SAFETY: the allocation lives while its owner does, and until the garbage that
        // holds it is freed for every view (module docs), and this handle is one of
        // those.
        unsafe { self.inner.as_ref() }
    }

    /// Whether this was made in `epoch`.
    #[inline(always)]
    pub(crate) fn made_in(&self, epoch: u64) -> bool {
        self.inner().stamp == epoch
    }

    /// Mutable access (writer role only; the caller checked [`Self::made_in`] with the
    /// current epoch, so no published view can reach the value).
    #[inline(always)]
    pub(crate) fn get_mut(&mut self) -> &mut T {
        // SAFETY: stamped with the current epoch, the allocation was made after the last
        // publication: no view reaches it, and `&mut self` is its only owner.
        unsafe { &mut (*self.inner.as_ptr()).value }
    }

    /// A second handle on the same allocation.
    ///
    /// # Safety
    ///
    /// Only one of the two may ever be dropped, and only if the other is no longer used;
    /// or the original becomes a husk ([`Husk`]) and the alias owns what it owned.
    #[inline(always)]
    pub(crate) unsafe fn alias(&self) -> Self {
        Self {
            inner: self.inner,
            _owns: PhantomData,
        }
    }

    /// Replaces `this` (made in an earlier epoch) by a new allocation holding `copy`, a
    /// bitwise copy of its value, stamped `epoch`; the original's value is then a husk
    /// ([`Husk`]), kept in `garbage` until no view can reach it.
    ///
    /// # Safety
    ///
    /// `copy` took over what the original's value owns, exactly as [`Husk::drop_husk`]
    /// of `T` assumes.
    pub(crate) unsafe fn replace_with_copy<V>(
        this: &mut Self,
        copy: T,
        epoch: u64,
        garbage: &mut Garbage<V>,
    ) where
        T: Husk,
    {
        let original = std::mem::replace(this, Owned::new(copy, epoch));
        garbage.push(original, finish_husk::<T>);
    }

    /// Replaces `this` (made in an earlier epoch) by a new allocation holding a bitwise
    /// copy of its value (one `memcpy`, straight from the old allocation to the new),
    /// stamped `epoch`; the original's value is then a husk ([`Husk`]), kept in
    /// `garbage` until no view can reach it.
    ///
    /// # Safety
    ///
    /// A bitwise copy of a `T` may own what the original owned, exactly as
    /// [`Husk::drop_husk`] of `T` assumes (no buffer of its own that the husk frees).
    pub(crate) unsafe fn replace_with_bitwise_copy<V>(
        this: &mut Self,
        epoch: u64,
        garbage: &mut Garbage<V>,
    ) where
        T: Husk,
    {
        let layout = std::alloc::Layout::new::<Inner<T>>();
        // SAFETY: `Inner<T>` is never zero-sized (it has a stamp). Memory from the global
        // allocator with `Inner<T>`'s layout is what `Box<Inner<T>>` frees.
        let fresh = unsafe { std::alloc::alloc(layout) }.cast::<Inner<T>>();
        if fresh.is_null() {
            std::alloc::handle_alloc_error(layout);
        }
        // SAFETY: `fresh` is a new allocation for an `Inner<T>`; each field is written
        // once, the value with the bytes of the live original (which is never dropped
        // whole afterwards: it goes to the garbage as a husk, as the caller allows).
        let copy = unsafe {
            std::ptr::addr_of_mut!((*fresh).stamp).write(epoch);
            std::ptr::copy_nonoverlapping(
                std::ptr::addr_of!((*this.inner.as_ptr()).value),
                std::ptr::addr_of_mut!((*fresh).value),
                1,
            );
            #[cfg(loom)]
            std::ptr::addr_of_mut!((*fresh).alive).write(crate::sync::UnsafeCell::new(()));
            Self {
                inner: NonNull::new_unchecked(fresh),
                _owns: PhantomData,
            }
        };
        let original = std::mem::replace(this, copy);
        garbage.push(original, finish_husk::<T>);
    }

    /// Replaces `this` (made in an earlier epoch) by a new allocation holding `copy`, an
    /// independent clone of its value, stamped `epoch`; the original is kept whole in
    /// `garbage` until no view can reach it.
    pub(crate) fn replace_with_clone<V>(
        this: &mut Self,
        copy: T,
        epoch: u64,
        garbage: &mut Garbage<V>,
    ) {
        let original = std::mem::replace(this, Owned::new(copy, epoch));
        garbage.push(original, finish_whole::<T>);
    }

    /// Disposes of a handle the working tree dropped: at once if it was made in `epoch`
    /// (no view reaches it), else into `garbage`, freed whole later.
    pub(crate) fn discard<V>(this: Self, epoch: u64, garbage: &mut Garbage<V>) {
        if this.made_in(epoch) {
            drop(this);
        } else {
            garbage.push(this, finish_whole::<T>);
        }
    }
}

/// What is left of a value once a bitwise copy took over what it owns.
pub(crate) trait Husk {
    /// Disposes of the husk: frees what the copy did not take over (for a node: nothing,
    /// its children are the copy's), never what it did.
    ///
    /// # Safety
    ///
    /// `this` is a valid value whose owned parts a bitwise copy took over, used no more.
    unsafe fn drop_husk(this: *mut Self);
}

/// Frees an erased `Inner<T>` whose value is a husk.
///
/// # Safety
///
/// `inner` was erased from an `Owned<T>` by [`Garbage::push`] that nothing reaches.
unsafe fn finish_husk<T: Husk>(inner: *mut ()) {
    // SAFETY: as the caller promised.
    unsafe { free(inner as *mut Inner<T>, T::drop_husk) }
}

/// Frees an erased `Inner<T>` and its value whole.
///
/// # Safety
///
/// `inner` was erased from an `Owned<T>` by [`Garbage::push`] that nothing reaches.
unsafe fn finish_whole<T>(inner: *mut ()) {
    // SAFETY: as the caller promised.
    unsafe { free(inner as *mut Inner<T>, std::ptr::drop_in_place::<T>) }
}

impl<T> Drop for Owned<T> {
    /// Frees the value and everything it owns: only for an allocation no view reaches
    /// (made in the current epoch), or at teardown.
    fn drop(&mut self) {
        // SAFETY: this is the owner, the allocation came from `Box::leak` in `new`, and
        // no view reaches it (see the doc above).
        unsafe { free(self.inner.as_ptr(), std::ptr::drop_in_place::<T>) };
    }
}

impl<T> Deref for Owned<T> {
    type Target = T;

    #[inline(always)]
    fn deref(&self) -> &T {
        let inner = self.inner();
        #[cfg(loom)]
        inner.alive.with(|_| ());
        &inner.value
    }
}

/// Runs `husk` on the value of `inner`, then frees the allocation.
///
/// # Safety
///
/// `inner` came from `Owned::new`, nothing reaches it any more, and `husk` is a correct
/// disposal of its value.
unsafe fn free<T>(inner: *mut Inner<T>, husk: unsafe fn(*mut T)) {
    #[cfg(loom)]
    {
        // SAFETY: as the caller promised; loom checks that no reader is unordered with
        // this write. The value is disposed of, but the allocation is leaked, not freed
        // (module docs), so a late reader fails on the cell, not on freed memory.
        unsafe {
            (*inner).alive.with_mut(|_| ());
            husk(std::ptr::addr_of_mut!((*inner).value));
        }
    }
    #[cfg(not(loom))]
    {
        // SAFETY: as the caller promised. Moving out the other fields is a no-op, and
        // the box is freed as `Inner<MaybeUninit<T>>`-shaped memory: the value is
        // disposed of by `husk` alone.
        unsafe {
            husk(std::ptr::addr_of_mut!((*inner).value));
            let boxed = Box::from_raw(inner as *mut std::mem::ManuallyDrop<Inner<T>>);
            drop(boxed);
        }
    }
}

/// Allocations the working tree stopped pointing at, waiting until no published view
/// can reach them (module docs).
/// Everything in it is part of a trie of `V`s (nodes, lists, entries, a whole map).
pub(crate) struct Garbage<V> {
    items: Vec<Retiree>,
    /// What the erased allocations hold, for `Send` and `Sync`.
    _holds: PhantomData<V>,
}

impl<V> Default for Garbage<V> {
    fn default() -> Self {
        Self {
            items: Vec::new(),
            _holds: PhantomData,
        }
    }
}

/// One deferred free: an erased `Inner<T>` and the function that frees it.
struct Retiree {
    inner: *mut (),
    finish: unsafe fn(*mut ()),
}

// SAFETY: the allocations are parts of a trie of `V`s, which an `Owned` of them may
// send or share under the same bounds; a `&Garbage` gives no access to them.
unsafe impl<V: Send + Sync> Send for Garbage<V> {}
// SAFETY: as for `Send`.
unsafe impl<V: Send + Sync> Sync for Garbage<V> {}

impl<V> Garbage<V> {
    /// Moves everything from `other` into this list.
    pub(crate) fn append(&mut self, other: &mut Garbage<V>) {
        if self.items.is_empty() {
            std::mem::swap(&mut self.items, &mut other.items);
        } else {
            self.items.append(&mut other.items);
        }
    }

    /// Keeps `original`, to be freed by `finish` (erased for `T`).
    fn push<T>(&mut self, original: Owned<T>, finish: unsafe fn(*mut ())) {
        let original = std::mem::ManuallyDrop::new(original);
        self.items.push(Retiree {
            inner: original.inner.as_ptr() as *mut (),
            finish,
        });
    }

    /// Keeps a whole tree (a working map the writer gave up, at close), dropped whole.
    pub(crate) fn push_whole<T>(&mut self, value: T) {
        self.push(Owned::new(value, 0), finish_whole::<T>);
    }
}

impl<V> Garbage<V> {
    /// Frees everything, keeping the list's buffer for the next epoch: only once no
    /// published view can reach it (writer role; see `retired.rs`), or at teardown.
    pub(crate) fn free(&mut self) {
        for item in self.items.drain(..) {
            // SAFETY: erased by `push` from an `Owned` with the `finish` of its type;
            // nothing reaches it any more (see above).
            unsafe { (item.finish)(item.inner) };
        }
    }
}

impl<V> Drop for Garbage<V> {
    /// Frees everything (see [`Garbage::free`]).
    fn drop(&mut self) {
        self.free();
    }
}

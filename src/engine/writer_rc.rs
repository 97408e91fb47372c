//! [`WriterRc`]: the reference-counted pointer of the pattern index's tries, whose count
//! only the writer changes — a plain integer, not an atomic. (The topic trie has no
//! counts at all: see [`garbage`](super::garbage).)
//!
//! # Why
//!
//! A snapshot is persistent: each batch copies the trie path it changes, and copying a
//! node takes a reference to each of its children (up to 32). With `Arc`, each is an
//! atomic read-modify-write, and so is each release when the superseded snapshot is
//! freed. A per-call subscribe at 1,000 topics copies two nodes of ~32 children and frees
//! two: copying and dropping 63 `Arc`s took 640 ns here against 160 ns for 63 `Rc`s,
//! most of the 760 ns the subscribe took.
//!
//! # The rule that makes it sound
//!
//! Counts are read and written only by whoever holds the writer role (or by the last
//! owner of the engine, tearing it down, when nobody else can hold anything). Broadcasts
//! follow these pointers to read the nodes and entries but never clone or drop one. A
//! broadcast holds an `Arc<Snapshot>` (its snapshot guard), not a `WriterRc`, and the
//! writer keeps every snapshot it replaced until it finds itself the only holder
//! (`Arc::get_mut`, whose Acquire pairs with the Release of each reader's drop), and
//! only then drops it, under the role: so the last reference to a snapshot, whose drop
//! releases its pointers, is never dropped by a broadcast. See
//! `engine/writer/retired.rs`.
//!
//! Under loom the count is a loom `UnsafeCell`: a count touched by two threads with no
//! happens-before between them (a broadcast dropping a snapshot the writer still
//! shares) fails the model.

// The crate denies `unsafe`; this file is the measured exception (see "Why").
#![allow(unsafe_code)]

use std::marker::PhantomData;
use std::ops::Deref;
use std::ptr::NonNull;

use crate::sync::UnsafeCell;

/// A shared pointer to an immutable-once-published `T`, counted by the writer.
pub(crate) struct WriterRc<T> {
    inner: NonNull<Inner<T>>,
    /// Owns an `Inner<T>` (for drop check and variance).
    _owns: PhantomData<Inner<T>>,
}

struct Inner<T> {
    /// Handles to this value. Touched only under the writer role (module docs).
    count: UnsafeCell<usize>,
    value: T,
}

// SAFETY: a `WriterRc` moved to or shared with another thread only gives that thread
// `&T` (which `T: Sync` allows) unless the thread holds the writer role: cloning and
// dropping — the only accesses to `count` — happen under the role or during teardown by
// the engine's last owner (module docs), and the role's lock orders them. `T: Send`:
// the value may be dropped on whichever thread holds the role.
unsafe impl<T: Send + Sync> Send for WriterRc<T> {}
// SAFETY: as for `Send`: through `&WriterRc<T>` another thread can only read `T`.
unsafe impl<T: Send + Sync> Sync for WriterRc<T> {}

impl<T> WriterRc<T> {
    pub(crate) fn new(value: T) -> Self {
        let inner = Box::new(Inner {
            count: UnsafeCell::new(1),
            value,
        });
        Self {
            inner: NonNull::from(Box::leak(inner)),
            _owns: PhantomData,
        }
    }

    #[inline(always)]
    fn inner(&self) -> &Inner<T> {
        // SAFETY: the allocation lives while any handle does, and this is one.
        unsafe { self.inner.as_ref() }
    }

    /// Whether this is the only handle (writer role only).
    fn is_unique(&self) -> bool {
        // SAFETY: counts are touched only under the writer role (module docs), which the
        // caller holds: no other access is concurrent with this read.
        self.inner().count.with(|count| unsafe { *count } == 1)
    }

    /// Mutable access, replacing the value first by `copy` of it if another handle
    /// shares it (writer role only).
    #[inline]
    pub(crate) fn make_mut_with(this: &mut Self, copy: impl FnOnce(&T) -> T) -> &mut T {
        if !this.is_unique() {
            *this = WriterRc::new(copy(this));
        }
        // SAFETY: `this` is the only handle, so nothing else reads or writes the value;
        // the borrow of `this` keeps it so for the returned lifetime.
        unsafe { &mut (*this.inner.as_ptr()).value }
    }
}

impl<T> Clone for WriterRc<T> {
    /// Writer role only.
    #[inline]
    fn clone(&self) -> Self {
        // SAFETY: under the writer role (module docs): no concurrent access. Cannot
        // overflow: every handle occupies at least a pointer's worth of memory.
        self.inner().count.with_mut(|count| unsafe { *count += 1 });
        Self {
            inner: self.inner,
            _owns: PhantomData,
        }
    }
}

impl<T> Drop for WriterRc<T> {
    /// Writer role (or teardown) only.
    #[inline]
    fn drop(&mut self) {
        let last = self.inner().count.with_mut(|count| {
            // SAFETY: under the writer role or teardown (module docs): no concurrent
            // access.
            let count = unsafe { &mut *count };
            *count -= 1;
            *count == 0
        });
        if last {
            self.free();
        }
    }
}

impl<T> WriterRc<T> {
    /// Frees the value; out of line, so the common drop (a decrement) inlines.
    #[cold]
    #[inline(never)]
    fn free(&mut self) {
        // SAFETY: the count reached zero: this was the last handle, and `inner` came from
        // `Box::leak` in `new`.
        drop(unsafe { Box::from_raw(self.inner.as_ptr()) });
    }
}

impl<T> Deref for WriterRc<T> {
    type Target = T;

    #[inline(always)]
    fn deref(&self) -> &T {
        &self.inner().value
    }
}

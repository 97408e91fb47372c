//! The one place that decides which synchronisation primitives the engine is built on.
//!
//! Normally these are `std`, `arc-swap` and `crossbeam-channel`. Under `--cfg loom` they
//! are loom's modelled types, and the two pieces loom cannot see inside — `ArcSwap` and
//! crossbeam's bounded queue — are replaced by small stand-ins built from loom's own
//! `Mutex` and `Condvar` with the same observable semantics (see `sync/loom_queue.rs`, built only under `--cfg loom`). The
//! engine code calls the same names either way, so the loom models in `loom-tests/`
//! check the engine's real code paths, not a copy.

#[cfg(not(loom))]
mod imp {
    pub(crate) use std::sync::atomic::{fence, AtomicBool, AtomicU64, AtomicU8, Ordering};
    pub(crate) use std::sync::{Arc, Condvar, Mutex, MutexGuard};
    pub(crate) use std::thread::{self, JoinHandle, ThreadId};
    pub(crate) use std::thread_local;

    /// The bounded MPMC queue used for the command queue and for channel sinks.
    pub(crate) use crossbeam_channel as queue;

    /// `std`'s `UnsafeCell` with loom's access API (`with`, `with_mut`), so code that
    /// hands out its raw pointers is checked for unordered access under loom.
    pub(crate) struct UnsafeCell<T>(std::cell::UnsafeCell<T>);

    impl<T> UnsafeCell<T> {
        pub(crate) fn new(value: T) -> Self {
            Self(std::cell::UnsafeCell::new(value))
        }

        #[inline(always)]
        pub(crate) fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
            f(self.0.get())
        }

        #[inline(always)]
        pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
            f(self.0.get())
        }
    }

    /// An atomically replaceable `Arc<T>`: readers never lock and never wait for the writer.
    pub(crate) struct SnapshotCell<T>(arc_swap::ArcSwap<T>);

    /// What [`SnapshotCell::load`] returns: derefs to the snapshot, keeps it alive.
    pub(crate) type SnapshotGuard<T> = arc_swap::Guard<Arc<T>>;

    impl<T> SnapshotCell<T> {
        pub(crate) fn new(value: Arc<T>) -> Self {
            Self(arc_swap::ArcSwap::new(value))
        }

        /// Loads the current snapshot. Lock-free; wait-free in the common case
        /// (arc-swap's per-thread debt slots).
        pub(crate) fn load(&self) -> SnapshotGuard<T> {
            self.0.load()
        }

        /// Publishes a new snapshot and returns the one it replaces (for the caller to
        /// drop when it chooses). Every `load` that starts after this returns sees the new
        /// one (arc-swap's `swap` is `SeqCst`).
        pub(crate) fn swap(&self, value: Arc<T>) -> Arc<T> {
            self.0.swap(value)
        }
    }
}

#[cfg(loom)]
mod imp {
    pub(crate) use loom::sync::atomic::{fence, AtomicBool, AtomicU64, AtomicU8, Ordering};
    pub(crate) use loom::sync::{Arc, Condvar, Mutex, MutexGuard};
    pub(crate) use loom::thread::{self, JoinHandle, ThreadId};
    /// Loom runs every modelled thread on one OS thread, so a `std` thread-local would be
    /// shared by all of them; loom's is per modelled thread.
    pub(crate) use loom::thread_local;

    pub(crate) use super::loom_queue as queue;

    /// Loom's `UnsafeCell`: every access is checked against the others for ordering.
    pub(crate) use loom::cell::UnsafeCell;

    /// Loom stand-in for `ArcSwap`: a mutex around the `Arc`. It is stronger than arc-swap
    /// (readers serialise on the lock) but has the same visible behaviour: a `load` that
    /// starts after a `store` returned sees the stored value, and a loaded snapshot stays
    /// alive while the guard lives.
    pub(crate) struct SnapshotCell<T>(Mutex<Arc<T>>);

    pub(crate) type SnapshotGuard<T> = Arc<T>;

    impl<T> SnapshotCell<T> {
        pub(crate) fn new(value: Arc<T>) -> Self {
            Self(Mutex::new(value))
        }

        pub(crate) fn load(&self) -> SnapshotGuard<T> {
            self.0.lock().unwrap().clone()
        }

        pub(crate) fn swap(&self, value: Arc<T>) -> Arc<T> {
            std::mem::replace(&mut *self.0.lock().unwrap(), value)
        }
    }
}

#[cfg(loom)]
pub(crate) mod loom_queue;
mod park_lock;
pub(crate) use park_lock::ParkLock;
#[cfg(any(feature = "async", feature = "nats"))]
pub(crate) mod waker_slot;

pub(crate) use imp::*;

/// Takes a mutex if it is free: `None` if another thread holds it. Poisoning is ignored,
/// as in [`lock`].
pub(crate) fn try_lock<T>(mutex: &Mutex<T>) -> Option<MutexGuard<'_, T>> {
    match mutex.try_lock() {
        Ok(guard) => Some(guard),
        Err(std::sync::TryLockError::WouldBlock) => None,
        Err(std::sync::TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
    }
}

/// Locks a mutex, ignoring poisoning: every mutex in the engine guards data that stays
/// consistent across a panic (a slot written in one assignment).
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    match mutex.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

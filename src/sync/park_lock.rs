//! [`ParkLock`]: a mutex without poisoning whose uncontended lock and unlock are one
//! atomic read-modify-write each. A thread that finds it held parks on a `Mutex` and
//! `Condvar` pair; nothing spins.
//!
//! What a conflating channel's table uses: `std`'s mutex costs the same two atomics plus
//! a poison check at each end (a read of the global panic count, its branches), about 10
//! instructions per publish on that channel's hot path, and the table has no use for
//! poisoning (see the conflating sink's module docs: a panic inside the lock leaves the
//! table usable).
//!
//! # Protocol
//!
//! `state` is [`UNLOCKED`], [`LOCKED`], or [`CONTENDED`] (locked, and a thread may be
//! parked waiting). Lock: a compare-and-swap `UNLOCKED → LOCKED`; if that fails, under
//! the `parked` mutex, swap in `CONTENDED` until the swap returns `UNLOCKED` (the lock is
//! then ours, marked contended, so our unlock wakes the next waiter), waiting on `wake`
//! between tries. Unlock: swap in `UNLOCKED`; if the old value was `CONTENDED`, take
//! `parked` and notify one waiter.
//!
//! No wake-up is lost: a waiter holds `parked` from its swap until the condvar wait
//! releases it, so an unlock that saw its `CONTENDED` can take `parked` (and notify) only
//! once the waiter waits. An unlock that ran before the waiter's swap left `UNLOCKED`,
//! which that swap takes. (Drepper's "futex mutex", with a condvar for the futex.)
//!
//! The loom models of conflating channels (`loom-tests/tests/conflation*.rs`) run this
//! lock with loom's atomics, mutex and condvar: a lost wake-up is a deadlock there.
#![allow(unsafe_code)]

use super::{lock, AtomicU8, Condvar, Mutex, Ordering, UnsafeCell};

/// Nobody holds the lock.
const UNLOCKED: u8 = 0;
/// Held, nobody parked.
const LOCKED: u8 = 1;
/// Held, and a thread may be parked on `wake`: the unlock must notify.
const CONTENDED: u8 = 2;

/// A mutual-exclusion lock around a `T`, entered with [`with`](Self::with).
pub(crate) struct ParkLock<T> {
    state: AtomicU8,
    /// Held by a contending thread from its swap to its wait; by an unlock to notify.
    parked: Mutex<()>,
    wake: Condvar,
    data: UnsafeCell<T>,
}

// SAFETY: the lock gives one thread at a time access to the `T` (see `with`), as
// `std::sync::Mutex` does, so sharing it needs only `T: Send`.
unsafe impl<T: Send> Send for ParkLock<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Sync for ParkLock<T> {}

/// Unlocks on drop: on return from `with`, and if its closure panics.
struct Unlock<'a, T>(&'a ParkLock<T>);

impl<T> Drop for Unlock<'_, T> {
    #[inline(always)]
    fn drop(&mut self) {
        self.0.unlock();
    }
}

impl<T> ParkLock<T> {
    pub(crate) fn new(value: T) -> Self {
        Self {
            state: AtomicU8::new(UNLOCKED),
            parked: Mutex::new(()),
            wake: Condvar::new(),
            data: UnsafeCell::new(value),
        }
    }

    /// Runs `f` on the data with the lock held. A panic in `f` unlocks and propagates.
    #[inline(always)]
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        if self
            .state
            .compare_exchange(UNLOCKED, LOCKED, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            self.lock_contended();
        }
        let _unlock = Unlock(self);
        self.data.with_mut(|data| {
            // SAFETY: the lock is held (the CAS above or `lock_contended` made `state`
            // ours; Acquire orders this access after the previous holder's unlock, whose
            // swap is Release), and it is released only when `_unlock` drops, after this
            // borrow ends: no other thread accesses the data meanwhile.
            f(unsafe { &mut *data })
        })
    }

    /// The lock was held: park until it is ours. Leaves `state` `CONTENDED`.
    #[cold]
    #[inline(never)]
    fn lock_contended(&self) {
        let mut parked = lock(&self.parked);
        // Each try marks the lock contended before the holder's unlock can miss it: see
        // the module docs.
        while self.state.swap(CONTENDED, Ordering::Acquire) != UNLOCKED {
            parked = match self.wake.wait(parked) {
                Ok(guard) => guard,
                Err(poisoned) => poisoned.into_inner(),
            };
        }
    }

    #[inline(always)]
    fn unlock(&self) {
        if self.state.swap(UNLOCKED, Ordering::Release) == CONTENDED {
            self.wake_one();
        }
    }

    /// Wakes one parked thread. Taking `parked` first: a waiter holds it from its swap
    /// until it waits, so the notify cannot fall in between.
    #[cold]
    #[inline(never)]
    fn wake_one(&self) {
        let _parked = lock(&self.parked);
        self.wake.notify_one();
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::ParkLock;

    /// A panic inside `with` unlocks: the next `with` gets in and sees the change made
    /// before the panic.
    #[test]
    fn a_panic_inside_unlocks() {
        let lock = ParkLock::new(0);
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            lock.with(|n| {
                *n += 1;
                panic!("inside the lock");
            })
        }));
        assert!(caught.is_err());
        assert_eq!(lock.with(|n| *n), 1);
    }

    /// Two threads contending (each parks when it finds the lock held) lose no update.
    #[test]
    fn contended_increments_are_all_counted() {
        let lock = std::sync::Arc::new(ParkLock::new(0u64));
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let lock = std::sync::Arc::clone(&lock);
                std::thread::spawn(move || {
                    for _ in 0..20_000 {
                        lock.with(|n| *n += 1);
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        assert_eq!(lock.with(|n| *n), 40_000);
    }
}

/// Loom models of the lock itself (run by `loom-tests/run.sh`:
/// `RUSTFLAGS="--cfg loom" cargo test --release --lib park_lock`). Three threads take it
/// twice each: loom's `UnsafeCell` fails the model if two ever hold it at once, and a
/// lost wake-up leaves a thread parked forever, which loom reports as a deadlock
/// (notifying without taking `parked` first fails this way).
#[cfg(all(test, loom))]
mod loom_models {
    use loom::sync::Arc;
    use loom::thread;

    use super::ParkLock;

    #[test]
    fn park_lock_excludes_and_wakes() {
        loom::model(|| {
            let lock = Arc::new(ParkLock::new(0u32));
            let others: Vec<_> = (0..2)
                .map(|_| {
                    let lock = Arc::clone(&lock);
                    thread::spawn(move || {
                        for _ in 0..2 {
                            lock.with(|n| *n += 1);
                        }
                    })
                })
                .collect();
            lock.with(|n| *n += 1);
            for other in others {
                other.join().unwrap();
            }
            assert_eq!(lock.with(|n| *n), 5);
        });
    }
}

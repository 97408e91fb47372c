//! The two counters every broadcast adds to (`broadcasts`, `deliveries`), kept per
//! thread so that adding to them takes no atomic read-modify-write.
//!
//! One shared `fetch_add` pair per broadcast cost a broadcast to one subscriber about a
//! fifth of its time (49 → 38 ns with the counters removed, `benches/one_subscriber.rs`):
//! a `lock`-prefixed instruction waits for the store buffer to drain, and with several
//! publisher threads the counters' cache line moves between cores on every broadcast.
//!
//! Instead each engine has [`SLOTS`] cache-line-sized slots, and a thread that
//! broadcasts leases one slot *index* for its lifetime, process-wide: the same index in
//! every engine. The leaseholder is the only writer of its slot in every engine, so it
//! adds with a plain load and store; [`totals`](PerThread::totals) sums the slots. A
//! thread that finds no free index (more than `SLOTS` threads broadcasting at once), or
//! that broadcasts while its thread-locals are being torn down, adds to a shared slot
//! with `fetch_add` instead — slower, never wrong.
//!
//! A lease outlives the thread's last store to any slot: an exiting thread returns its
//! index under a mutex, the next thread takes it under the same mutex, so the new owner's
//! first load sees the old owner's last store and no count is lost.

use crate::sync::{AtomicU64, Ordering};

/// Slots per engine (each a cache line: 2 KiB per engine).
pub(crate) const SLOTS: usize = 32;

/// One thread's counts in one engine. A cache line each, so two publishers never write
/// the same line.
#[derive(Default)]
#[repr(align(64))]
struct Slot {
    broadcasts: AtomicU64,
    deliveries: AtomicU64,
}

impl Slot {
    /// Adds as the slot's only writer: a load and a store, no read-modify-write.
    #[inline]
    fn add_as_owner(&self, delivered: u64) {
        let broadcasts = self.broadcasts.load(Ordering::Relaxed);
        self.broadcasts.store(broadcasts + 1, Ordering::Relaxed);
        let deliveries = self.deliveries.load(Ordering::Relaxed);
        self.deliveries
            .store(deliveries + delivered, Ordering::Relaxed);
    }

    /// Adds as one of several writers.
    fn add_shared(&self, delivered: u64) {
        self.broadcasts.fetch_add(1, Ordering::Relaxed);
        self.deliveries.fetch_add(delivered, Ordering::Relaxed);
    }
}

/// `broadcasts` and `deliveries` of one engine, per thread.
#[derive(Default)]
pub(crate) struct PerThread {
    slots: Box<[Slot; SLOTS]>,
    /// For threads without a lease.
    shared: Slot,
}

impl PerThread {
    /// Counts one broadcast that reached `delivered` sinks.
    #[inline]
    pub(crate) fn add(&self, delivered: u64) {
        match lease::index() {
            Some(index) => self.slots[index].add_as_owner(delivered),
            None => self.shared.add_shared(delivered),
        }
    }

    /// `(broadcasts, deliveries)` so far (each slot read once; a broadcast in flight may
    /// be missing).
    pub(crate) fn totals(&self) -> (u64, u64) {
        self.slots
            .iter()
            .chain(std::iter::once(&self.shared))
            .fold((0, 0), |(b, d), slot| {
                (
                    b + slot.broadcasts.load(Ordering::Relaxed),
                    d + slot.deliveries.load(Ordering::Relaxed),
                )
            })
    }
}

/// The process-wide lease of slot indices to threads.
#[cfg(not(loom))]
mod lease {
    use std::cell::Cell;
    use std::sync::Mutex;

    use super::SLOTS;

    /// Indices no live thread holds (returned by exited threads), and the next never
    /// leased one.
    static FREE: Mutex<(Vec<usize>, usize)> = Mutex::new((Vec::new(), 0));

    /// A thread's index; returned when the thread exits.
    struct Lease(Cell<Option<usize>>);

    impl Lease {
        fn take() -> Self {
            // A poisoned lock still holds a consistent list: nothing panics under it.
            let mut free = FREE.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            let index = free.0.pop().or_else(|| {
                let next = free.1;
                (next < SLOTS).then(|| {
                    free.1 += 1;
                    next
                })
            });
            Self(Cell::new(index))
        }
    }

    impl Drop for Lease {
        fn drop(&mut self) {
            if let Some(index) = self.0.take() {
                let mut free = FREE.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                free.0.push(index);
            }
        }
    }

    thread_local! {
        static LEASE: Lease = Lease::take();
    }

    /// This thread's slot index, leased on first use; `None` if all are leased, or if
    /// this thread's thread-locals are already gone.
    #[inline]
    pub(super) fn index() -> Option<usize> {
        LEASE.try_with(|lease| lease.0.get()).ok().flatten()
    }
}

/// Under loom every thread shares one slot (loom models the atomics; leases would only
/// add states to explore).
#[cfg(loom)]
mod lease {
    #[inline]
    pub(super) fn index() -> Option<usize> {
        None
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::{Arc, Barrier};

    #[test]
    fn counts_from_many_threads_add_up() {
        // More threads than slots, started together so that they add at the same time
        // on every core, then a second wave that re-leases the first wave's indices:
        // every count lands exactly once, with or without a lease. (Two threads given
        // the same index lose counts here: the load-then-store of one overwrites the
        // other's.)
        const THREADS: usize = SLOTS + 8;
        const ADDS: u64 = 20_000;
        let counters = Arc::new(PerThread::default());
        let waves = 2;
        for _ in 0..waves {
            let start = Arc::new(Barrier::new(THREADS));
            let handles: Vec<_> = (0..THREADS)
                .map(|t| {
                    let (counters, start) = (Arc::clone(&counters), Arc::clone(&start));
                    std::thread::spawn(move || {
                        start.wait();
                        for _ in 0..ADDS {
                            counters.add(t as u64);
                        }
                    })
                })
                .collect();
            for handle in handles {
                handle.join().unwrap();
            }
        }
        let threads = THREADS as u64;
        let deliveries_per_wave = (0..threads).sum::<u64>() * ADDS;
        assert_eq!(
            counters.totals(),
            (waves * threads * ADDS, waves * deliveries_per_wave)
        );
    }
}

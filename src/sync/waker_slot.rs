//! [`WakerSlot`]: where an async consumer parks its [`Waker`] for the publishers of its
//! queue to find.
//!
//! An [`AsyncChannel`](crate::AsyncChannel) is a bounded crossbeam queue (the same one a
//! [`Channel`](crate::Channel) reads) plus this slot. The queue carries the items; the
//! slot only answers "is somebody asleep on this queue, and how do I wake them?". It is
//! the classic lost-wake-up protocol, the one crossbeam's own `SyncWaker` and tokio's
//! `AtomicWaker` users follow:
//!
//! ```text
//! consumer (poll)                         publisher (deliver)
//! ---------------                         -------------------
//! 1. try_recv: an item? -> Ready          a. push the item
//! 2. store the waker, set `waiting`       b. SeqCst fence
//! 3. SeqCst fence                         c. `waiting` set? if not, done (the fast path)
//! 4. try_recv again: an item? -> Ready    d. clear `waiting`, take the waker, wake it
//! 5. Pending
//! ```
//!
//! # Why no wake-up is lost
//!
//! The two fences (3 and b) are the whole argument. `SeqCst` fences are totally ordered,
//! so one of them comes first:
//!
//! 1. the consumer's fence (3) first: everything before it — the waker stored and
//!    `waiting` set (2) — is visible to the publisher after its fence (b), so the
//!    publisher's check (c) sees `waiting` and wakes the stored waker (d);
//! 2. the publisher's fence (b) first: its push (a) is visible to the consumer after its
//!    fence (3), so the second `try_recv` (4) finds the item and the consumer never parks.
//!
//! In all cases a consumer that returns `Pending` has a waker that the next push will
//! find. (Both may happen — the consumer finds the item *and* the publisher wakes it:
//! a spurious wake-up, which futures allow and which costs one extra poll. The consumer
//! does not clear `waiting` when its second look succeeds: with two tasks awaiting one
//! channel, that would clear the other's announcement.)
//!
//! Step 4 is what makes step 1 cheap: without the second look, an item pushed between
//! 1 and 2 would sit in the queue while the consumer slept. The loom model
//! `loom-tests/tests/async_wake.rs` fails if it is removed.
//!
//! # Closing
//!
//! When the sink goes away (unsubscribed, disconnected by its overflow policy, engine
//! shut down — whatever drops the publisher side), its queue's sender is dropped first
//! and then [`close`](WakerSlot::close) wakes whoever is parked, unconditionally and
//! under the lock. The lock is enough there: if the consumer stored its waker before
//! `close` took the lock, `close` finds and wakes it; if after, the consumer's second
//! `try_recv` (which follows its own critical section) sees the disconnected queue.
//!
//! # Cost
//!
//! A publisher pays one `SeqCst` fence and one relaxed load per successful push when
//! nobody is parked; the lock and the wake only when somebody is. A consumer that keeps
//! up never registers a waker at all (step 1 succeeds).

use std::task::Waker;

use smallvec::SmallVec;

use crate::sync::{fence, lock, AtomicBool, Mutex, Ordering};

/// How many distinct parked wakers a slot keeps before it wakes the ones it holds to make
/// room (see [`WakerSlot::register`]).
const MAX_PARKED: usize = 8;

/// The parked wakers: one, inline, in the common case of one consumer task.
type Parked = SmallVec<[Waker; 1]>;

/// A consumer's parked [`Waker`]s and the flag that tells publishers to look for them.
pub(crate) struct WakerSlot {
    /// Set by a consumer once it has stored its waker and is about to look at the queue
    /// for the last time before parking; cleared by the publisher that takes the wakers.
    waiting: AtomicBool,
    /// The wakers of the `Pending` polls since the last wake-up, until a publisher takes
    /// them. Usually one; more only while several tasks await the same channel.
    parked: Mutex<Parked>,
}

impl WakerSlot {
    pub(crate) fn new() -> Self {
        Self {
            waiting: AtomicBool::new(false),
            parked: Mutex::new(Parked::new()),
        }
    }

    /// Consumer, steps 2–3: stores `waker` (unless one that wakes the same task is
    /// already parked) and announces it. The caller must look at the queue again after
    /// this returns and before it returns `Pending`.
    ///
    /// Every task that polls and parks is kept, not only the latest: a channel is `Sync`
    /// and `recv` takes `&self`, so two tasks may await it at once, and overwriting one's
    /// waker with the other's would leave the first asleep beside a full queue. A slot
    /// holding [`MAX_PARKED`] wakers of other tasks wakes them to make room; each re-polls
    /// and, finding nothing, parks again.
    pub(crate) fn register(&self, waker: &Waker) {
        let mut parked = lock(&self.parked);
        let evicted = if parked.iter().any(|p| p.will_wake(waker)) {
            Parked::new()
        } else {
            let evicted = if parked.len() >= MAX_PARKED {
                std::mem::take(&mut *parked)
            } else {
                Parked::new()
            };
            parked.push(waker.clone());
            evicted
        };
        // Relaxed: published by the fence below (case 1 of the module docs), or by the
        // lock, which a publisher takes before it reads the wakers.
        self.waiting.store(true, Ordering::Relaxed);
        drop(parked);
        // Pairs with the fence in `notify` and in `close`: see "Why no wake-up is lost".
        fence(Ordering::SeqCst);
        evicted.into_iter().for_each(Waker::wake);
    }

    /// Publisher, steps b–d: call after every successful push.
    #[inline]
    pub(crate) fn notify(&self) {
        // Pairs with the fence in `register`: see "Why no wake-up is lost".
        fence(Ordering::SeqCst);
        // Relaxed: ordered by the fences; the common answer is "nobody is parked".
        if self.waiting.load(Ordering::Relaxed) {
            self.wake();
        }
    }

    /// Takes the parked wakers, if this publisher is the first to see `waiting`, and
    /// wakes them.
    #[cold]
    fn wake(&self) {
        // The swap elects one publisher among those that saw `waiting` at once, so the
        // others skip the lock. Relaxed: the lock below orders the wakers' read. A
        // consumer that registers between this swap and the lock is taken and woken too
        // (a spurious wake-up); one that registers after the lock has set `waiting`
        // again for the next push.
        if self.waiting.swap(false, Ordering::Relaxed) {
            self.take_and_wake();
        }
    }

    /// The publisher side is gone: wake every parked consumer so it sees the queue
    /// disconnected. Call after the queue's sender has been dropped.
    pub(crate) fn close(&self) {
        // Pairs with the fence in `register`, as in `notify`; the lock in
        // `take_and_wake` would also do (see "Closing").
        fence(Ordering::SeqCst);
        self.waiting.store(false, Ordering::Relaxed);
        self.take_and_wake();
    }

    fn take_and_wake(&self) {
        let parked = std::mem::take(&mut *lock(&self.parked));
        // Woken outside the lock: a waker may run arbitrary code (some executors poll
        // the task inline), which may register again.
        parked.into_iter().for_each(Waker::wake);
    }
}

/// Loom models of the slot itself, against the weakest queue a publisher could push into:
/// one flag written with `Release` and read with `Acquire`. Nothing else orders the
/// publisher's push against its look at `waiting`, or the consumer's announcement
/// against its second look, so these models fail if either `SeqCst` fence goes (the
/// engine-level models in `loom-tests/tests/async_wake.rs` cannot see that: their
/// stand-in queue is a mutex). Run with `loom-tests/run.sh`, which also runs these
/// (`RUSTFLAGS="--cfg loom" cargo test --release --features async --lib waker_slot`).
#[cfg(all(test, loom))]
mod loom_models {
    use std::task::{Wake, Waker};

    use loom::sync::atomic::AtomicBool;
    use loom::sync::Arc;
    use loom::thread;

    use super::WakerSlot;
    use crate::sync::Ordering;

    /// A waker that records that it was woken.
    struct Flag(Arc<AtomicBool>);

    impl Wake for Flag {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.store(true, Ordering::Release);
        }
    }

    /// One consumer poll, as `AsyncChannel::poll_recv` does it: look, register, look
    /// again. Returns whether it found the item (else it returned `Pending`).
    fn poll(slot: &WakerSlot, queue: &AtomicBool, waker: &Waker) -> bool {
        queue.load(Ordering::Acquire) || {
            slot.register(waker);
            queue.load(Ordering::Acquire)
        }
    }

    /// A push races the consumer's poll: it finds the item, or it is woken.
    #[test]
    fn waker_slot_push_races_registration() {
        loom::model(|| {
            let slot = Arc::new(WakerSlot::new());
            let queue = Arc::new(AtomicBool::new(false));
            let woken = Arc::new(AtomicBool::new(false));
            let publisher = thread::spawn({
                let (slot, queue) = (Arc::clone(&slot), Arc::clone(&queue));
                move || {
                    queue.store(true, Ordering::Release); // the push
                    slot.notify();
                }
            });
            let waker = Waker::from(std::sync::Arc::new(Flag(Arc::clone(&woken))));
            let found = poll(&slot, &queue, &waker);
            publisher.join().unwrap();
            assert!(
                found || woken.load(Ordering::Acquire),
                "the consumer parked beside a pushed item and nobody woke it"
            );
        });
    }

    /// The sink closes (its sender dropped, then `close`) while the consumer polls: it
    /// sees the queue disconnected, or it is woken.
    #[test]
    fn waker_slot_close_races_registration() {
        loom::model(|| {
            let slot = Arc::new(WakerSlot::new());
            let disconnected = Arc::new(AtomicBool::new(false));
            let woken = Arc::new(AtomicBool::new(false));
            let closer = thread::spawn({
                let (slot, disconnected) = (Arc::clone(&slot), Arc::clone(&disconnected));
                move || {
                    disconnected.store(true, Ordering::Release); // the sender dropped
                    slot.close();
                }
            });
            let waker = Waker::from(std::sync::Arc::new(Flag(Arc::clone(&woken))));
            let saw_end = poll(&slot, &disconnected, &waker);
            closer.join().unwrap();
            assert!(
                saw_end || woken.load(Ordering::Acquire),
                "the consumer parked on a closed sink and nobody woke it"
            );
        });
    }

    /// Two consumers' tasks park on one channel, one item arrives: whichever does not
    /// find it is still woken (both wakers are kept, not the latest only).
    #[test]
    fn waker_slot_keeps_every_parked_task() {
        loom::model(|| {
            let slot = Arc::new(WakerSlot::new());
            let queue = Arc::new(AtomicBool::new(false));
            let woken = [
                Arc::new(AtomicBool::new(false)),
                Arc::new(AtomicBool::new(false)),
            ];
            let second = thread::spawn({
                let (slot, queue, woken) =
                    (Arc::clone(&slot), Arc::clone(&queue), Arc::clone(&woken[1]));
                move || {
                    let waker = Waker::from(std::sync::Arc::new(Flag(woken)));
                    poll(&slot, &queue, &waker)
                }
            });
            let waker = Waker::from(std::sync::Arc::new(Flag(Arc::clone(&woken[0]))));
            let first_found = poll(&slot, &queue, &waker);
            let second_found = second.join().unwrap();
            queue.store(true, Ordering::Release);
            slot.notify();
            assert!(
                first_found || woken[0].load(Ordering::Acquire),
                "the first task was left asleep"
            );
            assert!(
                second_found || woken[1].load(Ordering::Acquire),
                "the second task was left asleep"
            );
        });
    }
}

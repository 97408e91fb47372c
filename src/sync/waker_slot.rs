//! [`WakerSlot`]: where an async consumer parks its [`Waker`] for the publishers of its
//! queue to find.
//!
//! An `AsyncChannel` (feature `async`) is a bounded crossbeam queue (the same one a
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
//! 4. try_recv again: an item? -> Ready    d. clear `waiting`, take the wakers, wake them
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
//! 1 and 2 would sit in the queue while the consumer slept. The loom models in
//! `loom-tests/tests/async_wake.rs` fail if it is removed; the ones at the end of this
//! file fail if either fence is.
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
//! A broadcast pays one `SeqCst` fence in all, after its last push (the engine shares
//! step b among every async sink of the broadcast), and one relaxed load per async sink
//! it pushed to when nobody is parked; the lock and the wake only when somebody is.
//! `WakerSlot::notify` — steps b–d for a single push — exists for the tests and
//! models that drive one slot. A consumer that keeps
//! up never registers a waker at all (step 1 succeeds).

use std::task::Waker;

use smallvec::SmallVec;

use crate::sync::{fence, lock, AtomicBool, Mutex, Ordering};

/// Who parked a waker: an `AsyncChannel::recv` future, by the key it holds
/// so that it can replace or withdraw its own entry; or an anonymous poll
/// (`poll_recv`, `Stream::poll_next`), which has nowhere to keep a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Parker {
    /// A `recv` future's entry: `0` until it first parks, then the key it was given.
    #[cfg_attr(not(feature = "async"), allow(dead_code))] // the bridge parks anonymously
    Keyed(u64),
    /// A poll with nowhere to keep a key.
    Anonymous,
}

/// The parked wakers, by parker. Inline for one: the common case of one consumer task.
struct Parked {
    /// Handed out to `recv` futures as they first park; never 0.
    next_key: u64,
    /// Each with its `recv` future's key, or 0 for an anonymous poll.
    wakers: SmallVec<[(u64, Waker); 1]>,
}

/// A consumer's parked [`Waker`]s and the flag that tells publishers to look for them.
pub(crate) struct WakerSlot {
    /// Set by a consumer once it has stored its waker and is about to look at the queue
    /// for the last time before parking; cleared by the publisher that takes the wakers.
    waiting: AtomicBool,
    /// The wakers of the `Pending` polls since the last wake-up, until a publisher takes
    /// them. Usually one; more only while several tasks (or several `recv` futures in
    /// one task) await the same channel.
    parked: Mutex<Parked>,
}

impl WakerSlot {
    pub(crate) fn new() -> Self {
        Self {
            waiting: AtomicBool::new(false),
            parked: Mutex::new(Parked {
                next_key: 1,
                wakers: SmallVec::new(),
            }),
        }
    }

    /// Consumer, steps 2–3: stores `waker` for `parker` and announces it. The caller
    /// must look at the queue again after this returns and before it returns `Pending`.
    ///
    /// Every parked waker is kept until a publisher takes them all, not only the latest:
    /// a channel is `Sync` and `recv` takes `&self`, so two tasks may await it at once,
    /// and overwriting one's waker with the other's would leave the first asleep beside a
    /// full queue. A `recv` future replaces its own entry when polled again and withdraws
    /// it when dropped ([`withdraw`](Self::withdraw)), so cancelled futures leave nothing
    /// behind; an anonymous poll adds an entry only if no other anonymous entry would wake
    /// the same task (with tokio, a task's waker always would).
    ///
    /// There is no cap, on purpose: a full slot that woke its oldest wakers to make room
    /// would, with more live waiters than the cap, have them evict each other forever — a
    /// busy loop on an empty queue.
    pub(crate) fn register(&self, waker: &Waker, parker: &mut Parker) {
        let mut parked = lock(&self.parked);
        let Parked { next_key, wakers } = &mut *parked;
        match parker {
            Parker::Keyed(key) => match wakers.iter_mut().find(|(k, _)| *k == *key && *key != 0) {
                Some((_, parked)) if parked.will_wake(waker) => {}
                Some((_, parked)) => *parked = waker.clone(),
                None => {
                    *key = *next_key;
                    *next_key += 1;
                    wakers.push((*key, waker.clone()));
                }
            },
            Parker::Anonymous => {
                if !wakers.iter().any(|(k, w)| *k == 0 && w.will_wake(waker)) {
                    wakers.push((0, waker.clone()));
                }
            }
        }
        // Relaxed: published by the fence below (case 1 of the module docs), or by the
        // lock, which a publisher takes before it reads the wakers.
        self.waiting.store(true, Ordering::Relaxed);
        drop(parked);
        // Pairs with the fence in `notify` and in `close`: see "Why no wake-up is lost".
        fence(Ordering::SeqCst);
    }

    /// A `recv` future that parked under `key` is going away without being woken: drop
    /// its entry. (If a publisher took it meanwhile, there is nothing to drop.)
    #[cfg_attr(not(feature = "async"), allow(dead_code))]
    pub(crate) fn withdraw(&self, key: u64) {
        lock(&self.parked).wakers.retain(|(k, _)| *k != key);
    }

    /// Publisher, steps b–d, for one push. The engine shares step b among all the
    /// async sinks of one broadcast (its fence, then [`wake_if_waiting`] on each); the
    /// tests and models drive a single slot with this.
    ///
    /// [`wake_if_waiting`]: Self::wake_if_waiting
    #[cfg(test)]
    pub(crate) fn notify(&self) {
        // Pairs with the fence in `register`: see "Why no wake-up is lost".
        fence(Ordering::SeqCst);
        self.wake_if_waiting();
    }

    /// Publisher, steps c–d, for a publisher that has pushed and then fenced itself: a
    /// broadcast pushes to all its async sinks, issues one `SeqCst` fence, then calls
    /// this on each (the argument above holds per slot: each push is before the fence,
    /// each check after it).
    #[inline]
    pub(crate) fn wake_if_waiting(&self) {
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
    #[cfg_attr(not(feature = "async"), allow(dead_code))]
    pub(crate) fn close(&self) {
        // Pairs with the fence in `register`, as in `notify`; the lock in
        // `take_and_wake` would also do (see "Closing").
        fence(Ordering::SeqCst);
        self.waiting.store(false, Ordering::Relaxed);
        self.take_and_wake();
    }

    fn take_and_wake(&self) {
        let parked = std::mem::take(&mut lock(&self.parked).wakers);
        // Woken outside the lock: a waker may run arbitrary code (some executors poll
        // the task inline), which may register again.
        parked.into_iter().for_each(|(_, waker)| waker.wake());
    }

    /// How many wakers are parked (for tests).
    #[cfg(test)]
    pub(crate) fn parked(&self) -> usize {
        lock(&self.parked).wakers.len()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::{Wake, Waker};

    use super::{Parker, WakerSlot};

    /// Counts its wake-ups.
    #[derive(Default)]
    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn waker() -> (Arc<Count>, Waker) {
        let count = Arc::new(Count::default());
        (Arc::clone(&count), Waker::from(count))
    }

    #[test]
    fn a_recv_future_replaces_and_withdraws_its_own_entry() {
        let slot = WakerSlot::new();
        let mut parker = Parker::Keyed(0);
        let (first, w1) = waker();
        let (second, w2) = waker();
        slot.register(&w1, &mut parker);
        slot.register(&w2, &mut parker); // polled again by another waker: replaced
        assert_eq!(slot.parked(), 1);
        let Parker::Keyed(key) = parker else {
            unreachable!()
        };
        slot.withdraw(key);
        assert_eq!(slot.parked(), 0);
        slot.notify();
        assert_eq!(
            (
                first.0.load(Ordering::Relaxed),
                second.0.load(Ordering::Relaxed)
            ),
            (0, 0)
        );
    }

    #[test]
    fn cancelled_futures_leave_nothing_and_many_waiters_never_wake_each_other() {
        let slot = WakerSlot::new();
        let waiters: Vec<_> = (0..100).map(|_| (waker(), Parker::Keyed(0))).collect();
        let mut waiters = waiters;
        for ((_, waker), parker) in &mut waiters {
            slot.register(waker, parker);
        }
        // Registering never wakes anybody (no eviction), however many wait.
        assert!(waiters
            .iter()
            .all(|((c, _), _)| c.0.load(Ordering::Relaxed) == 0));
        assert_eq!(slot.parked(), 100);
        // Half are cancelled.
        for (_, parker) in &waiters[..50] {
            let Parker::Keyed(key) = *parker else {
                unreachable!()
            };
            slot.withdraw(key);
        }
        assert_eq!(slot.parked(), 50);
        slot.notify();
        let woken: Vec<usize> = waiters
            .iter()
            .map(|((c, _), _)| c.0.load(Ordering::Relaxed))
            .collect();
        assert_eq!(woken, [[0; 50], [1; 50]].concat());
        assert_eq!(slot.parked(), 0);
    }

    #[test]
    fn anonymous_polls_of_one_task_share_an_entry_but_not_with_a_recv_future() {
        let slot = WakerSlot::new();
        let (task, w) = waker();
        slot.register(&w, &mut Parker::Anonymous);
        slot.register(&w, &mut Parker::Anonymous);
        assert_eq!(slot.parked(), 1);
        // A `recv` future of the same task gets its own entry: withdrawing it must not
        // take the anonymous poll's away.
        let mut parker = Parker::Keyed(0);
        slot.register(&w, &mut parker);
        assert_eq!(slot.parked(), 2);
        let Parker::Keyed(key) = parker else {
            unreachable!()
        };
        slot.withdraw(key);
        slot.close();
        assert_eq!(task.0.load(Ordering::Relaxed), 1);
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
            slot.register(waker, &mut super::Parker::Anonymous);
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

    /// A broadcast to two async sinks: both pushes, one fence, then each slot's look
    /// (`wake_if_waiting`), as the engine's walk does it. Both consumers poll meanwhile;
    /// each finds its item or is woken. Fails without the fence between the pushes and
    /// the looks.
    #[test]
    fn one_fence_after_several_pushes_wakes_every_parked_consumer() {
        loom::model(|| {
            let slots = [Arc::new(WakerSlot::new()), Arc::new(WakerSlot::new())];
            let queues = [
                Arc::new(AtomicBool::new(false)),
                Arc::new(AtomicBool::new(false)),
            ];
            let publisher = thread::spawn({
                let slots = slots.clone();
                let queues = queues.clone();
                move || {
                    for queue in &queues {
                        queue.store(true, Ordering::Release); // the pushes
                    }
                    crate::sync::fence(Ordering::SeqCst); // the walk's one fence
                    for slot in &slots {
                        slot.wake_if_waiting();
                    }
                }
            });
            let other = thread::spawn({
                let (slot, queue) = (Arc::clone(&slots[1]), Arc::clone(&queues[1]));
                move || {
                    let woken = Arc::new(AtomicBool::new(false));
                    let waker = Waker::from(std::sync::Arc::new(Flag(Arc::clone(&woken))));
                    (poll(&slot, &queue, &waker), woken)
                }
            });
            let woken = Arc::new(AtomicBool::new(false));
            let waker = Waker::from(std::sync::Arc::new(Flag(Arc::clone(&woken))));
            let found = poll(&slots[0], &queues[0], &waker);
            let (other_found, other_woken) = other.join().unwrap();
            publisher.join().unwrap();
            assert!(
                found || woken.load(Ordering::Acquire),
                "the first consumer parked beside its item and nobody woke it"
            );
            assert!(
                other_found || other_woken.load(Ordering::Acquire),
                "the second consumer parked beside its item and nobody woke it"
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

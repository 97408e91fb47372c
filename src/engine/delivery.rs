//! Broadcast delivery: from a topic to every subscriber's sink.
//!
//! 1. Load the current [`Snapshot`] (one atomic load; no lock).
//! 2. Look the topic up in its topic map; no subscribers by name → match the pattern
//!    index, if there are patterns at all; nobody → done, and the item is never made.
//! 3. Make the item (serialise once), then walk the subscriber list and hand each sink
//!    a reference to it. The walk runs inside one `catch_unwind`: a panicking callback
//!    closes its own sink, and the walk resumes at the next subscriber.
//!    `broadcast_from` finds its sender by binary search (every subscriber list is in
//!    client id order) and walks the parts before and after it, so no delivery compares
//!    ids. A topic with one subscriber skips the loop altogether.
//! 4. Add what happened to the counters (once per broadcast, not per delivery).
//!
//! It lives on [`Shared`] rather than on the engine handle so that code holding only the
//! shared state — the writer's aftermath delivering presence events — can broadcast too.

use std::borrow::Borrow;
use std::panic::{catch_unwind, AssertUnwindSafe};

use super::command::{Command, Op, PruneTarget};
use super::pattern_index;
use super::presence_table::PresenceChange;
use super::recipient::Recipient;
use super::snapshot::Snapshot;
use super::Shared;
use crate::sink::{Delivery, Status};
use crate::sync::{lock, try_lock, Arc, Ordering, SnapshotGuard};
use crate::vocab::client::ClientId;
use crate::vocab::error::Error;
use crate::vocab::stats::Tally;
use crate::vocab::topic::TopicKey;

/// No client ever has this id. It stands for "skip nobody": the walk then does not look
/// for a sender at all.
pub(crate) const NOBODY: ClientId = ClientId::from_raw(0);

impl<T: Clone> Shared<T> {
    /// Delivers the item `make` produces — an owned item, or a reference to one the
    /// caller has — to every subscriber of `topic` except `skip`. `make` runs only if
    /// someone will receive it.
    #[inline]
    pub(crate) fn broadcast<R: Borrow<T>>(
        &self,
        topic: TopicKey<'_>,
        skip: ClientId,
        make: impl FnOnce() -> Result<R, Error>,
    ) -> Result<usize, Error> {
        let snapshot = self.load_for_broadcast()?;
        let Some(subscribers) = snapshot.subscribers(topic) else {
            return self.broadcast_to_patterns(&snapshot, topic, skip, make);
        };
        if only_the_sender(subscribers, skip) {
            return Ok(0);
        }
        let item = make()?;
        let delivered = self.deliver(subscribers, skip, item.borrow());
        #[cfg(feature = "async")]
        if snapshot.has_async_sinks {
            wake_parked(subscribers);
        }
        Ok(delivered)
    }

    /// A broadcast to a topic nobody subscribed to by name: it reaches the clients whose
    /// patterns match it, each once. Out of line: an engine without patterns returns
    /// after one check.
    #[inline(never)]
    fn broadcast_to_patterns<R: Borrow<T>>(
        &self,
        snapshot: &Snapshot<T>,
        topic: TopicKey<'_>,
        skip: ClientId,
        make: impl FnOnce() -> Result<R, Error>,
    ) -> Result<usize, Error> {
        if snapshot.patterns.is_empty() {
            return Ok(0);
        }
        let subscribers = pattern_index::matching(&snapshot.patterns, topic.name, self.separator);
        if subscribers.is_empty() || only_the_sender(&subscribers, skip) {
            return Ok(0);
        }
        let item = make()?;
        let delivered = self.deliver(&subscribers, skip, item.borrow());
        #[cfg(feature = "async")]
        if snapshot.has_async_sinks {
            wake_parked(&subscribers);
        }
        Ok(delivered)
    }

    /// Delivers `item` to client `id` alone, if it is a subscriber of `topic` now (by
    /// name or pattern). Returns whether it was.
    pub(crate) fn deliver_to(&self, topic: TopicKey<'_>, id: ClientId, item: &T) -> bool {
        let Ok(snapshot) = self.load_for_broadcast() else {
            return false;
        };
        if let Some(subscribers) = snapshot.subscribers(topic) {
            let Some(one) = subscribers.iter().find(|r| r.id == id) else {
                return false;
            };
            return self.deliver(std::slice::from_ref(one), NOBODY, item) == 1;
        }
        let matching = pattern_index::matching(&snapshot.patterns, topic.name, self.separator);
        let Some(one) = matching.iter().find(|r| r.id == id) else {
            return false;
        };
        self.deliver(std::slice::from_ref(one), NOBODY, item) == 1
    }

    /// Like [`broadcast`](Self::broadcast) for an item the caller already has.
    #[inline]
    pub(crate) fn broadcast_ref(
        &self,
        topic: TopicKey<'_>,
        skip: ClientId,
        item: &T,
    ) -> Result<usize, Error> {
        self.broadcast(topic, skip, || Ok(item))
    }

    #[inline]
    fn load_for_broadcast(&self) -> Result<SnapshotGuard<Snapshot<T>>, Error> {
        if self.is_closed() {
            return Err(Error::Closed);
        }
        Ok(self.snapshot.load())
    }

    /// Hands `item` to every subscriber but `skip`, isolating panics. Returns how many
    /// sinks received it.
    #[inline(always)]
    fn deliver<S: Borrow<Recipient<T>>>(
        &self,
        subscribers: &[S],
        skip: ClientId,
        item: &T,
    ) -> usize {
        // One subscriber (per-user topics: most of a server's topics) needs neither the
        // loop nor the sender check: every caller has already returned when the only
        // subscriber is the sender.
        if let [only] = subscribers {
            debug_assert!(only.borrow().id != skip, "the sender alone is never walked");
            return self.deliver_alone(only.borrow(), item);
        }
        debug_assert!(
            subscribers
                .windows(2)
                .all(|w| w[0].borrow().id < w[1].borrow().id),
            "every subscriber list is in client id order, each client once"
        );
        // The sender's place, by binary search (lists are in client id order): the walk
        // goes around it, comparing no subscriber's id. Comparing every one cost a
        // `broadcast_from` 3 instructions per delivery (22 against 19, `floor_callgrind
        // cb_fanout_from`).
        let sender_at = if skip == NOBODY {
            None
        } else {
            subscribers
                .binary_search_by_key(&skip, |s| s.borrow().id)
                .ok()
        };
        self.walk(subscribers, sender_at, item)
    }

    /// The broadcast loop, over everyone but the subscriber at `sender_at`. The hot path
    /// does as little per subscriber as it can: no delivery counter (deliveries are
    /// `subscribers.len()` minus the rare misses the tally counts) and no sender compare.
    ///
    /// A callback delivery is 15 instructions (`scripts/callgrind_floor.sh cb_fanout`,
    /// `cb_fanout_from` and `cb_fanout_str` alike; a bare `Vec<Box<dyn Fn>>` loop is 11):
    /// 4 in the callback itself and, in `walk_part`'s inner loop, the boxed body's data
    /// and vtable, the item's register, the call, the step (pointer compare, branch,
    /// advance), the `Arc<Sink>` load and the next gate (load, test, branch). Over the
    /// floor: the `Arc<Sink>` load and the gate's three.
    #[inline(never)]
    fn walk<S: Borrow<Recipient<T>>>(
        &self,
        subscribers: &[S],
        sender_at: Option<usize>,
        item: &T,
    ) -> usize {
        let mut tally = Tally::default();
        let parts = match sender_at {
            Some(at) => {
                tally.missed += 1;
                [&subscribers[..at], &subscribers[at + 1..]]
            }
            None => [subscribers, &[]],
        };
        // One copy of the loop for both parts: two copies made the compiler keep the
        // loop's `catch_unwind` closure out of line, where the iterator lives in memory
        // across the callback's call (20 instructions per delivery instead of 19).
        for part in parts {
            self.walk_part(part, item, &mut tally);
        }
        let delivered = subscribers.len() - tally.missed;
        self.counters.record(delivered, &tally);
        delivered
    }

    /// Delivers to every subscriber in `part`.
    #[inline(always)]
    fn walk_part<S: Borrow<Recipient<T>>>(&self, part: &[S], item: &T, tally: &mut Tally) {
        let mut remaining = part.iter();
        loop {
            // One `catch_unwind` per part, not per subscriber: after a panic the walk
            // resumes where the iterator stopped, just past the subscriber whose
            // callback panicked.
            let walk = catch_unwind(AssertUnwindSafe(|| {
                // Shaped for the compiler: a run of open callbacks (gate positive) is an
                // inner loop of its own — call, step, the next gate, one backward branch
                // — and anything else (a channel, a closed sink) goes through
                // `deliver_past_gate` in the outer one. With one `deliver` for every
                // flavour, the callback's call sat in a side block that jumped to a loop
                // step shared with the channel path (19 instructions per callback
                // delivery, `floor_callgrind cb_fanout`); with the call and the step on
                // a path of their own that still rejoined the channel's, 17; as an inner
                // loop, 15 (and the step compares pointers instead of counting bytes).
                let Some(mut subscriber) = remaining.next() else {
                    return;
                };
                loop {
                    let mut sink = &*subscriber.borrow().sink;
                    let mut gate = sink.gate();
                    while gate > 0 {
                        sink.call(item);
                        let Some(next) = remaining.next() else {
                            return;
                        };
                        subscriber = next;
                        sink = &*subscriber.borrow().sink;
                        gate = sink.gate();
                    }
                    self.deliver_past_gate(subscriber.borrow(), gate, item, tally);
                    let Some(next) = remaining.next() else {
                        return;
                    };
                    subscriber = next;
                }
            }));
            match walk {
                Ok(()) => break,
                Err(panic) => {
                    let culprit = part[part.len() - remaining.len() - 1].borrow();
                    self.account_panic(culprit, panic, tally);
                }
            }
        }
    }

    /// The walk for a topic with one subscriber, without the loop and its tally: inlined
    /// into the broadcast, it saves the walk's call, its stack frame and the tally's
    /// zeroing and checks — ~30 of the ~290 instructions of a pre-encoded broadcast to one
    /// channel (`floor_callgrind e2e_pubsub_frame 1`). A callback's panic is still caught
    /// here, and everything but a plain delivery is booked out of line.
    #[inline(always)]
    fn deliver_alone(&self, subscriber: &Recipient<T>, item: &T) -> usize {
        // The closure answers only "delivered plainly": returning the `Delivery` itself
        // made the compiler move its bytes about on every broadcast (~14 instructions).
        let mut miss = Delivery::Delivered;
        let plain = catch_unwind(AssertUnwindSafe(|| {
            let outcome = subscriber.sink.deliver(item, &subscriber.queue);
            if outcome == Delivery::Delivered {
                return true;
            }
            miss = outcome;
            false
        }));
        if matches!(plain, Ok(true)) {
            // A constant empty tally: only the per-thread broadcast and delivery counts
            // are added to.
            self.counters.record(1, &Tally::default());
            return 1;
        }
        self.alone_missed(subscriber, plain.map(|_| miss))
    }

    /// [`deliver_alone`](Self::deliver_alone)'s delivery did not simply succeed.
    #[cold]
    #[inline(never)]
    fn alone_missed(
        &self,
        subscriber: &Recipient<T>,
        outcome: std::thread::Result<Delivery>,
    ) -> usize {
        let mut tally = Tally::default();
        match outcome {
            Ok(outcome) => self.account_miss(subscriber, outcome, &mut tally),
            Err(panic) => self.account_panic(subscriber, panic, &mut tally),
        }
        let delivered = 1 - tally.missed;
        self.counters.record(delivered, &tally);
        delivered
    }

    /// Books a callback that panicked: its client is removed (once, however many
    /// broadcasts saw the panic).
    #[cold]
    fn account_panic(
        &self,
        culprit: &Recipient<T>,
        panic: Box<dyn std::any::Any + Send>,
        tally: &mut Tally,
    ) {
        tally.missed += 1;
        if culprit.sink.mark_panicked() {
            tally.panics += 1;
            self.request_prune(culprit.id, PruneTarget::Sink(Arc::clone(&culprit.sink)));
        }
        // Dropping a panic payload can itself panic; leak it instead.
        std::mem::forget(panic);
    }

    /// A delivery to anything but an open callback (whose gate, `gate`, the walk has
    /// read): a channel, or a closed sink. Always inlined into the walk: out of line (as
    /// the compiler chose in some binaries) a delivery cost 39 instructions instead of
    /// 21. Everything but the common `Delivered` lives in the cold
    /// [`account_miss`](Self::account_miss).
    #[inline(always)]
    fn deliver_past_gate(&self, subscriber: &Recipient<T>, gate: i8, item: &T, tally: &mut Tally) {
        let outcome = subscriber
            .sink
            .deliver_past_gate(gate, item, &subscriber.queue);
        if outcome != Delivery::Delivered {
            self.account_miss(subscriber, outcome, tally);
        }
    }

    /// Books a delivery that did not simply succeed.
    #[cold]
    #[inline(never)]
    fn account_miss(&self, subscriber: &Recipient<T>, outcome: Delivery, tally: &mut Tally) {
        match outcome {
            Delivery::Delivered => {}
            Delivery::Dropped { frames, delivered } => {
                tally.drop(subscriber.sink.drop_cause(), frames);
                tally.missed += usize::from(!delivered);
            }
            Delivery::Skipped => tally.missed += 1,
            Delivery::Closed { dropped } => {
                tally.missed += 1;
                if dropped != 0 {
                    tally.drop(subscriber.sink.drop_cause(), dropped);
                }
                if subscriber.sink.state().status() == Status::Overflow {
                    tally.disconnects += 1;
                }
                self.request_prune(
                    subscriber.id,
                    PruneTarget::Sink(Arc::clone(&subscriber.sink)),
                );
            }
        }
    }
}

/// The end of a broadcast on an engine with async sinks: one `SeqCst` fence for all the
/// pushes the walk made (each came before it), then every async sink looks for a parked
/// consumer (steps b–d of `sync/waker_slot.rs`, the fence shared). Every subscriber is
/// visited — the skipped sender and closed sinks too: a look costs a load, and a
/// spurious wake-up is allowed.
#[cfg(feature = "async")]
#[cold]
#[inline(never)]
fn wake_parked<T, S: Borrow<Recipient<T>>>(subscribers: &[S]) {
    crate::sync::fence(Ordering::SeqCst);
    for subscriber in subscribers {
        subscriber.borrow().sink.wake_if_parked();
    }
}

/// How an engine with presence broadcasts a change: `encode` makes the item (a
/// Presence frame), `broadcast` delivers it to the topic's subscribers. Function
/// pointers, made where the item type's bounds are known, so that the combiner — which
/// has no such bounds — can deliver changes.
pub(crate) struct PresenceBroadcast<T> {
    pub(crate) encode: fn(&PresenceChange) -> Option<T>,
    pub(crate) broadcast: fn(&Shared<T>, TopicKey<'_>, &T),
}

impl<T> Shared<T> {
    /// Broadcasts the queued presence changes, oldest first, unless another thread is
    /// already doing so (then that thread delivers ours too). Called after a batch that
    /// queued changes, with the writer role released: delivering runs sinks' callbacks.
    ///
    /// Why no change is stranded: changes are queued under the table's lock, and the
    /// thread that queued one then tries to take the delivery turn. The deliverer gives
    /// the turn up only while it holds the table's lock and has just found the queue
    /// empty. So a change queued after that is queued after the turn was given up, and
    /// its thread's try at the turn (which comes later still) cannot fail because of this
    /// deliverer; a change queued before is seen by it. A callback that changes presence
    /// from inside a delivery finds the turn taken (by its own thread) and leaves its
    /// change to the loop it is called from.
    pub(crate) fn deliver_presence(&self) {
        let Some(presence) = &self.presence_broadcast else {
            return;
        };
        let Some(turn) = try_lock(&self.presence_delivery) else {
            return;
        };
        let _delivering = super::delivering_presence::DeliveringPresence::enter();
        loop {
            let mut table = lock(&self.presence);
            let Some(change) = table.next_change() else {
                // Give the turn up while the queue is seen empty (see above).
                drop(turn);
                return;
            };
            drop(table);
            if let Some(item) = (presence.encode)(&change) {
                let topic = TopicKey {
                    name: &change.topic,
                    hash: change.hash,
                };
                (presence.broadcast)(self, topic, &item);
            }
        }
    }

    /// Asks for client `id` to be removed if it is still registered with the sink whose
    /// state is `sink`. Never blocks and never takes the writer role (the janitor serves
    /// it): if the queue is full, sets the sweep flag instead.
    pub(crate) fn request_prune(&self, id: ClientId, sink: PruneTarget<T>) {
        if self.is_closed() {
            // Closing closed every sink and emptied the registry already.
            return;
        }
        let command = Command {
            op: Op::Prune { id, sink },
            reply: None,
        };
        if self.post_unanswered(command).is_err() {
            // Release pairs with the AcqRel compare-exchange in `Writer::run_batch`: the
            // sink's closed status, written before this, is visible to the sweep.
            self.sweep_requested.store(true, Ordering::Release);
            self.wake_janitor();
        }
    }
}

/// Whether the only subscriber is the one a `broadcast_from` skips: then nobody would
/// receive the item and it is not made.
#[inline]
fn only_the_sender<T, S: Borrow<Recipient<T>>>(subscribers: &[S], skip: ClientId) -> bool {
    matches!(subscribers, [only] if only.borrow().id == skip)
}

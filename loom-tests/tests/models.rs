//! Loom models of the `fanout` engine, driven through its public API.
//!
//! Built with `RUSTFLAGS="--cfg loom"`, `fanout` swaps its synchronisation primitives
//! for loom's (see `src/sync.rs` and `src/sync/loom_queue.rs`), so these models run the
//! engine's real code — the combining writer, the janitor thread, snapshot cell, reply
//! slots, sinks — under every interleaving loom explores. Run them with
//! `loom-tests/run.sh`.
//!
//! Each model creates its engine inside the closure and drops it (joining the janitor
//! thread) before the closure ends. Payloads are `loom::sync::Arc`s, so a frame that is
//! leaked or freed twice fails the model. Timeouts follow the stand-in's rules: a zero
//! duration elapses at once, any other never does.
//!
//! Loom switches threads only at a synchronisation operation that can block or be
//! observed (taking a lock, an atomic access, a fence), never at a lock's release: a
//! critical section with no such operation between its last one and its unlock is
//! atomic to every model here (see the combining section's notes).
#![cfg(loom)]

use std::time::Duration;

use fanout::transport::RawPayload;
use fanout::{
    Broadcaster, Bytes, ChannelConfig, ClientId, DisconnectReason, Error, Mutation, OverflowPolicy,
    PubSub, Stats, WeakPubSub,
};
use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use loom::sync::Arc;
use loom::thread;

/// A payload whose copies loom tracks.
type Msg = Arc<u32>;

mod common;
use common::model;

/// A broadcaster with a small command queue, so a full queue is reachable.
fn feed() -> Broadcaster<Msg> {
    Broadcaster::builder()
        .command_capacity(2)
        .build()
        .expect("the engine starts")
}

/// A PubSub with a small command queue and one registered callback client that counts
/// the frames it is handed (subscribed to nothing yet).
fn pubsub_with_counting_client() -> (PubSub<str>, fanout::ClientId, Arc<AtomicUsize>) {
    let pubsub = PubSub::<str>::builder()
        .command_capacity(2)
        .build()
        .expect("the engine starts");
    let id = pubsub.generate_client_id();
    let calls = Arc::new(AtomicUsize::new(0));
    pubsub
        .register(id, {
            let calls = Arc::clone(&calls);
            move |_: &Bytes| {
                calls.fetch_add(1, SeqCst);
            }
        })
        .unwrap();
    (pubsub, id, calls)
}

fn config(capacity: usize, policy: OverflowPolicy) -> ChannelConfig {
    ChannelConfig::new(capacity, policy)
}

fn values(items: impl Iterator<Item = Msg>) -> Vec<u32> {
    items.map(|m| *m).collect()
}

/// Model 1. A broadcast that starts after `subscribe` returned reaches the new channel;
/// one racing with it may or may not, but never partly, and once one reached it every
/// later one does.
#[test]
fn subscribe_is_visible_to_every_later_broadcast() {
    model(|| {
        let feed = feed();
        let subscribed = Arc::new(AtomicBool::new(false));
        let publisher = thread::spawn({
            let feed = feed.clone();
            let subscribed = Arc::clone(&subscribed);
            move || {
                let mut reached = Vec::new();
                for value in 1..=2 {
                    let after_subscribe = subscribed.load(SeqCst);
                    let n = feed.publish(Arc::new(value)).unwrap();
                    assert!(n <= 1, "one channel, {n} deliveries");
                    if after_subscribe {
                        assert_eq!(n, 1, "broadcast {value} started after subscribe returned");
                    }
                    reached.push(n);
                }
                reached
            }
        });
        let channel = feed
            .subscribe_with(config(2, OverflowPolicy::DropNewest))
            .unwrap();
        subscribed.store(true, SeqCst);
        let reached = publisher.join().unwrap();

        assert!(
            reached[0] <= reached[1],
            "visibility went backwards: {reached:?}"
        );
        let expected: Vec<u32> = (1..=2).filter(|v| reached[*v as usize - 1] == 1).collect();
        assert_eq!(values(channel.try_iter()), expected);
        assert_eq!(channel.dropped(), 0);
        let stats = feed.stats();
        assert_eq!(stats.deliveries, reached.iter().sum::<usize>() as u64);
        // Only broadcasts that found a subscriber count.
        assert_eq!(
            stats.broadcasts,
            reached.iter().filter(|n| **n == 1).count() as u64
        );
        assert_eq!(
            feed.subscriber_count(),
            1,
            "subscribe returned, snapshot lacks it"
        );
    });
}

/// Model 1b. The same guarantee on the PubSub face, where `subscribe` is its own command
/// (a callback client registered beforehand joins a topic).
#[test]
fn pubsub_subscribe_is_visible_to_every_later_broadcast() {
    model(|| {
        let (pubsub, id, calls) = pubsub_with_counting_client();
        let subscribed = Arc::new(AtomicBool::new(false));
        let publisher = thread::spawn({
            let pubsub = pubsub.clone();
            let subscribed = Arc::clone(&subscribed);
            move || {
                let mut reached = Vec::new();
                for _ in 0..2 {
                    let after_subscribe = subscribed.load(SeqCst);
                    let n = pubsub.broadcast("t", "x", &RawPayload).unwrap();
                    assert!(n <= 1);
                    if after_subscribe {
                        assert_eq!(n, 1, "broadcast started after subscribe returned");
                    }
                    reached.push(n);
                }
                reached
            }
        });
        pubsub.subscribe(id, "t").unwrap();
        subscribed.store(true, SeqCst);
        let reached = publisher.join().unwrap();

        assert!(
            reached[0] <= reached[1],
            "visibility went backwards: {reached:?}"
        );
        assert_eq!(calls.load(SeqCst), reached.iter().sum::<usize>());
        assert_eq!(pubsub.subscriber_count("t").unwrap(), 1);
        // Idempotent: subscribing again changes nothing.
        pubsub.subscribe(id, "t").unwrap();
        assert_eq!(pubsub.broadcast("t", "x", &RawPayload).unwrap(), 1);
        assert_eq!(pubsub.stats().subscriptions, 1);
    });
}

/// Model 2a. When `unsubscribe` returns, no broadcast that starts afterwards reaches the
/// client (PubSub face, callback sink).
#[test]
fn unsubscribe_hides_from_every_later_broadcast() {
    model(|| {
        let (pubsub, id, calls) = pubsub_with_counting_client();
        pubsub.subscribe(id, "t").unwrap();
        let left = Arc::new(AtomicBool::new(false));
        let publisher = thread::spawn({
            let pubsub = pubsub.clone();
            let (calls, left) = (Arc::clone(&calls), Arc::clone(&left));
            move || {
                let mut delivered = 0;
                for _ in 0..2 {
                    let after_unsubscribe = left.load(SeqCst);
                    let calls_before = calls.load(SeqCst);
                    let n = pubsub.broadcast("t", "x", &RawPayload).unwrap();
                    assert!(n <= 1);
                    if after_unsubscribe {
                        assert_eq!(n, 0, "broadcast started after unsubscribe returned");
                        assert_eq!(calls.load(SeqCst), calls_before);
                    }
                    delivered += n;
                }
                delivered
            }
        });
        pubsub.unsubscribe(id, "t").unwrap();
        left.store(true, SeqCst);
        let delivered = publisher.join().unwrap();

        assert_eq!(calls.load(SeqCst), delivered);
        assert_eq!(pubsub.broadcast("t", "x", &RawPayload).unwrap(), 0);
        assert_eq!(pubsub.subscriber_count("t").unwrap(), 0);
        let stats = pubsub.stats();
        assert_eq!(stats.deliveries, delivered as u64);
        assert_eq!((stats.clients, stats.subscriptions), (1, 0));
    });
}

/// Model 2c. `PubSub::apply` publishes its whole list at once: a client moved from topic
/// `a` to topic `b` in one `apply` is, for any broadcast, in the old place or the new one,
/// never in neither; once `apply` returns, only the new place is seen.
#[test]
fn apply_moves_a_client_atomically() {
    model(|| {
        let (pubsub, id, calls) = pubsub_with_counting_client();
        let (a, b) = (pubsub.topic("a").unwrap(), pubsub.topic("b").unwrap());
        pubsub.subscribe(id, &a).unwrap();
        let moved = Arc::new(AtomicBool::new(false));
        let publisher = thread::spawn({
            let pubsub = pubsub.clone();
            let (a, b) = (a.clone(), b.clone());
            let moved = Arc::clone(&moved);
            move || {
                let after_apply = moved.load(SeqCst);
                let on_a = pubsub.broadcast(&a, "x", &RawPayload).unwrap();
                let on_b = pubsub.broadcast(&b, "x", &RawPayload).unwrap();
                // Snapshots only move forward: if `a` already missed it, `b` (later) has it.
                assert!(on_a + on_b >= 1, "the client was in neither topic");
                if after_apply {
                    assert_eq!((on_a, on_b), (0, 1), "apply returned, old place still seen");
                }
                on_a + on_b
            }
        });
        let results = pubsub
            .apply([
                Mutation::Unsubscribe(id, a.clone()),
                Mutation::Subscribe(id, b.clone()),
            ])
            .unwrap();
        moved.store(true, SeqCst);
        assert!(results.iter().all(Result::is_ok), "{results:?}");
        let delivered = publisher.join().unwrap();

        assert_eq!(calls.load(SeqCst), delivered);
        assert_eq!(pubsub.subscriber_count(&a).unwrap(), 0);
        assert_eq!(pubsub.subscriber_count(&b).unwrap(), 1);
        assert_eq!(pubsub.stats().subscriptions, 1);
    });
}

/// Model 2b. When `Broadcaster::unsubscribe` (an unregister) returns, no later publish
/// reaches the channel; the channel keeps exactly what reached it, then ends.
#[test]
fn unregister_hides_from_every_later_broadcast() {
    model(|| {
        let feed = feed();
        let channel = feed
            .subscribe_with(config(2, OverflowPolicy::DropNewest))
            .unwrap();
        let left = Arc::new(AtomicBool::new(false));
        let publisher = thread::spawn({
            let feed = feed.clone();
            let left = Arc::clone(&left);
            move || {
                let mut reached = Vec::new();
                for value in 1..=2 {
                    let after_unregister = left.load(SeqCst);
                    let n = feed.publish(Arc::new(value)).unwrap();
                    if after_unregister {
                        assert_eq!(n, 0, "publish {value} started after unsubscribe returned");
                    }
                    reached.push(n);
                }
                reached
            }
        });
        feed.unsubscribe(&channel).unwrap();
        left.store(true, SeqCst);
        let reached = publisher.join().unwrap();

        assert!(
            reached[0] >= reached[1],
            "reached again after leaving: {reached:?}"
        );
        let expected: Vec<u32> = (1..=2).filter(|v| reached[*v as usize - 1] == 1).collect();
        // The writer and every snapshot have let go of the sink: the receiver ends.
        assert_eq!(values(channel.iter()), expected);
        assert_eq!(
            channel.disconnect_reason(),
            Some(DisconnectReason::Unsubscribed)
        );
        assert_eq!(feed.subscriber_count(), 0);
        assert!(matches!(
            feed.unsubscribe(&channel),
            Err(Error::UnknownClient(_))
        ));
    });
}

/// Model 3. A channel dropped while a broadcast walks the snapshot: no panic, the
/// broadcast's count is exact, the slot is pruned (seen after one more round trip to the
/// writer, which handles commands in order) and the frame queued for it is freed.
#[test]
fn channel_dropped_during_broadcast_is_pruned() {
    model(|| {
        let feed = feed();
        let stays = feed
            .subscribe_with(config(1, OverflowPolicy::DropNewest))
            .unwrap();
        let leaves = feed
            .subscribe_with(config(1, OverflowPolicy::DropNewest))
            .unwrap();
        let payload: Msg = Arc::new(7);
        let publisher = thread::spawn({
            let feed = feed.clone();
            let payload = Arc::clone(&payload);
            move || feed.publish(payload).unwrap()
        });
        drop(leaves);
        let n = publisher.join().unwrap();

        assert!(
            n == 1 || n == 2,
            "{n} deliveries to 2 channels, one staying"
        );
        assert_eq!(values(stays.try_iter()), [7]);
        // A round trip queued after the prune request: when it returns, the prune is
        // published.
        let probe = feed
            .subscribe_with(config(1, OverflowPolicy::DropNewest))
            .unwrap();
        assert_eq!(
            feed.subscriber_count(),
            2,
            "the dropped channel's slot was not pruned"
        );
        let stats = feed.stats();
        assert_eq!(stats.deliveries, n as u64);
        assert_eq!((stats.clients, stats.dropped, stats.disconnects), (2, 0, 0));
        // Nothing holds the frame any more (a copy queued to the dropped channel died
        // with it).
        assert_eq!(Arc::strong_count(&payload), 1);
        drop(probe);
        assert_eq!(stays.disconnect_reason(), None);
    });
}

/// Model 3b. A channel dropped while the command queue is full (capacity 1, another
/// subscribe in flight): its prune request cannot be queued, so it sets the sweep flag,
/// and the writer sweeps the slot no later than its next batch.
#[test]
fn channel_dropped_with_command_queue_full_is_swept() {
    model(|| {
        let feed = Broadcaster::<Msg>::builder()
            .command_capacity(1)
            .build()
            .unwrap();
        let leaves = feed
            .subscribe_with(config(1, OverflowPolicy::DropNewest))
            .unwrap();
        let joiner = thread::spawn({
            let feed = feed.clone();
            move || {
                feed.subscribe_with(config(1, OverflowPolicy::DropNewest))
                    .unwrap()
            }
        });
        drop(leaves);
        let joined = joiner.join().unwrap();
        // One more round trip: whether the prune was queued or swept, it is published
        // by the time this returns.
        let probe = feed
            .subscribe_with(config(1, OverflowPolicy::DropNewest))
            .unwrap();
        assert_eq!(
            feed.subscriber_count(),
            2,
            "the dropped channel's slot was not removed"
        );
        assert_eq!(feed.stats().clients, 2);
        assert_eq!(feed.publish(Arc::new(1)).unwrap(), 2);
        assert_eq!(values(joined.try_iter()), [1]);
        assert_eq!(values(probe.try_iter()), [1]);
    });
}

/// Model 4. Drop-oldest with the publisher and the consumer racing on a full queue:
/// nothing is delivered twice, order holds, the latest frame is always kept, and
/// received + dropped == published. Capacity 1 and 2 (with 2, one pop too many would
/// lose a frame that is still queued).
#[test]
fn drop_oldest_races_consumer_without_loss_or_duplicates() {
    for capacity in [1, 2] {
        model(move || drop_oldest_race(capacity));
    }
}

fn drop_oldest_race(capacity: usize) {
    let feed = feed();
    let channel = feed
        .subscribe_with(config(capacity, OverflowPolicy::DropOldest))
        .unwrap();
    let publisher = thread::spawn({
        let feed = feed.clone();
        move || {
            for value in 1..=3 {
                // A single publisher's new frame always goes in.
                assert_eq!(feed.publish(Arc::new(value)).unwrap(), 1);
            }
            let stats = feed.stats();
            (stats.deliveries, stats.dropped)
            // The publisher's handle is the last: dropping it shuts the engine down and
            // the channel's receiver ends.
        }
    });
    drop(feed);
    let received = values(channel.iter());
    let (deliveries, dropped_total) = publisher.join().unwrap();

    assert!(
        received.windows(2).all(|w| w[0] < w[1]),
        "duplicated or reordered: {received:?}"
    );
    assert_eq!(received.last(), Some(&3), "the latest frame was lost");
    assert_eq!(
        received.len() as u64 + channel.dropped(),
        3,
        "capacity {capacity}: received {received:?}, dropped {}",
        channel.dropped()
    );
    assert_eq!((deliveries, dropped_total), (3, channel.dropped()));
    assert_eq!(
        channel.disconnect_reason(),
        Some(DisconnectReason::Shutdown)
    );
}

/// Runs one publisher of `count` messages against a consumer draining a channel with
/// `policy` and capacity 1. Returns (per-publish deliveries, received values, channel
/// dropped count, engine stats taken by the publisher, disconnect reason).
fn race_consumer(
    policy: OverflowPolicy,
    count: u32,
) -> (
    Vec<usize>,
    Vec<u32>,
    u64,
    fanout::Stats,
    Option<DisconnectReason>,
) {
    let feed = feed();
    let channel = feed.subscribe_with(config(1, policy)).unwrap();
    let publisher = thread::spawn({
        let feed = feed.clone();
        move || {
            let reached: Vec<usize> = (1..=count)
                .map(|value| feed.publish(Arc::new(value)).unwrap())
                .collect();
            (reached, feed.stats())
            // Last handle: the engine shuts down here and the receiver ends.
        }
    });
    drop(feed);
    let received = values(channel.iter());
    let (reached, stats) = publisher.join().unwrap();
    let expected: Vec<u32> = (1..=count)
        .filter(|v| reached[*v as usize - 1] == 1)
        .collect();
    assert_eq!(received, expected, "deliveries per publish: {reached:?}");
    assert_eq!(stats.dropped, channel.dropped());
    assert_eq!(stats.deliveries, received.len() as u64);
    (
        reached,
        received,
        channel.dropped(),
        stats,
        channel.disconnect_reason(),
    )
}

/// Model 5a. Disconnect policy under a racing consumer: either the consumer kept up, or
/// the overflowing frame is dropped and counted, the subscriber is cut off with reason
/// `Overflow`, and nothing after it arrives.
#[test]
fn disconnect_policy_races_consumer() {
    model(|| {
        let (reached, received, dropped, stats, reason) =
            race_consumer(OverflowPolicy::Disconnect, 3);
        match reached.iter().position(|n| *n == 0) {
            None => {
                assert_eq!(received, [1, 2, 3]);
                assert_eq!(dropped, 0);
                assert_eq!(reason, Some(DisconnectReason::Shutdown));
                assert_eq!(stats.disconnects, 0);
            }
            Some(cut) => {
                // The frame that overflowed is dropped and counted; nothing after it
                // arrives (nor counts as dropped: the subscriber is gone).
                assert!(cut >= 1, "the first frame meets an empty queue");
                assert!(
                    reached[cut..].iter().all(|n| *n == 0),
                    "delivered after the disconnect: {reached:?}"
                );
                assert_eq!(received.len(), cut);
                assert_eq!(dropped, 1);
                assert_eq!(reason, Some(DisconnectReason::Overflow));
                assert_eq!(stats.disconnects, 1);
            }
        }
    });
}

/// Model 5b. Block policy whose bound elapses at once (`Duration::ZERO` in the loom
/// stand-in): a frame meeting a full queue is dropped and counted, the subscriber stays.
#[test]
fn block_policy_bound_elapsed_drops_and_counts() {
    model(|| {
        let (reached, received, dropped, stats, reason) =
            race_consumer(OverflowPolicy::Block(Duration::ZERO), 3);
        assert_eq!(reached[0], 1, "the first frame meets an empty queue");
        assert_eq!(dropped, reached.iter().filter(|n| **n == 0).count() as u64);
        assert_eq!(received.len() as u64 + dropped, 3, "received {received:?}");
        assert_eq!(stats.disconnects, 0);
        assert_eq!(reason, Some(DisconnectReason::Shutdown));
    });
}

/// Model 5c. Block policy whose bound is long enough (any non-zero duration in the loom
/// stand-in): the publisher waits for the racing consumer and nothing is lost.
#[test]
fn block_policy_waits_for_consumer() {
    model(|| {
        let (reached, received, dropped, _, reason) =
            race_consumer(OverflowPolicy::Block(Duration::from_secs(1)), 3);
        assert_eq!(reached, [1, 1, 1]);
        assert_eq!(received, [1, 2, 3]);
        assert_eq!(dropped, 0);
        assert_eq!(reason, Some(DisconnectReason::Shutdown));
    });
}

/// Model 6. Shutdown while a subscribe (a mutation) and a publish are in flight: no
/// deadlock, each gets `Ok` or `Error::Closed`, counts stay exact, every receiver ends,
/// and later calls are `Closed`.
#[test]
fn shutdown_with_calls_in_flight() {
    model(|| {
        let feed = Broadcaster::<Msg>::builder()
            .command_capacity(1)
            .build()
            .unwrap();
        let existing = feed
            .subscribe_with(config(1, OverflowPolicy::DropNewest))
            .unwrap();
        let subscriber = thread::spawn({
            let feed = feed.clone();
            move || feed.subscribe_with(config(1, OverflowPolicy::DropNewest))
        });
        let publisher = thread::spawn({
            let feed = feed.clone();
            move || feed.publish(Arc::new(1))
        });
        feed.shutdown();
        let subscribed = subscriber.join().unwrap();
        let published = publisher.join().unwrap();

        let delivered = match published {
            Ok(n) => {
                assert!(n <= 2, "{n} deliveries to at most 2 channels");
                n
            }
            Err(Error::Closed) => 0,
            Err(e) => panic!("publish during shutdown: {e}"),
        };
        let mut received = existing.iter().count();
        assert_eq!(
            existing.disconnect_reason(),
            Some(DisconnectReason::Shutdown)
        );
        match subscribed {
            Ok(channel) => {
                received += channel.iter().count();
                assert_eq!(
                    channel.disconnect_reason(),
                    Some(DisconnectReason::Shutdown)
                );
            }
            Err(Error::Closed) => {}
            Err(e) => panic!("subscribe during shutdown: {e}"),
        }
        assert_eq!(received, delivered);
        assert!(feed.is_closed());
        assert!(matches!(feed.publish(Arc::new(2)), Err(Error::Closed)));
        assert!(matches!(feed.subscribe(), Err(Error::Closed)));
        assert_eq!(feed.subscriber_count(), 0);
    });
}

/// Model 6b. Two `shutdown` calls at once: each returns only after the writer has stopped
/// (its doc: "stops the writer thread and waits for it"), so each caller sees the channel
/// closed with reason `Shutdown`. (Caught a real bug: `Engine::shutdown` released the
/// `writer` lock right after taking the join handle, so the second caller returned while
/// the first was still stopping the writer.)
#[test]
fn concurrent_shutdowns_both_wait_for_the_writer() {
    model(|| {
        let feed = feed();
        let channel = feed
            .subscribe_with(config(1, OverflowPolicy::DropNewest))
            .unwrap();
        let other = thread::spawn({
            let feed = feed.clone();
            move || feed.shutdown()
        });
        feed.shutdown();
        assert_eq!(
            channel.disconnect_reason(),
            Some(DisconnectReason::Shutdown),
            "shutdown returned before the writer stopped"
        );
        other.join().unwrap();
        assert!(feed.is_closed());
    });
}

/// Model 7. The last handle can be dropped on any thread — including the writer itself:
/// a callback holding a strong handle panics, the broadcast closes its client and asks
/// for a prune, and the writer frees the callback (and maybe the last handle) while the
/// other handles are dropped on the main and publishing threads. No deadlock (the writer
/// must not join itself), the writer thread ends, and nothing leaks (loom checks every
/// `Arc` is freed).
#[test]
fn last_handle_dropped_on_any_thread() {
    silence_deliberate_panics();
    model(|| {
        let pubsub = PubSub::<str>::builder()
            .command_capacity(2)
            .build()
            .unwrap();
        let id = pubsub.generate_client_id();
        pubsub
            .register(id, {
                // A strong handle: the engine lives until this callback is freed.
                let pubsub = pubsub.clone();
                move |_: &Bytes| {
                    let _ = &pubsub;
                    std::panic::panic_any(DeliberatePanic);
                }
            })
            .unwrap();
        pubsub.subscribe(id, "t").unwrap();
        let publisher = thread::spawn({
            let pubsub = pubsub.clone();
            move || {
                assert_eq!(pubsub.broadcast("t", "x", &RawPayload).unwrap(), 0);
                assert_eq!(pubsub.stats().panics, 1);
                // Drops a handle: maybe the last.
            }
        });
        drop(pubsub);
        publisher.join().unwrap();
    });
}

/// The payload of the panics model 7 provokes.
struct DeliberatePanic;

/// Keeps the default panic message out of the output for [`DeliberatePanic`] and for the
/// engine's injected batch panic (`PubSub::loom_inject_batch_panic`) only.
fn silence_deliberate_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let injected = info
                .payload()
                .downcast_ref::<&str>()
                .is_some_and(|message| message.starts_with("fault injection"));
            if !info.payload().is::<DeliberatePanic>() && !injected {
                default(info);
            }
        }));
    });
}

// ===== The combining writer =============================================================
//
// Models of the protocol in `src/engine/combiner.rs`: there is no writer thread any more;
// a caller applies its own mutation when the writer role is free, and otherwise posts it
// and waits while the role holder (another caller, or the janitor for prunes) applies it.
// The loom stand-ins have no timeouts, so `LIVENESS_CHECK` never rescues a waiter here: a
// posted command that nobody serves shows up as a loom deadlock.
//
// Broken on purpose, once each, in a scratch copy of the engine (never in this tree), to
// check these models can fail:
//
// | mutation (in the scratch copy)                                   | what fails              |
// |------------------------------------------------------------------|-------------------------|
// | `combine` never looks at the queue again after releasing the     | 1a, 1b, 2, 3, 4b:       |
// | role (`more = false`)                                            | loom "deadlock; threads |
// |                                                                  | = [.. Blocked ..]"      |
// | a poster does not try the role after posting (just waits)        | 1a, 1b, 2, 3, 4b, 5, 6: |
// |                                                                  | loom "deadlock"         |
// | the writer answers a batch's callers before publishing it        | 2: "own subscribe not   |
// |                                                                  | visible, left: 0,       |
// |                                                                  | right: 1"; 3: joiner    |
// |                                                                  | calls 0, expected 1     |
// | a panicking batch answers `Closed` but does not close the engine | 5: `theirs` was `Ok(())`|
// | a closed writer's batch leaves the queue alone                   | 5, 6: loom "Model       |
// |                                                                  | exceeded maximum number |
// |                                                                  | of branches" (livelock) |
// | the aftermath is finished with the role still held               | 4a, 4b: loom "deadlock" |
// | `shutdown` on the janitor thread joins itself                    | 4a (and model 7):       |
// |                                                                  | loom "deadlock"         |
// | `close_registry` closes only if no combiner holds the role       | 6: `Stats { clients: 2, |
// |                                                                  | topics: 1, subs.. 1 }`  |
//
// Not caught, and why (the stand-ins, not the models):
// - A panicking batch keeping its answers instead of clearing them: the injected panic
//   fires before the batch applies anything, so there are no answers yet.
// - Removing both `SeqCst` fences of the store-buffering pair: loom models every
//   `Mutex` as sequentially consistent, and the command queue stand-in is a `Mutex`.
// - `close_registry` not serving what was posted while it held the role, or `hand_off`
//   waking a stopped janitor: a poster can only slip in between the last drain of the
//   queue and the role's unlock, and loom has no schedule point there (releasing a
//   mutex is not one).
//
// Found by reading, out of loom's reach for the same reason (no schedule point between
// a closed batch's drain and the unlock, nor inside the fault hook's hold):
// - `post` drops the duty a batch leaves: after its `try_combine` served a batch with
//   commands still queued, it retries `try_send`, finds the queue full and returns
//   `Closed` because the engine closed meanwhile, serving nobody. A caller that posted
//   in that batch's last instants (after the closed writer drained the queue, before the
//   unlock) and found the role taken then waits out its `LIVENESS_CHECK`.
// - `inject_batch_panic` takes the role and releases it without looking at the queue:
//   arming it while another caller posts can strand that caller (model 5 arms it first).

/// A PubSub with a command queue of `capacity`.
fn small_pubsub(capacity: usize) -> PubSub<str> {
    PubSub::<str>::builder()
        .command_capacity(capacity)
        .build()
        .expect("the engine starts")
}

/// Registers a callback client that counts the frames it is handed.
fn counting_client(pubsub: &PubSub<str>) -> (fanout::ClientId, Arc<AtomicUsize>) {
    let id = pubsub.generate_client_id();
    let calls = Arc::new(AtomicUsize::new(0));
    pubsub
        .register(id, {
            let calls = Arc::clone(&calls);
            move |_: &Bytes| {
                calls.fetch_add(1, SeqCst);
            }
        })
        .unwrap();
    (id, calls)
}

fn broadcast(pubsub: &PubSub<str>, topic: &str) -> usize {
    pubsub.broadcast(topic, "x", &RawPayload).unwrap()
}

/// Combining 1a. Two callers mutate at once through a one-slot queue: whichever finds the
/// role taken posts and waits, and the holder (or the poster itself, once the role is
/// free) applies it. Both calls return `Ok` — none is stranded — and every change is in
/// the registry afterwards, exactly once.
#[test]
fn concurrent_mutations_are_all_applied() {
    model(|| {
        let pubsub = small_pubsub(1);
        let (a, a_calls) = counting_client(&pubsub);
        let (b, b_calls) = counting_client(&pubsub);
        let other = thread::spawn({
            let pubsub = pubsub.clone();
            move || {
                pubsub.subscribe(b, "t").unwrap();
                pubsub.subscribe(b, "u").unwrap();
            }
        });
        let one = thread::spawn({
            let pubsub = pubsub.clone();
            move || pubsub.subscribe(a, "t").unwrap()
        });
        one.join().unwrap();
        other.join().unwrap();

        assert_eq!(broadcast(&pubsub, "t"), 2);
        assert_eq!(broadcast(&pubsub, "u"), 1);
        assert_eq!((a_calls.load(SeqCst), b_calls.load(SeqCst)), (1, 2));
        let stats = pubsub.stats();
        assert_eq!(
            (stats.clients, stats.topics, stats.subscriptions),
            (2, 2, 3)
        );
    });
}

/// Combining 1b. Three callers at once through a one-slot queue, so a caller can find the
/// queue full and has to make room (serve a batch) or wait for it: all three return `Ok`
/// and all three subscriptions are published.
#[test]
fn three_callers_through_a_full_queue_are_all_applied() {
    model(|| {
        let pubsub = small_pubsub(1);
        let clients: Vec<_> = (0..3).map(|_| counting_client(&pubsub)).collect();
        let others: Vec<_> = clients[1..]
            .iter()
            .map(|(id, _)| {
                let (pubsub, id) = (pubsub.clone(), *id);
                thread::spawn(move || pubsub.subscribe(id, "t").unwrap())
            })
            .collect();
        pubsub.subscribe(clients[0].0, "t").unwrap();
        for other in others {
            other.join().unwrap();
        }

        assert_eq!(broadcast(&pubsub, "t"), 3);
        for (_, calls) in &clients {
            assert_eq!(calls.load(SeqCst), 1);
        }
        assert_eq!(pubsub.stats().subscriptions, 3);
    });
}

/// Combining 2. Visibility when another caller applied your op: each thread subscribes
/// its own client and then broadcasts to it. Whichever thread's op went into the other's
/// batch must still, once its call returns, see its client reached (the holder publishes
/// the batch's snapshot before it answers anyone).
#[test]
fn an_op_applied_by_another_caller_is_visible_when_its_call_returns() {
    model(|| {
        let pubsub = small_pubsub(1);
        let (x, x_calls) = counting_client(&pubsub);
        let (y, y_calls) = counting_client(&pubsub);
        let other = thread::spawn({
            let pubsub = pubsub.clone();
            move || {
                pubsub.subscribe(y, "b").unwrap();
                assert_eq!(broadcast(&pubsub, "b"), 1, "own subscribe not visible");
            }
        });
        let one = thread::spawn({
            let pubsub = pubsub.clone();
            move || {
                pubsub.subscribe(x, "a").unwrap();
                assert_eq!(broadcast(&pubsub, "a"), 1, "own subscribe not visible");
            }
        });
        one.join().unwrap();
        other.join().unwrap();

        assert_eq!((x_calls.load(SeqCst), y_calls.load(SeqCst)), (1, 1));
        assert_eq!(pubsub.stats().subscriptions, 2);
    });
}

/// Combining 3. A callback that subscribes from inside a broadcast (through a
/// `WeakPubSub` upgraded in the callback), while another thread subscribes too. The
/// broadcast holds no lock the mutation needs, so there is no deadlock; the nested
/// subscribe is visible as soon as it returns, to the broadcasting thread and to all.
#[test]
fn callback_subscribes_from_inside_a_broadcast() {
    model(|| {
        let pubsub = small_pubsub(1);
        let (joiner, joiner_calls) = counting_client(&pubsub);
        let (other_client, other_calls) = counting_client(&pubsub);
        let trigger = pubsub.generate_client_id();
        let nested = Arc::new(AtomicUsize::new(0));
        pubsub
            .register(trigger, {
                let weak = pubsub.downgrade();
                let nested = Arc::clone(&nested);
                // Records what it saw rather than asserting: the broadcast walk would
                // catch an assertion's panic as a failing callback.
                move |_: &Bytes| {
                    let pubsub = weak.upgrade().expect("a strong handle is alive");
                    if pubsub.subscribe(joiner, "later").is_ok() {
                        // Visible to this very thread at once, nested in the broadcast
                        // (the other client may be there too).
                        nested.store(pubsub.subscriber_count("later").unwrap(), SeqCst);
                    }
                }
            })
            .unwrap();
        pubsub.subscribe(trigger, "t").unwrap();
        let broadcaster = thread::spawn({
            let pubsub = pubsub.clone();
            move || {
                assert_eq!(broadcast(&pubsub, "t"), 1);
                let seen_nested = nested.load(SeqCst);
                assert!(
                    seen_nested == 1 || seen_nested == 2,
                    "nested subscribe failed or was not visible: {seen_nested}"
                );
                let reached = broadcast(&pubsub, "later");
                assert!(reached >= seen_nested, "visibility went backwards");
                reached
            }
        });
        let subscriber = thread::spawn({
            let pubsub = pubsub.clone();
            move || pubsub.subscribe(other_client, "later").unwrap()
        });
        subscriber.join().unwrap();
        let reached = broadcaster.join().unwrap();

        // The joiner is in; the other client may or may not have been yet.
        assert!(reached == 1 || reached == 2, "{reached} of 2 reached");
        assert_eq!(joiner_calls.load(SeqCst), 1);
        assert_eq!(other_calls.load(SeqCst), reached - 1);
        assert_eq!(broadcast(&pubsub, "later"), 2);
        assert_eq!(pubsub.stats().subscriptions, 3);
    });
}

/// What the callback of combining model 4a holds. Fields drop in order: the payload
/// first, then (perhaps) the last handle, whose drop shuts the engine down.
struct LastHandle {
    payload: Msg,
    pubsub: PubSub<str>,
}

/// Combining 4a. The last strong handle lives in a callback that panics: the broadcast
/// closes its client and posts a prune, and the callback — with the handle — is freed
/// by whoever serves that prune: the janitor (which then runs `shutdown` on its own
/// thread and must not join itself), or the main thread's combiner, whose subscribe
/// races it and may drain the prune in its batch. No deadlock, the engine ends closed
/// (a channel's receiver ends with `Shutdown`) and nothing leaks.
#[test]
fn last_handle_freed_by_whoever_serves_the_prune() {
    silence_deliberate_panics();
    model(|| {
        let pubsub = small_pubsub(1);
        let weak = pubsub.downgrade();
        let payload: Msg = Arc::new(0);
        let doomed = pubsub.generate_client_id();
        pubsub
            .register(doomed, {
                let holds = LastHandle {
                    payload: Arc::clone(&payload),
                    pubsub: pubsub.clone(),
                };
                move |_: &Bytes| {
                    let _ = (&holds.payload, &holds.pubsub);
                    std::panic::panic_any(DeliberatePanic);
                }
            })
            .unwrap();
        pubsub.subscribe(doomed, "t").unwrap();
        let watcher = pubsub.generate_client_id();
        let channel = pubsub
            .register_channel_with(watcher, config(1, OverflowPolicy::DropNewest))
            .unwrap();
        let publisher = thread::spawn({
            let pubsub = pubsub.clone();
            move || {
                assert_eq!(broadcast(&pubsub, "t"), 0);
                assert_eq!(pubsub.stats().panics, 1);
            }
        });
        // The engine is alive while this handle is: Ok, never Closed.
        pubsub.subscribe(watcher, "u").unwrap();
        drop(pubsub);
        publisher.join().unwrap();

        // Ends only once the engine has shut down, wherever the last handle went.
        assert_eq!(channel.iter().count(), 0);
        assert_eq!(
            channel.disconnect_reason(),
            Some(DisconnectReason::Shutdown)
        );
        assert!(weak.upgrade().is_none());
        assert_eq!(Arc::strong_count(&payload), 1, "the callback was not freed");
    });
}

/// Captured by a callback; when the callback is freed, subscribes `id` to `late` through
/// its engine, if that is still running: user code in a sink's drop that re-enters the
/// engine.
struct SubscribeOnDrop {
    pubsub: WeakPubSub<str>,
    id: ClientId,
    subscribed: Arc<AtomicBool>,
}

impl Drop for SubscribeOnDrop {
    fn drop(&mut self) {
        if let Some(pubsub) = self.pubsub.upgrade() {
            pubsub.subscribe(self.id, "late").unwrap();
            self.subscribed.store(true, SeqCst);
        }
    }
}

/// Combining 4b. A sink freed in a combiner's aftermath re-enters the engine: the main
/// thread unregisters a client whose callback subscribes another client when dropped,
/// while a second thread subscribes. Whichever batch applied the unregister frees the
/// callback after releasing the role, so the nested subscribe takes the role (or posts)
/// like any call: no deadlock, and it is visible once both threads are done.
#[test]
fn sink_freed_in_a_combiners_aftermath_reenters_the_engine() {
    model(|| {
        let pubsub = small_pubsub(1);
        let (late, late_calls) = counting_client(&pubsub);
        let (other, other_calls) = counting_client(&pubsub);
        let subscribed = Arc::new(AtomicBool::new(false));
        let doomed = pubsub.generate_client_id();
        pubsub
            .register(doomed, {
                let on_drop = SubscribeOnDrop {
                    pubsub: pubsub.downgrade(),
                    id: late,
                    subscribed: Arc::clone(&subscribed),
                };
                move |_: &Bytes| {
                    let _ = &on_drop;
                }
            })
            .unwrap();
        let subscriber = thread::spawn({
            let pubsub = pubsub.clone();
            move || pubsub.subscribe(other, "t").unwrap()
        });
        let unregisterer = thread::spawn({
            let pubsub = pubsub.clone();
            move || pubsub.unregister(doomed).unwrap()
        });
        unregisterer.join().unwrap();
        subscriber.join().unwrap();

        // Freed by the main thread or by the subscriber's batch: done either way now.
        assert!(subscribed.load(SeqCst), "the callback was not freed");
        assert_eq!(broadcast(&pubsub, "late"), 1);
        assert_eq!(broadcast(&pubsub, "t"), 1);
        assert_eq!((late_calls.load(SeqCst), other_calls.load(SeqCst)), (1, 1));
        let stats = pubsub.stats();
        assert_eq!((stats.clients, stats.subscriptions), (2, 2));
    });
}

/// Combining 5. A panic while applying a batch (`loom_inject_batch_panic`), with a
/// second thread's broadcast and subscribe in flight. The first batch after the fault
/// panics, whichever caller runs it and whichever commands it holds, and closes the
/// engine: both subscribes return `Err(Closed)` (the only batch before the fault was
/// the setup's), the broadcast returns what it delivered or `Closed`, nothing deadlocks,
/// and afterwards the registry is empty and every channel ends with `Shutdown`, holding
/// exactly what the broadcast delivered.
///
/// The fault is armed before the second thread starts: the hook takes the writer role
/// to set its flag and releases it without looking at the queue (it is no caller), so
/// arming it while another caller posts could strand that caller — a limit of the test
/// hook, not of the protocol.
#[test]
fn panic_in_a_batch_answers_every_caller_and_closes_the_engine() {
    silence_deliberate_panics();
    model(|| {
        let pubsub = small_pubsub(1);
        let (x, y) = (pubsub.generate_client_id(), pubsub.generate_client_id());
        let x_frames = pubsub
            .register_channel_with(x, config(1, OverflowPolicy::DropNewest))
            .unwrap();
        let y_frames = pubsub
            .register_channel_with(y, config(1, OverflowPolicy::DropNewest))
            .unwrap();
        pubsub.subscribe(x, "t").unwrap();
        pubsub.loom_inject_batch_panic();
        let other = thread::spawn({
            let pubsub = pubsub.clone();
            move || {
                let sent = pubsub.broadcast("t", "x", &RawPayload);
                (sent, pubsub.subscribe(y, "t"))
            }
        });
        let mine = thread::spawn({
            let pubsub = pubsub.clone();
            move || pubsub.subscribe(x, "u")
        });
        let mine = mine.join().unwrap();
        let (sent, theirs) = other.join().unwrap();

        assert!(matches!(mine, Err(Error::Closed)), "{mine:?}");
        assert!(matches!(theirs, Err(Error::Closed)), "{theirs:?}");
        let delivered = match sent {
            Ok(n) => {
                assert!(n <= 1, "{n} deliveries to one subscriber");
                n
            }
            Err(Error::Closed) => 0,
            Err(e) => panic!("broadcast during the fault: {e}"),
        };
        assert!(pubsub.is_closed());
        let stats = pubsub.stats();
        assert_eq!(
            (stats.clients, stats.topics, stats.subscriptions),
            (0, 0, 0)
        );
        assert_eq!(x_frames.iter().count(), delivered);
        assert_eq!(y_frames.iter().count(), 0);
        for frames in [&x_frames, &y_frames] {
            assert_eq!(frames.disconnect_reason(), Some(DisconnectReason::Shutdown));
        }
        assert!(matches!(pubsub.subscribe(y, "t"), Err(Error::Closed)));
        assert!(matches!(
            pubsub.broadcast("t", "x", &RawPayload),
            Err(Error::Closed)
        ));
    });
}

/// Combining 6. `shutdown` racing combiners: one thread subscribes and unsubscribes, a
/// second subscribes, while the main thread shuts the engine down. Each mutation returns
/// `Ok` or `Closed` (and once one is `Closed`, so is every later one on that thread);
/// after all three, the registry is empty (every size and counter zero), every channel
/// has ended with `Shutdown`, and later calls are `Closed`.
#[test]
fn shutdown_races_combiners() {
    model(|| {
        let pubsub = small_pubsub(1);
        let (x, y) = (pubsub.generate_client_id(), pubsub.generate_client_id());
        let x_frames = pubsub
            .register_channel_with(x, config(1, OverflowPolicy::DropNewest))
            .unwrap();
        let y_frames = pubsub
            .register_channel_with(y, config(1, OverflowPolicy::DropNewest))
            .unwrap();
        let churn = thread::spawn({
            let pubsub = pubsub.clone();
            move || (pubsub.subscribe(x, "t"), pubsub.unsubscribe(x, "t"))
        });
        let joiner = thread::spawn({
            let pubsub = pubsub.clone();
            move || pubsub.subscribe(y, "t")
        });
        // On a thread of its own rather than on the main thread, which only waits: loom
        // then needs no preemption to start any of the three first, and its preemption
        // bound goes to the interleavings inside the calls.
        let closer = thread::spawn({
            let pubsub = pubsub.clone();
            move || pubsub.shutdown()
        });
        closer.join().unwrap();
        let (subscribed, unsubscribed) = churn.join().unwrap();
        let joined = joiner.join().unwrap();

        match (&subscribed, &unsubscribed) {
            (Ok(()), Ok(())) | (Ok(()), Err(Error::Closed)) => {}
            (Err(Error::Closed), Err(Error::Closed)) => {}
            other => panic!("churn during shutdown: {other:?}"),
        }
        assert!(
            matches!(joined, Ok(()) | Err(Error::Closed)),
            "subscribe during shutdown: {joined:?}"
        );
        assert!(pubsub.is_closed());
        assert_eq!(pubsub.stats(), Stats::default());
        for frames in [&x_frames, &y_frames] {
            assert_eq!(frames.iter().count(), 0);
            assert_eq!(frames.disconnect_reason(), Some(DisconnectReason::Shutdown));
        }
        assert!(matches!(pubsub.subscribe(x, "t"), Err(Error::Closed)));
        assert!(matches!(pubsub.unregister(y), Err(Error::Closed)));
    });
}

/// Captured by a callback; when the callback is freed, shuts its engine down through a
/// handle upgraded there (user code in a sink's drop that calls into the engine).
struct ShutdownOnDrop(WeakPubSub<str>);

impl Drop for ShutdownOnDrop {
    fn drop(&mut self) {
        if let Some(pubsub) = self.0.upgrade() {
            pubsub.shutdown();
        }
    }
}

/// Combining 4c. A sink freed on the janitor calls `shutdown` while another thread's
/// `shutdown` is in progress. A callback that panics is pruned by the janitor, which
/// frees it in the prune's aftermath; its captured state shuts the engine down through
/// an upgraded handle, while the main thread calls `shutdown` too. Both must return.
///
/// Found a deadlock in `Engine::shutdown` (src/engine/mod.rs), in 2 preemptions: the
/// main thread's `shutdown` takes the `janitor` handle lock and joins the janitor; the
/// janitor, freeing the callback after applying the prune, runs the nested `shutdown`,
/// which waits for that same lock (`LOOM_LOCATION=1`: main blocked at `handle.join()`,
/// janitor in `lock(&self.janitor)`). The comment there assumes the janitor only calls
/// `shutdown` when it drops the last handle; user code in a drop can call it too. Fixed:
/// on the janitor thread `shutdown` stops the janitor and returns before that lock.
#[test]
fn shutdown_from_a_sink_freed_on_the_janitor_races_shutdown() {
    silence_deliberate_panics();
    model(|| {
        let pubsub = small_pubsub(2);
        let doomed = pubsub.generate_client_id();
        pubsub
            .register(doomed, {
                let on_drop = ShutdownOnDrop(pubsub.downgrade());
                move |_: &Bytes| {
                    let _ = &on_drop;
                    std::panic::panic_any(DeliberatePanic);
                }
            })
            .unwrap();
        pubsub.subscribe(doomed, "t").unwrap();
        let watcher = pubsub.generate_client_id();
        let channel = pubsub
            .register_channel_with(watcher, config(1, OverflowPolicy::DropNewest))
            .unwrap();
        let publisher = thread::spawn({
            let pubsub = pubsub.clone();
            move || assert_eq!(broadcast(&pubsub, "t"), 0)
        });
        // The publisher's snapshot is gone once it is joined: the callback is then
        // freed by whoever retires the last reference, the janitor's prune included.
        publisher.join().unwrap();
        pubsub.shutdown();

        assert!(pubsub.is_closed());
        assert_eq!(channel.iter().count(), 0);
        assert_eq!(
            channel.disconnect_reason(),
            Some(DisconnectReason::Shutdown)
        );
    });
}

// ----- presence: the delivery turn ---------------------------------------------------
//
// Presence changes are queued in order under the writer role and broadcast afterwards by
// whoever holds the delivery turn; a thread that finds the turn taken leaves its change
// to the holder, which gives the turn up only while it holds the table lock and sees the
// queue empty (`Shared::deliver_presence`). Broken on purpose once (scratch copy): a
// turn that delivers one change and gives up (no loop) fails this model — the second
// join never arrives and loom reports the watcher's receive as a deadlock.

/// Two threads track a client each on one topic at once, while a watcher subscribes by
/// name: both joins reach the watcher (a lost one blocks its receive forever, which loom
/// reports as a deadlock), and `list` shows both members.
///
/// One change per thread on purpose: the stranding this model looks for needs a change
/// made while another thread is at the end of its delivery turn, and a thread's *later*
/// delivery would pick a stranded change up (hiding the hole).
#[test]
fn presence_changes_are_all_delivered() {
    use fanout::transport::{decode_any, Frame, PresenceEvent};

    model(|| {
        let pubsub = small_pubsub(2);
        let watcher = pubsub.generate_client_id();
        let events = pubsub
            .register_channel_with(watcher, config(4, OverflowPolicy::DropNewest))
            .unwrap();
        pubsub.subscribe(watcher, "room").unwrap();
        let (a, b) = (pubsub.generate_client_id(), pubsub.generate_client_id());
        pubsub.register(a, |_| {}).unwrap();
        pubsub.register(b, |_| {}).unwrap();

        let other = thread::spawn({
            let pubsub = pubsub.clone();
            move || pubsub.track(b, "room", Bytes::from_static(b"b")).unwrap()
        });
        pubsub.track(a, "room", Bytes::from_static(b"a")).unwrap();
        other.join().unwrap();

        // Events go out after the change is applied, possibly by another thread after
        // the call returned: wait for each.
        let mut joined: Vec<u64> = (0..2)
            .map(|_| match decode_any(&events.recv().unwrap()).unwrap() {
                Frame::Presence(p) => {
                    assert_eq!(p.event, PresenceEvent::Join);
                    p.client
                }
                Frame::Push(_) => panic!("only presence frames here"),
            })
            .collect();
        joined.sort_unstable();
        assert_eq!(joined, [a.as_u64(), b.as_u64()]);
        assert_eq!(pubsub.list("room").unwrap().len(), 2);
    });
}

// ----- wildcards -----------------------------------------------------------------------

/// A pattern subscription and a subscription by name race; meanwhile another thread
/// broadcasts to the named topic. Pattern resolution happens under the writer role like
/// every change, so the guarantees are the ordinary ones: once both calls return, a
/// broadcast reaches the two clients exactly once each — through the topic's own list,
/// whichever call created the topic — and a topic nobody named reaches the pattern's
/// client through the pattern index. Broken on purpose once (scratch copy: a new topic not
/// given its matching pattern subscribers, `false &&` in `Writer::subscribe`): fails at
/// the broadcast after both calls (`left: 1, right: 2`) whenever the name comes second.
#[test]
fn pattern_and_name_subscriptions_race() {
    model(|| {
        let pubsub = small_pubsub(2);
        let (by_pattern, pattern_calls) = counting_client(&pubsub);
        let (by_name, name_calls) = counting_client(&pubsub);
        let other = thread::spawn({
            let pubsub = pubsub.clone();
            move || {
                pubsub.subscribe(by_name, "room.rust").unwrap();
                broadcast(&pubsub, "room.rust")
            }
        });
        pubsub.subscribe(by_pattern, "room.*").unwrap();
        let early = other.join().unwrap();
        assert!(
            (1..=2).contains(&early),
            "the name's own subscriber is reached: {early}"
        );

        let before = pattern_calls.load(SeqCst);
        assert_eq!(broadcast(&pubsub, "room.rust"), 2);
        assert_eq!(
            pattern_calls.load(SeqCst),
            before + 1,
            "the pattern subscriber missed the topic"
        );
        assert_eq!(broadcast(&pubsub, "room.go"), 1);
        assert_eq!(name_calls.load(SeqCst), 2);
        assert_eq!(pattern_calls.load(SeqCst), before + 2);
    });
}

/// Reclamation. A broadcast holds the snapshot it loaded while the writer replaces it
/// twice. The trie's reference counts are plain integers that only the writer role may
/// touch (`src/engine/writer_rc.rs`, loom `UnsafeCell`s here), so the replaced snapshot
/// must be freed by the writer, once the broadcast has let go of it — never by the
/// broadcast dropping the last reference. The broadcast reaches the subscriber whatever
/// the interleaving, and the unregistered client's callback is freed by the time the
/// engine is dropped.
#[test]
fn a_replaced_snapshot_is_freed_by_the_writer_after_the_broadcast_lets_go() {
    model(|| {
        let pubsub = small_pubsub(2);
        let (id, calls) = counting_client(&pubsub);
        pubsub.subscribe(id, "a").unwrap();
        let publisher = thread::spawn({
            let pubsub = pubsub.clone();
            move || broadcast(&pubsub, "a")
        });
        pubsub.subscribe(id, "b").unwrap();
        pubsub.unsubscribe(id, "b").unwrap();
        assert_eq!(publisher.join().unwrap(), 1);
        assert_eq!(calls.load(SeqCst), 1);
        pubsub.unregister(id).unwrap();
        drop(pubsub);
        assert_eq!(Arc::strong_count(&calls), 1, "the callback was not freed");
    });
}

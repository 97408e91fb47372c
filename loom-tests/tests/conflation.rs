//! Loom models of conflating channels, driven through the public API of the real engine
//! built with `--cfg loom` (see `models.rs` for how; run with `loom-tests/run.sh`).
//!
//! The conflating sink's table lock, its token queue and its counters all come from
//! `fanout`'s `sync` module, so loom explores every interleaving of a publisher
//! replacing a pending item with a consumer receiving a token and taking its item.
//! Payloads are `loom::sync::Arc`s: an item leaked or freed twice fails the model.
#![cfg(loom)]

use fanout::{Broadcaster, DisconnectReason};
use loom::sync::Arc;
use loom::thread;

/// A keyed update whose copies loom tracks: (key, sequence number).
type Msg = Arc<(u32, u32)>;

fn key(msg: &Msg) -> u32 {
    msg.0
}

mod common;
use common::model;

fn feed() -> Broadcaster<Msg> {
    Broadcaster::builder()
        .command_capacity(2)
        .build()
        .expect("the engine starts")
}

/// What one publisher sends: key 1 twice around key 2, so key 1's second update lands
/// while its first may be pending, being received, or already taken.
const PUBLISHED: [(u32, u32); 3] = [(1, 1), (2, 2), (1, 3)];

/// Model 1. Replace while consuming: a publisher races a consumer that receives tokens
/// and takes their items. Whatever the interleaving, nothing is received twice, each
/// key's items arrive in publish order, received + conflated + dropped = published, and
/// the last item received for each key is the last of its publishes that got in. With
/// room for both keys (capacity 2) nothing is dropped; with capacity 1 a publish finding
/// the other key pending is dropped and counted — even key 1's last one, when the
/// consumer has already taken key 1 and key 2 is pending (the first version of this
/// model assumed otherwise and loom found the interleaving).
#[test]
fn replace_races_consumer() {
    for capacity in [1, 2] {
        model(move || replace_race(capacity));
    }
}

fn replace_race(capacity: usize) {
    let feed = feed();
    let channel = feed.subscribe_conflating(key, capacity).unwrap();
    let publisher = thread::spawn({
        let feed = feed.clone();
        move || {
            let reached: Vec<usize> = PUBLISHED
                .iter()
                .map(|&update| feed.publish(Arc::new(update)).unwrap())
                .collect();
            (reached, feed.stats())
            // The last handle: dropping it shuts the engine down and the receiver ends
            // once drained.
        }
    });
    drop(feed);
    let received: Vec<(u32, u32)> = channel.iter().map(|m| *m).collect();
    let (reached, stats) = publisher.join().unwrap();

    let (conflated, dropped) = (channel.conflated(), channel.dropped());
    assert_eq!(
        received.len() as u64 + conflated + dropped,
        PUBLISHED.len() as u64,
        "capacity {capacity}: received {received:?}, conflated {conflated}, dropped {dropped}"
    );
    for k in [1, 2] {
        let seqs: Vec<u32> = received
            .iter()
            .filter(|(key, _)| *key == k)
            .map(|(_, s)| *s)
            .collect();
        assert!(
            seqs.windows(2).all(|w| w[0] < w[1]),
            "key {k} duplicated or reordered: {received:?}"
        );
        // The last update of the key that got in (one the fallback did not drop) is the
        // last one received for it.
        let last_in = PUBLISHED
            .iter()
            .zip(&reached)
            .filter(|((key, _), n)| *key == k && **n == 1)
            .map(|((_, s), _)| *s)
            .last();
        assert_eq!(
            seqs.last().copied(),
            last_in,
            "capacity {capacity}: key {k} did not end on its latest: {received:?}, reached {reached:?}"
        );
    }
    if capacity == 2 {
        assert_eq!(dropped, 0, "room for both keys");
    }
    let delivered = reached.iter().sum::<usize>() as u64;
    assert_eq!(delivered + dropped, PUBLISHED.len() as u64);
    assert_eq!(
        (stats.deliveries, stats.dropped, stats.conflated),
        (delivered, dropped, conflated)
    );
    assert_eq!(
        channel.disconnect_reason(),
        Some(DisconnectReason::Shutdown)
    );
}

/// Model 2. A consumer holding a received token while the publisher replaces its item:
/// `take` returns whichever item is latest when it runs — never a freed one, never one
/// twice — and a publish that lands after the take queues a fresh token.
#[test]
fn take_races_replace() {
    model(|| {
        let feed = feed();
        let channel = feed.subscribe_conflating(key, 1).unwrap();
        feed.publish(Arc::new((1, 1))).unwrap();
        let token = channel.receiver().try_recv().expect("key 1 is pending");
        let publisher = thread::spawn({
            let feed = feed.clone();
            move || {
                assert_eq!(feed.publish(Arc::new((1, 2))).unwrap(), 1);
            }
        });
        let first = *token.take();
        publisher.join().unwrap();
        let rest: Vec<(u32, u32)> = channel.try_iter().map(|m| *m).collect();
        match first {
            // The replace landed before the take.
            (1, 2) => {
                assert_eq!(rest, []);
                assert_eq!(channel.conflated(), 1);
            }
            // The take came first: the second publish found the key free.
            (1, 1) => {
                assert_eq!(rest, [(1, 2)]);
                assert_eq!(channel.conflated(), 0);
            }
            other => panic!("took {other:?}"),
        }
        assert_eq!(channel.dropped(), 0);
    });
}

/// Model 3. The channel dropped while a publish is in flight: no panic, the publish
/// counts it or not, and every item — pending in the table or carried by a queued
/// token — is freed (loom's leak check, and the payload's count).
#[test]
fn channel_dropped_during_publish_frees_everything() {
    model(|| {
        let feed = feed();
        let channel = feed.subscribe_conflating(key, 2).unwrap();
        feed.publish(Arc::new((1, 1))).unwrap();
        let payload: Msg = Arc::new((2, 2));
        let publisher = thread::spawn({
            let feed = feed.clone();
            let payload = Arc::clone(&payload);
            move || feed.publish(payload).unwrap()
        });
        drop(channel);
        let n = publisher.join().unwrap();
        assert!(n <= 1);
        // One more round trip: the prune is published when it returns.
        let probe = feed.subscribe_conflating(key, 1).unwrap();
        assert_eq!(
            feed.subscriber_count(),
            1,
            "the dropped channel was not pruned"
        );
        drop(probe);
        drop(feed);
        assert_eq!(
            Arc::strong_count(&payload),
            1,
            "an item outlived its channel"
        );
    });
}

/// Model 4. A conflating `PubSub` client, keyed by the frame's topic: two broadcasts on
/// one topic race the consumer; it ends on the second frame, and every frame is either
/// received or counted as conflated.
#[test]
fn pubsub_client_conflates_by_topic() {
    model(|| {
        let pubsub = fanout::PubSub::<str>::builder()
            .command_capacity(2)
            .build()
            .expect("the engine starts");
        let id = pubsub.generate_client_id();
        let channel = pubsub.register_conflating(id, 1).unwrap();
        pubsub.subscribe(id, "t").unwrap();
        let publisher = thread::spawn({
            let pubsub = pubsub.clone();
            move || {
                for payload in ["1", "2"] {
                    let n = pubsub
                        .broadcast("t", payload, &fanout::transport::RawPayload)
                        .unwrap();
                    assert_eq!(n, 1, "one pending topic always fits");
                }
                // The last handle: the engine shuts down here.
            }
        });
        drop(pubsub);
        let received: Vec<Vec<u8>> = channel
            .iter()
            .map(|frame| {
                let push = fanout::transport::decode(&frame).unwrap();
                assert_eq!(push.topic, "t");
                push.payload.to_vec()
            })
            .collect();
        publisher.join().unwrap();
        assert_eq!(received.last().map(Vec::as_slice), Some(&b"2"[..]));
        assert_eq!(received.len() as u64 + channel.conflated(), 2);
        assert_eq!(channel.dropped(), 0);
    });
}

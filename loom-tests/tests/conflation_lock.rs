//! Loom models of a conflating channel's table lock, driven through the public API of the
//! real engine built with `--cfg loom` (see `models.rs` for how; run with
//! `loom-tests/run.sh`).
//!
//! A conflating channel keeps its keys and pending items in a table behind a lock of its
//! own (`SpinLock` in `src/sink/conflating_sink.rs`): one compare-and-swap (Acquire) to
//! take it, one plain store (Release) to free it, waiters spin then yield. The table's
//! data sits in `fanout`'s `sync::UnsafeCell`, which under loom checks every access
//! against the previous ones: two holders whose accesses are not ordered by the lock fail
//! the model with a causality violation. The models put the lock between two publishers
//! and the consumer, on one key (a replace racing a take and another replace) and on two
//! (a new key claiming a slot while another is taken and listed idle).
//!
//! Deliberately broken, each fails: the lock's CAS with `Relaxed` instead of `Acquire`,
//! or the release store `Relaxed` instead of `Release` (loom: "Causality violation" on
//! the table's cell, in both models); the take not listing its slot idle (model 2: the
//! new key finds no slot and is dropped, the count check fails).
#![cfg(loom)]

use fanout::Broadcaster;
use loom::sync::Arc;
use loom::thread;

mod common;
use common::model;

/// A keyed update whose copies loom tracks: (key, sequence number).
type Msg = Arc<(u32, u32)>;

fn key(msg: &Msg) -> u32 {
    msg.0
}

fn feed() -> Broadcaster<Msg> {
    Broadcaster::builder()
        .command_capacity(2)
        .build()
        .expect("the engine starts")
}

/// Runs `publishes` (one list per publisher thread) against a consumer draining a
/// conflating channel of `capacity` keys until the engine shuts down. Returns what was
/// received, in order, and checks the channel's counts.
fn race(capacity: usize, publishes: &[&'static [(u32, u32)]]) -> Vec<(u32, u32)> {
    let feed = feed();
    let channel = feed.subscribe_conflating(key, capacity).unwrap();
    let publishers: Vec<_> = publishes
        .iter()
        .map(|&updates| {
            let feed = feed.clone();
            thread::spawn(move || {
                for &update in updates {
                    assert_eq!(feed.publish(Arc::new(update)).unwrap(), 1);
                }
                // The last handle to go shuts the engine down; the receiver then ends
                // once drained.
            })
        })
        .collect();
    drop(feed);
    let received: Vec<(u32, u32)> = channel.iter().map(|m| *m).collect();
    for publisher in publishers {
        publisher.join().unwrap();
    }
    let published: usize = publishes.iter().map(|p| p.len()).sum();
    assert_eq!(channel.dropped(), 0, "room for every key: {received:?}");
    assert_eq!(
        received.len() as u64 + channel.conflated(),
        published as u64,
        "received {received:?}, conflated {}",
        channel.conflated()
    );
    received
}

/// Model 1. One key, two publishers and the consumer: each publish either replaces the
/// pending item or finds the key idle and queues a new token. Nothing is received twice,
/// and the last item received is one of the two publishers' updates, the one whose
/// publish took the lock last.
#[test]
fn two_publishers_and_the_consumer_share_one_key() {
    model(|| {
        let received = race(1, &[&[(1, 1)], &[(1, 2)]]);
        assert!(!received.is_empty());
        let mut seqs: Vec<u32> = received.iter().map(|&(_, s)| s).collect();
        seqs.dedup();
        assert_eq!(seqs.len(), received.len(), "received twice: {received:?}");
    });
}

/// Model 2. Capacity 1, two keys, one after the other from one publisher, while the
/// consumer takes: key 2 can only become pending once key 1 was taken, so its publish
/// must find key 1 idle (listed by the take) and claim that slot. A publish that finds
/// key 1 still pending is dropped and counted; so the publisher retries until delivered.
#[test]
fn a_new_key_claims_the_slot_the_consumer_freed() {
    model(|| {
        let feed = feed();
        let channel = feed.subscribe_conflating(key, 1).unwrap();
        let publisher = thread::spawn({
            let feed = feed.clone();
            move || {
                assert_eq!(feed.publish(Arc::new((1, 1))).unwrap(), 1);
                // Key 2 fits once the consumer has taken key 1.
                while feed.publish(Arc::new((2, 2))).unwrap() == 0 {
                    thread::yield_now();
                }
            }
        });
        drop(feed);
        let received: Vec<(u32, u32)> = channel.iter().map(|m| *m).collect();
        publisher.join().unwrap();
        assert_eq!(received, [(1, 1), (2, 2)]);
        assert_eq!(channel.conflated(), 0);
    });
}

//! Loom models of a conflating channel's resident keys, driven through the public API
//! of the real engine built with `--cfg loom` (see `models.rs` for how; run with
//! `loom-tests/run.sh`).
//!
//! A conflating channel keeps a key in its table after the consumer takes its item
//! (idle, listed for eviction), so the key's next publish finds its slot with one lookup;
//! a key not in the table claims a new slot or evicts the key idle longest. Publishers
//! and the consumer meet under the table's mutex. These models put two publishers and
//! the consumer on one key (a replace racing a take and another replace), and a new key
//! claiming, by eviction, the slot a concurrent take has just made idle.
//!
//! Deliberately broken, model 2 fails: the take not listing its slot idle (key 2's second
//! publish finds no slot and is dropped: "key 1 was taken: key 2 must find a slot").
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

/// Model 2. Capacity 1, two keys: the consumer takes key 1 while a publish of key 2
/// races it. That publish either finds key 1 still pending (dropped, counted) or finds it
/// idle — listed by the take — and claims its slot by evicting it. Once the take is done,
/// key 2's next publish always gets in (as a replace or as a new key), and the channel
/// ends on it.
#[test]
fn a_new_key_claims_the_slot_the_consumer_freed() {
    model(|| {
        let feed = feed();
        let channel = Arc::new(feed.subscribe_conflating(key, 1).unwrap());
        assert_eq!(feed.publish(Arc::new((1, 1))).unwrap(), 1);
        let consumer = thread::spawn({
            let channel = Arc::clone(&channel);
            move || *channel.recv().unwrap()
        });
        let raced = feed.publish(Arc::new((2, 2))).unwrap();
        assert_eq!(consumer.join().unwrap(), (1, 1));
        assert_eq!(
            feed.publish(Arc::new((2, 3))).unwrap(),
            1,
            "key 1 was taken: key 2 must find a slot"
        );
        let rest: Vec<(u32, u32)> = channel.try_iter().map(|m| *m).collect();
        assert_eq!(rest, [(2, 3)]);
        // (2, 2) was either replaced by (2, 3) or dropped for want of room.
        assert_eq!(channel.conflated(), raced as u64);
        assert_eq!(channel.dropped(), 1 - raced as u64);
    });
}

//! Conflating channels: replace-in-place, the drop-newest fallback, the per-key latest
//! invariant and the counters (received + conflated + dropped = published), `select!`,
//! lifecycle, and conflating `PubSub` clients keyed by topic.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use crossbeam_channel::{after, select};
use fanout::transport::{decode, encode_push, RawPayload};
use fanout::{Broadcaster, ConflatingChannel, DisconnectReason, Error, PubSub};

use common::Rng;

/// A keyed update: (key, sequence number of the publish).
type Update = (u32, u64);

fn by_key(update: &Update) -> u32 {
    update.0
}

/// Per channel: what was received, and the counters, checked against what was
/// published. Returns (received, conflated, dropped).
fn check_latest_per_key(
    channel: &ConflatingChannel<Update>,
    received: &[Update],
    published: &[Update],
) -> (u64, u64, u64) {
    let mut last_published: HashMap<u32, u64> = HashMap::new();
    for &(key, seq) in published {
        last_published.insert(key, seq);
    }
    let mut last_received: HashMap<u32, u64> = HashMap::new();
    for &(key, seq) in received {
        let before = last_received.insert(key, seq);
        assert!(
            before.map_or(true, |b| b < seq),
            "key {key}: {seq} after {before:?}"
        );
    }
    let (conflated, dropped) = (channel.conflated(), channel.dropped());
    assert_eq!(
        received.len() as u64 + conflated + dropped,
        published.len() as u64,
        "received + conflated + dropped = published"
    );
    if dropped == 0 {
        assert_eq!(last_received, last_published, "the latest of every key");
    }
    (received.len() as u64, conflated, dropped)
}

#[test]
fn a_newer_item_replaces_the_pending_one_where_it_stands() {
    let feed = Broadcaster::<Update>::start().unwrap();
    let channel = feed.subscribe_conflating(by_key, 8).unwrap();
    let published = [(1, 0), (2, 1), (1, 2), (3, 3), (1, 4), (2, 5)];
    for update in published {
        assert_eq!(feed.publish(update).unwrap(), 1);
    }
    assert_eq!(channel.len(), 3, "three keys pending");
    // Key 1 keeps the place its first update took; it carries the latest one.
    let received: Vec<Update> = channel.try_iter().collect();
    assert_eq!(received, [(1, 4), (2, 5), (3, 3)]);
    assert_eq!(
        check_latest_per_key(&channel, &received, &published),
        (3, 3, 0)
    );
    let stats = feed.stats();
    assert_eq!(
        (stats.deliveries, stats.conflated, stats.dropped),
        (6, 3, 0)
    );
    // Taken keys are free again: a new update queues at the back.
    feed.publish((2, 6)).unwrap();
    feed.publish((1, 7)).unwrap();
    assert_eq!(channel.try_iter().collect::<Vec<_>>(), [(2, 6), (1, 7)]);
}

#[test]
fn a_busy_key_cannot_starve_the_others() {
    let feed = Broadcaster::<Update>::start().unwrap();
    let channel = feed.subscribe_conflating(by_key, 4).unwrap();
    feed.publish((9, 0)).unwrap();
    feed.publish((1, 1)).unwrap();
    for seq in 2..1_000 {
        feed.publish((9, seq)).unwrap();
    }
    assert_eq!(channel.try_iter().collect::<Vec<_>>(), [(9, 999), (1, 1)]);
    assert_eq!((channel.conflated(), channel.dropped()), (998, 0));
}

#[test]
fn full_of_distinct_keys_it_drops_the_newest_and_counts_it() {
    let feed = Broadcaster::<Update>::start().unwrap();
    let channel = feed.subscribe_conflating(by_key, 2).unwrap();
    let reached: Vec<usize> = [(1, 0), (2, 1), (3, 2), (1, 3), (4, 4)]
        .into_iter()
        .map(|u| feed.publish(u).unwrap())
        .collect();
    // Keys 3 and 4 find two keys pending: dropped. Key 1 still replaces.
    assert_eq!(reached, [1, 1, 0, 1, 0]);
    assert_eq!(channel.try_iter().collect::<Vec<_>>(), [(1, 3), (2, 1)]);
    assert_eq!((channel.conflated(), channel.dropped()), (1, 2));
    let stats = feed.stats();
    assert_eq!(
        (stats.deliveries, stats.conflated, stats.dropped),
        (3, 1, 2)
    );
}

#[test]
fn random_publishes_and_drains_keep_the_latest_of_every_key() {
    let mut rng = Rng(0x5EED_C0F1_A7E5);
    for case in 0..200 {
        let feed = Broadcaster::<Update>::start().unwrap();
        let keys = 1 + rng.below(20) as u32;
        // Half the cases have room for every key (no drops), half do not.
        let capacity = if case % 2 == 0 {
            keys as usize
        } else {
            1 + rng.below(keys as usize)
        };
        let channel = feed.subscribe_conflating(by_key, capacity).unwrap();
        let (mut published, mut received) = (Vec::new(), Vec::new());
        for seq in 0..rng.below(300) as u64 {
            if rng.below(4) == 0 {
                let n = rng.below(4);
                received.extend(channel.try_iter().take(n));
            }
            let update = (rng.below(keys as usize) as u32, seq);
            feed.publish(update).unwrap();
            published.push(update);
        }
        received.extend(channel.try_iter());
        let (_, conflated, dropped) = check_latest_per_key(&channel, &received, &published);
        if capacity == keys as usize {
            assert_eq!(dropped, 0, "case {case}: room for every key");
        }
        let stats = feed.stats();
        assert_eq!((stats.conflated, stats.dropped), (conflated, dropped));
        assert_eq!(stats.deliveries, published.len() as u64 - dropped);
    }
}

/// A slow consumer on another thread, racing the publisher: nothing is lost for good.
#[test]
fn a_slow_consumer_catches_up_to_the_latest_of_every_key() {
    const KEYS: u32 = 500;
    const PUBLISHES: u64 = 100_000;
    let feed = Broadcaster::<Update>::start().unwrap();
    let channel = feed.subscribe_conflating(by_key, KEYS as usize).unwrap();
    let consumer = thread::spawn(move || {
        let mut received = Vec::new();
        for (i, update) in channel.iter().enumerate() {
            if i % 64 == 0 {
                thread::sleep(Duration::from_micros(200)); // slow
            }
            received.push(update);
        }
        (channel, received)
    });
    let mut rng = Rng(0x5EED_510E);
    let published: Vec<Update> = (0..PUBLISHES)
        .map(|seq| {
            // Skewed: a few keys are busy, most are quiet.
            let key = if rng.below(2) == 0 {
                rng.below(5) as u32
            } else {
                rng.below(KEYS as usize) as u32
            };
            feed.publish((key, seq)).unwrap();
            (key, seq)
        })
        .collect();
    let stats_before = feed.stats();
    feed.shutdown();
    let (channel, received) = consumer.join().unwrap();
    assert_eq!(
        channel.disconnect_reason(),
        Some(DisconnectReason::Shutdown)
    );
    let (_, conflated, dropped) = check_latest_per_key(&channel, &received, &published);
    assert_eq!(dropped, 0, "capacity covers every key");
    assert!(conflated > 0, "the consumer was meant to fall behind");
    assert_eq!(stats_before.conflated, conflated);
}

#[test]
fn conflating_channels_work_in_select() {
    let feed = Broadcaster::<Update>::start().unwrap();
    let channel = feed.subscribe_conflating(by_key, 4).unwrap();
    feed.publish((1, 0)).unwrap();
    let pending = channel.receiver().recv().unwrap();
    // A publish between the receive and the take is what the take returns.
    feed.publish((1, 1)).unwrap();
    assert_eq!(pending.take(), (1, 1));
    assert_eq!(channel.conflated(), 1);

    let publisher = thread::spawn({
        let feed = feed.clone();
        move || {
            thread::sleep(Duration::from_millis(20));
            feed.publish((2, 2)).unwrap();
        }
    });
    let timeout = after(Duration::from_secs(5));
    select! {
        recv(channel.receiver()) -> pending => assert_eq!(pending.unwrap().take(), (2, 2)),
        recv(timeout) -> _ => panic!("nothing within 5 s"),
    }
    publisher.join().unwrap();
}

#[test]
fn an_unopened_token_discards_its_item_and_frees_the_key() {
    let feed = Broadcaster::<Update>::start().unwrap();
    let channel = feed.subscribe_conflating(by_key, 1).unwrap();
    feed.publish((1, 0)).unwrap();
    drop(channel.try_recv_pending());
    // The key is free, and there is room again.
    assert_eq!(feed.publish((2, 1)).unwrap(), 1);
    assert_eq!(channel.try_recv().unwrap(), (2, 1));
    assert_eq!(channel.dropped(), 0);
}

/// `try_recv` on the token queue, without taking.
trait TryRecvPending {
    fn try_recv_pending(&self) -> fanout::Pending<Update>;
}

impl TryRecvPending for ConflatingChannel<Update> {
    fn try_recv_pending(&self) -> fanout::Pending<Update> {
        self.receiver().try_recv().expect("a pending key")
    }
}

#[test]
fn dropping_a_conflating_channel_unsubscribes_it() {
    let feed = Broadcaster::<Update>::start().unwrap();
    let channel = feed.subscribe_conflating(by_key, 4).unwrap();
    let other = feed.subscribe().unwrap();
    assert_eq!(feed.subscriber_count(), 2);
    feed.publish((1, 0)).unwrap();
    drop(channel);
    assert_eq!(
        feed.publish((1, 1)).unwrap(),
        1,
        "publishers skip it at once"
    );
    assert!(common::eventually(Duration::from_secs(5), || feed
        .subscriber_count()
        == 1));
    assert_eq!(other.try_iter().count(), 2);
}

#[test]
fn unsubscribe_ends_the_receiver_after_what_is_pending() {
    let feed = Broadcaster::<Update>::start().unwrap();
    let channel = feed.subscribe_conflating(by_key, 4).unwrap();
    feed.publish((1, 0)).unwrap();
    feed.publish((1, 1)).unwrap();
    feed.unsubscribe_conflating(&channel).unwrap();
    assert_eq!(feed.publish((1, 2)).unwrap(), 0);
    assert_eq!(channel.iter().collect::<Vec<_>>(), [(1, 1)]);
    assert_eq!(
        channel.disconnect_reason(),
        Some(DisconnectReason::Unsubscribed)
    );
    assert!(!channel.is_connected());
    assert!(matches!(
        feed.unsubscribe_conflating(&channel),
        Err(Error::UnknownClient(_))
    ));
    let elsewhere = Broadcaster::<Update>::start().unwrap();
    let foreign = elsewhere.subscribe_conflating(by_key, 4).unwrap();
    assert!(matches!(
        feed.unsubscribe_conflating(&foreign),
        Err(Error::UnknownClient(_))
    ));
}

#[test]
fn shutdown_ends_the_receiver_and_later_subscribes_are_closed() {
    let feed = Broadcaster::<Update>::start().unwrap();
    let channel = feed.subscribe_conflating(by_key, 4).unwrap();
    feed.publish((3, 0)).unwrap();
    feed.shutdown();
    assert_eq!(channel.recv().unwrap(), (3, 0));
    assert!(channel.recv().is_err());
    assert_eq!(
        channel.disconnect_reason(),
        Some(DisconnectReason::Shutdown)
    );
    assert!(matches!(
        feed.subscribe_conflating(by_key, 4),
        Err(Error::Closed)
    ));
}

#[test]
fn capacity_zero_is_refused() {
    let feed = Broadcaster::<Update>::start().unwrap();
    assert!(matches!(
        feed.subscribe_conflating(by_key, 0),
        Err(Error::InvalidConfig(_))
    ));
    let pubsub = PubSub::<str>::new().unwrap();
    let id = pubsub.generate_client_id();
    assert!(matches!(
        pubsub.register_conflating(id, 0),
        Err(Error::InvalidConfig(_))
    ));
}

#[test]
fn a_panicking_key_function_closes_only_its_channel() {
    let feed = Broadcaster::<Update>::start().unwrap();
    let armed = Arc::new(AtomicBool::new(false));
    let channel = feed
        .subscribe_conflating(
            {
                let armed = Arc::clone(&armed);
                move |u: &Update| {
                    if armed.load(Ordering::SeqCst) {
                        panic!("deliberate: key function");
                    }
                    u.0
                }
            },
            4,
        )
        .unwrap();
    let other = feed.subscribe().unwrap();
    feed.publish((1, 0)).unwrap();
    armed.store(true, Ordering::SeqCst);
    assert_eq!(
        feed.publish((1, 1)).unwrap(),
        1,
        "the other channel still gets it"
    );
    assert_eq!(
        channel.disconnect_reason(),
        Some(DisconnectReason::Panicked)
    );
    assert_eq!(channel.try_recv().unwrap(), (1, 0));
    assert_eq!(other.try_iter().count(), 2);
    assert_eq!(feed.stats().panics, 1);
}

#[test]
fn stats_sum_every_conflating_channel_including_dropped_ones() {
    let feed = Broadcaster::<Update>::start().unwrap();
    let channels: Vec<_> = (0..20)
        .map(|_| feed.subscribe_conflating(by_key, 4).unwrap())
        .collect();
    for seq in 0..3 {
        feed.publish((1, seq)).unwrap();
    }
    assert_eq!(feed.stats().conflated, 40);
    drop(channels);
    let later = feed.subscribe_conflating(by_key, 4).unwrap();
    feed.publish((1, 3)).unwrap();
    feed.publish((1, 4)).unwrap();
    assert_eq!(feed.stats().conflated, 41);
    assert_eq!(later.conflated(), 1);
}

#[test]
fn pubsub_conflating_clients_are_keyed_by_topic() {
    let pubsub = PubSub::<str>::new().unwrap();
    let (screen, trader) = (pubsub.generate_client_id(), pubsub.generate_client_id());
    let latest = pubsub.register_conflating(screen, 16).unwrap();
    pubsub.register(trader, |_| {}).unwrap();
    for topic in ["EURUSD", "GBPUSD"] {
        pubsub.subscribe(screen, topic).unwrap();
        pubsub.subscribe(trader, topic).unwrap();
    }
    assert!(matches!(
        pubsub.register_conflating(screen, 16),
        Err(Error::DuplicateClient(_))
    ));
    pubsub.broadcast("EURUSD", "1", &RawPayload).unwrap();
    pubsub.broadcast("GBPUSD", "2", &RawPayload).unwrap();
    pubsub
        .broadcast_from(trader, "EURUSD", "3", &RawPayload)
        .unwrap();
    let frame = encode_push("GBPUSD", b"4").unwrap();
    assert_eq!(pubsub.broadcast_frame("GBPUSD", &frame).unwrap(), 2);
    // broadcast_from the conflating client itself skips it.
    pubsub
        .broadcast_from(screen, "EURUSD", "5", &RawPayload)
        .unwrap();

    let got: Vec<(String, Vec<u8>)> = latest
        .try_iter()
        .map(|f| {
            let push = decode(&f).unwrap();
            (push.topic.to_owned(), push.payload.to_vec())
        })
        .collect();
    assert_eq!(
        got,
        [
            ("EURUSD".to_owned(), b"3".to_vec()),
            ("GBPUSD".to_owned(), b"4".to_vec())
        ]
    );
    assert_eq!((latest.conflated(), latest.dropped()), (2, 0));
    let stats = pubsub.stats();
    assert_eq!((stats.conflated, stats.dropped), (2, 0));
    // Same buffer as broadcast_frame's: nothing is copied.
    pubsub.broadcast_frame("GBPUSD", &frame).unwrap();
    assert_eq!(latest.try_recv().unwrap().as_ptr(), frame.as_ptr());

    pubsub.unregister(screen).unwrap();
    assert!(latest.recv().is_err());
    assert_eq!(
        latest.disconnect_reason(),
        Some(DisconnectReason::Unsubscribed)
    );
    // A weak handle sees the same counters.
    assert_eq!(pubsub.downgrade().upgrade().unwrap().stats().conflated, 2);
}

/// Two publishers, each with its own keys (so each key's last publish is well defined),
/// against a slow consumer: every key still ends on its latest, nothing is counted twice.
#[test]
fn two_publishers_and_a_slow_consumer_keep_every_key_latest() {
    const PER_PUBLISHER: u64 = 20_000;
    let feed = Broadcaster::<Update>::start().unwrap();
    let channel = feed.subscribe_conflating(by_key, 64).unwrap();
    let consumer = thread::spawn(move || {
        let mut received = Vec::new();
        for update in channel.iter() {
            if received.len() % 128 == 0 {
                thread::sleep(Duration::from_micros(100));
            }
            received.push(update);
        }
        (channel, received)
    });
    let publishers: Vec<_> = (0..2u32)
        .map(|p| {
            let feed = feed.clone();
            thread::spawn(move || {
                let mut rng = Rng(0x5EED_0000 + u64::from(p));
                (0..PER_PUBLISHER)
                    .map(|i| {
                        // Publisher p owns keys 32p .. 32p + 31; sequence numbers are
                        // per publisher, interleaved so they never collide.
                        let update = (32 * p + rng.below(32) as u32, 2 * i + u64::from(p));
                        feed.publish(update).unwrap();
                        update
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut published = Vec::new();
    for publisher in publishers {
        published.extend(publisher.join().unwrap());
    }
    feed.shutdown();
    let (channel, received) = consumer.join().unwrap();
    // `published` holds each publisher's updates in its own order; keys are disjoint, so
    // the per-key last is each publisher's last for that key.
    check_latest_per_key(&channel, &received, &published);
    assert_eq!(channel.dropped(), 0);
}

#[test]
fn a_token_outlives_its_channel() {
    let feed = Broadcaster::<Update>::start().unwrap();
    let channel = feed.subscribe_conflating(by_key, 4).unwrap();
    feed.publish((1, 0)).unwrap();
    feed.publish((2, 1)).unwrap();
    let token = channel.receiver().recv().unwrap();
    let receiver = channel.receiver().clone();
    drop(channel);
    assert_eq!(token.take(), (1, 0));
    drop(feed);
    // The sink is gone; what was pending is still received, then the receiver ends.
    assert_eq!(receiver.recv().unwrap().take(), (2, 1));
    assert!(receiver.recv().is_err());
}

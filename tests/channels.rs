//! Channel sinks: every overflow policy with exact counts, unsubscribe-on-drop,
//! `select!`, and channel-backed `PubSub` clients.

mod common;

use std::time::{Duration, Instant};

use crossbeam_channel::{after, select, RecvTimeoutError};
use fanout::transport::{decode, RawPayload};
use fanout::{Broadcaster, ChannelConfig, DisconnectReason, OverflowPolicy, PubSub};

const CAPACITY: usize = 4;
const PUBLISHED: u32 = 10;

fn feed_with(policy: OverflowPolicy) -> (Broadcaster<u32>, fanout::Channel<u32>, Vec<usize>) {
    let feed = Broadcaster::<u32>::start().unwrap();
    let channel = feed
        .subscribe_with(ChannelConfig::new(CAPACITY, policy))
        .unwrap();
    let counts = (1..=PUBLISHED).map(|m| feed.publish(m).unwrap()).collect();
    (feed, channel, counts)
}

#[test]
fn drop_newest_keeps_the_first_frames_and_counts_the_rest() {
    let (feed, channel, counts) = feed_with(OverflowPolicy::DropNewest);
    assert_eq!(counts, [1, 1, 1, 1, 0, 0, 0, 0, 0, 0]);
    assert_eq!(channel.try_iter().collect::<Vec<_>>(), [1, 2, 3, 4]);
    assert_eq!(channel.dropped(), u64::from(PUBLISHED) - CAPACITY as u64);
    let stats = feed.stats();
    assert_eq!(
        (stats.deliveries, stats.dropped, stats.broadcasts),
        (4, 6, 10)
    );
    assert!(channel.is_connected());
}

#[test]
fn drop_oldest_keeps_the_latest_frames_and_counts_the_rest() {
    let (feed, channel, counts) = feed_with(OverflowPolicy::DropOldest);
    assert_eq!(counts, [1; PUBLISHED as usize]);
    assert_eq!(channel.try_iter().collect::<Vec<_>>(), [7, 8, 9, 10]);
    assert_eq!(channel.dropped(), 6);
    assert_eq!(feed.stats().dropped, 6);
    assert_eq!(feed.stats().deliveries, 10);
}

#[test]
fn disconnect_cuts_the_subscriber_off_with_a_reason() {
    let (feed, channel, counts) = feed_with(OverflowPolicy::Disconnect);
    assert_eq!(counts, [1, 1, 1, 1, 0, 0, 0, 0, 0, 0]);
    // The overflowing frame is the one frame lost; later ones were never meant for it.
    assert_eq!(channel.dropped(), 1);
    assert_eq!(
        channel.disconnect_reason(),
        Some(DisconnectReason::Overflow)
    );
    assert!(!channel.is_connected());
    // It is removed without any further publish...
    assert!(common::eventually(Duration::from_secs(5), || feed
        .subscriber_count()
        == 0));
    // ...and its receiver yields what was queued, then ends.
    assert_eq!(channel.iter().collect::<Vec<_>>(), [1, 2, 3, 4]);
    let stats = feed.stats();
    assert_eq!((stats.disconnects, stats.dropped, stats.clients), (1, 1, 0));
}

#[test]
fn block_waits_out_its_bound_then_drops() {
    let bound = Duration::from_millis(30);
    let feed = Broadcaster::<u32>::start().unwrap();
    let channel = feed
        .subscribe_with(ChannelConfig::new(1, OverflowPolicy::Block(bound)))
        .unwrap();
    assert_eq!(feed.publish(1).unwrap(), 1);
    // Nobody consumes: the publisher waits out the bound, then the frame is dropped.
    let started = Instant::now();
    assert_eq!(feed.publish(2).unwrap(), 0);
    assert!(started.elapsed() >= bound, "gave up before its bound");
    assert_eq!(channel.dropped(), 1);
    assert_eq!(feed.stats().dropped, 1);
    assert_eq!(channel.try_iter().collect::<Vec<_>>(), [1]);
}

#[test]
fn block_delivers_everything_to_a_consumer_that_keeps_up_within_the_bound() {
    // The bound is generous so a loaded machine cannot make this flaky.
    let feed = Broadcaster::<u32>::start().unwrap();
    let channel = feed
        .subscribe_with(ChannelConfig::new(
            1,
            OverflowPolicy::Block(Duration::from_secs(30)),
        ))
        .unwrap();
    let consumer = std::thread::spawn(move || {
        let got: Vec<u32> = channel.iter().take(100).collect();
        (got, channel.dropped())
    });
    for m in 0..100 {
        assert_eq!(feed.publish(m).unwrap(), 1);
    }
    let (got, dropped) = consumer.join().unwrap();
    assert_eq!(got, (0..100).collect::<Vec<_>>());
    assert_eq!(dropped, 0);
}

#[test]
fn a_slow_consumer_does_not_stall_the_others() {
    let feed = Broadcaster::<u32>::start().unwrap();
    let slow = feed
        .subscribe_with(ChannelConfig::new(2, OverflowPolicy::DropNewest))
        .unwrap();
    let fast = feed
        .subscribe_with(ChannelConfig::new(1000, OverflowPolicy::DropNewest))
        .unwrap();
    for m in 0..500 {
        feed.publish(m).unwrap();
    }
    assert_eq!(fast.try_iter().count(), 500);
    assert_eq!(slow.try_iter().count(), 2);
    assert_eq!(slow.dropped(), 498);
    assert_eq!(fast.dropped(), 0);
    assert_eq!(feed.stats().dropped, 498);
}

#[test]
fn dropping_a_channel_unsubscribes_it_without_any_publish() {
    let feed = Broadcaster::<u32>::start().unwrap();
    let channels: Vec<_> = (0..50).map(|_| feed.subscribe().unwrap()).collect();
    assert_eq!(feed.subscriber_count(), 50);
    assert_eq!(feed.stats().clients, 50);
    drop(channels);
    assert!(common::eventually(Duration::from_secs(5), || feed
        .subscriber_count()
        == 0));
    assert_eq!(feed.stats().clients, 0);
    assert_eq!(feed.publish(1).unwrap(), 0);
}

/// Dropping a `Channel` stops deliveries at once even when its queue stays connected:
/// under drop-oldest the sink holds a receiver of its own, and here the consumer also
/// cloned its receiver before dropping the channel. (Publishers check an inline copy of
/// the sink's status, which the dropped channel must close too.)
#[test]
fn a_dropped_channel_is_skipped_at_once_even_if_its_queue_stays_connected() {
    for policy in [OverflowPolicy::DropOldest, OverflowPolicy::DropNewest] {
        for _ in 0..20 {
            let feed = Broadcaster::<u32>::start().unwrap();
            let other = feed.subscribe().unwrap();
            let channel = feed
                .subscribe_with(ChannelConfig::new(CAPACITY, policy))
                .unwrap();
            let kept = channel.receiver().clone();
            assert_eq!(feed.publish(1).unwrap(), 2);
            drop(channel);
            assert_eq!(
                feed.publish(2).unwrap(),
                1,
                "{policy:?}: publishers skip a dropped channel at once"
            );
            assert_eq!(kept.try_iter().collect::<Vec<_>>(), [1], "{policy:?}");
            assert_eq!(other.try_iter().collect::<Vec<_>>(), [1, 2]);
            assert!(common::eventually(Duration::from_secs(5), || feed
                .subscriber_count()
                == 1));
            // Once pruned, the sink (and its sending side) is gone: the clone ends.
            assert!(kept.recv_timeout(Duration::from_secs(5)).is_err());
        }
    }
}

#[test]
fn unsubscribe_is_immediate_and_ends_the_receiver() {
    let feed = Broadcaster::<u32>::start().unwrap();
    let channel = feed.subscribe().unwrap();
    feed.publish(1).unwrap();
    feed.unsubscribe(&channel).unwrap();
    assert_eq!(feed.subscriber_count(), 0);
    assert_eq!(feed.publish(2).unwrap(), 0);
    assert_eq!(channel.recv(), Ok(1));
    assert!(channel.recv_timeout(Duration::from_secs(5)).is_err());
    assert_eq!(
        channel.disconnect_reason(),
        Some(DisconnectReason::Unsubscribed)
    );
}

#[test]
fn channels_work_in_select_with_a_timer() {
    let prices = Broadcaster::<u32>::start().unwrap();
    let news = Broadcaster::<&'static str>::start().unwrap();
    let price_channel = prices.subscribe().unwrap();
    let news_channel = news.subscribe().unwrap();
    prices.publish(101).unwrap();
    news.publish("rates unchanged").unwrap();

    let (mut got_price, mut got_news, mut timer_fired) = (None, None, false);
    let timer = after(Duration::from_millis(100));
    while !timer_fired {
        select! {
            recv(price_channel.receiver()) -> p => got_price = Some(p.unwrap()),
            recv(news_channel.receiver()) -> n => got_news = Some(n.unwrap()),
            recv(timer) -> _ => timer_fired = true,
        }
    }
    assert_eq!(got_price, Some(101));
    assert_eq!(got_news, Some("rates unchanged"));
    assert!(matches!(
        price_channel.recv_timeout(Duration::from_millis(1)),
        Err(RecvTimeoutError::Timeout)
    ));
}

#[test]
fn channel_backed_pubsub_clients_receive_decodable_push_frames() {
    let pubsub = PubSub::<str>::new().unwrap();
    let id = pubsub.generate_client_id();
    let frames = pubsub.register_channel(id).unwrap();
    pubsub.subscribe(id, "room/a").unwrap();
    pubsub.subscribe(id, "room/b").unwrap();
    pubsub.broadcast("room/a", "one", &RawPayload).unwrap();
    pubsub.broadcast("room/b", "two", &RawPayload).unwrap();
    let decoded: Vec<(String, Vec<u8>)> = frames
        .try_iter()
        .map(|f| {
            let push = decode(&f).unwrap();
            (push.topic.to_owned(), push.payload.to_vec())
        })
        .collect();
    assert_eq!(
        decoded,
        [
            ("room/a".to_owned(), b"one".to_vec()),
            ("room/b".to_owned(), b"two".to_vec())
        ]
    );
    drop(frames);
    assert!(common::eventually(Duration::from_secs(5), || {
        pubsub.stats().clients == 0 && pubsub.stats().topics == 0
    }));
}

#[test]
fn pubsub_channel_overflow_is_counted_per_client_and_engine_wide() {
    let pubsub = PubSub::<str>::new().unwrap();
    let (a, b) = (pubsub.generate_client_id(), pubsub.generate_client_id());
    let small = pubsub
        .register_channel_with(a, ChannelConfig::new(3, OverflowPolicy::DropOldest))
        .unwrap();
    let large = pubsub.register_channel(b).unwrap();
    for id in [a, b] {
        pubsub.subscribe(id, "t").unwrap();
    }
    for i in 0..8 {
        assert_eq!(
            pubsub
                .broadcast("t", format!("{i}").as_str(), &RawPayload)
                .unwrap(),
            2
        );
    }
    let kept: Vec<Vec<u8>> = small
        .try_iter()
        .map(|f| decode(&f).unwrap().payload.to_vec())
        .collect();
    assert_eq!(kept, [b"5".to_vec(), b"6".to_vec(), b"7".to_vec()]);
    assert_eq!(small.dropped(), 5);
    assert_eq!(large.try_iter().count(), 8);
    assert_eq!(pubsub.stats().dropped, 5);
}

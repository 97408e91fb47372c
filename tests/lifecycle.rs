//! Lifecycle: shutdown, dropping the last handle, and `Closed` afterwards.

mod common;

use std::time::Duration;

use bytes::Bytes;
use fanout::transport::{encode_push, RawPayload};
use fanout::Mutation;
use fanout::{Broadcaster, DisconnectReason, Error, PubSub};

/// Names of this process's threads, from /proc (Linux).
fn writer_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.unwrap().path().join("comm")).ok())
        .filter(|name| name.trim() == "lifecycle-wrtr")
        .count()
}

#[test]
fn every_call_after_shutdown_returns_closed() {
    let pubsub = PubSub::<str>::new().unwrap();
    let id = pubsub.generate_client_id();
    pubsub.register(id, |_| {}).unwrap();
    pubsub.subscribe(id, "t").unwrap();
    let other = pubsub.clone();
    let topic = other.topic("t").unwrap();
    pubsub.shutdown();
    pubsub.shutdown(); // idempotent
    assert!(other.is_closed());
    let fresh = other.generate_client_id();
    let frame = encode_push("t", b"x").unwrap();
    let results = [
        other.topic("t").map(|_| 0),
        other.subscriber_count("t"),
        other.subscriber_count(&topic),
        other.encode("t", "x", &RawPayload).map(|_| 0),
        other.apply([Mutation::Unregister(id)]).map(|_| 0),
        other.register_many([(fresh, |_: &Bytes| {})]).map(|_| 0),
        other.register(fresh, |_: &Bytes| {}).map(|_| 0),
        other.register_channel(fresh).map(|_| 0),
        other.subscribe(id, "t").map(|_| 0),
        other.unsubscribe(id, "t").map(|_| 0),
        other.unregister(id).map(|_| 0),
        other.broadcast("t", "x", &RawPayload),
        other.broadcast(&topic, "x", &RawPayload),
        other.broadcast_from(id, "t", "x", &RawPayload),
        other.broadcast_frame("t", &frame),
        other.broadcast_frame_from(id, "t", &frame),
    ];
    for (i, result) in results.into_iter().enumerate() {
        assert!(matches!(result, Err(Error::Closed)), "call {i}: {result:?}");
    }
    assert_eq!(other.stats().clients, 0);
}

#[test]
fn shutdown_ends_every_channel_with_a_reason() {
    let pubsub = PubSub::<str>::new().unwrap();
    let id = pubsub.generate_client_id();
    let frames = pubsub.register_channel(id).unwrap();
    pubsub.subscribe(id, "t").unwrap();
    pubsub.broadcast("t", "last words", &RawPayload).unwrap();

    let feed = Broadcaster::<u32>::start().unwrap();
    let channel = feed.subscribe().unwrap();
    feed.publish(1).unwrap();

    pubsub.shutdown();
    feed.shutdown();
    // What was queued is still delivered, then the receivers end.
    assert!(frames.recv().is_ok());
    assert!(frames.recv().is_err());
    assert_eq!(frames.disconnect_reason(), Some(DisconnectReason::Shutdown));
    assert_eq!(channel.recv(), Ok(1));
    assert!(channel.recv().is_err());
    assert_eq!(
        channel.disconnect_reason(),
        Some(DisconnectReason::Shutdown)
    );
    assert!(matches!(feed.subscribe(), Err(Error::Closed)));
    assert!(matches!(feed.publish(2), Err(Error::Closed)));
    assert!(matches!(feed.unsubscribe(&channel), Err(Error::Closed)));
}

#[test]
fn dropping_the_last_handle_joins_the_writer_thread() {
    let before = writer_threads();
    let pubsub = PubSub::<str>::builder()
        .thread_name("lifecycle-wrtr")
        .build()
        .unwrap();
    let feed = Broadcaster::<u8>::builder()
        .thread_name("lifecycle-wrtr")
        .build()
        .unwrap();
    // A thread names itself when it starts running: wait for that.
    assert!(common::eventually(
        Duration::from_secs(5),
        || writer_threads() == before + 2
    ));
    let id = pubsub.generate_client_id();
    let channel = pubsub.register_channel(id).unwrap();
    let clone = pubsub.clone();
    drop(pubsub);
    assert_eq!(
        writer_threads(),
        before + 2,
        "a clone keeps the engine running"
    );
    drop(clone);
    drop(feed);
    // Joined, not just signalled: the threads are gone when drop returns.
    assert_eq!(writer_threads(), before);
    // A channel outliving its engine ends.
    assert!(channel.recv_timeout(Duration::from_secs(5)).is_err());
    assert_eq!(
        channel.disconnect_reason(),
        Some(DisconnectReason::Shutdown)
    );
    drop(channel); // and dropping it afterwards is harmless
}

#[test]
fn mutations_racing_shutdown_all_get_an_answer() {
    for _ in 0..20 {
        let pubsub = PubSub::<str>::new().unwrap();
        let workers: Vec<_> = (0..4)
            .map(|w| {
                let pubsub = pubsub.clone();
                std::thread::spawn(move || {
                    let mut closed = false;
                    for i in 0..200 {
                        let id = pubsub.generate_client_id();
                        let outcome = pubsub
                            .register(id, |_| {})
                            .and_then(|_| pubsub.subscribe(id, format!("t{w}/{i}").as_str()))
                            .and_then(|_| pubsub.broadcast("t0/0", "x", &RawPayload).map(|_| ()));
                        match outcome {
                            Ok(()) => assert!(!closed, "a call succeeded after one saw Closed"),
                            Err(Error::Closed) => closed = true,
                            Err(e) => panic!("unexpected error {e:?}"),
                        }
                    }
                })
            })
            .collect();
        std::thread::sleep(Duration::from_micros(300));
        pubsub.shutdown();
        for worker in workers {
            worker.join().unwrap();
        }
    }
}

#[test]
fn concurrent_shutdowns_each_return_only_once_the_writer_stopped() {
    for _ in 0..50 {
        let feed = Broadcaster::<u8>::start().unwrap();
        let channel = std::sync::Arc::new(feed.subscribe().unwrap());
        let others: Vec<_> = (0..3)
            .map(|_| {
                let feed = feed.clone();
                let channel = std::sync::Arc::clone(&channel);
                std::thread::spawn(move || {
                    feed.shutdown();
                    channel.disconnect_reason()
                })
            })
            .collect();
        feed.shutdown();
        assert_eq!(
            channel.disconnect_reason(),
            Some(DisconnectReason::Shutdown)
        );
        for other in others {
            assert_eq!(other.join().unwrap(), Some(DisconnectReason::Shutdown));
        }
    }
}

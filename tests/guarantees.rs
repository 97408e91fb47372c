//! One test (or a few) per guarantee in DESIGN.md's "Guarantees".

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use common::{u64_payload, CountingSerialiser, Inbox};
use fanout::transport::{RawPayload, SerialiseError};
use fanout::{Error, PubSub};

/// Visibility: subscribe returns on thread A → a broadcast that thread B starts afterwards
/// must deliver. Repeated so a missing publication-before-acknowledgement shows up.
#[test]
fn subscribe_is_visible_to_broadcasts_on_other_threads() {
    let pubsub = PubSub::<u64>::new().unwrap();
    for round in 0..200u64 {
        let id = pubsub.generate_client_id();
        let inbox = Inbox::default();
        pubsub.register(id, inbox.sink()).unwrap();
        let topic = format!("visible/{round}");
        let (tx, rx) = crossbeam_channel::bounded::<()>(0);
        let publisher = {
            let pubsub = pubsub.clone();
            let topic = topic.clone();
            thread::spawn(move || {
                rx.recv().unwrap(); // starts only after subscribe returned
                pubsub.broadcast(&topic, &round, &CountingSerialiser::default())
            })
        };
        pubsub.subscribe(id, &topic).unwrap();
        tx.send(()).unwrap();
        assert_eq!(publisher.join().unwrap().unwrap(), 1, "round {round}");
        assert_eq!(inbox.payloads(), vec![round.to_be_bytes().to_vec()]);
    }
}

/// Visibility: unsubscribe (and unregister) returns → no broadcast started afterwards on
/// another thread delivers.
#[test]
fn unsubscribe_and_unregister_are_visible_to_broadcasts_on_other_threads() {
    let pubsub = PubSub::<u64>::new().unwrap();
    for round in 0..200u64 {
        let id = pubsub.generate_client_id();
        let inbox = Inbox::default();
        pubsub.register(id, inbox.sink()).unwrap();
        pubsub.subscribe(id, "leaving").unwrap();
        let (tx, rx) = crossbeam_channel::bounded::<()>(0);
        let publisher = {
            let pubsub = pubsub.clone();
            thread::spawn(move || {
                rx.recv().unwrap();
                pubsub.broadcast("leaving", &round, &CountingSerialiser::default())
            })
        };
        if round % 2 == 0 {
            pubsub.unsubscribe(id, "leaving").unwrap();
        } else {
            pubsub.unregister(id).unwrap();
        }
        tx.send(()).unwrap();
        assert_eq!(publisher.join().unwrap().unwrap(), 0, "round {round}");
        assert_eq!(inbox.len(), 0);
        if round % 2 == 0 {
            pubsub.unregister(id).unwrap();
        }
    }
}

/// Order: frames from one publishing thread on one topic arrive in publish order, with
/// several publishers interleaving.
#[test]
fn each_publishers_frames_arrive_in_order() {
    const PUBLISHERS: u64 = 4;
    const FRAMES: u64 = 2_000;
    let pubsub = PubSub::<u64>::new().unwrap();
    let inboxes: Vec<Inbox> = (0..3).map(|_| Inbox::default()).collect();
    let channel_id = pubsub.generate_client_id();
    let channel = pubsub
        .register_channel_with(
            channel_id,
            fanout::ChannelConfig::new(100_000, fanout::OverflowPolicy::DropNewest),
        )
        .unwrap();
    pubsub.subscribe(channel_id, "ordered").unwrap();
    for inbox in &inboxes {
        let id = pubsub.generate_client_id();
        pubsub.register(id, inbox.sink()).unwrap();
        pubsub.subscribe(id, "ordered").unwrap();
    }
    let start = Arc::new(Barrier::new(PUBLISHERS as usize));
    let publishers: Vec<_> = (0..PUBLISHERS)
        .map(|p| {
            let pubsub = pubsub.clone();
            let start = Arc::clone(&start);
            thread::spawn(move || {
                start.wait();
                for seq in 0..FRAMES {
                    // publisher in the top byte, sequence below
                    let message = (p << 56) | seq;
                    pubsub
                        .broadcast("ordered", &message, &CountingSerialiser::default())
                        .unwrap();
                }
            })
        })
        .collect();
    for p in publishers {
        p.join().unwrap();
    }
    let from_channel: Vec<Vec<u8>> = channel
        .try_iter()
        .map(|f| fanout::transport::decode(&f).unwrap().payload.to_vec())
        .collect();
    for payloads in inboxes
        .iter()
        .map(Inbox::payloads)
        .chain(std::iter::once(from_channel))
    {
        assert_eq!(payloads.len() as u64, PUBLISHERS * FRAMES);
        let mut next = [0u64; PUBLISHERS as usize];
        for payload in payloads {
            let message = u64_payload(&payload);
            let (p, seq) = ((message >> 56) as usize, message & ((1 << 56) - 1));
            assert_eq!(seq, next[p], "publisher {p} out of order");
            next[p] += 1;
        }
    }
}

/// Idempotent: subscribing twice is one subscription; unsubscribing from a topic one is
/// not in is a no-op.
#[test]
fn subscribe_is_idempotent_and_unsubscribe_of_a_stranger_is_a_no_op() {
    let pubsub = PubSub::<str>::new().unwrap();
    let id = pubsub.generate_client_id();
    let inbox = Inbox::default();
    pubsub.register(id, inbox.sink()).unwrap();
    pubsub.subscribe(id, "room").unwrap();
    pubsub.subscribe(id, "room").unwrap();
    pubsub.subscribe(id, pubsub.topic("room").unwrap()).unwrap();
    assert_eq!(pubsub.subscriber_count("room").unwrap(), 1);
    assert_eq!(pubsub.stats().subscriptions, 1);
    assert_eq!(pubsub.broadcast("room", "once", &RawPayload).unwrap(), 1);
    assert_eq!(inbox.payloads(), vec![b"once".to_vec()]);

    pubsub.unsubscribe(id, "elsewhere").unwrap();
    pubsub.unsubscribe(id, "room").unwrap();
    pubsub.unsubscribe(id, "room").unwrap();
    assert_eq!(pubsub.subscriber_count("room").unwrap(), 0);
    assert_eq!(pubsub.stats().topics, 0);
}

/// Ephemeral: a subscriber that joins late sees only later frames.
#[test]
fn late_subscribers_see_only_later_frames() {
    let pubsub = PubSub::<str>::new().unwrap();
    let early = pubsub.generate_client_id();
    let late = pubsub.generate_client_id();
    let (early_inbox, late_inbox) = (Inbox::default(), Inbox::default());
    pubsub.register(early, early_inbox.sink()).unwrap();
    pubsub.register(late, late_inbox.sink()).unwrap();
    pubsub.subscribe(early, "news").unwrap();
    pubsub.broadcast("news", "first", &RawPayload).unwrap();
    pubsub.subscribe(late, "news").unwrap();
    pubsub.broadcast("news", "second", &RawPayload).unwrap();
    assert_eq!(
        early_inbox.payloads(),
        vec![b"first".to_vec(), b"second".to_vec()]
    );
    assert_eq!(late_inbox.payloads(), vec![b"second".to_vec()]);
}

/// broadcast_from skips exactly the sender; everyone else gets the frame.
#[test]
fn broadcast_from_skips_only_the_sender() {
    let pubsub = PubSub::<str>::new().unwrap();
    let ids: Vec<_> = (0..5).map(|_| pubsub.generate_client_id()).collect();
    let inboxes: Vec<Inbox> = ids.iter().map(|_| Inbox::default()).collect();
    for (id, inbox) in ids.iter().zip(&inboxes) {
        pubsub.register(*id, inbox.sink()).unwrap();
        pubsub.subscribe(*id, "room").unwrap();
    }
    assert_eq!(
        pubsub
            .broadcast_from(ids[2], "room", "hi", &RawPayload)
            .unwrap(),
        4
    );
    for (i, inbox) in inboxes.iter().enumerate() {
        assert_eq!(inbox.len(), usize::from(i != 2), "client {i}");
    }
    // A `from` that is not subscribed excludes nobody.
    let outsider = pubsub.generate_client_id();
    assert_eq!(
        pubsub
            .broadcast_from(outsider, "room", "hi", &RawPayload)
            .unwrap(),
        5
    );
}

/// Serialise once: the serialiser runs exactly once per broadcast however many
/// subscribers; never when there are none, or when the only subscriber is `from`.
#[test]
fn serialiser_runs_once_and_only_when_someone_listens() {
    let pubsub = PubSub::<u64>::new().unwrap();
    let counting = CountingSerialiser::default();
    assert_eq!(pubsub.broadcast("empty", &1, &counting).unwrap(), 0);
    assert_eq!(counting.calls(), 0, "no subscribers: no serialisation");

    let solo = pubsub.generate_client_id();
    pubsub.register(solo, |_| {}).unwrap();
    pubsub.subscribe(solo, "t").unwrap();
    assert_eq!(pubsub.broadcast_from(solo, "t", &1, &counting).unwrap(), 0);
    assert_eq!(
        counting.calls(),
        0,
        "only the sender subscribed: no serialisation"
    );

    let inboxes: Vec<Inbox> = (0..100).map(|_| Inbox::default()).collect();
    for inbox in &inboxes {
        let id = pubsub.generate_client_id();
        pubsub.register(id, inbox.sink()).unwrap();
        pubsub.subscribe(id, "t").unwrap();
    }
    assert_eq!(pubsub.broadcast("t", &7, &counting).unwrap(), 101);
    assert_eq!(counting.calls(), 1);
    // Every subscriber got the very same buffer (shared, not copied).
    let first = inboxes[0].0.lock().unwrap()[0].clone();
    for inbox in &inboxes {
        assert_eq!(inbox.0.lock().unwrap()[0].as_ptr(), first.as_ptr());
    }
}

/// Serialiser failure: an error, and nothing is delivered.
#[test]
fn serialiser_failure_delivers_nothing() {
    let pubsub = PubSub::<u64>::new().unwrap();
    let id = pubsub.generate_client_id();
    let inbox = Inbox::default();
    pubsub.register(id, inbox.sink()).unwrap();
    pubsub.subscribe(id, "t").unwrap();
    let failing = |_: &u64, _: &mut BytesMut| Err(SerialiseError::new("nope"));
    let result = pubsub.broadcast("t", &1, &failing);
    assert!(matches!(result, Err(Error::Serialise(_))), "{result:?}");
    assert_eq!(inbox.len(), 0);
}

/// Fault isolation: a panicking callback does not stop the broadcast; the client is
/// removed and counted; later broadcasts are unaffected.
#[test]
fn a_panicking_callback_is_isolated_and_removed() {
    let pubsub = PubSub::<str>::new().unwrap();
    let before = Inbox::default();
    let after = Inbox::default();
    let (a, bad, c) = (
        pubsub.generate_client_id(),
        pubsub.generate_client_id(),
        pubsub.generate_client_id(),
    );
    pubsub.register(a, before.sink()).unwrap();
    pubsub
        .register(bad, |_: &Bytes| {
            panic!("callback bug (expected by this test)")
        })
        .unwrap();
    pubsub.register(c, after.sink()).unwrap();
    for id in [a, bad, c] {
        pubsub.subscribe(id, "t").unwrap();
        pubsub.subscribe(id, "u").unwrap();
    }
    assert_eq!(pubsub.broadcast("t", "1", &RawPayload).unwrap(), 2);
    assert_eq!((before.len(), after.len()), (1, 1));
    assert_eq!(pubsub.stats().panics, 1);
    // Removed from every topic, promptly (the prune is asynchronous).
    assert!(common::eventually(Duration::from_secs(5), || {
        pubsub.subscriber_count("u").unwrap() == 2
    }));
    assert_eq!(pubsub.broadcast("u", "2", &RawPayload).unwrap(), 2);
    assert!(matches!(pubsub.subscribe(bad, "t"), Err(Error::UnknownClient(id)) if id == bad));
    assert_eq!(pubsub.stats().panics, 1);
}

/// Fault isolation, through every shape of the broadcast walk: runs of callbacks (an
/// inner loop of their own) between channel sinks, a panicking callback inside a run and
/// one just before a channel, and a sender skipped in the middle of a run. Every other
/// subscriber receives each frame exactly once, the panics are counted once, and once the
/// panicking clients are pruned the rest still receive everything.
#[test]
fn a_mixed_list_with_panics_and_a_sender_reaches_everyone_else_once() {
    let pubsub = PubSub::<str>::new().unwrap();
    // c: callback, p: panicking callback, h: channel sink; in client id order.
    let layout = "ccpchcphhcc";
    let mut callbacks = Vec::new();
    let mut channels = Vec::new();
    for kind in layout.chars() {
        let id = pubsub.generate_client_id();
        match kind {
            'c' => {
                let inbox = Inbox::default();
                pubsub.register(id, inbox.sink()).unwrap();
                callbacks.push((id, inbox));
            }
            'p' => pubsub
                .register(id, |_: &Bytes| {
                    panic!("callback bug (expected by this test)")
                })
                .unwrap(),
            _ => channels.push(pubsub.register_channel(id).unwrap()),
        }
        pubsub.subscribe(id, "t").unwrap();
    }
    let sender = callbacks[2].0;
    let others = layout.len() - 2 - 1;
    assert_eq!(
        pubsub
            .broadcast_from(sender, "t", "1", &RawPayload)
            .unwrap(),
        others
    );
    assert_eq!(pubsub.stats().panics, 2);
    for (id, inbox) in &callbacks {
        assert_eq!(inbox.len(), usize::from(*id != sender), "client {id:?}");
    }
    for channel in &channels {
        assert_eq!(channel.try_iter().count(), 1, "client {:?}", channel.id());
    }
    assert!(common::eventually(Duration::from_secs(5), || {
        pubsub.subscriber_count("t").unwrap() == layout.len() - 2
    }));
    assert_eq!(
        pubsub.broadcast("t", "2", &RawPayload).unwrap(),
        layout.len() - 2
    );
    for (id, inbox) in &callbacks {
        assert_eq!(inbox.len(), 1 + usize::from(*id != sender), "client {id:?}");
    }
    for channel in &channels {
        assert_eq!(channel.try_iter().count(), 1, "client {:?}", channel.id());
    }
    assert_eq!(pubsub.stats().panics, 2);
}

/// Fault isolation: callbacks may call back into the engine — subscribe, unsubscribe,
/// broadcast — without deadlock or lost updates.
#[test]
fn callbacks_may_reenter_the_engine() {
    let pubsub = PubSub::<str>::new().unwrap();
    let weak = pubsub.downgrade();
    let listener = pubsub.generate_client_id();
    let echo = pubsub.generate_client_id();
    let echoed = Inbox::default();
    pubsub.register(listener, echoed.sink()).unwrap();
    pubsub.subscribe(listener, "echo").unwrap();

    let seen = Arc::new(AtomicUsize::new(0));
    let seen_in_callback = Arc::clone(&seen);
    pubsub
        .register(echo, move |frame: &Bytes| {
            let pubsub = weak.upgrade().expect("engine alive");
            let n = seen_in_callback.fetch_add(1, Ordering::SeqCst);
            // Re-entrant mutation and broadcast from inside a broadcast.
            pubsub
                .subscribe(echo, format!("extra/{n}").as_str())
                .unwrap();
            pubsub.unsubscribe(echo, "never-joined").unwrap();
            let payload = fanout::transport::decode(frame).unwrap().payload.to_vec();
            let text = String::from_utf8(payload).unwrap();
            pubsub
                .broadcast("echo", text.as_str(), &RawPayload)
                .unwrap();
        })
        .unwrap();
    pubsub.subscribe(echo, "in").unwrap();

    for i in 0..50 {
        let msg = format!("m{i}");
        assert_eq!(
            pubsub.broadcast("in", msg.as_str(), &RawPayload).unwrap(),
            1
        );
    }
    assert_eq!(seen.load(Ordering::SeqCst), 50);
    assert_eq!(echoed.len(), 50);
    for i in 0..50 {
        assert_eq!(
            pubsub
                .subscriber_count(format!("extra/{i}").as_str())
                .unwrap(),
            1
        );
    }
}

/// A callback holding a strong handle to its own engine keeps it alive. When that client
/// is removed by the writer (here: its callback panics and is pruned), the writer drops
/// the last handle on its own thread. That must shut the engine down without deadlock
/// (the writer cannot join itself).
///
/// Which thread drops the last handle is a race (the test drops its own handle right after
/// the broadcast, usually before the writer handles the prune); both orders must end with
/// the engine shut down.
#[test]
fn last_handle_dropped_on_the_writer_thread_shuts_down_cleanly() {
    let pubsub = PubSub::<str>::new().unwrap();
    let weak = pubsub.downgrade();
    let holder = pubsub.generate_client_id();
    let captured = pubsub.clone();
    pubsub
        .register(holder, move |_: &Bytes| {
            let _ = &captured;
            panic!("callback bug (expected by this test)");
        })
        .unwrap();
    let watcher = pubsub.generate_client_id();
    let watch = pubsub.register_channel(watcher).unwrap();
    pubsub.subscribe(holder, "t").unwrap();
    drop(pubsub);

    let strong = weak.upgrade().expect("the callback keeps the engine alive");
    assert_eq!(strong.broadcast("t", "boom", &RawPayload).unwrap(), 0);
    drop(strong);

    // The engine shuts down: the watcher's receiver ends with `Shutdown`.
    assert_eq!(
        watch.recv_timeout(Duration::from_secs(10)),
        Err(crossbeam_channel::RecvTimeoutError::Disconnected),
        "engine did not shut down after its last handle was dropped"
    );
    assert_eq!(
        watch.disconnect_reason(),
        Some(fanout::DisconnectReason::Shutdown)
    );
    assert!(weak.upgrade().is_none());
}

//! Presence: `track`, `untrack`, `list`, and the join/leave Presence frames every way a
//! client can go away sends.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::eventually;
use fanout::transport::{decode_any, Frame, PresenceEvent, RawPayload};
use fanout::{Bytes, Channel, ChannelConfig, ClientId, Error, OverflowPolicy, PubSub};

const WAIT: Duration = Duration::from_secs(10);

/// A subscriber of `topic` that collects the presence events it gets.
fn watcher(pubsub: &PubSub<str>, topic: &str) -> Channel<Bytes> {
    let id = pubsub.generate_client_id();
    let channel = pubsub.register_channel(id).unwrap();
    pubsub.subscribe(id, topic).unwrap();
    channel
}

/// The next presence event on `channel`: (event, client, meta).
fn next_event(channel: &Channel<Bytes>) -> (PresenceEvent, u64, Vec<u8>) {
    loop {
        let frame = channel.recv_timeout(WAIT).expect("a presence event");
        if let Frame::Presence(p) = decode_any(&frame).unwrap() {
            return (p.event, p.client, p.meta.to_vec());
        }
    }
}

fn members(pubsub: &PubSub<str>, topic: &str) -> Vec<(ClientId, Vec<u8>)> {
    pubsub
        .list(topic)
        .unwrap()
        .into_iter()
        .map(|m| (m.client, m.meta.to_vec()))
        .collect()
}

#[test]
fn track_lists_the_member_and_tells_subscribers() {
    let pubsub = PubSub::<str>::new().unwrap();
    let by_name = watcher(&pubsub, "room.rust");
    let by_pattern = watcher(&pubsub, "room.*");
    let alice = pubsub.generate_client_id();
    pubsub.register(alice, |_| {}).unwrap();

    pubsub
        .track(alice, "room.rust", Bytes::from_static(b"Alice"))
        .unwrap();
    assert_eq!(members(&pubsub, "room.rust"), [(alice, b"Alice".to_vec())]);
    let join = (PresenceEvent::Join, alice.as_u64(), b"Alice".to_vec());
    assert_eq!(next_event(&by_name), join);
    assert_eq!(next_event(&by_pattern), join);

    // The same metadata again is no change; new metadata is a join carrying it.
    pubsub
        .track(alice, "room.rust", Bytes::from_static(b"Alice"))
        .unwrap();
    pubsub
        .track(alice, "room.rust", Bytes::from_static(b"Alice (away)"))
        .unwrap();
    assert_eq!(next_event(&by_name).2, b"Alice (away)");
    assert_eq!(
        members(&pubsub, "room.rust"),
        [(alice, b"Alice (away)".to_vec())]
    );

    pubsub.untrack(alice, "room.rust").unwrap();
    assert!(members(&pubsub, "room.rust").is_empty());
    assert_eq!(
        next_event(&by_name),
        (
            PresenceEvent::Leave,
            alice.as_u64(),
            b"Alice (away)".to_vec()
        )
    );
    // Untracking again is a no-op and sends nothing.
    pubsub.untrack(alice, "room.rust").unwrap();
    assert!(by_name.try_recv().is_err());
}

#[test]
fn events_follow_the_order_of_the_changes() {
    let pubsub = PubSub::<str>::new().unwrap();
    let events = watcher(&pubsub, "lobby");
    let ids: Vec<ClientId> = (0..20).map(|_| pubsub.generate_client_id()).collect();
    for &id in &ids {
        pubsub.register(id, |_| {}).unwrap();
        pubsub.track(id, "lobby", Bytes::new()).unwrap();
    }
    for &id in ids.iter().rev() {
        pubsub.untrack(id, "lobby").unwrap();
    }
    let seen: Vec<(PresenceEvent, u64)> = (0..40)
        .map(|_| {
            let (event, client, _) = next_event(&events);
            (event, client)
        })
        .collect();
    let expected: Vec<(PresenceEvent, u64)> = ids
        .iter()
        .map(|id| (PresenceEvent::Join, id.as_u64()))
        .chain(
            ids.iter()
                .rev()
                .map(|id| (PresenceEvent::Leave, id.as_u64())),
        )
        .collect();
    assert_eq!(seen, expected);
}

#[test]
fn unregister_leaves_every_tracked_topic() {
    let pubsub = PubSub::<str>::new().unwrap();
    let a = watcher(&pubsub, "a");
    let b = watcher(&pubsub, "b");
    let bob = pubsub.generate_client_id();
    pubsub.register(bob, |_| {}).unwrap();
    pubsub.track(bob, "a", Bytes::from_static(b"bob")).unwrap();
    pubsub.track(bob, "b", Bytes::from_static(b"bob")).unwrap();
    next_event(&a);
    next_event(&b);
    pubsub.unregister(bob).unwrap();
    assert!(members(&pubsub, "a").is_empty() && members(&pubsub, "b").is_empty());
    assert_eq!(next_event(&a).0, PresenceEvent::Leave);
    assert_eq!(next_event(&b).0, PresenceEvent::Leave);
}

#[test]
fn a_dropped_channel_leaves() {
    let pubsub = PubSub::<str>::new().unwrap();
    let events = watcher(&pubsub, "room");
    let carol = pubsub.generate_client_id();
    let channel = pubsub.register_channel(carol).unwrap();
    pubsub
        .track(carol, "room", Bytes::from_static(b"carol"))
        .unwrap();
    next_event(&events);
    drop(channel); // the janitor prunes it
    assert_eq!(
        next_event(&events),
        (PresenceEvent::Leave, carol.as_u64(), b"carol".to_vec())
    );
    assert!(members(&pubsub, "room").is_empty());
}

#[test]
fn a_client_disconnected_on_overflow_leaves() {
    let pubsub = PubSub::<str>::new().unwrap();
    let events = watcher(&pubsub, "room");
    let slow = pubsub.generate_client_id();
    let _inbox = pubsub
        .register_channel_with(slow, ChannelConfig::new(1, OverflowPolicy::Disconnect))
        .unwrap();
    pubsub.subscribe(slow, "feed").unwrap();
    pubsub.track(slow, "room", Bytes::new()).unwrap();
    next_event(&events);
    pubsub.broadcast("feed", "1", &RawPayload).unwrap();
    pubsub.broadcast("feed", "2", &RawPayload).unwrap(); // overflows: disconnected
    assert_eq!(next_event(&events).0, PresenceEvent::Leave);
    assert!(eventually(WAIT, || members(&pubsub, "room").is_empty()));
}

#[test]
fn a_panicking_callback_leaves() {
    let pubsub = PubSub::<str>::new().unwrap();
    let events = watcher(&pubsub, "room");
    let buggy = pubsub.generate_client_id();
    pubsub
        .register(buggy, |_: &Bytes| {
            panic!("callback bug (expected by this test)")
        })
        .unwrap();
    pubsub.subscribe(buggy, "feed").unwrap();
    pubsub.track(buggy, "room", Bytes::new()).unwrap();
    next_event(&events);
    pubsub.broadcast("feed", "boom", &RawPayload).unwrap();
    assert_eq!(
        next_event(&events),
        (PresenceEvent::Leave, buggy.as_u64(), Vec::new())
    );
    assert!(members(&pubsub, "room").is_empty());
}

#[test]
fn shutdown_empties_every_list_and_bad_input_is_typed() {
    let pubsub = PubSub::<str>::new().unwrap();
    let stranger = pubsub.generate_client_id();
    assert!(matches!(
        pubsub.track(stranger, "room", Bytes::new()),
        Err(Error::UnknownClient(id)) if id == stranger
    ));
    assert!(matches!(
        pubsub.track(stranger, "", Bytes::new()),
        Err(Error::InvalidTopic(_))
    ));
    assert!(matches!(pubsub.list(""), Err(Error::InvalidTopic(_))));
    let dave = pubsub.generate_client_id();
    pubsub.register(dave, |_| {}).unwrap();
    pubsub.track(dave, "room", Bytes::new()).unwrap();
    pubsub.shutdown();
    assert!(matches!(pubsub.list("room"), Err(Error::Closed)));
    assert!(matches!(
        pubsub.track(dave, "room", Bytes::new()),
        Err(Error::Closed)
    ));
}

/// A subscriber's callback that tracks someone when it sees a join: the nested change's
/// event is delivered too (by the loop already delivering), and nothing deadlocks.
#[test]
fn a_callback_may_track_from_inside_a_presence_event() {
    let pubsub = PubSub::<str>::new().unwrap();
    let weak = pubsub.downgrade();
    let (greeter, guest) = (pubsub.generate_client_id(), pubsub.generate_client_id());
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&seen);
    pubsub
        .register(greeter, move |frame: &Bytes| {
            if let Ok(Frame::Presence(p)) = decode_any(frame) {
                counter.fetch_add(1, Ordering::SeqCst);
                if p.client != greeter.as_u64() && p.event == PresenceEvent::Join {
                    let pubsub = weak.upgrade().expect("engine alive");
                    pubsub
                        .track(greeter, "hall", Bytes::from_static(b"greeter"))
                        .unwrap();
                }
            }
        })
        .unwrap();
    pubsub.subscribe(greeter, "hall").unwrap();
    pubsub.register(guest, |_| {}).unwrap();
    pubsub
        .track(guest, "hall", Bytes::from_static(b"guest"))
        .unwrap();
    assert!(eventually(WAIT, || seen.load(Ordering::SeqCst) == 2));
    assert_eq!(members(&pubsub, "hall").len(), 2);
}

/// Many threads change presence on one topic at once: every change's event reaches a
/// watcher, none is stranded in the queue (the delivery turn's hand-off), and each
/// client's events alternate join, leave in the order it made them.
#[test]
fn concurrent_changes_all_reach_the_watcher() {
    const THREADS: usize = 4;
    const ROUNDS: usize = 500;
    let pubsub = PubSub::<str>::new().unwrap();
    let watcher_id = pubsub.generate_client_id();
    let events = pubsub
        .register_channel_with(
            watcher_id,
            ChannelConfig::new(THREADS * ROUNDS * 2 + 16, OverflowPolicy::DropNewest),
        )
        .unwrap();
    pubsub.subscribe(watcher_id, "busy").unwrap();
    let ids: Vec<ClientId> = (0..THREADS).map(|_| pubsub.generate_client_id()).collect();
    std::thread::scope(|s| {
        for &id in &ids {
            let pubsub = &pubsub;
            s.spawn(move || {
                pubsub.register(id, |_| {}).unwrap();
                for _ in 0..ROUNDS {
                    pubsub.track(id, "busy", Bytes::new()).unwrap();
                    pubsub.untrack(id, "busy").unwrap();
                }
            });
        }
    });
    let mut last: std::collections::HashMap<u64, PresenceEvent> = Default::default();
    for _ in 0..THREADS * ROUNDS * 2 {
        let (event, client, _) = next_event(&events);
        let previous = last.insert(client, event);
        assert_ne!(
            previous,
            Some(event),
            "client {client}: {event:?} twice in a row"
        );
    }
    assert!(last.values().all(|e| *e == PresenceEvent::Leave));
    assert!(members(&pubsub, "busy").is_empty());
}

/// A conflating client keeps presence frames apart from Push frames of the same topic,
/// and one member's event apart from another's: nothing about who is present is lost.
#[test]
fn conflation_never_replaces_presence_with_something_else() {
    let pubsub = PubSub::<str>::new().unwrap();
    let screen = pubsub.generate_client_id();
    let latest = pubsub.register_conflating(screen, 16).unwrap();
    pubsub.subscribe(screen, "room").unwrap();
    let (a, b) = (pubsub.generate_client_id(), pubsub.generate_client_id());
    pubsub.register(a, |_| {}).unwrap();
    pubsub.register(b, |_| {}).unwrap();
    pubsub.broadcast("room", "price 1", &RawPayload).unwrap();
    pubsub.track(a, "room", Bytes::from_static(b"a")).unwrap();
    pubsub.track(b, "room", Bytes::from_static(b"b")).unwrap();
    pubsub.broadcast("room", "price 2", &RawPayload).unwrap(); // replaces price 1 only
    let kinds: Vec<String> = latest
        .try_iter()
        .map(|frame| match decode_any(&frame).unwrap() {
            Frame::Push(p) => String::from_utf8(p.payload.to_vec()).unwrap(),
            Frame::Presence(p) => format!("{:?} {}", p.event, p.client),
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "price 2".to_owned(),
            format!("Join {}", a.as_u64()),
            format!("Join {}", b.as_u64())
        ]
    );
    assert_eq!(latest.conflated(), 1);
}

/// `subscribe_with_members` while other threads track and untrack: the frames a
/// subscriber gets, replayed from empty, change something each and end at `list`.
#[test]
fn subscribe_with_members_is_snapshot_then_events_in_one_step() {
    use std::collections::BTreeMap;
    for round in 0..50 {
        let pubsub = PubSub::<str>::new().unwrap();
        let churners: Vec<_> = (0..3)
            .map(|t| {
                let pubsub = pubsub.clone();
                std::thread::spawn(move || {
                    let ids: Vec<ClientId> = (0..8)
                        .map(|_| {
                            let id = pubsub.generate_client_id();
                            pubsub.register(id, |_| {}).unwrap();
                            id
                        })
                        .collect();
                    for i in 0..200usize {
                        let id = ids[(i * 7 + t) % ids.len()];
                        if i % 3 == 2 {
                            pubsub.untrack(id, "room").unwrap();
                        } else {
                            let meta = Bytes::from(format!("m{}", i % 4));
                            pubsub.track(id, "room", meta).unwrap();
                        }
                    }
                })
            })
            .collect();
        std::thread::sleep(Duration::from_micros(200 * (round % 5)));
        let late = pubsub.generate_client_id();
        let frames = pubsub.register_channel(late).unwrap();
        pubsub.subscribe_with_members(late, "room").unwrap();
        for churner in churners {
            churner.join().unwrap();
        }
        let mut replayed: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
        while let Ok(frame) = frames.try_recv() {
            let Frame::Presence(p) = decode_any(&frame).unwrap() else {
                continue;
            };
            match p.event {
                PresenceEvent::Join => {
                    let before = replayed.insert(p.client, p.meta.to_vec());
                    assert_ne!(
                        before.as_deref(),
                        Some(p.meta),
                        "round {round}: a doubled join"
                    );
                }
                PresenceEvent::Leave => {
                    assert!(
                        replayed.remove(&p.client).is_some(),
                        "round {round}: a leave of a member not listed"
                    );
                }
            }
        }
        let listed: BTreeMap<u64, Vec<u8>> = pubsub
            .list("room")
            .unwrap()
            .into_iter()
            .map(|m| (m.client.as_u64(), m.meta.to_vec()))
            .collect();
        assert_eq!(replayed, listed, "round {round}");
    }
}

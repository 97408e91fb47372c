//! Every bad input in DESIGN.md gets a typed error, never a panic.

use bytes::{Bytes, BytesMut};
use fanout::transport::{encode_push, RawPayload, SerialiseError};
use fanout::{
    Broadcaster, ChannelConfig, Error, OverflowPolicy, PubSub, StartError, TopicError,
    MAX_TOPIC_LEN,
};

#[test]
fn unknown_clients_are_refused() {
    let pubsub = PubSub::<str>::new().unwrap();
    let ghost = pubsub.generate_client_id();
    assert!(matches!(pubsub.subscribe(ghost, "t"), Err(Error::UnknownClient(id)) if id == ghost));
    assert!(matches!(
        pubsub.unsubscribe(ghost, "t"),
        Err(Error::UnknownClient(_))
    ));
    assert!(matches!(
        pubsub.unregister(ghost),
        Err(Error::UnknownClient(_))
    ));
    pubsub.register(ghost, |_| {}).unwrap();
    pubsub.unregister(ghost).unwrap();
    assert!(matches!(
        pubsub.unregister(ghost),
        Err(Error::UnknownClient(_))
    ));
    assert!(matches!(
        pubsub.subscribe(ghost, "t"),
        Err(Error::UnknownClient(_))
    ));
}

#[test]
fn duplicate_registration_is_refused_and_keeps_the_first_sink() {
    let pubsub = PubSub::<str>::new().unwrap();
    let id = pubsub.generate_client_id();
    let first = pubsub.register_channel(id).unwrap();
    assert!(matches!(pubsub.register(id, |_| {}), Err(Error::DuplicateClient(d)) if d == id));
    assert!(matches!(
        pubsub.register_channel(id),
        Err(Error::DuplicateClient(_))
    ));
    pubsub.subscribe(id, "t").unwrap();
    assert_eq!(pubsub.broadcast("t", "x", &RawPayload).unwrap(), 1);
    assert_eq!(first.len(), 1);
    // After unregistering, the id can be registered again.
    pubsub.unregister(id).unwrap();
    pubsub.register(id, |_| {}).unwrap();
    // Dropping the stale channel does not remove the new registration.
    drop(first);
    pubsub.subscribe(id, "t").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(50));
    assert_eq!(pubsub.subscriber_count("t").unwrap(), 1);
}

#[test]
fn empty_and_over_long_topics_are_refused_everywhere() {
    let pubsub = PubSub::<str>::builder().max_topic_len(8).build().unwrap();
    let id = pubsub.generate_client_id();
    pubsub.register(id, |_| {}).unwrap();
    let long = "x".repeat(9);
    for topic in ["", long.as_str()] {
        let want = if topic.is_empty() {
            TopicError::Empty
        } else {
            TopicError::TooLong { len: 9, max: 8 }
        };
        let check = |result: Result<usize, Error>| match result {
            Err(Error::InvalidTopic(e)) => assert_eq!(e, want),
            other => panic!("{topic:?}: {other:?}"),
        };
        check(pubsub.subscribe(id, topic).map(|_| 0));
        check(pubsub.unsubscribe(id, topic).map(|_| 0));
        check(pubsub.broadcast(topic, "x", &RawPayload));
        check(pubsub.broadcast_from(id, topic, "x", &RawPayload));
        check(pubsub.topic(topic).map(|_| 0));
        check(pubsub.subscriber_count(topic));
        check(pubsub.broadcast_frame(topic, &Bytes::from_static(b"junk")));
    }
    // A `Topic` made by an engine with a larger limit is re-checked.
    let roomy = PubSub::<str>::new().unwrap();
    let handle = roomy.topic(&long).unwrap();
    assert!(matches!(
        pubsub.broadcast(&handle, "x", &RawPayload),
        Err(Error::InvalidTopic(TopicError::TooLong { len: 9, max: 8 }))
    ));
    assert!(matches!(
        pubsub.subscribe(id, &handle),
        Err(Error::InvalidTopic(_))
    ));
    // Exactly at the limit is fine.
    pubsub.subscribe(id, "x".repeat(8).as_str()).unwrap();
}

#[test]
fn mismatched_pre_encoded_frames_are_refused() {
    let pubsub = PubSub::<str>::new().unwrap();
    let id = pubsub.generate_client_id();
    pubsub.register(id, |_| {}).unwrap();
    pubsub.subscribe(id, "a").unwrap();
    let for_b = encode_push("b", b"x").unwrap();
    assert!(matches!(
        pubsub.broadcast_frame("a", &for_b),
        Err(Error::FrameMismatch)
    ));
    assert!(matches!(
        pubsub.broadcast_frame("a", &Bytes::from_static(b"\x01\x01")),
        Err(Error::FrameMismatch)
    ));
    let good = pubsub.encode("a", "x", &RawPayload).unwrap();
    assert_eq!(pubsub.broadcast_frame("a", &good).unwrap(), 1);
    assert_eq!(pubsub.broadcast_frame_from(id, "a", &good).unwrap(), 0);
}

#[test]
fn serialiser_errors_are_typed() {
    let pubsub = PubSub::<u8>::new().unwrap();
    let id = pubsub.generate_client_id();
    pubsub.register(id, |_| {}).unwrap();
    pubsub.subscribe(id, "t").unwrap();
    let failing = |_: &u8, _: &mut BytesMut| Err(SerialiseError::new("bad message"));
    match pubsub.broadcast("t", &1, &failing) {
        Err(Error::Serialise(e)) => assert_eq!(e.to_string(), "bad message"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        pubsub.encode("t", &1, &failing),
        Err(Error::Serialise(_))
    ));
}

#[test]
fn unusable_configurations_are_refused() {
    let zero = ChannelConfig::new(0, OverflowPolicy::DropNewest);
    let pubsub = PubSub::<str>::new().unwrap();
    let id = pubsub.generate_client_id();
    assert!(matches!(
        pubsub.register_channel_with(id, zero),
        Err(Error::InvalidConfig(_))
    ));
    // The refused registration left nothing behind.
    pubsub.register(id, |_| {}).unwrap();
    let feed = Broadcaster::<u8>::start().unwrap();
    assert!(matches!(
        feed.subscribe_with(zero),
        Err(Error::InvalidConfig(_))
    ));
    assert_eq!(feed.subscriber_count(), 0);

    let start_errors = [
        PubSub::<str>::builder().command_capacity(0).build().err(),
        PubSub::<str>::builder().max_topic_len(0).build().err(),
        PubSub::<str>::builder()
            .max_topic_len(MAX_TOPIC_LEN + 1)
            .build()
            .err(),
        PubSub::<str>::builder().default_channel(zero).build().err(),
        Broadcaster::<u8>::builder()
            .command_capacity(0)
            .build()
            .err(),
    ];
    for (i, e) in start_errors.into_iter().enumerate() {
        assert!(
            matches!(e, Some(StartError::InvalidConfig(_))),
            "case {i}: {e:?}"
        );
    }
}

#[test]
fn unsubscribing_a_foreign_or_stale_channel_is_an_error() {
    let a = Broadcaster::<u8>::start().unwrap();
    let b = Broadcaster::<u8>::start().unwrap();
    let from_a = a.subscribe().unwrap();
    let _from_b = b.subscribe().unwrap();
    assert!(matches!(
        b.unsubscribe(&from_a),
        Err(Error::UnknownClient(_))
    ));
    assert_eq!(b.subscriber_count(), 1);
    a.unsubscribe(&from_a).unwrap();
    assert!(matches!(
        a.unsubscribe(&from_a),
        Err(Error::UnknownClient(_))
    ));
}

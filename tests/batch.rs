//! `PubSub::apply`: many mutations in one round trip, one result each, in order.

use fanout::transport::RawPayload;
use fanout::{Error, Mutation, PubSub, TopicError};

#[test]
fn apply_returns_one_result_per_mutation_in_order() {
    let pubsub = PubSub::<str>::builder().max_topic_len(8).build().unwrap();
    let roomy = PubSub::<str>::new().unwrap();
    let (a, b, ghost) = (
        pubsub.generate_client_id(),
        pubsub.generate_client_id(),
        pubsub.generate_client_id(),
    );
    pubsub.register(a, |_| {}).unwrap();
    pubsub.register(b, |_| {}).unwrap();
    let room = pubsub.topic("room").unwrap();
    let hall = pubsub.topic("hall").unwrap();
    let too_long = roomy.topic("much-too-long").unwrap();
    let results = pubsub
        .apply([
            Mutation::Subscribe(a, room.clone()),
            Mutation::Subscribe(ghost, room.clone()),
            Mutation::Subscribe(a, too_long.clone()),
            Mutation::Subscribe(a, room.clone()), // idempotent
            Mutation::Subscribe(b, room.clone()),
            Mutation::Subscribe(b, hall.clone()),
            Mutation::Unsubscribe(b, room.clone()),
            Mutation::Unregister(ghost),
            Mutation::Unsubscribe(a, hall.clone()), // not subscribed: no-op
        ])
        .unwrap();
    assert_eq!(results.len(), 9);
    assert!(results[0].is_ok());
    assert!(matches!(results[1], Err(Error::UnknownClient(id)) if id == ghost));
    assert!(matches!(
        results[2],
        Err(Error::InvalidTopic(TopicError::TooLong { len: 13, max: 8 }))
    ));
    assert!(results[3..7].iter().all(Result::is_ok));
    assert!(matches!(results[7], Err(Error::UnknownClient(_))));
    assert!(results[8].is_ok());

    assert_eq!(pubsub.subscriber_count(&room).unwrap(), 1);
    assert_eq!(pubsub.subscriber_count(&hall).unwrap(), 1);
    assert_eq!(
        pubsub.broadcast_from(a, &room, "x", &RawPayload).unwrap(),
        0
    );
    assert_eq!(pubsub.stats().subscriptions, 2);

    // Visible when apply returns, like single mutations.
    let results = pubsub
        .apply([Mutation::Unregister(a), Mutation::Unregister(b)])
        .unwrap();
    assert!(results.iter().all(Result::is_ok));
    assert_eq!(pubsub.stats().subscriptions, 0);
    assert_eq!(pubsub.stats().clients, 0);
    assert!(pubsub.apply(Vec::new()).unwrap().is_empty());
    pubsub.shutdown();
    assert!(matches!(pubsub.apply(Vec::new()), Err(Error::Closed)));
    assert!(matches!(
        pubsub.apply([Mutation::Unregister(a)]),
        Err(Error::Closed)
    ));
}

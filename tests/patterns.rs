//! Wildcard subscriptions (NATS semantics, `.` separator) and the `can_subscribe`
//! authorization hook, through the public API. The matching table ported from NATS's
//! sublist tests is a unit test beside the matcher (`src/engine/pattern.rs`).

mod common;

use std::collections::BTreeSet;

use common::{Inbox, Rng};
use fanout::transport::RawPayload;
use fanout::{ClientId, Denied, Error, Mutation, PatternError, PubSub};

fn engine() -> PubSub<str> {
    PubSub::new().unwrap()
}

fn client(pubsub: &PubSub<str>) -> (ClientId, Inbox) {
    let id = pubsub.generate_client_id();
    let inbox = Inbox::default();
    pubsub.register(id, inbox.sink()).unwrap();
    (id, inbox)
}

#[test]
fn a_client_gets_one_frame_however_many_subscriptions_match() {
    let pubsub = engine();
    let (desk, inbox) = client(&pubsub);
    let (other, _) = client(&pubsub);
    pubsub.subscribe(desk, "md.*.eurusd").unwrap();
    pubsub.subscribe(desk, "md.>").unwrap();
    pubsub.subscribe(desk, "*.ebs.*").unwrap();
    // A topic nobody subscribed to by name: resolved through the pattern index.
    assert_eq!(
        pubsub.broadcast("md.ebs.eurusd", "a", &RawPayload).unwrap(),
        1
    );
    // The same topic once it exists (another client subscribes by name), and once the
    // desk itself subscribes by name too.
    pubsub.subscribe(other, "md.ebs.eurusd").unwrap();
    assert_eq!(
        pubsub.broadcast("md.ebs.eurusd", "b", &RawPayload).unwrap(),
        2
    );
    pubsub.subscribe(desk, "md.ebs.eurusd").unwrap();
    assert_eq!(
        pubsub.broadcast("md.ebs.eurusd", "c", &RawPayload).unwrap(),
        2
    );
    assert_eq!(pubsub.subscriber_count("md.ebs.eurusd").unwrap(), 2);
    assert_eq!(
        inbox.payloads(),
        [b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]
    );
    let stats = pubsub.stats();
    assert_eq!((stats.patterns, stats.subscriptions), (3, 2));
}

#[test]
fn a_topic_created_after_a_pattern_reaches_its_pattern_subscribers() {
    let pubsub = engine();
    let (watcher, inbox) = client(&pubsub);
    let (player, _) = client(&pubsub);
    pubsub.subscribe(watcher, "zone.*").unwrap();
    pubsub.subscribe(player, "zone.7").unwrap(); // creates the topic
    assert_eq!(pubsub.broadcast("zone.7", "tick", &RawPayload).unwrap(), 2);
    assert_eq!(
        pubsub.broadcast("zone.7.sub", "no", &RawPayload).unwrap(),
        0
    );
    assert_eq!(inbox.len(), 1);
}

#[test]
fn unsubscribing_one_subscription_keeps_the_others() {
    let pubsub = engine();
    let (c, inbox) = client(&pubsub);
    let (keeper, _) = client(&pubsub);
    pubsub.subscribe(keeper, "a.b").unwrap();
    pubsub.subscribe(c, "a.*").unwrap();
    pubsub.subscribe(c, "a.b").unwrap();

    pubsub.unsubscribe(c, "a.b").unwrap(); // still covered by `a.*`
    assert_eq!(pubsub.broadcast("a.b", "1", &RawPayload).unwrap(), 2);
    pubsub.subscribe(c, "a.b").unwrap();
    pubsub.unsubscribe(c, "a.*").unwrap(); // still subscribed by name
    assert_eq!(pubsub.broadcast("a.b", "2", &RawPayload).unwrap(), 2);
    assert_eq!(pubsub.broadcast("a.c", "-", &RawPayload).unwrap(), 0);
    pubsub.unsubscribe(c, "a.b").unwrap();
    assert_eq!(pubsub.broadcast("a.b", "3", &RawPayload).unwrap(), 1);
    assert_eq!(inbox.payloads(), [b"1".to_vec(), b"2".to_vec()]);
    // Unsubscribing a pattern one does not have is a no-op.
    pubsub.unsubscribe(c, "x.>").unwrap();
}

#[test]
fn unregister_leaves_every_pattern() {
    let pubsub = engine();
    let (c, inbox) = client(&pubsub);
    let (keeper, _) = client(&pubsub);
    pubsub.subscribe(keeper, "a.b").unwrap();
    pubsub.subscribe(c, "a.*").unwrap();
    pubsub.subscribe(c, ">").unwrap();
    pubsub.unregister(c).unwrap();
    assert_eq!(pubsub.broadcast("a.b", "x", &RawPayload).unwrap(), 1);
    assert_eq!(pubsub.broadcast("q", "x", &RawPayload).unwrap(), 0);
    assert_eq!(inbox.len(), 0);
    assert_eq!(pubsub.stats().patterns, 0);
}

#[test]
fn broadcast_from_skips_the_sender_on_pattern_topics() {
    let pubsub = engine();
    let (a, a_inbox) = client(&pubsub);
    let (b, b_inbox) = client(&pubsub);
    pubsub.subscribe(a, "chat.>").unwrap();
    pubsub.subscribe(b, "chat.*").unwrap();
    assert_eq!(
        pubsub
            .broadcast_from(a, "chat.rust", "hi", &RawPayload)
            .unwrap(),
        1
    );
    assert_eq!((a_inbox.len(), b_inbox.len()), (0, 1));
    pubsub.unsubscribe(b, "chat.*").unwrap();
    assert_eq!(
        pubsub
            .broadcast_from(a, "chat.rust", "hi", &RawPayload)
            .unwrap(),
        0
    );
}

#[test]
fn malformed_patterns_are_typed_errors_everywhere() {
    let pubsub = engine();
    let (c, _) = client(&pubsub);
    for (bad, error) in [
        ("foo.>.bar", PatternError::RestNotLast),
        ("foo..*", PatternError::EmptyToken),
        ("*.", PatternError::EmptyToken),
    ] {
        assert!(
            matches!(pubsub.subscribe(c, bad), Err(Error::InvalidPattern(e)) if e == error),
            "{bad}"
        );
        assert!(matches!(
            pubsub.unsubscribe(c, bad),
            Err(Error::InvalidPattern(_))
        ));
        let topic = pubsub.topic(bad).unwrap();
        let results = pubsub.apply([Mutation::Subscribe(c, topic)]).unwrap();
        assert!(matches!(results[0], Err(Error::InvalidPattern(_))));
    }
    assert_eq!(pubsub.stats().patterns, 0);
    // Wildcard characters inside a token are an exact topic.
    pubsub.subscribe(c, "foo*").unwrap();
    assert_eq!(pubsub.stats().subscriptions, 1);
}

#[test]
fn the_separator_is_a_setting() {
    let pubsub = PubSub::<str>::builder().separator('/').build().unwrap();
    let (c, _) = client(&pubsub);
    pubsub.subscribe(c, "room/*").unwrap();
    assert_eq!(pubsub.broadcast("room/rust", "x", &RawPayload).unwrap(), 1);
    assert_eq!(pubsub.broadcast("room.rust", "x", &RawPayload).unwrap(), 0);
    assert!(PubSub::<str>::builder().separator('*').build().is_err());
}

/// The hook of these tests: clients may join `room.*` topics and their own inbox.
fn guarded() -> PubSub<str> {
    PubSub::builder()
        .can_subscribe(|client, subscription| {
            if subscription.starts_with("room.")
                || subscription == format!("inbox.{}", client.as_u64())
            {
                Ok(())
            } else if subscription == "boom" {
                panic!("hook bug (expected by this test)")
            } else {
                Err(Denied::new(format!("{client} may not join {subscription}")))
            }
        })
        .build()
        .unwrap()
}

#[test]
fn a_denied_client_cannot_join_by_name_pattern_or_batch() {
    let pubsub = guarded();
    let (mallory, inbox) = client(&pubsub);
    let (victim, _) = client(&pubsub);
    let victims_inbox = format!("inbox.{}", victim.as_u64());
    pubsub.subscribe(victim, victims_inbox.as_str()).unwrap();

    let by_name = pubsub.subscribe(mallory, victims_inbox.as_str());
    assert!(matches!(&by_name, Err(Error::Denied(d)) if d.reason().contains("may not join")));
    assert!(matches!(
        pubsub.subscribe(mallory, "inbox.*"),
        Err(Error::Denied(_))
    ));
    assert!(matches!(
        pubsub.subscribe(mallory, ">"),
        Err(Error::Denied(_))
    ));
    let batch = pubsub
        .apply([
            Mutation::Subscribe(mallory, pubsub.topic("room.lobby").unwrap()),
            Mutation::Subscribe(mallory, pubsub.topic(&victims_inbox).unwrap()),
            Mutation::Subscribe(mallory, pubsub.topic("inbox.>").unwrap()),
        ])
        .unwrap();
    assert!(batch[0].is_ok());
    assert!(matches!(batch[1], Err(Error::Denied(_))));
    assert!(matches!(batch[2], Err(Error::Denied(_))));

    // Nothing changed for the denied subscriptions.
    assert_eq!(
        pubsub
            .broadcast(victims_inbox.as_str(), "secret", &RawPayload)
            .unwrap(),
        1
    );
    assert_eq!(inbox.len(), 0);
    let stats = pubsub.stats();
    assert_eq!(
        (stats.denied, stats.patterns, stats.subscriptions),
        (5, 0, 2)
    );
}

#[test]
fn a_panicking_hook_is_a_denial() {
    let pubsub = guarded();
    let (c, _) = client(&pubsub);
    let result = pubsub.subscribe(c, "boom");
    assert!(matches!(&result, Err(Error::Denied(d)) if d.reason().contains("panicked")));
    assert_eq!(pubsub.stats().subscriptions, 0);
    // The engine is unaffected.
    pubsub.subscribe(c, "room.ok").unwrap();
    assert_eq!(pubsub.stats().denied, 1);
}

/// Random subscribe / unsubscribe (by name and by pattern) / unregister / broadcast
/// sequences against a model that matches every subscription of every client for each
/// broadcast: the set of clients each broadcast reaches, and how often, must agree.
#[test]
fn random_operations_agree_with_a_model() {
    const TOKENS: [&str; 3] = ["a", "b", "c"];
    let mut rng = Rng(0x9a77e2);
    for round in 0..200 {
        let pubsub = engine();
        let clients: Vec<(ClientId, Inbox)> = (0..4).map(|_| client(&pubsub)).collect();
        let mut registered = vec![true; clients.len()];
        // Model: per client, its subscriptions as written.
        let mut model: Vec<BTreeSet<String>> = vec![BTreeSet::new(); clients.len()];
        let mut expected: Vec<usize> = vec![0; clients.len()];
        for step in 0..60 {
            let who = rng.below(clients.len());
            let id = clients[who].0;
            let subscription = random_subscription(&mut rng, &TOKENS);
            match rng.below(10) {
                0..=3 => {
                    let result = pubsub.subscribe(id, subscription.as_str());
                    if registered[who] {
                        result.unwrap();
                        model[who].insert(subscription);
                    } else {
                        assert!(matches!(result, Err(Error::UnknownClient(_))));
                    }
                }
                4..=5 => {
                    let result = pubsub.unsubscribe(id, subscription.as_str());
                    if registered[who] {
                        result.unwrap();
                        model[who].remove(&subscription);
                    }
                }
                6 => {
                    if registered[who] {
                        pubsub.unregister(id).unwrap();
                        registered[who] = false;
                        model[who].clear();
                    }
                }
                _ => {
                    let topic = random_topic(&mut rng, &TOKENS);
                    let reached: Vec<usize> = (0..clients.len())
                        .filter(|&c| model[c].iter().any(|s| matches(s, &topic)))
                        .collect();
                    let delivered = pubsub.broadcast(topic.as_str(), "x", &RawPayload).unwrap();
                    assert_eq!(
                        delivered,
                        reached.len(),
                        "round {round} step {step}: {topic} with {model:?}"
                    );
                    assert_eq!(
                        pubsub.subscriber_count(topic.as_str()).unwrap(),
                        reached.len()
                    );
                    for c in reached {
                        expected[c] += 1;
                    }
                }
            }
        }
        for (c, (_, inbox)) in clients.iter().enumerate() {
            assert_eq!(
                inbox.len(),
                expected[c],
                "round {round}: client {c}'s frames"
            );
        }
        let patterns: usize = model
            .iter()
            .map(|subs| subs.iter().filter(|s| is_pattern(s)).count())
            .sum();
        assert_eq!(pubsub.stats().patterns, patterns, "round {round}");
    }
}

fn random_topic(rng: &mut Rng, tokens: &[&str]) -> String {
    let len = 1 + rng.below(3);
    (0..len)
        .map(|_| tokens[rng.below(tokens.len())])
        .collect::<Vec<_>>()
        .join(".")
}

fn random_subscription(rng: &mut Rng, tokens: &[&str]) -> String {
    let len = 1 + rng.below(3);
    let mut parts: Vec<&str> = (0..len)
        .map(|_| match rng.below(4) {
            0 => "*",
            _ => tokens[rng.below(tokens.len())],
        })
        .collect();
    if rng.below(4) == 0 {
        *parts.last_mut().unwrap() = ">";
    }
    parts.join(".")
}

fn is_pattern(subscription: &str) -> bool {
    subscription.split('.').any(|t| t == "*" || t == ">")
}

/// The model's matcher, written independently of the engine's.
fn matches(subscription: &str, topic: &str) -> bool {
    let pattern: Vec<&str> = subscription.split('.').collect();
    let topic: Vec<&str> = topic.split('.').collect();
    fn go(p: &[&str], t: &[&str]) -> bool {
        match (p.first(), t.first()) {
            (None, None) => true,
            (Some(&">"), Some(_)) => true,
            (Some(&"*"), Some(_)) => go(&p[1..], &t[1..]),
            (Some(a), Some(b)) if a == b => go(&p[1..], &t[1..]),
            _ => false,
        }
    }
    go(&pattern, &topic)
}

/// Under concurrency: while two threads keep subscribing and unsubscribing a client by
/// name and by overlapping patterns, a publisher's broadcasts never reach it twice — each
/// broadcast reads one snapshot, whose lists hold the client at most once.
#[test]
fn no_broadcast_reaches_a_client_twice_while_subscriptions_churn() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};

    let pubsub = PubSub::<[u8]>::new().unwrap();
    let seen: Arc<Mutex<Vec<u32>>> = Arc::default();
    let client = pubsub.generate_client_id();
    let sink = Arc::clone(&seen);
    pubsub
        .register(client, move |frame: &fanout::Bytes| {
            let push = fanout::transport::decode(frame).unwrap();
            let n = u32::from_be_bytes(push.payload.try_into().unwrap());
            sink.lock().unwrap().push(n);
        })
        .unwrap();
    let stop = AtomicBool::new(false);
    let cycles = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        for subscriptions in [["md.ebs.eurusd", "md.*.eurusd"], ["md.>", "*.ebs.*"]] {
            let (pubsub, stop, cycles) = (&pubsub, &stop, &cycles);
            s.spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    for sub in subscriptions {
                        pubsub.subscribe(client, sub).unwrap();
                    }
                    for sub in subscriptions {
                        pubsub.unsubscribe(client, sub).unwrap();
                    }
                    cycles.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        // The churners stop however this ends (a failed assertion unwinds through here).
        struct StopOnDrop<'a>(&'a AtomicBool);
        impl Drop for StopOnDrop<'_> {
            fn drop(&mut self) {
                self.0.store(true, Ordering::Relaxed);
            }
        }
        let _stop = StopOnDrop(&stop);
        // Broadcast until both threads have churned a good while (not a timing
        // assertion: the count only makes sure the two overlapped).
        let mut n = 0u32;
        while n < 20_000 || cycles.load(Ordering::Relaxed) < 2_000 {
            let topic = if n % 2 == 0 {
                "md.ebs.eurusd"
            } else {
                "md.cme.eurusd"
            };
            let reached = pubsub
                .broadcast(topic, &n.to_be_bytes()[..], &RawPayload)
                .unwrap();
            assert!(reached <= 1, "broadcast {n} reached {reached} sinks");
            n += 1;
        }
    });
    let seen = seen.lock().unwrap();
    let mut sorted = seen.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(
        sorted.len(),
        seen.len(),
        "a broadcast reached the client twice"
    );
    assert!(
        seen.windows(2).all(|w| w[0] < w[1]),
        "frames out of publish order"
    );
}

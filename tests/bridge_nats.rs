//! The NATS bridge against a real cluster of three `nats-server`s on loopback (feature
//! `nats`). Several engines in this process stand for several hosts, each connected to
//! its own server of the cluster; each test starts its own cluster on free ports and
//! kills it at the end.
#![cfg(feature = "nats")]

use std::thread;
use std::time::Duration;

use fanout::bridge::{Bridge, BridgeStats};
use fanout::transport::RawPayload;
use fanout::PubSub;

mod common;
#[path = "common/nats_server.rs"]
mod nats_server;

use common::{eventually, Inbox};
use nats_server::NatsCluster;

const WAIT: Duration = Duration::from_secs(15);

/// A bridge with short timeouts, so tests notice failures and stop quickly.
fn bridge(pubsub: &PubSub<str>, url: &str, namespace: &str) -> Bridge {
    Bridge::builder(url, namespace)
        .backoff(Duration::from_millis(20), Duration::from_millis(200))
        .ping_interval(Duration::from_millis(500))
        .queue_capacity(1 << 17)
        .attach(pubsub)
        .expect("attach")
}

fn wait_connected(bridges: &[&Bridge]) {
    assert!(
        eventually(WAIT, || bridges.iter().all(|b| b.stats().connected)),
        "bridges did not connect: {bridges:?}"
    );
}

/// Waits until `bridge` is subscribed to `subjects` subjects.
fn wait_subjects(bridge: &Bridge, subjects: usize) {
    assert!(
        eventually(WAIT, || {
            let s = bridge.stats();
            s.connected && s.channels == subjects
        }),
        "not subscribed to {subjects} subjects: {bridge:?}"
    );
}

/// An engine with one callback client subscribed to `topic`; returns its inbox.
fn subscriber(pubsub: &PubSub<str>, topic: &str) -> Inbox {
    let inbox = Inbox::default();
    let id = pubsub.generate_client_id();
    pubsub.register(id, inbox.sink()).unwrap();
    pubsub.subscribe(id, topic).unwrap();
    inbox
}

/// Subscriptions propagate between the servers of a cluster asynchronously: a node
/// subscribed on its server is not yet known to the others. Publishes probes on
/// `topic` from `from` until `inbox` has one, then forgets them.
fn wait_routed(from: &PubSub<str>, topic: &str, inbox: &Inbox) {
    assert!(
        eventually(WAIT, || {
            from.broadcast(topic, "probe", &RawPayload).unwrap();
            thread::sleep(Duration::from_millis(20));
            inbox.len() > 0
        }),
        "no frame crossed the cluster"
    );
    thread::sleep(Duration::from_millis(100));
    inbox.0.lock().unwrap().clear();
}

fn stats(b: &Bridge) -> BridgeStats {
    b.stats()
}

#[test]
fn cross_node_delivery_through_a_cluster_reaches_every_subscriber_once() {
    let cluster = NatsCluster::start(3);
    let nodes: Vec<PubSub<str>> = (0..3).map(|_| PubSub::new().unwrap()).collect();
    let bridges: Vec<Bridge> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| bridge(n, &cluster.url_of(i), "cross"))
        .collect();
    wait_connected(&bridges.iter().collect::<Vec<_>>());
    let inboxes: Vec<Vec<Inbox>> = nodes
        .iter()
        .map(|n| (0..2).map(|_| subscriber(n, "room")).collect())
        .collect();
    let other_topic = subscriber(&nodes[2], "elsewhere");
    for (bridge, subjects) in bridges.iter().zip([1, 1, 2]) {
        wait_subjects(bridge, subjects);
    }
    wait_routed(&nodes[1], "room", &inboxes[0][0]);
    wait_routed(&nodes[0], "room", &inboxes[1][0]);
    wait_routed(&nodes[0], "room", &inboxes[2][0]);
    for inbox in inboxes.iter().flatten() {
        inbox.0.lock().unwrap().clear();
    }
    let before: Vec<BridgeStats> = bridges.iter().map(stats).collect();

    assert_eq!(nodes[0].broadcast("room", "hello", &RawPayload).unwrap(), 2);
    assert!(eventually(WAIT, || inboxes
        .iter()
        .flatten()
        .all(|i| i.len() == 1)));
    thread::sleep(Duration::from_millis(100)); // anything extra would arrive by now
    for inbox in inboxes.iter().flatten() {
        assert_eq!(inbox.decoded(), [("room".to_owned(), b"hello".to_vec())]);
    }
    assert_eq!(other_topic.len(), 0);
    assert_eq!(bridges[0].stats().sent - before[0].sent, 1);
    assert_eq!(bridges[1].stats().received - before[1].received, 1);
    assert_eq!(bridges[2].stats().received - before[2].received, 1);
    // no_echo: node 0 never received its own frames (the server does not send them).
    assert_eq!(bridges[0].stats().received - before[0].received, 0);
}

//! Presence across engines in separate processes on a real cluster of three
//! `nats-server`s (feature `nats`): one list everywhere, each change once, `kill -9` of
//! an engine, a graceful shutdown, a late joiner, `kill -9` of the server a node is
//! connected to, and a state of 100,000 members split to fit a small message limit.
//!
//! The test binary is its own engine process (`tests/common/cluster_node.rs`, shared
//! with the Redis version, `tests/presence_cluster.rs`). Every figure printed
//! (`--nocapture`) is a measurement of this run, not a limit: the checks are on what the
//! nodes list.
#![cfg(feature = "nats")]

use std::time::{Duration, Instant};

mod common;
#[path = "common/nats_server.rs"]
mod nats_server;

use common::cluster_node::{self, converge, converge_within, is_node, Config, Node, WAIT};
use common::eventually;
use nats_server::NatsCluster;

/// Runs a node when started by a test below; a no-op otherwise.
#[test]
fn cluster_node() {
    cluster_node::serve();
}

/// Nodes a, b, c on servers 0, 1, 2 (d, the late joiner, on server 0); a 2 s down
/// period. The outage: `kill -9` of c's server. c reconnects to another server of the
/// cluster (it learnt them from the first), after at least its 500 ms backoff; b and c
/// change members meanwhile, so each misses the other's deltas and must catch up by
/// state transfer (a heartbeat ahead of what it has → a request → the state).
#[test]
fn presence_across_processes_over_a_nats_cluster() {
    if is_node() {
        return;
    }
    let mut cluster = NatsCluster::start(3);
    let mut config = Config::new(&cluster.url_of(0), "namespace", Duration::from_secs(2));
    config.urls = (0..3).map(|i| cluster.url_of(i)).collect();
    config.backoff = Duration::from_millis(500);
    cluster_node::presence_lifecycle(&config, "nats", |a, b, c| {
        let before = c.stats()["reconnects"];
        cluster.kill(2);
        let killed = Instant::now();
        assert!(
            eventually(WAIT, || c.stats()["connected"] == 0),
            "c did not notice its server's death"
        );
        // While c is away: 5 of b's members leave and 5 join, the same on c.
        for node in [&mut *b, &mut *c] {
            assert_eq!(node.ask("leave 5"), "ok");
            assert_eq!(node.ask("join 5"), "ok");
        }
        assert!(
            eventually(WAIT, || {
                let s = c.stats();
                s["connected"] == 1 && s["reconnects"] > before
            }),
            "c did not reconnect"
        );
        let back = killed.elapsed();
        let took = converge(&mut [&mut *a, &mut *b, &mut *c], 140);
        eprintln!(
            "[nats] kill -9 of c's server: c reconnected after {back:?}, and the lists converged {took:?} later"
        );
    });
}

/// One node tracks 100,000 members; a late joiner gets its state in parts that fit a
/// 64 KiB `max_message_len` (about 3.5 MB in all), and lists all of them; no message
/// was refused as too long.
#[test]
fn a_hundred_thousand_members_in_a_state_split_to_fit() {
    if is_node() {
        return;
    }
    let cluster = NatsCluster::start(3);
    let mut config = Config::new(&cluster.url_of(0), "namespace", Duration::from_secs(5));
    config.urls = (0..3).map(|i| cluster.url_of(i)).collect();
    config.max_message_len = 64 << 10;
    let mut a = Node::start(&config, "a");
    let joined = Instant::now();
    assert_eq!(a.ask("join 100000"), "ok");
    eprintln!("[nats] 100k tracks on one node took {:?}", joined.elapsed());
    let attached = Instant::now();
    let mut b = Node::start(&config, "b");
    assert!(
        eventually(Duration::from_secs(60), || {
            std::thread::sleep(Duration::from_millis(20));
            b.count() == 100_000
        }),
        "the late joiner lists {} members",
        b.count()
    );
    eprintln!(
        "[nats] a late joiner listed 100k members (a state in parts of <= 64 KiB) {:?} after its bridge attached",
        attached.elapsed()
    );
    converge_within(&mut [&mut a, &mut b], 100_000, Duration::from_secs(60));
    for node in [&mut a, &mut b] {
        assert_eq!(node.stats()["bad_envelopes"], 0, "a message was too long");
    }
    a.quit();
    b.quit();
}

/// Bytes through one `nats-server` per join (the same measurement as the Redis
/// version's: `tests/presence_cluster.rs`).
#[test]
fn bytes_per_join() {
    if is_node() {
        return;
    }
    let cluster = NatsCluster::start(1);
    let config = Config::new(&cluster.url_of(0), "namespace", Duration::from_secs(5));
    cluster_node::bytes_per_join(&config, "nats", false, || cluster.bytes(0).unwrap());
}

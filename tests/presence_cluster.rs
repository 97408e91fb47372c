//! Engines in separate processes on a real `redis-server` (feature `redis`): presence
//! and the bridge's counts across hosts, with `kill -9` of an engine and of Redis.
//!
//! The test binary is its own engine process: run with `FANOUT_CLUSTER_NODE` set, the
//! `cluster_node` test becomes a node that reads commands on stdin and answers on stdout
//! (lines starting `@ `; `tests/common/cluster_node.rs`, shared with the NATS version,
//! `tests/presence_cluster_nats.rs`). The other tests start three or four such processes
//! and drive them. Every figure they print (`--nocapture`) is a measurement of this run,
//! not a limit: the checks are on what the nodes list and count.
#![cfg(feature = "redis")]

use std::time::{Duration, Instant};

use fanout::bridge::ChannelLayout;

mod common;
#[path = "common/redis_server.rs"]
mod redis_server;

use common::cluster_node::{self, is_node, Config, Node, WAIT};
use common::eventually;
use redis_server::RedisServer;

/// Runs a node when started by a test below; a no-op otherwise.
#[test]
fn cluster_node() {
    cluster_node::serve();
}

/// The bridge's counts across an outage: every stream's first frame arrives, then
/// 20,000 frames from each node while Redis is killed and restarted, then a last frame
/// each; published by the others − received = gaps on every node.
fn counts_through_a_redis_restart(
    redis: &mut RedisServer,
    label: &str,
    (a, b, c): (&mut Node, &mut Node, &mut Node),
) {
    for node in [&mut *a, &mut *b, &mut *c] {
        assert_eq!(node.ask("pub 1"), "ok");
    }
    assert!(eventually(WAIT, || [&mut *a, &mut *b, &mut *c]
        .into_iter()
        .all(|n| n.stats()["received"] == 2)));
    for node in [&mut *a, &mut *b, &mut *c] {
        assert_eq!(node.ask("pub 20000"), "ok");
    }
    std::thread::sleep(Duration::from_millis(500));
    redis.kill();
    let killed = Instant::now();
    std::thread::sleep(Duration::from_secs(1));
    redis.restart();
    let restarted = Instant::now();
    assert!(eventually(WAIT, || [&mut *a, &mut *b, &mut *c]
        .into_iter()
        .all(|n| n.stats()["connected"] == 1)));
    eprintln!(
        "[{label}] Redis down for {:?}; all reconnected {:?} after it returned",
        restarted - killed,
        restarted.elapsed()
    );
    assert!(eventually(WAIT, || [&mut *a, &mut *b, &mut *c]
        .into_iter()
        .all(|n| n.stats()["published"] == 20_001)));
    std::thread::sleep(Duration::from_millis(300));
    for node in [&mut *a, &mut *b, &mut *c] {
        assert_eq!(node.ask("pub 1"), "ok");
    }
    assert!(eventually(WAIT, || {
        let stats: Vec<_> = [&mut *a, &mut *b, &mut *c]
            .into_iter()
            .map(|n| n.stats())
            .collect();
        let total: u64 = stats.iter().map(|s| s["published"]).sum();
        stats.iter().all(|s| {
            total - s["published"] - s["received"] == s["gaps"] && s["published"] == 20_002
        })
    }));
    for (name, node) in [("a", a), ("b", b), ("c", c)] {
        let s = node.stats();
        eprintln!(
            "[{label}] {name}: published {} sent {} dropped {} unknown {} untracked {} | received {} gaps {}",
            s["published"], s["sent"], s["dropped"], s["unknown"], s["untracked"], s["received"], s["gaps"]
        );
        assert_eq!(s["untracked"], 0);
    }
}

fn presence_and_counts_across_processes(layout: ChannelLayout) {
    let layout = match layout {
        ChannelLayout::PerTopic => "per_topic",
        _ => "namespace",
    };
    let mut redis = RedisServer::start();
    let config = Config::new(&redis.url(), layout, Duration::from_secs(2));
    cluster_node::presence_lifecycle(&config, layout, |a, b, c| {
        counts_through_a_redis_restart(&mut redis, layout, (a, b, c));
    });
}

#[test]
fn namespace_layout() {
    if is_node() {
        return;
    }
    presence_and_counts_across_processes(ChannelLayout::Namespace);
}

#[test]
fn per_topic_layout() {
    if is_node() {
        return;
    }
    presence_and_counts_across_processes(ChannelLayout::PerTopic);
}

/// Bytes through `redis-server` per join (the same measurement as the NATS version's:
/// `tests/presence_cluster_nats.rs`), both layouts.
#[test]
fn bytes_per_join() {
    if is_node() {
        return;
    }
    let redis = RedisServer::start();
    let info = |field: &str| -> u64 {
        let client = ::redis::Client::open(redis.url()).unwrap();
        let mut con = client.get_connection().unwrap();
        let text: String = ::redis::cmd("INFO").arg("stats").query(&mut con).unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{field}:")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap()
    };
    for layout in ["namespace", "per_topic"] {
        let config = Config::new(&redis.url(), layout, Duration::from_secs(5));
        cluster_node::bytes_per_join(&config, layout, true, || {
            (
                info("total_net_input_bytes"),
                info("total_net_output_bytes"),
            )
        });
    }
}

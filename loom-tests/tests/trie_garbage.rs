//! Loom model of the topic trie's garbage rule (`src/engine/garbage.rs`): what a batch's
//! working trie stops pointing at (the husks of the nodes it copied, the entries it
//! removed) is freed only once no broadcast can still read it through an older
//! snapshot.
//!
//! Under `--cfg loom` every trie allocation carries a loom `UnsafeCell` that each
//! dereference reads and the free writes (and freed memory is leaked, not reused), so a
//! free that a broadcast's read does not happen-before fails the model as a causality
//! violation. Broken on purpose once (scratch change: `Retired::retire` drops the garbage
//! it is handed at once, freeing it one publication early): this model fails.
#![cfg(loom)]

use fanout::transport::RawPayload;
use fanout::{Bytes, PubSub};
use loom::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use loom::sync::Arc;
use loom::thread;

mod common;
use common::model;

/// A broadcast racing with batches that copy the trie's root and remove (then re-add)
/// the very entry it reads: the broadcast's old snapshot keeps both readable until it is
/// dropped, and the frames it delivers are the ones counted.
#[test]
fn a_broadcast_reads_nothing_the_writer_freed() {
    model(|| {
        let pubsub = PubSub::<str>::builder()
            .command_capacity(2)
            .build()
            .expect("the engine starts");
        let id = pubsub.generate_client_id();
        let calls = Arc::new(AtomicUsize::new(0));
        pubsub
            .register(id, {
                let calls = Arc::clone(&calls);
                move |_: &Bytes| {
                    calls.fetch_add(1, SeqCst);
                }
            })
            .unwrap();
        pubsub.subscribe(id, "a").unwrap();
        pubsub.subscribe(id, "b").unwrap();
        let publisher = thread::spawn({
            let pubsub = pubsub.clone();
            move || pubsub.broadcast("a", "x", &RawPayload).unwrap()
        });
        // Copies the root (its husk to the garbage) and removes "a"'s entry (to the
        // garbage whole); then copies the root again and adds a new entry.
        pubsub.unsubscribe(id, "a").unwrap();
        pubsub.subscribe(id, "a").unwrap();
        let reached = publisher.join().unwrap();
        assert!(reached <= 1);
        assert_eq!(calls.load(SeqCst), reached);
        assert_eq!(pubsub.broadcast("a", "x", &RawPayload).unwrap(), 1);
        assert_eq!(pubsub.broadcast("b", "x", &RawPayload).unwrap(), 1);
    });
}

/// The garbage waits for every older snapshot, not only the one it was filed with: a
/// broadcast holding the oldest snapshot reads an entry that two batches later is
/// removed, while the snapshot in between is already free. Broken on purpose once
/// (scratch change: `Retired::settle` frees a record's garbage as soon as that record's
/// own snapshot is free, not waiting for older ones): this model fails.
#[test]
fn garbage_waits_for_every_older_snapshot() {
    model(|| {
        let pubsub = PubSub::<str>::builder()
            .command_capacity(2)
            .build()
            .expect("the engine starts");
        let id = pubsub.generate_client_id();
        pubsub.register(id, |_: &Bytes| {}).unwrap();
        pubsub.subscribe(id, "a").unwrap();
        pubsub.subscribe(id, "b").unwrap();
        let publisher = thread::spawn({
            let pubsub = pubsub.clone();
            move || pubsub.broadcast("b", "x", &RawPayload).unwrap()
        });
        // The first batch leaves "b"'s entry alone; the second removes it; the third
        // settles first thing, while the broadcast may still hold the first snapshot.
        pubsub.unsubscribe(id, "a").unwrap();
        pubsub.unsubscribe(id, "b").unwrap();
        pubsub.subscribe(id, "c").unwrap();
        assert!(publisher.join().unwrap() <= 1);
        assert_eq!(pubsub.broadcast("b", "x", &RawPayload).unwrap(), 0);
    });
}

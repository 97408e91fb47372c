//! Loom models of async channel sinks (feature `async`): a consumer parked in
//! `recv().await` is always woken — by a publish that races its waker registration, and
//! by the sink closing (unsubscribe, shutdown) while it registers.
//!
//! Driven through the public API of the real engine built with `--cfg loom` (see
//! `models.rs`; run with `loom-tests/run.sh --test async_wake`). The waker slot's flag,
//! fences and lock come from `fanout`'s `sync` module and the queue is the loom
//! stand-in, so loom explores every interleaving of the consumer's
//! try-register-try-again sequence (`src/sync/waker_slot.rs`) with the publisher's
//! push-then-notify and with the sink's drop. The consumer runs under
//! `loom::future::block_on`, whose waker is loom's own: a wake-up that never comes leaves
//! the consumer blocked with nobody to wake it, which loom reports as a deadlock.
//!
//! What loom cannot check here: the queue stand-in is one mutex, whose lock and unlock
//! already order the publisher's push against the consumer's second look, so these
//! models do not depend on the `SeqCst` fences in the waker slot (the crossbeam queue
//! does; the argument for them is in that file's docs, and the loom models inside the
//! crate, at the end of `src/sync/waker_slot.rs`, check them against a queue with no
//! lock of its own). They do depend on the
//! protocol's steps and their order — remove the consumer's second look, or the wake on
//! close, and a model here fails.
#![cfg(loom)]

use fanout::{AsyncChannel, Broadcaster, ChannelConfig, DisconnectReason, OverflowPolicy};
use loom::future::block_on;
use loom::sync::Arc;
use loom::thread;

mod common;
use common::model;

/// A payload whose copies loom tracks.
type Msg = Arc<u32>;

fn feed() -> Broadcaster<Msg> {
    Broadcaster::builder()
        .command_capacity(2)
        .build()
        .expect("the engine starts")
}

fn subscribe(feed: &Broadcaster<Msg>, capacity: usize) -> AsyncChannel<Msg> {
    feed.subscribe_async_with(ChannelConfig::new(capacity, OverflowPolicy::DropNewest))
        .unwrap()
}

/// `recv().await` until the channel ends, on loom's executor.
fn recv_to_end(channel: &AsyncChannel<Msg>) -> Vec<u32> {
    block_on(async {
        let mut got = Vec::new();
        while let Ok(item) = channel.recv().await {
            got.push(*item);
        }
        got
    })
}

/// Model 1. A publish races the consumer's registration: whether the item lands before
/// the first look, between the first look and the waker's registration, between that and
/// the second look, or after the consumer parked, `recv().await` returns it.
#[test]
fn a_publish_always_wakes_a_consumer_parking_in_recv() {
    model(|| {
        let feed = feed();
        let channel = subscribe(&feed, 1);
        let publisher = thread::spawn({
            let feed = feed.clone();
            move || feed.publish(Arc::new(1)).unwrap()
        });
        let got = block_on(channel.recv()).expect("the channel is open");
        assert_eq!(*got, 1);
        assert_eq!(publisher.join().unwrap(), 1);
        assert_eq!(channel.dropped(), 0);
    });
}

/// Model 2. Two items from one publisher, the consumer awaiting each: the second push
/// races the consumer's second registration (after it was woken once and the waker was
/// taken), so a wake-up lost on re-registration fails here too.
#[test]
fn every_publish_wakes_a_consumer_that_parks_again() {
    model(|| {
        let feed = feed();
        let channel = subscribe(&feed, 2);
        let publisher = thread::spawn({
            let feed = feed.clone();
            move || {
                feed.publish(Arc::new(1)).unwrap();
                feed.publish(Arc::new(2)).unwrap();
            }
        });
        let got = block_on(async {
            let first = channel.recv().await.unwrap();
            let second = channel.recv().await.unwrap();
            [*first, *second]
        });
        assert_eq!(got, [1, 2]);
        publisher.join().unwrap();
    });
}

/// Model 3. Unsubscribe races the consumer's registration: the sink leaves the snapshot
/// and is dropped (its sender first, then the waker slot is closed) while the consumer
/// looks, registers and looks again. Whatever the order, `recv` ends with `Err` and the
/// reason is `Unsubscribed`.
#[test]
fn unsubscribe_always_wakes_a_consumer_parking_in_recv() {
    model(|| {
        let feed = feed();
        let channel = Arc::new(subscribe(&feed, 1));
        let closer = thread::spawn({
            let (feed, channel) = (feed.clone(), Arc::clone(&channel));
            move || feed.unsubscribe_async(&channel).unwrap()
        });
        assert!(block_on(channel.recv()).is_err());
        closer.join().unwrap();
        assert_eq!(
            channel.disconnect_reason(),
            Some(DisconnectReason::Unsubscribed)
        );
    });
}

/// Model 4. A publish then a shutdown race the consumer: it receives the item, then
/// `recv` ends with the reason `Shutdown` — the item is never lost to the close, and the
/// close always wakes the second wait.
#[test]
fn publish_then_shutdown_delivers_then_ends() {
    model(|| {
        let feed = feed();
        let channel = subscribe(&feed, 1);
        let closer = thread::spawn({
            let feed = feed.clone();
            move || {
                let reached = feed.publish(Arc::new(1)).unwrap();
                feed.shutdown();
                reached
            }
        });
        let got = recv_to_end(&channel);
        assert_eq!(closer.join().unwrap(), 1);
        assert_eq!(got, [1]);
        assert_eq!(
            channel.disconnect_reason(),
            Some(DisconnectReason::Shutdown)
        );
    });
}

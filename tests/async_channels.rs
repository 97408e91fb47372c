//! Async channel sinks (feature `async`): every overflow policy with exact counts, wake-ups
//! that are never lost, cancel-safe `recv`, unsubscribe-on-drop (also while a publish is
//! in flight), disconnect reasons, `Stream`, counters — on tokio and on a hand-rolled
//! executor that knows nothing but `Waker`.
//!
//! Timeouts here are hang guards only (generous, never asserted as a speed): a lost
//! wake-up fails a test by tripping one rather than by hanging CI.
#![cfg(feature = "async")]

mod common;

use std::future::Future;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

use crossbeam_channel::TryRecvError;
use fanout::transport::{decode, RawPayload};
use fanout::{AsyncChannel, Broadcaster, ChannelConfig, DisconnectReason, Error, OverflowPolicy};
use fanout::{PubSub, Stats};
use futures_core::Stream;

const CAPACITY: usize = 4;
const PUBLISHED: u32 = 10;
/// How long a test waits for something that should happen at once before it calls the
/// wait a lost wake-up. Only a hang guard: a loaded CI machine never comes near it.
const HANG: Duration = Duration::from_secs(30);

// ----- helpers ------------------------------------------------------------------------

/// A runtime with worker threads, so the consumer task and a publisher really run at once.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap()
}

/// `recv().await` under the hang guard: a lost wake-up panics instead of hanging.
///
/// Not `tokio::time::timeout`: when its timer fires it polls the inner future once more,
/// which would find what a lost wake-up left behind and hide the loss. Here the guard's
/// branch is checked first, so only a real wake-up reaches `recv`.
async fn recv_or_hang<M>(channel: &AsyncChannel<M>) -> Result<M, crossbeam_channel::RecvError> {
    tokio::select! {
        biased;
        _ = tokio::time::sleep(HANG) => {
            // Queued items mean a lost wake-up; none queued and some dropped, an overflow
            // (the test's capacity too small for a consumer starved by a loaded machine).
            panic!(
                "a consumer parked in recv() was never woken (lost wake-up): {} queued, {} dropped",
                channel.len(),
                channel.dropped()
            )
        }
        received = channel.recv() => received,
    }
}

/// `StreamExt::next` without a futures dependency.
async fn next<S: Stream + Unpin>(stream: &mut S) -> Option<S::Item> {
    std::future::poll_fn(|cx| Pin::new(&mut *stream).poll_next(cx)).await
}

fn feed_with(policy: OverflowPolicy) -> (Broadcaster<u32>, AsyncChannel<u32>, Vec<usize>) {
    let feed = Broadcaster::<u32>::start().unwrap();
    let channel = feed
        .subscribe_async_with(ChannelConfig::new(CAPACITY, policy))
        .unwrap();
    let counts = (1..=PUBLISHED).map(|m| feed.publish(m).unwrap()).collect();
    (feed, channel, counts)
}

fn drain<M>(channel: &AsyncChannel<M>) -> Vec<M> {
    std::iter::from_fn(|| channel.try_recv().ok()).collect()
}

/// Everything left in the channel, then the end: `recv().await` until `Err`.
async fn recv_to_end<M>(channel: &AsyncChannel<M>) -> Vec<M> {
    let mut items = Vec::new();
    while let Ok(item) = recv_or_hang(channel).await {
        items.push(item);
    }
    items
}

// ----- a hand-rolled executor ---------------------------------------------------------

/// Wakes the thread that runs `block_on`, and records that it did.
struct ThreadWaker {
    thread: Thread,
    woken: AtomicBool,
}

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        self.thread.unpark();
    }
}

/// The smallest executor there is: poll, and park the thread until the waker fires. A
/// future that returns `Pending` and is never woken trips the hang guard.
fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let waker = Arc::new(ThreadWaker {
        thread: thread::current(),
        woken: AtomicBool::new(false),
    });
    let cx_waker = Waker::from(Arc::clone(&waker));
    let mut cx = Context::from_waker(&cx_waker);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        let deadline = Instant::now() + HANG;
        // `park` may return spuriously: wait for the waker itself.
        while !waker.woken.swap(false, Ordering::Acquire) {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "block_on: the future was never woken");
            thread::park_timeout(left);
        }
    }
}

// ----- overflow policies: exactly what a crossbeam channel does ------------------------

#[test]
fn drop_newest_keeps_the_first_frames_and_counts_the_rest() {
    let (feed, channel, counts) = feed_with(OverflowPolicy::DropNewest);
    assert_eq!(counts, [1, 1, 1, 1, 0, 0, 0, 0, 0, 0]);
    assert_eq!(drain(&channel), [1, 2, 3, 4]);
    assert_eq!(channel.dropped(), 6);
    let stats = feed.stats();
    assert_eq!(
        (stats.deliveries, stats.dropped, stats.broadcasts),
        (4, 6, 10)
    );
    assert!(channel.is_connected());
}

#[test]
fn drop_oldest_keeps_the_latest_frames_and_counts_the_rest() {
    let (feed, channel, counts) = feed_with(OverflowPolicy::DropOldest);
    assert_eq!(counts, [1; PUBLISHED as usize]);
    assert_eq!(drain(&channel), [7, 8, 9, 10]);
    assert_eq!(channel.dropped(), 6);
    assert_eq!((feed.stats().dropped, feed.stats().deliveries), (6, 10));
}

#[test]
fn disconnect_cuts_the_subscriber_off_with_a_reason_and_recv_ends_after_draining() {
    let (feed, channel, counts) = feed_with(OverflowPolicy::Disconnect);
    assert_eq!(counts, [1, 1, 1, 1, 0, 0, 0, 0, 0, 0]);
    assert_eq!(channel.dropped(), 1);
    assert_eq!(
        channel.disconnect_reason(),
        Some(DisconnectReason::Overflow)
    );
    assert!(!channel.is_connected());
    // `recv` yields what was queued, then ends once the sink has left the engine.
    assert_eq!(block_on(recv_to_end_plain(&channel)), [1, 2, 3, 4]);
    assert_eq!(feed.subscriber_count(), 0);
    let stats = feed.stats();
    assert_eq!((stats.disconnects, stats.dropped, stats.clients), (1, 1, 0));
}

/// `recv_to_end` without tokio's timer, for `block_on` (which has its own hang guard).
async fn recv_to_end_plain<M>(channel: &AsyncChannel<M>) -> Vec<M> {
    let mut items = Vec::new();
    while let Ok(item) = channel.recv().await {
        items.push(item);
    }
    items
}

#[test]
fn block_waits_out_its_bound_on_the_publishers_thread_then_drops() {
    let bound = Duration::from_millis(30);
    let feed = Broadcaster::<u32>::start().unwrap();
    let channel = feed
        .subscribe_async_with(ChannelConfig::new(1, OverflowPolicy::Block(bound)))
        .unwrap();
    assert_eq!(feed.publish(1).unwrap(), 1);
    let started = Instant::now();
    assert_eq!(feed.publish(2).unwrap(), 0);
    assert!(started.elapsed() >= bound, "gave up before its bound");
    assert_eq!((channel.dropped(), feed.stats().dropped), (1, 1));
    assert_eq!(drain(&channel), [1]);
}

#[test]
fn block_delivers_everything_to_an_async_consumer_that_keeps_up() {
    let rt = runtime();
    let feed = Broadcaster::<u32>::start().unwrap();
    let channel = feed
        .subscribe_async_with(ChannelConfig::new(1, OverflowPolicy::Block(HANG)))
        .unwrap();
    let consumer = rt.spawn(async move {
        let mut got = Vec::new();
        while got.len() < 1000 {
            got.push(recv_or_hang(&channel).await.unwrap());
        }
        (got, channel.dropped())
    });
    // The publisher blocks its own thread (never awaits) whenever the queue of one is full.
    let publisher = thread::spawn(move || {
        for m in 0..1000 {
            assert_eq!(feed.publish(m).unwrap(), 1);
        }
    });
    let (got, dropped) = rt.block_on(consumer).unwrap();
    publisher.join().unwrap();
    assert_eq!(got, (0..1000).collect::<Vec<_>>());
    assert_eq!(dropped, 0);
}

// ----- wake-ups -----------------------------------------------------------------------

/// Ping-pong: the publisher sends one message and waits for the consumer to acknowledge
/// it, so nearly every round finds the consumer parked (or about to park) in
/// `recv().await` — every interleaving of the registration with the push, many times.
fn ping_pong(rounds: u32, consume: impl FnOnce(AsyncChannel<u32>, mpsc::Sender<u32>)) {
    let feed = Broadcaster::<u32>::start().unwrap();
    let channel = feed
        .subscribe_async_with(ChannelConfig::new(1, OverflowPolicy::DropNewest))
        .unwrap();
    let (ack, acks) = mpsc::channel();
    let publisher = thread::spawn(move || {
        for round in 0..rounds {
            assert_eq!(feed.publish(round).unwrap(), 1);
            let acked = acks
                .recv_timeout(HANG)
                .expect("the consumer never acknowledged: a lost wake-up");
            assert_eq!(acked, round);
        }
    });
    consume(channel, ack);
    publisher.join().unwrap();
}

#[test]
fn a_task_parked_in_recv_is_always_woken_on_tokio() {
    let rt = runtime();
    ping_pong(5_000, |channel, ack| {
        rt.block_on(rt.spawn(async move {
            for round in 0..5_000 {
                assert_eq!(recv_or_hang(&channel).await, Ok(round));
                ack.send(round).unwrap();
            }
        }))
        .unwrap();
    });
}

#[test]
fn a_task_parked_in_recv_is_always_woken_on_a_hand_rolled_executor() {
    // Runtime-agnostic: nothing but `Waker::wake` and a parked thread.
    ping_pong(5_000, |channel, ack| {
        block_on(async {
            for round in 0..5_000 {
                assert_eq!(channel.recv().await, Ok(round));
                ack.send(round).unwrap();
            }
        });
    });
}

#[test]
fn many_publishers_wake_one_consumer_and_nothing_is_lost() {
    let rt = runtime();
    let feed = Broadcaster::<(u32, u32)>::start().unwrap();
    const PER: u32 = 2_000;
    // Room for every item. With fewer slots than the publishers send (it had 4,096 for
    // 6,000), a consumer starved by a loaded machine lets the queue fill, DropNewest
    // drops, and the test fails with a gap in a publisher's sequence or — when only the
    // last items were dropped — waiting for items that were never queued, which its hang
    // guard reports as a lost wake-up. That is the policy working, not a lost wake-up;
    // with room for all, any gap or hang here is one.
    let channel = feed
        .subscribe_async_with(ChannelConfig::new(
            3 * PER as usize,
            OverflowPolicy::DropNewest,
        ))
        .unwrap();
    let publishers: Vec<_> = (0..3)
        .map(|p| {
            let feed = feed.clone();
            thread::spawn(move || {
                for i in 0..PER {
                    feed.publish((p, i)).unwrap();
                    if i % 64 == 0 {
                        thread::yield_now(); // let the consumer catch up and park
                    }
                }
            })
        })
        .collect();
    let got = rt.block_on(async {
        let mut next = [0u32; 3];
        let mut total = 0;
        while total < 3 * PER {
            let (p, i) = recv_or_hang(&channel).await.unwrap();
            // Per-publisher order is kept.
            assert_eq!(
                i,
                next[p as usize],
                "publisher {p}: a gap after {total} received, {} dropped",
                channel.dropped()
            );
            next[p as usize] += 1;
            total += 1;
        }
        total
    });
    for publisher in publishers {
        publisher.join().unwrap();
    }
    assert_eq!(got, 3 * PER);
    assert_eq!(channel.dropped(), 0);
}

#[test]
fn several_tasks_awaiting_one_channel_are_all_served() {
    // `recv` takes `&self`: two tasks may park on one channel. Neither may be left
    // asleep while items wait.
    let rt = runtime();
    const ITEMS: usize = 2_000;
    let feed = Broadcaster::<u32>::start().unwrap();
    // Room for every item: on a loaded machine both tasks may go unscheduled while the
    // publisher runs, and with the default 1,024 slots the overflow policy would drop
    // the rest — which is not the lost wake-up this test is after.
    let config = ChannelConfig::new(ITEMS, OverflowPolicy::DropNewest);
    let channel = Arc::new(feed.subscribe_async_with(config).unwrap());
    let received = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..2)
        .map(|_| {
            let channel = Arc::clone(&channel);
            let received = Arc::clone(&received);
            rt.spawn(async move {
                let mut mine = 0;
                while channel.recv().await.is_ok() {
                    mine += 1;
                    received.fetch_add(1, Ordering::Relaxed);
                }
                mine
            })
        })
        .collect();
    for m in 0..ITEMS as u32 {
        feed.publish(m).unwrap();
        if m % 16 == 0 {
            thread::yield_now();
        }
    }
    assert!(
        common::eventually(HANG, || received.load(Ordering::Relaxed) == ITEMS),
        "items left in the queue with tasks parked on it: {} of {ITEMS} received, {} dropped",
        received.load(Ordering::Relaxed),
        channel.dropped()
    );
    assert_eq!(channel.dropped(), 0);
    // Closing wakes both.
    feed.shutdown();
    let total: usize = rt.block_on(async {
        let mut total = 0;
        for task in tasks {
            total += tokio::time::timeout(HANG, task)
                .await
                .expect("a parked task was not woken by the shutdown")
                .unwrap();
        }
        total
    });
    assert_eq!(total, ITEMS);
}

#[test]
fn many_recv_futures_with_their_own_wakers_never_wake_each_other_and_all_wake_on_an_item() {
    // What `FuturesUnordered` does: every future gets a waker of its own. Parking any
    // number of them must wake none (a slot that evicted old wakers to make room would
    // have them wake each other forever), and an item must wake them all.
    let feed = Broadcaster::<u32>::start().unwrap();
    let channel = feed.subscribe_async().unwrap();
    let wakers: Vec<_> = (0..40)
        .map(|_| {
            let count = Arc::new(WakeCount::default());
            (Arc::clone(&count), Waker::from(count))
        })
        .collect();
    let mut futures: Vec<_> = wakers.iter().map(|_| Box::pin(channel.recv())).collect();
    for _ in 0..3 {
        for (future, (_, waker)) in futures.iter_mut().zip(&wakers) {
            let mut cx = Context::from_waker(waker);
            assert!(future.as_mut().poll(&mut cx).is_pending());
        }
    }
    assert!(
        wakers.iter().all(|(count, _)| count.get() == 0),
        "a parked future was woken with nothing queued"
    );
    feed.publish(1).unwrap();
    assert!(
        wakers.iter().all(|(count, _)| count.get() == 1),
        "a parked future was not woken by the item"
    );
    let ready: Vec<_> = futures
        .iter_mut()
        .zip(&wakers)
        .filter_map(|(future, (_, waker))| {
            match future.as_mut().poll(&mut Context::from_waker(waker)) {
                Poll::Ready(item) => Some(item),
                Poll::Pending => None,
            }
        })
        .collect();
    assert_eq!(ready, [Ok(1)]);
}

/// Counts its wake-ups.
#[derive(Default)]
struct WakeCount(AtomicUsize);

impl WakeCount {
    fn get(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }
}

impl Wake for WakeCount {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

// ----- cancel safety ------------------------------------------------------------------

#[test]
fn a_dropped_recv_future_loses_nothing() {
    let rt = runtime();
    rt.block_on(async {
        let feed = Broadcaster::<u32>::start().unwrap();
        let channel = feed.subscribe_async().unwrap();
        // Nothing published: the timer wins and the pending recv future is dropped.
        tokio::select! {
            _ = channel.recv() => panic!("nothing was published"),
            _ = tokio::time::sleep(Duration::from_millis(10)) => {}
        }
        // Published after the cancelled future had registered its waker.
        feed.publish(7).unwrap();
        assert_eq!(recv_or_hang(&channel).await, Ok(7));
    });
}

#[test]
fn recv_cancelled_at_random_points_never_loses_or_reorders_items() {
    // A publisher on another thread; the consumer keeps starting `recv()` and abandoning
    // it at once (a `select!` against an always-ready branch, and a zero timeout), so
    // futures are dropped while items land. Everything published must still arrive once,
    // in order.
    let rt = runtime();
    let feed = Broadcaster::<u32>::start().unwrap();
    let channel = feed
        .subscribe_async_with(ChannelConfig::new(100_000, OverflowPolicy::DropNewest))
        .unwrap();
    const ITEMS: u32 = 20_000;
    let publisher = thread::spawn(move || {
        for m in 0..ITEMS {
            feed.publish(m).unwrap();
            if m % 32 == 0 {
                thread::yield_now();
            }
        }
        feed
    });
    let (got, cancelled) = rt.block_on(async {
        let mut got = Vec::with_capacity(ITEMS as usize);
        let mut cancelled = 0u32;
        let mut just_cancelled = false;
        let started = Instant::now();
        while got.len() < ITEMS as usize {
            assert!(started.elapsed() < HANG, "stalled at {}", got.len());
            // After an abandoned attempt the next one waits for real, so the consumer
            // never spins on an empty queue.
            let attempt = if just_cancelled { 2 } else { got.len() % 3 };
            let item = if attempt == 0 {
                tokio::select! {
                    biased;
                    item = channel.recv() => Some(item.unwrap()),
                    _ = std::future::ready(()) => None,
                }
            } else if attempt == 1 {
                tokio::time::timeout(Duration::ZERO, channel.recv())
                    .await
                    .ok()
                    .map(Result::unwrap)
            } else {
                Some(recv_or_hang(&channel).await.unwrap())
            };
            just_cancelled = item.is_none();
            match item {
                Some(item) => got.push(item),
                None => cancelled += 1,
            }
        }
        (got, cancelled)
    });
    let feed = publisher.join().unwrap();
    assert_eq!(got, (0..ITEMS).collect::<Vec<_>>());
    assert_eq!(channel.dropped(), 0);
    assert_eq!(feed.stats().deliveries, u64::from(ITEMS));
    // Not asserted (it depends on scheduling), but it shows the test did cancel.
    eprintln!("{cancelled} recv futures dropped before they resolved");
}

// ----- lifecycle: drop, unsubscribe, shutdown, panics ---------------------------------

/// Dropping an `AsyncChannel` stops deliveries at once, before the engine prunes it,
/// even when its queue stays connected (under drop-oldest the sink holds a receiver of
/// its own): publishers check an inline copy of the sink's status, which the dropped
/// channel closes.
#[test]
fn a_dropped_async_channel_is_skipped_at_once_even_if_its_queue_stays_connected() {
    for _ in 0..20 {
        let feed = Broadcaster::<u32>::start().unwrap();
        let other = feed.subscribe().unwrap();
        let channel = feed
            .subscribe_async_with(ChannelConfig::new(CAPACITY, OverflowPolicy::DropOldest))
            .unwrap();
        assert_eq!(feed.publish(1).unwrap(), 2);
        drop(channel);
        assert_eq!(
            feed.publish(2).unwrap(),
            1,
            "publishers skip a dropped async channel at once"
        );
        assert_eq!(other.try_iter().collect::<Vec<_>>(), [1, 2]);
    }
}

#[test]
fn dropping_an_async_channel_unsubscribes_it_without_any_publish() {
    let feed = Broadcaster::<u32>::start().unwrap();
    let channels: Vec<_> = (0..50).map(|_| feed.subscribe_async().unwrap()).collect();
    assert_eq!((feed.subscriber_count(), feed.stats().clients), (50, 50));
    drop(channels);
    assert!(common::eventually(HANG, || feed.subscriber_count() == 0));
    assert_eq!(feed.stats().clients, 0);
    assert_eq!(feed.publish(1).unwrap(), 0);
}

#[test]
fn dropping_the_channel_releases_a_publisher_blocked_on_it() {
    // A publish in flight on another thread, blocked on the full queue under `Block`:
    // dropping the consumer's end makes it give up at once (the consumer is gone), not
    // wait out its bound.
    let feed = Broadcaster::<u32>::start().unwrap();
    let channel = feed
        .subscribe_async_with(ChannelConfig::new(1, OverflowPolicy::Block(HANG)))
        .unwrap();
    assert_eq!(feed.publish(1).unwrap(), 1);
    let in_flight = thread::spawn({
        let feed = feed.clone();
        move || feed.publish(2).unwrap()
    });
    // Give the publish time to block (correctness does not depend on it).
    thread::sleep(Duration::from_millis(20));
    drop(channel);
    assert_eq!(in_flight.join().unwrap(), 0);
    assert!(common::eventually(HANG, || feed.subscriber_count() == 0));
    assert_eq!(feed.publish(3).unwrap(), 0);
    assert_eq!(feed.stats().clients, 0);
}

#[test]
fn channels_dropped_while_publishers_run_leave_nothing_behind() {
    // Churn: subscribe, receive a little, drop — while two threads publish flat out.
    let rt = runtime();
    let feed = Broadcaster::<Arc<u32>>::start().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let witness = Arc::new(0u32);
    let publishers: Vec<_> = (0..2)
        .map(|_| {
            let (feed, stop, witness) = (feed.clone(), Arc::clone(&stop), Arc::clone(&witness));
            thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    feed.publish(Arc::clone(&witness)).unwrap();
                    thread::sleep(Duration::from_micros(50));
                }
            })
        })
        .collect();
    rt.block_on(async {
        for _ in 0..200 {
            let channel = feed.subscribe_async().unwrap();
            let _ = recv_or_hang(&channel).await.unwrap();
            drop(channel);
        }
    });
    stop.store(true, Ordering::Relaxed);
    for publisher in publishers {
        publisher.join().unwrap();
    }
    assert!(common::eventually(HANG, || feed.subscriber_count() == 0));
    // Every queued copy went away with its channel's sink.
    assert!(common::eventually(HANG, || Arc::strong_count(&witness) == 1));
}

#[test]
fn unsubscribe_wakes_a_parked_consumer_which_drains_then_ends() {
    let rt = runtime();
    let feed = Broadcaster::<u32>::start().unwrap();
    let channel = Arc::new(feed.subscribe_async().unwrap());
    let consumer = rt.spawn({
        let channel = Arc::clone(&channel);
        async move { recv_to_end(&channel).await }
    });
    feed.publish(1).unwrap();
    // Let the consumer take it and park again (correctness does not depend on it).
    thread::sleep(Duration::from_millis(20));
    feed.unsubscribe_async(&channel).unwrap();
    assert_eq!(feed.publish(2).unwrap(), 0);
    assert_eq!(rt.block_on(consumer).unwrap(), [1]);
    assert_eq!(
        channel.disconnect_reason(),
        Some(DisconnectReason::Unsubscribed)
    );
    // Unsubscribing twice, or on another broadcaster, is refused.
    assert!(matches!(
        feed.unsubscribe_async(&channel),
        Err(Error::UnknownClient(_))
    ));
    let other = Broadcaster::<u32>::start().unwrap();
    let theirs = other.subscribe_async().unwrap();
    assert!(matches!(
        feed.unsubscribe_async(&theirs),
        Err(Error::UnknownClient(_))
    ));
}

#[test]
fn shutdown_wakes_a_parked_consumer_with_the_reason() {
    // On the hand-rolled executor: `block_on`'s hang guard fails the test if the sink's
    // drop does not wake the parked consumer.
    let feed = Broadcaster::<u32>::start().unwrap();
    let channel = feed.subscribe_async().unwrap();
    let closer = thread::spawn(move || {
        feed.publish(1).unwrap();
        thread::sleep(Duration::from_millis(20));
        feed.shutdown();
        feed
    });
    assert_eq!(block_on(recv_to_end_plain(&channel)), [1]);
    assert_eq!(
        channel.disconnect_reason(),
        Some(DisconnectReason::Shutdown)
    );
    let feed = closer.join().unwrap();
    assert!(matches!(feed.subscribe_async(), Err(Error::Closed)));
}

#[test]
fn dropping_the_last_handle_ends_every_async_channel() {
    let rt = runtime();
    let feed = Broadcaster::<u32>::start().unwrap();
    let channels: Vec<_> = (0..3).map(|_| feed.subscribe_async().unwrap()).collect();
    feed.publish(5).unwrap();
    drop(feed);
    rt.block_on(async {
        for channel in &channels {
            assert_eq!(recv_to_end(channel).await, [5]);
            assert_eq!(
                channel.disconnect_reason(),
                Some(DisconnectReason::Shutdown)
            );
        }
    });
}

/// A message whose clone panics when told to: the engine catches it like a panicking
/// callback and closes only that channel.
#[derive(Debug)]
struct Fragile(bool);

impl Clone for Fragile {
    fn clone(&self) -> Self {
        assert!(!self.0, "clone refused");
        Fragile(false)
    }
}

#[test]
fn a_panicking_clone_disconnects_with_the_reason_and_wakes_the_consumer() {
    let feed = Broadcaster::<Fragile>::start().unwrap();
    let channel = feed.subscribe_async().unwrap();
    let publisher = thread::spawn(move || {
        thread::sleep(Duration::from_millis(20));
        feed.publish(Fragile(false)).unwrap();
        feed.publish(Fragile(true)).unwrap();
        feed
    });
    let got = block_on(recv_to_end_plain(&channel));
    assert_eq!(got.len(), 1);
    assert_eq!(
        channel.disconnect_reason(),
        Some(DisconnectReason::Panicked)
    );
    let feed = publisher.join().unwrap();
    assert_eq!(feed.stats().panics, 1);
}

// ----- Stream -------------------------------------------------------------------------

#[test]
fn the_stream_yields_every_item_then_ends() {
    let rt = runtime();
    let feed = Broadcaster::<u32>::start().unwrap();
    let mut channel = feed.subscribe_async().unwrap();
    let publisher = thread::spawn(move || {
        for m in 0..100 {
            feed.publish(m).unwrap();
        }
        feed.shutdown();
    });
    let items = rt.block_on(async {
        let mut items = Vec::new();
        loop {
            // The guard first, as in `recv_or_hang`.
            let item = tokio::select! {
                biased;
                _ = tokio::time::sleep(HANG) => panic!("the stream neither yielded nor ended"),
                item = next(&mut channel) => item,
            };
            match item {
                Some(item) => items.push(item),
                None => break,
            }
        }
        items
    });
    publisher.join().unwrap();
    assert_eq!(items, (0..100).collect::<Vec<_>>());
    // Ended streams stay ended.
    assert_eq!(block_on(next(&mut channel)), None);
}

// ----- PubSub clients and counters ----------------------------------------------------

#[test]
fn async_pubsub_clients_receive_decodable_push_frames() {
    let rt = runtime();
    let pubsub = PubSub::<str>::new().unwrap();
    let id = pubsub.generate_client_id();
    let frames = pubsub.register_async(id).unwrap();
    assert_eq!(frames.id(), id);
    pubsub.subscribe(id, "room/a").unwrap();
    pubsub.subscribe(id, "room/b").unwrap();
    let sender = thread::spawn({
        let pubsub = pubsub.clone();
        move || {
            thread::sleep(Duration::from_millis(10));
            assert_eq!(pubsub.broadcast("room/a", "one", &RawPayload).unwrap(), 1);
            assert_eq!(pubsub.broadcast("room/b", "two", &RawPayload).unwrap(), 1);
        }
    });
    let decoded = rt.block_on(async {
        let mut decoded = Vec::new();
        for _ in 0..2 {
            let frame = recv_or_hang(&frames).await.unwrap();
            let push = decode(&frame).unwrap();
            decoded.push((push.topic.to_owned(), push.payload.to_vec()));
        }
        decoded
    });
    sender.join().unwrap();
    assert_eq!(
        decoded,
        [
            ("room/a".to_owned(), b"one".to_vec()),
            ("room/b".to_owned(), b"two".to_vec())
        ]
    );
    // Unregistering ends it; dropping it would have too.
    pubsub.unregister(id).unwrap();
    assert_eq!(
        rt.block_on(recv_to_end(&frames)),
        Vec::<fanout::Bytes>::new()
    );
    assert_eq!(
        frames.disconnect_reason(),
        Some(DisconnectReason::Unsubscribed)
    );
    assert!(common::eventually(HANG, || pubsub.stats().clients == 0));
}

#[test]
fn register_async_validates_like_register_channel() {
    let pubsub = PubSub::<str>::new().unwrap();
    let id = pubsub.generate_client_id();
    let _frames = pubsub.register_async(id).unwrap();
    assert!(matches!(
        pubsub.register_async(id),
        Err(Error::DuplicateClient(dup)) if dup == id
    ));
    assert!(matches!(
        pubsub.register_channel(id),
        Err(Error::DuplicateClient(_))
    ));
    let other = pubsub.generate_client_id();
    assert!(matches!(
        pubsub.register_async_with(other, ChannelConfig::new(0, OverflowPolicy::DropNewest)),
        Err(Error::InvalidConfig(_))
    ));
    pubsub.shutdown();
    assert!(matches!(pubsub.register_async(other), Err(Error::Closed)));

    let feed = Broadcaster::<u32>::start().unwrap();
    assert!(matches!(
        feed.subscribe_async_with(ChannelConfig::new(0, OverflowPolicy::DropOldest)),
        Err(Error::InvalidConfig(_))
    ));
}

#[test]
fn counters_match_a_crossbeam_channel_under_the_same_policy() {
    // The same broadcasts to an async client and a crossbeam client with the same
    // configuration: the same per-client and engine-wide counts.
    for policy in [
        OverflowPolicy::DropNewest,
        OverflowPolicy::DropOldest,
        OverflowPolicy::Disconnect,
        OverflowPolicy::Block(Duration::ZERO),
    ] {
        let run = |use_async: bool| -> (Vec<Vec<u8>>, u64, Option<DisconnectReason>, Stats) {
            let pubsub = PubSub::<str>::new().unwrap();
            let id = pubsub.generate_client_id();
            let config = ChannelConfig::new(3, policy);
            let (payloads, dropped, reason) = if use_async {
                let frames = pubsub.register_async_with(id, config).unwrap();
                pubsub.subscribe(id, "t").unwrap();
                for i in 0..8 {
                    pubsub
                        .broadcast("t", format!("{i}").as_str(), &RawPayload)
                        .unwrap();
                }
                let payloads = drain(&frames)
                    .iter()
                    .map(|f| decode(f).unwrap().payload.to_vec())
                    .collect();
                (payloads, frames.dropped(), frames.disconnect_reason())
            } else {
                let frames = pubsub.register_channel_with(id, config).unwrap();
                pubsub.subscribe(id, "t").unwrap();
                for i in 0..8 {
                    pubsub
                        .broadcast("t", format!("{i}").as_str(), &RawPayload)
                        .unwrap();
                }
                let payloads = frames
                    .try_iter()
                    .map(|f| decode(&f).unwrap().payload.to_vec())
                    .collect();
                (payloads, frames.dropped(), frames.disconnect_reason())
            };
            (payloads, dropped, reason, pubsub.stats())
        };
        let (a_payloads, a_dropped, a_reason, a_stats) = run(true);
        let (c_payloads, c_dropped, c_reason, c_stats) = run(false);
        assert_eq!(a_payloads, c_payloads, "{policy:?}");
        assert_eq!((a_dropped, a_reason), (c_dropped, c_reason), "{policy:?}");
        assert_eq!(
            (a_stats.deliveries, a_stats.dropped, a_stats.disconnects),
            (c_stats.deliveries, c_stats.dropped, c_stats.disconnects),
            "{policy:?}"
        );
        assert!(a_dropped > 0, "{policy:?}: the queue of 3 never overflowed");
    }
}

#[test]
fn try_recv_len_and_is_empty() {
    let feed = Broadcaster::<u32>::start().unwrap();
    let channel = feed.subscribe_async().unwrap();
    assert!(channel.is_empty());
    assert_eq!(channel.try_recv(), Err(TryRecvError::Empty));
    feed.publish(1).unwrap();
    feed.publish(2).unwrap();
    assert_eq!((channel.len(), channel.is_empty()), (2, false));
    assert_eq!(channel.try_recv(), Ok(1));
    feed.shutdown();
    assert_eq!(channel.try_recv(), Ok(2));
    assert!(common::eventually(HANG, || channel.try_recv()
        == Err(TryRecvError::Disconnected)));
    assert!(format!("{channel:?}").contains("Shutdown"));
}

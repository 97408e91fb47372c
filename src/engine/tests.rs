//! Tests of the combining writer's internals: who runs a batch, how big a batch gets,
//! and what a panic inside one does. The guarantees as users see them are tested through
//! the public API in `tests/`; the interleavings in `loom-tests/`.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use super::command::{Command, Op};
use super::writer::MAX_COMMANDS_PER_BATCH;
use super::Change;
use super::{Engine, EngineConfig};
use crate::sink::{CallbackSink, Sink, SinkState, Status};
use crate::sync::{lock, Arc};
use crate::vocab::client::ClientId;
use crate::vocab::error::Error;
use crate::vocab::subscription::Subscription;
use crate::vocab::topic::Topic;

fn engine(command_capacity: usize) -> Engine<u32> {
    Engine::start(
        EngineConfig {
            command_capacity,
            ..EngineConfig::default()
        },
        None,
    )
    .expect("the engine starts")
}

fn topic(name: &str) -> Topic {
    Topic::new(name, 256).unwrap()
}

fn callback_sink(id: ClientId) -> Sink<u32> {
    Sink::callback(id, CallbackSink::new(|_: &u32| {}))
}

/// The point of the combining writer: with nobody else writing, the caller applies its
/// own mutation — the batch runs on the calling thread, not on a writer thread.
#[test]
fn an_uncontended_mutation_runs_on_the_callers_thread() {
    let engine = engine(16);
    let id = engine.generate_client_id();
    engine.register(id, callback_sink(id), None).unwrap();
    engine
        .mutate(Change::Subscribe(id, Subscription::Topic(topic("t"))))
        .unwrap();
    let ran_on = lock(&engine.shared().writer).last_batch_thread;
    assert_eq!(ran_on, Some(std::thread::current().id()));
    assert_eq!(engine.subscriber_count(topic("t").key()), 1);
}

/// A caller that finds the role taken queues its op and is answered by whoever serves
/// the queue once the role is released: here the test itself holds the role, so the
/// caller must wait, and must get its answer once the test lets go.
#[test]
fn a_caller_that_finds_the_role_taken_is_served_after_release() {
    let engine = Arc::new(engine(16));
    let id = engine.generate_client_id();
    engine.register(id, callback_sink(id), None).unwrap();
    let held = lock(&engine.shared().writer);
    let done = Arc::new(AtomicUsize::new(0));
    let caller = {
        let (engine, done) = (Arc::clone(&engine), Arc::clone(&done));
        std::thread::spawn(move || {
            let result = engine.mutate(Change::Subscribe(id, Subscription::Topic(topic("t"))));
            done.store(1, SeqCst);
            result
        })
    };
    // The caller cannot finish while we hold the role: its op waits in the queue.
    while engine.shared().inbox.is_empty() {
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(done.load(SeqCst), 0, "answered while the role was held");
    drop(held);
    caller.join().unwrap().unwrap();
    assert_eq!(engine.subscriber_count(topic("t").key()), 1);
}

/// Fairness: one batch applies at most `MAX_COMMANDS_PER_BATCH` queued commands, so a combiner's own
/// call is bounded however many others queue behind it.
#[test]
fn a_batch_applies_at_most_max_batch_commands() {
    let engine = engine(4 * MAX_COMMANDS_PER_BATCH);
    let shared = engine.shared();
    let mut writer = lock(&shared.writer);
    let queued = 3 * MAX_COMMANDS_PER_BATCH;
    for _ in 0..queued {
        let command = Command {
            op: Op::Prune {
                id: ClientId::from_raw(u64::MAX),
                sink: super::command::PruneTarget::Consumer(Arc::new(SinkState::new())),
            },
            reply: None,
        };
        assert!(shared.inbox_sender.try_send(command).is_ok());
    }
    let batch = writer.run_batch(shared, None, &shared.inbox);
    assert_eq!(shared.inbox.len(), queued - MAX_COMMANDS_PER_BATCH);
    // The caller's own op counts towards the bound too.
    let batch_with_own = writer.run_batch(shared, Some(Op::Many(Vec::new())), &shared.inbox);
    assert_eq!(shared.inbox.len(), queued - 2 * MAX_COMMANDS_PER_BATCH + 1);
    drop(writer);
    batch.aftermath.finish();
    batch_with_own.aftermath.finish();
}

/// A panic while applying a batch (a bug, an allocation failure) closes the engine
/// cleanly: the caller that ran the batch and every caller queued in it get `Closed`,
/// every sink is closed with `Shutdown`, nothing waits forever, and later calls are
/// `Closed` too.
#[test]
fn a_panic_in_a_batch_closes_the_engine_and_answers_every_caller() {
    let engine = Arc::new(engine(64));
    let id = engine.generate_client_id();
    let state = Arc::new(SinkState::new());
    let (sink, _receiver) =
        crate::sink::ChannelSink::new(crate::vocab::policy::ChannelConfig::default());
    engine
        .register(id, Sink::channel(id, sink, Arc::clone(&state)), None)
        .unwrap();
    engine
        .mutate(Change::Subscribe(id, Subscription::Topic(topic("t"))))
        .unwrap();

    // Callers that keep mutating while the panic happens: each must end with `Closed`.
    let callers: Vec<_> = (0..3)
        .map(|i| {
            let engine = Arc::clone(&engine);
            std::thread::spawn(move || {
                let name = format!("caller/{i}");
                loop {
                    match engine.mutate(Change::Subscribe(id, Subscription::Topic(topic(&name)))) {
                        Ok(()) => {}
                        Err(Error::Closed) => return,
                        Err(other) => panic!("unexpected {other:?}"),
                    }
                    let _ =
                        engine.mutate(Change::Unsubscribe(id, Subscription::Topic(topic(&name))));
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(20));
    engine.inject_batch_panic();
    let result = engine.mutate(Change::Subscribe(id, Subscription::Topic(topic("u"))));
    // Our call either ran the panicking batch or was applied before it; either way the
    // engine is closed once some batch has panicked.
    for caller in callers {
        caller.join().expect("a caller hung or panicked");
    }
    assert!(matches!(result, Ok(()) | Err(Error::Closed)), "{result:?}");
    assert!(engine.is_closed());
    assert_eq!(state.status(), Status::Shutdown);
    assert_eq!(engine.subscriber_count(topic("t").key()), 0);
    assert!(matches!(
        engine.mutate(Change::Unregister(id)),
        Err(Error::Closed)
    ));
    assert_eq!(engine.stats().clients, 0);
}

/// Topic events: a watcher learns the topics that exist when it starts watching, then
/// exactly one `Opened` per topic's first subscriber and one `Closed` per topic's last,
/// in order, and nothing for subscribers in between.
#[test]
fn topic_events_report_first_and_last_subscribers_only() {
    use crate::vocab::topic_event::TopicEvent;

    let engine = engine(16);
    let (a, b) = (engine.generate_client_id(), engine.generate_client_id());
    engine.register(a, callback_sink(a), None).unwrap();
    engine.register(b, callback_sink(b), None).unwrap();
    engine
        .mutate(Change::Subscribe(a, Subscription::Topic(topic("before"))))
        .unwrap();

    let (events, watched) = crossbeam_channel::unbounded();
    let existing = engine.watch_topics(events).unwrap();
    assert_eq!(existing, vec![TopicEvent::Opened("before".into())]);

    engine
        .mutate(Change::Subscribe(a, Subscription::Topic(topic("t"))))
        .unwrap();
    engine
        .mutate(Change::Subscribe(b, Subscription::Topic(topic("t"))))
        .unwrap();
    engine
        .mutate(Change::Unsubscribe(a, Subscription::Topic(topic("t"))))
        .unwrap();
    engine.mutate(Change::Unregister(b)).unwrap();
    engine.mutate(Change::Unregister(a)).unwrap();
    let seen: Vec<TopicEvent> = watched.try_iter().collect();
    assert_eq!(
        seen,
        vec![
            TopicEvent::Opened("t".into()),
            TopicEvent::Closed("t".into()),
            TopicEvent::Closed("before".into()),
        ]
    );

    engine.unwatch_topics();
    engine
        .register(a, callback_sink(a), Some(topic("after")))
        .unwrap();
    assert!(
        watched.try_recv().is_err(),
        "an unwatched engine sent an event"
    );
}

/// Pattern events: a watcher learns the patterns in use when it starts watching, then
/// one `PatternOpened` per pattern's first subscriber and one `PatternClosed` per its
/// last (by unsubscribe or unregister), in order with the topic events.
#[test]
fn topic_events_report_first_and_last_pattern_subscribers() {
    use crate::vocab::topic_event::TopicEvent;

    let sub = |name: &str| Subscription::parse(topic(name), '.').unwrap();
    let engine = engine(16);
    let (a, b) = (engine.generate_client_id(), engine.generate_client_id());
    engine.register(a, callback_sink(a), None).unwrap();
    engine.register(b, callback_sink(b), None).unwrap();
    engine.mutate(Change::Subscribe(a, sub("old.>"))).unwrap();
    engine.mutate(Change::Subscribe(b, sub("old.>"))).unwrap();

    let (events, watched) = crossbeam_channel::unbounded();
    let existing = engine.watch_topics(events).unwrap();
    assert_eq!(existing, vec![TopicEvent::PatternOpened("old.>".into())]);

    engine.mutate(Change::Subscribe(a, sub("p.*"))).unwrap();
    engine.mutate(Change::Subscribe(b, sub("p.*"))).unwrap();
    engine.mutate(Change::Subscribe(a, sub("p.x"))).unwrap();
    engine.mutate(Change::Unsubscribe(a, sub("p.*"))).unwrap();
    engine.mutate(Change::Unsubscribe(a, sub("old.>"))).unwrap();
    engine.mutate(Change::Unregister(b)).unwrap();
    let seen: Vec<TopicEvent> = watched.try_iter().collect();
    assert_eq!(
        seen,
        vec![
            TopicEvent::PatternOpened("p.*".into()),
            TopicEvent::Opened("p.x".into()),
            // `b` still had both: they close when it goes, in the order it took them.
            TopicEvent::PatternClosed("old.>".into()),
            TopicEvent::PatternClosed("p.*".into()),
        ]
    );
}

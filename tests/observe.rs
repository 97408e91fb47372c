//! Operating it: the counts `Stats` adds for operators (drops by policy, presence
//! members), the metrics a `MetricsReporter` records (feature `metrics`) and the events
//! the engine and the bridge emit (feature `tracing`), each checked against a recorder
//! or a subscriber written here, so the test depends on no exporter.

use std::time::Duration;

#[cfg(feature = "tracing")]
use fanout::transport::RawPayload;
use fanout::{Broadcaster, Bytes, ChannelConfig, OverflowPolicy, PubSub};

mod common;

#[cfg(feature = "tracing")]
use common::eventually;

/// How long an event emitted by another thread (the janitor, the bridge's) may take.
#[cfg(feature = "tracing")]
const WAIT: Duration = Duration::from_secs(15);

/// Each policy's drops land in its own count, and the counts add up to `dropped`.
#[test]
fn drops_are_counted_by_policy() {
    let feed = Broadcaster::<u32>::start().unwrap();
    let one = |policy| ChannelConfig::new(1, policy);
    let _newest = feed
        .subscribe_with(one(OverflowPolicy::DropNewest))
        .unwrap();
    let _oldest = feed
        .subscribe_with(one(OverflowPolicy::DropOldest))
        .unwrap();
    let _blocked = feed
        .subscribe_with(one(OverflowPolicy::Block(Duration::from_millis(1))))
        .unwrap();
    let _cut = feed
        .subscribe_with(one(OverflowPolicy::Disconnect))
        .unwrap();
    // One pending key at most: a second key is dropped (its drop-newest fallback).
    let _keyed = feed.subscribe_conflating(|n: &u32| *n, 1).unwrap();
    for n in 0..3 {
        feed.publish(n).unwrap();
    }
    let stats = feed.stats();
    let by = stats.dropped_by_policy;
    assert_eq!(
        (
            by.drop_newest,
            by.drop_oldest,
            by.block,
            by.disconnect,
            by.conflating
        ),
        (2, 2, 2, 1, 2),
        "{stats:?}"
    );
    assert_eq!(stats.dropped, 9);
    assert_eq!(stats.disconnects, 1);
}

/// `members` follows track, untrack and a client going away.
#[test]
fn presence_members_are_counted() {
    let chat = PubSub::<str>::new().unwrap();
    let (alice, bob) = (chat.generate_client_id(), chat.generate_client_id());
    chat.register(alice, |_| {}).unwrap();
    chat.register(bob, |_| {}).unwrap();
    chat.track(alice, "room.a", Bytes::from_static(b"A"))
        .unwrap();
    chat.track(alice, "room.b", Bytes::from_static(b"A"))
        .unwrap();
    chat.track(bob, "room.a", Bytes::from_static(b"B")).unwrap();
    // The same member again with new metadata is one member.
    chat.track(bob, "room.a", Bytes::from_static(b"B2"))
        .unwrap();
    assert_eq!(chat.stats().members, 3);
    chat.untrack(alice, "room.b").unwrap();
    chat.untrack(alice, "room.b").unwrap(); // not tracked there: no change
    assert_eq!(chat.stats().members, 2);
    chat.unregister(alice).unwrap();
    assert_eq!(chat.stats().members, 1);
    chat.shutdown();
    assert_eq!(chat.stats().members, 0);
}

#[cfg(feature = "metrics")]
mod metrics_reporter {
    use std::collections::BTreeMap;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};

    use fanout::observe::MetricsReporter;
    use fanout::transport::RawPayload;
    use fanout::{ChannelConfig, OverflowPolicy, PubSub};
    use metrics::{
        Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit,
    };

    /// Keeps every counter and gauge as `name{label="value",…}` (labels sorted) → value.
    #[derive(Default)]
    struct Capture {
        counters: Mutex<BTreeMap<String, Arc<AtomicU64>>>,
        gauges: Mutex<BTreeMap<String, Arc<AtomicU64>>>,
        described: Mutex<Vec<String>>,
    }

    fn series(key: &Key) -> String {
        let mut labels: Vec<String> = key
            .labels()
            .map(|l| format!("{}=\"{}\"", l.key(), l.value()))
            .collect();
        labels.sort();
        format!("{}{{{}}}", key.name(), labels.join(","))
    }

    impl Capture {
        fn counter(&self, series: &str) -> Option<u64> {
            let counters = self.counters.lock().unwrap();
            counters.get(series).map(|v| v.load(Ordering::Relaxed))
        }

        fn gauge(&self, series: &str) -> Option<f64> {
            let gauges = self.gauges.lock().unwrap();
            gauges
                .get(series)
                .map(|v| f64::from_bits(v.load(Ordering::Relaxed)))
        }

        fn all_series(&self) -> Vec<String> {
            let mut all: Vec<String> = self.counters.lock().unwrap().keys().cloned().collect();
            all.extend(self.gauges.lock().unwrap().keys().cloned());
            all
        }
    }

    impl Recorder for Capture {
        fn describe_counter(&self, key: KeyName, _: Option<Unit>, _: SharedString) {
            self.described.lock().unwrap().push(key.as_str().to_owned());
        }
        fn describe_gauge(&self, key: KeyName, _: Option<Unit>, _: SharedString) {
            self.described.lock().unwrap().push(key.as_str().to_owned());
        }
        fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
            let mut counters = self.counters.lock().unwrap();
            Counter::from_arc(Arc::clone(counters.entry(series(key)).or_default()))
        }
        fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
            let mut gauges = self.gauges.lock().unwrap();
            Gauge::from_arc(Arc::clone(gauges.entry(series(key)).or_default()))
        }
        fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
            Histogram::noop()
        }
    }

    /// Every number of `stats()` arrives under its documented name, with the user's
    /// labels on every series; recording again records the new absolute values.
    #[test]
    fn stats_are_recorded_under_their_names_with_the_users_labels() {
        let chat = PubSub::<str>::builder()
            .can_subscribe(|_, topic| {
                if topic == "secret" {
                    Err(fanout::Denied::new("no"))
                } else {
                    Ok(())
                }
            })
            .build()
            .unwrap();
        let (a, b, c) = (
            chat.generate_client_id(),
            chat.generate_client_id(),
            chat.generate_client_id(),
        );
        chat.register(a, |_| {}).unwrap();
        let _slow = chat
            .register_channel_with(b, ChannelConfig::new(1, OverflowPolicy::DropNewest))
            .unwrap();
        chat.register(c, |_| {}).unwrap();
        chat.subscribe(a, "room").unwrap();
        chat.subscribe(b, "room").unwrap();
        chat.subscribe(c, "room.>").unwrap();
        assert!(chat.subscribe(a, "secret").is_err());
        // In a topic nobody subscribes to: its presence frame is no broadcast.
        chat.track(a, "lobby", fanout::Bytes::from_static(b"A"))
            .unwrap();
        for _ in 0..3 {
            chat.broadcast("room", "hi", &RawPayload).unwrap();
        }
        let capture = Capture::default();
        let reporter = MetricsReporter::new().label("engine", "chat");
        metrics::with_local_recorder(&capture, || {
            reporter.describe();
            reporter.record(&chat.stats());
        });

        let e = "engine=\"chat\"";
        let counter = |name: &str, extra: &str| {
            let labels = if extra.is_empty() {
                e.to_owned()
            } else {
                format!("{e},{extra}")
            };
            capture
                .counter(&format!("{name}{{{labels}}}"))
                .unwrap_or_else(|| panic!("no {name}{{{labels}}} in {:?}", capture.all_series()))
        };
        let gauge = |name: &str, extra: &str| {
            let labels = if extra.is_empty() {
                e.to_owned()
            } else {
                format!("{e},{extra}")
            };
            capture
                .gauge(&format!("{name}{{{labels}}}"))
                .unwrap_or_else(|| panic!("no {name}{{{labels}}} in {:?}", capture.all_series()))
        };
        assert_eq!(counter("fanout_broadcasts_total", ""), 3);
        // a gets 3; b the first only (capacity 1, drop-newest); c's pattern does not
        // match "room" (">" needs a token).
        assert_eq!(counter("fanout_deliveries_total", ""), 4);
        assert_eq!(counter("fanout_dropped_total", "policy=\"drop_newest\""), 2);
        assert_eq!(counter("fanout_dropped_total", "policy=\"drop_oldest\""), 0);
        assert_eq!(
            counter("fanout_disconnects_total", "reason=\"overflow\""),
            0
        );
        assert_eq!(counter("fanout_disconnects_total", "reason=\"panic\""), 0);
        assert_eq!(counter("fanout_panics_total", ""), 0);
        assert_eq!(counter("fanout_denied_total", ""), 1);
        assert_eq!(counter("fanout_conflated_total", ""), 0);
        assert_eq!(gauge("fanout_clients", ""), 3.0);
        assert_eq!(gauge("fanout_topics", ""), 1.0);
        assert_eq!(gauge("fanout_subscriptions", "kind=\"topic\""), 2.0);
        assert_eq!(gauge("fanout_subscriptions", "kind=\"pattern\""), 1.0);
        assert_eq!(gauge("fanout_presence_members", ""), 1.0);
        assert!(
            capture.all_series().iter().all(|s| s.contains(e)),
            "a series without the user's label: {:?}",
            capture.all_series()
        );
        let described = capture.described.lock().unwrap().clone();
        for name in [
            "fanout_deliveries_total",
            "fanout_clients",
            "fanout_dropped_total",
        ] {
            assert!(described.iter().any(|d| d == name), "{name} not described");
        }

        // Absolute values: a second record sets, never adds.
        chat.broadcast("room", "again", &RawPayload).unwrap();
        metrics::with_local_recorder(&capture, || reporter.record(&chat.stats()));
        assert_eq!(counter("fanout_broadcasts_total", ""), 4);
        assert_eq!(counter("fanout_deliveries_total", ""), 5);
    }

    /// Without a recorder, recording is a no-op (the facade's default).
    #[test]
    fn recording_without_a_recorder_does_nothing() {
        let feed = fanout::Broadcaster::<u8>::start().unwrap();
        MetricsReporter::new().record(&feed.stats());
    }
}

#[cfg(feature = "tracing")]
mod events {
    use std::fmt::Debug;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Mutex, OnceLock};

    use tracing::field::{Field, Visit};
    use tracing::span::{Attributes, Id, Record};
    use tracing::{Event, Level, Metadata, Subscriber};

    /// One event: target, level and every field (the message under "message").
    #[derive(Debug, Clone)]
    pub struct Seen {
        pub target: String,
        pub level: Level,
        pub fields: Vec<(String, String)>,
    }

    impl Seen {
        pub fn field(&self, name: &str) -> Option<&str> {
            self.fields
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        }
    }

    struct Fields<'a>(&'a mut Vec<(String, String)>);

    impl Visit for Fields<'_> {
        fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
            self.0.push((field.name().to_owned(), format!("{value:?}")));
        }
        fn record_str(&mut self, field: &Field, value: &str) {
            self.0.push((field.name().to_owned(), value.to_owned()));
        }
    }

    /// Collects every event of every thread (the janitor and the bridge's threads emit
    /// too, so it is the global default, installed once per test binary).
    struct Collector {
        seen: Mutex<Vec<Seen>>,
        next_span: AtomicU64,
    }

    impl Subscriber for Collector {
        fn enabled(&self, _: &Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, _: &Attributes<'_>) -> Id {
            Id::from_u64(self.next_span.fetch_add(1, Ordering::Relaxed) + 1)
        }
        fn record(&self, _: &Id, _: &Record<'_>) {}
        fn record_follows_from(&self, _: &Id, _: &Id) {}
        fn event(&self, event: &Event<'_>) {
            let mut fields = Vec::new();
            event.record(&mut Fields(&mut fields));
            self.seen.lock().unwrap().push(Seen {
                target: event.metadata().target().to_owned(),
                level: *event.metadata().level(),
                fields,
            });
        }
        fn enter(&self, _: &Id) {}
        fn exit(&self, _: &Id) {}
    }

    fn collector() -> &'static Collector {
        static COLLECTOR: OnceLock<&'static Collector> = OnceLock::new();
        COLLECTOR.get_or_init(|| {
            let collector: &'static Collector = Box::leak(Box::new(Collector {
                seen: Mutex::new(Vec::new()),
                next_span: AtomicU64::new(0),
            }));
            struct Forward(&'static Collector);
            impl Subscriber for Forward {
                fn enabled(&self, m: &Metadata<'_>) -> bool {
                    self.0.enabled(m)
                }
                fn new_span(&self, a: &Attributes<'_>) -> Id {
                    self.0.new_span(a)
                }
                fn record(&self, i: &Id, r: &Record<'_>) {
                    self.0.record(i, r)
                }
                fn record_follows_from(&self, i: &Id, f: &Id) {
                    self.0.record_follows_from(i, f)
                }
                fn event(&self, e: &Event<'_>) {
                    self.0.event(e)
                }
                fn enter(&self, i: &Id) {
                    self.0.enter(i)
                }
                fn exit(&self, i: &Id) {
                    self.0.exit(i)
                }
            }
            tracing::subscriber::set_global_default(Forward(collector))
                .expect("the only global subscriber of this test binary");
            collector
        })
    }

    /// Events so far that `pick` accepts.
    pub fn seen(pick: impl Fn(&Seen) -> bool) -> Vec<Seen> {
        let all = collector().seen.lock().unwrap();
        all.iter().filter(|s| pick(s)).cloned().collect()
    }

    /// Installs the collector (call before the code under test runs).
    pub fn install() {
        collector();
    }

    pub fn message(seen: &Seen) -> &str {
        seen.field("message").unwrap_or("")
    }
}

/// A subscriber cut off by the disconnect policy, and one whose callback panicked, are
/// each reported once (warn, with the client id); a broadcast that drops frames
/// without cutting anyone off reports nothing; shutdown is reported (info).
#[cfg(feature = "tracing")]
#[test]
fn cut_off_subscribers_and_shutdown_are_events() {
    use events::{install, message, seen};
    use tracing::Level;

    install();
    let chat = PubSub::<str>::new().unwrap();
    let (slow, bad, dropping) = (
        chat.generate_client_id(),
        chat.generate_client_id(),
        chat.generate_client_id(),
    );
    let _slow_inbox = chat
        .register_channel_with(slow, ChannelConfig::new(1, OverflowPolicy::Disconnect))
        .unwrap();
    let _dropping_inbox = chat
        .register_channel_with(dropping, ChannelConfig::new(1, OverflowPolicy::DropNewest))
        .unwrap();
    chat.register(bad, |_| panic!("a callback that panics"))
        .unwrap();
    for id in [slow, bad, dropping] {
        chat.subscribe(id, "room").unwrap();
    }
    // Seven: no other engine of this binary broadcasts seven times, so its shutdown
    // event is told apart by its `broadcasts` field.
    for _ in 0..7 {
        chat.broadcast("room", "hi", &RawPayload).unwrap();
    }
    let about = |client: fanout::ClientId| {
        let id = client.as_u64().to_string();
        move |s: &events::Seen| s.target == "fanout::engine" && s.field("client") == Some(&*id)
    };
    assert!(
        eventually(WAIT, || seen(about(slow)).len() == 1
            && seen(about(bad)).len() == 1),
        "no cut-off events: {:?}",
        seen(|s| s.target.starts_with("fanout"))
    );
    let cut = &seen(about(slow))[0];
    assert_eq!(
        (cut.level, cut.field("reason"), message(cut)),
        (
            Level::WARN,
            Some("overflow"),
            "subscriber disconnected: its queue was full"
        )
    );
    let panicked = &seen(about(bad))[0];
    assert_eq!(
        (panicked.level, panicked.field("reason")),
        (Level::WARN, Some("panic"))
    );
    assert!(seen(about(dropping)).is_empty(), "a drop is not an event");

    let ours =
        |s: &events::Seen| message(s) == "engine shut down" && s.field("broadcasts") == Some("7");
    assert!(seen(ours).is_empty());
    chat.shutdown();
    chat.shutdown(); // once per engine
    let shut = seen(ours);
    assert_eq!(shut.len(), 1, "{shut:?}");
    assert_eq!(shut[0].level, Level::INFO);
}

/// The bridge reports each connection coming up, being lost (warn, with the error) and
/// coming back (info), once each per change, never per message.
#[cfg(all(feature = "tracing", feature = "redis"))]
#[test]
fn bridge_connection_changes_are_events() {
    #[path = "common/redis_server.rs"]
    mod redis_server;

    use events::{install, message, seen};
    use fanout::bridge::Bridge;
    use tracing::Level;

    install();
    let mut redis = redis_server::RedisServer::start();
    let chat = PubSub::<str>::new().unwrap();
    let bridge = Bridge::builder(&redis.url(), "observe-events")
        .backoff(Duration::from_millis(20), Duration::from_millis(200))
        .read_timeout(Duration::from_millis(20))
        .ping_interval(Duration::from_millis(100))
        .attach(&chat)
        .unwrap();
    let bridge_events = |text: &'static str| {
        move || {
            seen(|s| s.target == "fanout::bridge" && message(s) == text)
                .iter()
                .filter_map(|s| s.field("connection").map(str::to_owned))
                .collect::<Vec<_>>()
        }
    };
    let (connected, lost, reconnected) = (
        bridge_events("bridge connected"),
        bridge_events("bridge connection lost"),
        bridge_events("bridge reconnected"),
    );
    // Other tests in this binary attach no bridge: every bridge event here is ours.
    assert!(eventually(WAIT, || connected().len() == 2 && bridge.stats().connected));
    for _ in 0..100 {
        chat.broadcast("room", "hi", &RawPayload).unwrap();
    }
    redis.restart();
    // The publisher finds the connection gone only when it next talks to Redis.
    assert!(
        eventually(WAIT, || {
            chat.broadcast("room", "after", &RawPayload).unwrap();
            reconnected().len() == 2 && bridge.stats().connected
        }),
        "reconnected: {:?}, lost: {:?}",
        reconnected(),
        lost()
    );
    let mut sides = connected();
    sides.sort();
    assert_eq!(sides, ["publisher", "subscriber"]);
    let mut sides = lost();
    sides.sort();
    assert_eq!(
        sides,
        ["publisher", "subscriber"],
        "lost once per connection"
    );
    let warn = seen(|s| message(s) == "bridge connection lost");
    assert!(warn.iter().all(|s| s.level == Level::WARN
        && s.field("backend") == Some("redis")
        && s.field("error").is_some_and(|e| !e.is_empty())));
    assert!(seen(|s| message(s) == "bridge reconnected")
        .iter()
        .all(|s| s.level == Level::INFO));
    assert!(connected().len() == 2, "connected once per connection");
    bridge.shutdown();
}

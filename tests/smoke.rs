use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use fanout::transport::{decode, RawPayload};
use fanout::{Broadcaster, PubSub};

#[test]
fn pubsub_round_trip() {
    let ps = PubSub::<str>::new().unwrap();
    let a = ps.generate_client_id();
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    ps.register(a, move |f| {
        assert_eq!(decode(f).unwrap().payload, b"x");
        h.fetch_add(1, Ordering::SeqCst);
    })
    .unwrap();
    ps.subscribe(a, "t").unwrap();
    assert_eq!(ps.broadcast("t", "x", &RawPayload).unwrap(), 1);
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    ps.unsubscribe(a, "t").unwrap();
    assert_eq!(ps.broadcast("t", "x", &RawPayload).unwrap(), 0);
    ps.shutdown();
    assert!(matches!(
        ps.broadcast("t", "x", &RawPayload),
        Err(fanout::Error::Closed)
    ));
}

#[test]
fn broadcaster_round_trip() {
    let b = Broadcaster::<u32>::start().unwrap();
    let c = b.subscribe().unwrap();
    assert_eq!(b.publish(7).unwrap(), 1);
    assert_eq!(c.recv().unwrap(), 7);
    drop(c);
    for _ in 0..100 {
        if b.subscriber_count() == 0 {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    panic!("dropped channel not pruned");
}

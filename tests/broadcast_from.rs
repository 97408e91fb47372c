//! `broadcast_from` reaches every subscriber but the sender, however the topic's
//! subscriber list was built: clients subscribing in any order, by name and by pattern,
//! a topic created while patterns already match it, and clients leaving from anywhere in
//! the list. (The engine finds the sender in a list kept in client id order; a list out
//! of order would let the sender receive its own frame.)

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use fanout::transport::RawPayload;
use fanout::{ClientId, PubSub};

const CLIENTS: usize = 40;
const TOPIC: &str = "room.a";

/// A fixed xorshift sequence: the same "random" order in every run.
struct Order(u64);

impl Order {
    fn next(&mut self, below: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % below as u64) as usize
    }

    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.next(i + 1));
        }
    }
}

/// How the client is subscribed to `TOPIC`, if at all.
#[derive(Clone, Copy, PartialEq)]
enum Via {
    Nothing,
    Name,
    Pattern,
    Both,
}

struct Room {
    pubsub: PubSub<str>,
    ids: Vec<ClientId>,
    received: Vec<Arc<AtomicUsize>>,
    via: Vec<Via>,
}

impl Room {
    fn new() -> Self {
        let pubsub = PubSub::<str>::new().unwrap();
        let mut ids = Vec::new();
        let mut received = Vec::new();
        for _ in 0..CLIENTS {
            let id = pubsub.generate_client_id();
            let count = Arc::new(AtomicUsize::new(0));
            let counter = Arc::clone(&count);
            pubsub
                .register(id, move |_| {
                    counter.fetch_add(1, Ordering::Relaxed);
                })
                .unwrap();
            ids.push(id);
            received.push(count);
        }
        Room {
            pubsub,
            ids,
            received,
            via: vec![Via::Nothing; CLIENTS],
        }
    }

    fn subscribe(&mut self, k: usize, via: Via) {
        let id = self.ids[k];
        if matches!(via, Via::Name | Via::Both) {
            self.pubsub.subscribe(id, TOPIC).unwrap();
        }
        if matches!(via, Via::Pattern | Via::Both) {
            self.pubsub.subscribe(id, "room.*").unwrap();
        }
        self.via[k] = via;
    }

    fn leave(&mut self, k: usize) {
        let id = self.ids[k];
        self.pubsub.unsubscribe(id, TOPIC).unwrap();
        self.pubsub.unsubscribe(id, "room.*").unwrap();
        self.via[k] = Via::Nothing;
    }

    /// `broadcast_from` every client in turn: each subscriber but the sender gets one
    /// frame, the sender none, and the count says so.
    fn check(&self) {
        for (k, &from) in self.ids.iter().enumerate() {
            for count in &self.received {
                count.store(0, Ordering::Relaxed);
            }
            let delivered = self
                .pubsub
                .broadcast_from(from, TOPIC, "hi", &RawPayload)
                .unwrap();
            let mut expected = 0;
            for (j, count) in self.received.iter().enumerate() {
                let subscribed = self.via[j] != Via::Nothing;
                let want = usize::from(subscribed && j != k);
                expected += want;
                assert_eq!(
                    count.load(Ordering::Relaxed),
                    want,
                    "client {j} from client {k}"
                );
            }
            assert_eq!(delivered, expected, "count from client {k}");
        }
    }
}

#[test]
fn the_sender_is_skipped_however_the_list_was_built() {
    let mut order = Order(0x9E37_79B9_7F4A_7C15);
    let mut room = Room::new();
    // A few pattern subscribers first, so that the topic is created with them in it.
    let mut clients: Vec<usize> = (0..CLIENTS).collect();
    order.shuffle(&mut clients);
    for &k in &clients[..4] {
        room.subscribe(k, Via::Pattern);
    }
    room.check();
    // Then everyone else, in a shuffled order, by name, pattern or both.
    for &k in &clients[4..] {
        let via = [Via::Name, Via::Pattern, Via::Both, Via::Nothing][order.next(4)];
        room.subscribe(k, via);
    }
    room.check();
    // Leave from anywhere in the list, then come back in another order.
    order.shuffle(&mut clients);
    for &k in &clients[..CLIENTS / 2] {
        room.leave(k);
    }
    room.check();
    order.shuffle(&mut clients);
    for &k in &clients[..CLIENTS / 3] {
        room.subscribe(k, Via::Name);
    }
    room.check();
}

//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use fanout::transport::{decode, SerialiseError, Serialiser};

/// Polls `condition` until it holds or `limit` passes; returns whether it held.
/// For effects the engine applies asynchronously (a dropped channel's prune).
pub fn eventually(limit: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if condition() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    condition()
}

/// A callback sink's inbox: every frame it was handed, in order.
#[derive(Clone, Default)]
pub struct Inbox(pub Arc<Mutex<Vec<Bytes>>>);

impl Inbox {
    pub fn sink(&self) -> impl Fn(&Bytes) + Send + Sync + 'static {
        let frames = Arc::clone(&self.0);
        move |frame: &Bytes| frames.lock().unwrap().push(frame.clone())
    }

    pub fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }

    /// (topic, payload) of every frame received, decoded.
    pub fn decoded(&self) -> Vec<(String, Vec<u8>)> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .map(|f| {
                let push = decode(f).expect("engine frames decode");
                (push.topic.to_owned(), push.payload.to_vec())
            })
            .collect()
    }

    pub fn payloads(&self) -> Vec<Vec<u8>> {
        self.decoded().into_iter().map(|(_, p)| p).collect()
    }
}

/// A serialiser for `u64` (8 bytes big-endian) that counts its calls.
#[derive(Default)]
pub struct CountingSerialiser {
    pub calls: std::sync::atomic::AtomicUsize,
}

impl Serialiser<u64> for CountingSerialiser {
    fn serialise(&self, message: &u64, out: &mut BytesMut) -> Result<(), SerialiseError> {
        self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        out.put_u64(*message);
        Ok(())
    }
}

impl CountingSerialiser {
    pub fn calls(&self) -> usize {
        self.calls.load(std::sync::atomic::Ordering::SeqCst)
    }
}

pub fn u64_payload(p: &[u8]) -> u64 {
    u64::from_be_bytes(p.try_into().expect("8-byte payload"))
}

/// splitmix64: a small deterministic generator, so every run checks the same cases
/// (shared by the fuzz replay and the soak test).
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform-ish in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

#[cfg(any(feature = "redis", feature = "nats"))]
pub mod cluster_node;

/// Runs a bridge test body `fn NAME(layout: ChannelLayout)` once per channel layout, as
/// the tests `NAME::namespace` and `NAME::per_topic`.
#[allow(unused_macros)] // Used by the Redis bridge tests only.
macro_rules! both_layouts {
    ($name:ident) => {
        mod $name {
            #[test]
            fn namespace() {
                super::$name(fanout::bridge::ChannelLayout::Namespace);
            }
            #[test]
            fn per_topic() {
                super::$name(fanout::bridge::ChannelLayout::PerTopic);
            }
        }
    };
}
#[allow(unused_imports)] // Used by the Redis bridge tests only.
pub(crate) use both_layouts;

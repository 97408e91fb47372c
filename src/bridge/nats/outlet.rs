//! The NATS outlet: the publisher thread's end of the `async-nats` client that runs on
//! the bridge's io thread.
//!
//! Publishing hands each envelope to the client's command queue (an async channel the
//! io thread drains into its socket): the publisher thread polls that send itself with
//! a tiny executor that parks the thread, so it never runs or needs a runtime, and
//! gives up after [`io_timeout`](crate::bridge::BridgeBuilder::io_timeout) if the
//! queue stays full (the client stuck reconnecting). While the client is not connected
//! nothing is handed over: the batch is dropped and counted (numbered, so receivers see
//! the gap), never queued for later — frames are not replayed.

use std::collections::HashMap;
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use async_nats::connection::State;
use async_nats::{Client, Subject};
use tokio::sync::mpsc::UnboundedSender;

use super::subject::Subjects;
use crate::bridge::backend::{Batch, Failure, Outlet};
use crate::bridge::interest::InterestChange;

/// Most subjects the outlet remembers (topic → subject); a full cache is cleared.
const MAX_CACHED_SUBJECTS: usize = 1 << 16;

/// The publisher thread's end of the NATS client.
pub(crate) struct NatsOutlet {
    pub(crate) client: Client,
    pub(crate) subjects: Subjects,
    /// Interest changes for the io thread.
    pub(crate) to_io: UnboundedSender<Vec<InterestChange>>,
    pub(crate) io_timeout: Duration,
    /// Longest subject published; frames of topics with longer subjects are dropped.
    pub(crate) max_subject_len: usize,
    /// Topic → subject, so a frame costs no subject building (subjects are shared
    /// buffers: a clone is a reference count).
    cache: HashMap<Box<str>, Subject>,
    /// Wakes this (the publisher) thread when the client's queue has room.
    waker: Option<Waker>,
}

impl NatsOutlet {
    pub(crate) fn new(
        client: Client,
        subjects: Subjects,
        to_io: UnboundedSender<Vec<InterestChange>>,
        io_timeout: Duration,
        max_subject_len: usize,
    ) -> Self {
        Self {
            client,
            subjects,
            to_io,
            io_timeout,
            max_subject_len,
            cache: HashMap::new(),
            waker: None,
        }
    }

    fn subject(&mut self, topic: &str) -> Subject {
        if let Some(subject) = self.cache.get(topic) {
            return subject.clone();
        }
        if self.cache.len() >= MAX_CACHED_SUBJECTS {
            self.cache.clear();
        }
        let subject = Subject::from(self.subjects.topic(topic));
        self.cache.insert(topic.into(), subject.clone());
        subject
    }
}

impl Outlet for NatsOutlet {
    fn is_connected(&self) -> bool {
        self.client.connection_state() == State::Connected
    }

    fn connect(&mut self) -> bool {
        // The client reconnects by itself (and resubscribes): just look.
        self.is_connected()
    }

    fn publish(&mut self, batch: &mut Batch) -> Result<u64, Failure> {
        let deadline = Instant::now() + self.io_timeout;
        let waker = self
            .waker
            .get_or_insert_with(|| Waker::from(Arc::new(ThreadWaker(std::thread::current()))))
            .clone();
        let (buffer, items) = batch.take();
        let (mut handed, mut skipped) = (0usize, 0u64);
        let mut result = Ok(());
        for item in items {
            let (topic, envelope) = item.parts(&buffer);
            let subject = self.subject(topic);
            if subject.len() > self.max_subject_len {
                skipped += 1; // never sent: the server would close the connection
                continue;
            }
            let publish = self.client.publish(subject, envelope);
            match block_on_until(publish, deadline, &waker) {
                Some(Ok(())) => handed += 1,
                Some(Err(_)) | None => {
                    result = Err(if handed == 0 {
                        Failure::NotSent
                    } else {
                        Failure::Unknown
                    });
                    break;
                }
            }
        }
        result.map(|()| skipped)
    }

    fn follow(&mut self, delta: Vec<InterestChange>) {
        if !delta.is_empty() {
            let _ = self.to_io.send(delta); // the io thread is gone: stopping anyway
        }
    }
}

/// Unparks the thread that polls a future.
struct ThreadWaker(std::thread::Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// Polls `future` on this thread until it completes or `deadline` passes (then drops
/// it: a channel send not completed has sent nothing).
fn block_on_until<F: Future>(future: F, deadline: Instant, waker: &Waker) -> Option<F::Output> {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(waker);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return Some(output);
        }
        let now = Instant::now();
        if now >= deadline {
            return None;
        }
        std::thread::park_timeout(deadline - now);
    }
}

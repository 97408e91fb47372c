//! A connection's frames from the engine: the one place the server touches its sink.
//!
//! **Temporary glue.** The connection task is written against the engine's async channel
//! sink (`PubSub::register_async_with(id, ChannelConfig) -> AsyncChannel<Bytes>`, feature
//! `async`: `recv().await`, `try_recv`, `is_connected`, `disconnect_reason`, `dropped`;
//! dropping it unregisters). Until that lands, [`Frames`] gives the same shape with a
//! callback sink that `try_send`s each frame into a bounded `tokio::sync::mpsc` channel,
//! applying the disconnect policy itself: a frame that finds the queue full closes the
//! queue (the task drains what is queued, then sees [`DisconnectReason::Overflow`] and
//! unregisters). Switching to the real sink replaces this module only.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use fanout::{Bytes, ClientId, DisconnectReason, Error, PubSub};
use tokio::sync::mpsc::{self, error::TrySendError};

/// The receiving end of a connection's bounded queue of frames. Dropping it unregisters
/// the client.
pub struct Frames<M: ?Sized + 'static> {
    id: ClientId,
    receiver: mpsc::Receiver<Bytes>,
    shared: Arc<GlueState>,
    pubsub: PubSub<M>,
}

/// What the callback and the receiving end share.
struct GlueState {
    /// `None` once the queue overflowed: dropping the sender ends the receiver after it
    /// drains.
    sender: Mutex<Option<mpsc::Sender<Bytes>>>,
    /// Set (to `Overflow`) when the callback closed the queue.
    reason: Mutex<Option<DisconnectReason>>,
    /// Frames lost to the overflow.
    dropped: AtomicU64,
}

/// The queue ended (disconnected and drained).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecvError;

/// Registers client `id` with a queue of `capacity` frames; a frame that finds it full
/// disconnects the client (the engine's `OverflowPolicy::Disconnect`).
pub fn register<M: ?Sized + 'static>(
    pubsub: &PubSub<M>,
    id: ClientId,
    capacity: usize,
) -> Result<Frames<M>, Error> {
    let (sender, receiver) = mpsc::channel(capacity.max(1));
    let shared = Arc::new(GlueState {
        sender: Mutex::new(Some(sender)),
        reason: Mutex::new(None),
        dropped: AtomicU64::new(0),
    });
    let sink = Arc::clone(&shared);
    pubsub.register(id, move |frame: &Bytes| {
        let mut sender = sink.sender.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(queue) = sender.as_ref() else {
            sink.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        };
        match queue.try_send(frame.clone()) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                sink.dropped.fetch_add(1, Ordering::Relaxed);
                *sink.reason.lock().unwrap_or_else(PoisonError::into_inner) =
                    Some(DisconnectReason::Overflow);
                *sender = None; // the receiver ends once drained
            }
            Err(TrySendError::Closed(_)) => {}
        }
    })?;
    Ok(Frames {
        id,
        receiver,
        shared,
        pubsub: pubsub.clone(),
    })
}

impl<M: ?Sized + 'static> Frames<M> {
    /// The next frame, or `Err` once the queue is disconnected and drained. Cancel-safe.
    pub async fn recv(&mut self) -> Result<Bytes, RecvError> {
        self.receiver.recv().await.ok_or(RecvError)
    }

    /// A queued frame, if there is one.
    pub fn try_recv(&mut self) -> Option<Bytes> {
        self.receiver.try_recv().ok()
    }

    /// Why the queue was cut off, or `None` while it is connected.
    pub fn disconnect_reason(&self) -> Option<DisconnectReason> {
        let reason = *self
            .shared
            .reason
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        reason.or_else(|| {
            self.pubsub
                .is_closed()
                .then_some(DisconnectReason::Shutdown)
        })
    }

    /// Frames lost to an overflow.
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }
}

impl<M: ?Sized + 'static> Drop for Frames<M> {
    fn drop(&mut self) {
        let _ = self.pubsub.unregister(self.id);
    }
}

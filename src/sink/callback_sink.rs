//! The callback flavour: a user function called with a reference to the shared frame.

use super::state::SinkStatus;

/// A boxed `Fn(&T)` called on the publisher's thread, and its open/closed status. The
/// frame is passed by reference: a callback that keeps it clones it (one atomic
/// increment for `Bytes`); one that only copies it into a socket buffer pays nothing.
pub(crate) struct CallbackSink<T> {
    send: Box<dyn Fn(&T) + Send + Sync>,
    /// Open, or why not: the one flag a delivery checks. Inline, next to `send`, so the
    /// check costs no extra cache line; and nothing else, so that the whole [`Sink`]
    /// (which every callback client pays for, in its own allocation) is 24 bytes.
    ///
    /// [`Sink`]: super::Sink
    status: SinkStatus,
}

impl<T> CallbackSink<T> {
    pub(crate) fn new(send: impl Fn(&T) + Send + Sync + 'static) -> Self {
        Self {
            send: Box::new(send),
            status: SinkStatus::new(),
        }
    }

    /// Whether a delivery should call it: not closed for any reason — a panic, or
    /// removal (a broadcast still holding a snapshot with this sink then skips it, as
    /// it may: it is already in flight).
    #[inline]
    pub(crate) fn is_usable(&self) -> bool {
        // Relaxed: a publisher that misses a concurrent close calls the callback once
        // more, inside its own `catch_unwind`; nothing else is read on the strength of
        // this flag.
        self.status.is_open_relaxed()
    }

    /// Its status, which only the engine observes.
    #[inline]
    pub(crate) fn status(&self) -> &SinkStatus {
        &self.status
    }

    #[inline]
    pub(crate) fn call(&self, item: &T) {
        (self.send)(item)
    }
}

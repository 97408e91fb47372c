//! The callback flavour: a user function called with a reference to the shared frame.

use crate::sync::{AtomicBool, Ordering};

/// A boxed `Fn(&T)` called on the publisher's thread. The frame is passed by reference:
/// a callback that keeps it clones it (one atomic increment for `Bytes`); one that only
/// copies it into a socket buffer pays nothing.
pub(crate) struct CallbackSink<T> {
    send: Box<dyn Fn(&T) + Send + Sync>,
    /// Set once the callback has panicked: later broadcasts still holding a snapshot
    /// with this sink skip it until the writer prunes it. Inline, next to `send`, so
    /// the check costs no extra cache line.
    panicked: AtomicBool,
}

impl<T> CallbackSink<T> {
    pub(crate) fn new(send: impl Fn(&T) + Send + Sync + 'static) -> Self {
        Self {
            send: Box::new(send),
            panicked: AtomicBool::new(false),
        }
    }

    #[inline]
    pub(crate) fn is_usable(&self) -> bool {
        // Relaxed: a publisher that misses a concurrent panic calls the callback once
        // more, inside its own `catch_unwind`; nothing else is ordered by this flag.
        !self.panicked.load(Ordering::Relaxed)
    }

    pub(crate) fn disable(&self) {
        self.panicked.store(true, Ordering::Relaxed);
    }

    #[inline]
    pub(crate) fn call(&self, item: &T) {
        (self.send)(item)
    }
}

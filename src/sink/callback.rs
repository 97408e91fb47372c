//! The callback flavour: a user function called with a reference to the shared frame.

/// A boxed `Fn(&T)` called on the publisher's thread. The frame is passed by reference:
/// a callback that keeps it clones it (one atomic increment for `Bytes`); one that only
/// copies it into a socket buffer pays nothing.
pub(crate) struct CallbackSink<T> {
    send: Box<dyn Fn(&T) + Send + Sync>,
}

impl<T> CallbackSink<T> {
    pub(crate) fn new(send: impl Fn(&T) + Send + Sync + 'static) -> Self {
        Self {
            send: Box::new(send),
        }
    }

    #[inline]
    pub(crate) fn call(&self, item: &T) {
        (self.send)(item)
    }
}

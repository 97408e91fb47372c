//! The callback flavour: a user function called with a reference to the shared frame.

use super::{Body, ChannelParts};

/// A user's `Fn(&T)`, called on the publisher's thread, boxed as a sink's body: its
/// [`Body::call`] is the user's function, monomorphised into the vtable entry the
/// delivery calls. The frame is passed by reference: a callback that keeps it clones it
/// (one atomic increment for `Bytes`); one that only copies it into a socket buffer pays
/// nothing. Its open/closed status is the sink's gate, beside the box in the
/// [`Sink`](super::Sink): the one byte a delivery checks.
pub(crate) struct CallbackSink<T> {
    body: Box<dyn Body<T> + Send + Sync>,
}

/// The user's function, as a [`Body`].
struct Callback<F>(F);

impl<T, F: Fn(&T)> Body<T> for Callback<F> {
    #[inline]
    fn call(&self, item: &T) {
        (self.0)(item)
    }

    fn channel(&self) -> Option<&ChannelParts<T>> {
        None
    }
}

impl<T> CallbackSink<T> {
    pub(crate) fn new(send: impl Fn(&T) + Send + Sync + 'static) -> Self {
        Self {
            body: Box::new(Callback(send)),
        }
    }

    /// The boxed function, for the sink to keep.
    pub(crate) fn into_body(self) -> Box<dyn Body<T> + Send + Sync> {
        self.body
    }
}

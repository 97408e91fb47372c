//! How a message becomes the payload of a Push frame.

use bytes::{BufMut, Bytes, BytesMut};

pub use crate::vocab::error::SerialiseError;

/// Turns a message into the payload bytes of a Push frame.
///
/// The engine calls it at most once per broadcast, and not at all when the topic has no
/// subscribers. It appends to `out`, which already holds the frame header: write the
/// payload and nothing else.
///
/// Closures `Fn(&M, &mut BytesMut) -> Result<(), SerialiseError>` are serialisers too.
///
/// # Examples
///
/// ```
/// use bytes::{BufMut, BytesMut};
/// use fanout::transport::{SerialiseError, Serialiser};
///
/// struct Position { x: i32, y: i32 }
///
/// /// Eight bytes: x then y, big-endian.
/// struct PositionCodec;
///
/// impl Serialiser<Position> for PositionCodec {
///     fn serialise(&self, p: &Position, out: &mut BytesMut) -> Result<(), SerialiseError> {
///         out.put_i32(p.x);
///         out.put_i32(p.y);
///         Ok(())
///     }
/// }
/// ```
pub trait Serialiser<M: ?Sized> {
    /// Appends the payload for `message` to `out`.
    fn serialise(&self, message: &M, out: &mut BytesMut) -> Result<(), SerialiseError>;

    /// The expected payload size, reserved before `serialise` runs. A wrong guess costs a
    /// reallocation, never correctness.
    fn size_hint(&self, _message: &M) -> usize {
        64
    }

    /// The payload for `message` when it already is one slice of bytes, to be copied
    /// into the frame as it is; `None` (the default) to have [`serialise`](Self::serialise)
    /// write it.
    ///
    /// A frame around a known payload is built in one allocation of exactly its size,
    /// written once, which costs less than handing `serialise` a growable buffer (about
    /// 75 instructions per broadcast less, `benches/one_subscriber.rs` under callgrind).
    /// [`RawPayload`] answers `Some`.
    fn payload<'m>(&self, _message: &'m M) -> Option<&'m [u8]> {
        None
    }
}

impl<M: ?Sized, F> Serialiser<M> for F
where
    F: Fn(&M, &mut BytesMut) -> Result<(), SerialiseError>,
{
    fn serialise(&self, message: &M, out: &mut BytesMut) -> Result<(), SerialiseError> {
        self(message, out)
    }
}

/// The ready-made serialiser for messages that already are bytes: `Bytes`, `[u8]`,
/// `Vec<u8>`, `str` and `String` are copied into the payload as they are.
#[derive(Debug, Clone, Copy, Default)]
pub struct RawPayload;

macro_rules! raw_payload_for {
    ($($ty:ty),* $(,)?) => {$(
        impl Serialiser<$ty> for RawPayload {
            fn serialise(&self, message: &$ty, out: &mut BytesMut) -> Result<(), SerialiseError> {
                out.put_slice(AsRef::<[u8]>::as_ref(message));
                Ok(())
            }

            fn size_hint(&self, message: &$ty) -> usize {
                AsRef::<[u8]>::as_ref(message).len()
            }

            #[inline]
            fn payload<'m>(&self, message: &'m $ty) -> Option<&'m [u8]> {
                Some(AsRef::<[u8]>::as_ref(message))
            }
        }
    )*};
}

raw_payload_for!(Bytes, [u8], Vec<u8>, str, String);

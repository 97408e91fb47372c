//! What goes over the wire: the Push frame, the serialisers that fill its payload, and
//! the [`envelope`] a Redis bridge wraps a frame in for other engines.
//!
//! A broadcast runs the [`Serialiser`] once, straight into the payload of one
//! [`Bytes`](bytes::Bytes) buffer laid out as a [Push frame](frame), and hands that buffer
//! to every subscriber by reference. Clients in any language decode it with the byte
//! layout documented in [`frame`].

pub mod envelope;
pub mod frame;
pub mod presence;
pub mod presence_sync;
mod serialiser;

pub use crate::vocab::node::NodeId;
pub use envelope::{
    decode_batch_envelope, decode_envelope, decode_presence_envelope, encode_batch_envelope,
    encode_presence_envelope, Audience, BatchEnvelope, BatchFrames, Envelope, EnvelopeError,
    EnvelopeHeader, BATCH_HEADER_LEN, BATCH_ITEM_HEADER_LEN, ENVELOPE_HEADER_LEN, ENVELOPE_VERSION,
    MODE_BATCH, MODE_PRESENCE,
};
pub use frame::{decode, encode_push, DecodeError, PushFrame, FRAME_KIND_PUSH, FRAME_VERSION};
pub use presence::{
    decode_any, decode_presence, encode_presence, Frame, PresenceEvent, PresenceFrame,
    FRAME_KIND_PRESENCE,
};
pub use serialiser::{RawPayload, SerialiseError, Serialiser};

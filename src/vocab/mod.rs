//! The vocabulary: the words every layer above speaks — who a client is
//! ([`client`]), what a topic and a pattern are ([`topic`], [`pattern`]), what can go
//! wrong ([`error`]), what a full queue does ([`policy`]), what is counted ([`stats`]),
//! a change to the registry ([`mutation`]) and who may subscribe ([`authorization`]).
//!
//! Nothing here knows the engine: these are plain types with their validation, so the
//! transport, the sinks, the engine and the faces can all name them.

pub(crate) mod authorization;
pub(crate) mod client;
pub(crate) mod error;
pub(crate) mod mutation;
pub(crate) mod pattern;
pub mod policy;
pub(crate) mod stats;
pub(crate) mod topic;

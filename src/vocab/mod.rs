//! The vocabulary: the words every layer above speaks — who a client is
//! ([`client`]), what a topic and a pattern are ([`topic`], [`pattern`]), what can go
//! wrong ([`error`]), a topic's member ([`member`]), what a full queue does ([`policy`]), what is counted ([`stats`]),
//! a change to the registry ([`mutation`]) and what a subscription names
//! ([`subscription`]), who may subscribe ([`authorization`]) and
//! a change in the set of topics served ([`topic_event`]).
//!
//! Nothing here knows the engine: these are plain types with their validation, so the
//! transport, the sinks, the engine and the faces can all name them.

pub(crate) mod authorization;
pub(crate) mod client;
pub(crate) mod error;
pub(crate) mod member;
pub(crate) mod mutation;
pub(crate) mod node;
pub(crate) mod pattern;
pub mod policy;
pub(crate) mod stats;
pub(crate) mod subscription;
pub(crate) mod topic;
pub(crate) mod topic_event;
pub(crate) mod trace;

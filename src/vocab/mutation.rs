//! [`Mutation`]: one registry change, for applying many as one batch.

use crate::vocab::client::ClientId;
use crate::vocab::topic::Topic;

/// One change to the registry, for [`PubSub::apply`](crate::PubSub::apply), which sends
/// a whole list to the writer as one batch: one hold of the writer role and one snapshot
/// publication for all of them, instead of one each.
///
/// Topics are pre-resolved [`Topic`]s (from [`PubSub::topic`](crate::PubSub::topic)), so
/// each mutation is already validated when the batch is built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mutation {
    /// Subscribe a registered client to a topic (no-op if it already is).
    Subscribe(ClientId, Topic),
    /// Unsubscribe a registered client from a topic (no-op if it is not subscribed).
    Unsubscribe(ClientId, Topic),
    /// Unregister a client, leaving every topic.
    Unregister(ClientId),
}

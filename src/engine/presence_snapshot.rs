//! Snapshot then events, in one ordered step: a client subscribes to a topic and gets,
//! first, one join per member of the topic now, then every later change — nothing
//! missed or doubled in between (Phoenix's `presence_state` then `presence_diff`).
//!
//! Presence events are delivered by one thread at a time, the holder of the delivery
//! turn (see [`Shared::deliver_presence`]). This step takes the turn itself (waiting
//! for it) and, holding it:
//!
//! 1. delivers every change queued so far — to the subscribers before this one;
//! 2. subscribes the client;
//! 3. under the table's lock, copies the topic's members *and* takes every change queued
//!    since step 1 (the copy includes them);
//! 4. delivers those changes to everyone but the new client, and then the copy, as
//!    joins, to the new client alone;
//! 5. gives the turn up by the usual rule (only with the queue seen empty under the
//!    table's lock), delivering what was queued meanwhile — to the new client too.
//!
//! A change applied before step 3 is in the copy, and its event reached the client
//! never (delivered in step 1 before it subscribed, or in step 4 to the others only); a
//! change applied after step 3 is not in the copy, and its event reaches the client in
//! step 5 or later. Other engines' members (with a bridge) are added in step 3 by the
//! caller, who holds the bridge's own delivery turn around the whole step.
//!
//! A thread that is delivering presence events (a sink's callback) cannot wait for the
//! turn it holds: the step refuses with [`Error::InPresenceDelivery`].

use super::delivering_presence::{is_delivering, DeliveringPresence};
use super::delivery::NOBODY;
use super::presence_table::PresenceChange;
use super::Shared;
use crate::sync::lock;
use crate::transport::PresenceEvent;
use crate::vocab::client::ClientId;
use crate::vocab::error::Error;
use crate::vocab::topic::TopicKey;

impl<T: Clone> Shared<T> {
    /// The ordered step (module docs). `subscribe` subscribes the client; `others` makes
    /// the items for other engines' members of the topic (called in step 3).
    pub(crate) fn subscribe_with_snapshot(
        &self,
        id: ClientId,
        topic: TopicKey<'_>,
        subscribe: impl FnOnce() -> Result<(), Error>,
        others: impl FnOnce() -> Vec<T>,
    ) -> Result<(), Error> {
        if is_delivering() {
            return Err(Error::InPresenceDelivery);
        }
        let Some(presence) = &self.presence_broadcast else {
            return subscribe();
        };
        let turn = lock(&self.presence_delivery);
        let _delivering = DeliveringPresence::enter();
        // 1. What is queued goes to the subscribers before this one.
        loop {
            let Some(change) = lock(&self.presence).next_change() else {
                break;
            };
            self.deliver_change(&change, NOBODY);
        }
        // 2.
        let subscribed = subscribe();
        // 3. The members now, and the changes they already include.
        let (members, node, pending) = {
            let mut table = lock(&self.presence);
            let mut members = Vec::new();
            table.for_each_member(topic.name, |client, meta| {
                members.push((client, meta.clone()))
            });
            let mut pending = Vec::new();
            while let Some(change) = table.next_change() {
                pending.push(change);
            }
            (members, table.node(), pending)
        };
        // 4.
        let skip = if subscribed.is_ok() { id } else { NOBODY };
        for change in &pending {
            let skip = if *change.topic == *topic.name {
                skip
            } else {
                NOBODY
            };
            self.deliver_change(change, skip);
        }
        if subscribed.is_ok() {
            let mut items: Vec<T> = members
                .into_iter()
                .filter_map(|(client, meta)| {
                    (presence.encode)(&PresenceChange {
                        topic: std::sync::Arc::from(topic.name),
                        hash: topic.hash,
                        event: PresenceEvent::Join,
                        node,
                        client,
                        meta,
                    })
                })
                .collect();
            items.extend(others());
            for item in &items {
                self.deliver_to(topic, id, item);
            }
        }
        // 5. Give the turn up as `deliver_presence` does.
        loop {
            let mut table = lock(&self.presence);
            let Some(change) = table.next_change() else {
                drop(turn);
                return subscribed;
            };
            drop(table);
            self.deliver_change(&change, NOBODY);
        }
    }

    /// Broadcasts one presence change to its topic's subscribers but `skip`.
    fn deliver_change(&self, change: &PresenceChange, skip: ClientId) {
        let Some(presence) = &self.presence_broadcast else {
            return;
        };
        if let Some(item) = (presence.encode)(change) {
            let topic = TopicKey {
                name: &change.topic,
                hash: change.hash,
            };
            // Closed: nobody left to tell.
            let _ = self.broadcast_ref(topic, skip, &item);
        }
    }
}

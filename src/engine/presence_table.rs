//! Who is present where: the members tracked in each topic, with their metadata, and the
//! join/leave changes not yet delivered.
//!
//! The writer changes it while it holds the writer role — `track`, `untrack`, and every
//! way a client goes away (unregister, prune after a dead consumer, overflow or panic) —
//! so a departure can never be missed or reported twice. A bridge attaching or detaching
//! renames every member (the engine's node id changes), with a leave and a join each.
//! Readers (`list`) take only this table's own lock, never the writer role. The queued
//! changes are broadcast as Presence frames after the role is released, in the order
//! they were made (see [`Shared::deliver_presence`](super::Shared::deliver_presence)).

use std::collections::{BTreeMap, HashMap, VecDeque};

use bytes::Bytes;
use smallvec::SmallVec;

use crate::transport::PresenceEvent;
use crate::vocab::client::ClientId;
use crate::vocab::node::NodeId;

/// One join or leave, waiting to be broadcast to the topic's subscribers.
#[derive(Debug, Clone)]
pub(crate) struct PresenceChange {
    pub(crate) topic: std::sync::Arc<str>,
    pub(crate) hash: u64,
    pub(crate) event: PresenceEvent,
    /// The member's name: this engine's node id when the change was made (`NodeId(0)`
    /// without a bridge; the old or new id for the changes of a rename).
    pub(crate) node: NodeId,
    pub(crate) client: ClientId,
    pub(crate) meta: Bytes,
}

/// Where every change also goes while a bridge watches (see [`PresenceTable::watch`]).
pub(crate) type PresenceWatcher = crossbeam_channel::Sender<PresenceChange>;

#[derive(Default)]
pub(crate) struct PresenceTable {
    /// Topic → its members, ordered by client id.
    by_topic: HashMap<std::sync::Arc<str>, (u64, BTreeMap<ClientId, Bytes>), ahash::RandomState>,
    /// Client → the topics it is tracked in (for departures).
    by_client: HashMap<ClientId, SmallVec<[std::sync::Arc<str>; 1]>, ahash::RandomState>,
    /// Changes made and not yet taken for delivery, oldest first.
    outbox: VecDeque<PresenceChange>,
    /// This engine's node id while a bridge is attached, else `NodeId(0)`: what its
    /// members are named (changed only by [`rename`](Self::rename)).
    node: NodeId,
    /// The bridge's copy of every change, in order, while it watches.
    watcher: Option<PresenceWatcher>,
    /// (client, topic) pairs tracked: what [`Stats::members`](crate::Stats::members)
    /// reports, kept here so that reading it costs no walk.
    members: usize,
}

impl PresenceTable {
    /// Tracks `client` in `topic` with `meta`. A change (and a queued join) unless it was
    /// already tracked there with the same metadata.
    pub(crate) fn track(
        &mut self,
        client: ClientId,
        topic: std::sync::Arc<str>,
        hash: u64,
        meta: Bytes,
    ) -> bool {
        let (_, members) = self
            .by_topic
            .entry(std::sync::Arc::clone(&topic))
            .or_insert_with(|| (hash, BTreeMap::new()));
        match members.insert(client, meta.clone()) {
            Some(previous) if previous == meta => return false,
            Some(_) => {}
            None => {
                self.members += 1;
                self.by_client
                    .entry(client)
                    .or_default()
                    .push(std::sync::Arc::clone(&topic));
            }
        }
        self.queue(PresenceChange {
            topic,
            hash,
            event: PresenceEvent::Join,
            node: self.node,
            client,
            meta,
        });
        true
    }

    /// Untracks `client` from `topic`; false if it was not tracked there.
    pub(crate) fn untrack(&mut self, client: ClientId, topic: &str) -> bool {
        let Some(topics) = self.by_client.get_mut(&client) else {
            return false;
        };
        let Some(position) = topics.iter().position(|t| **t == *topic) else {
            return false;
        };
        let name = topics.swap_remove(position);
        if topics.is_empty() {
            self.by_client.remove(&client);
        }
        self.leave(client, name);
        true
    }

    /// `client` went away: it leaves every topic it was tracked in. Returns whether it
    /// was tracked anywhere.
    pub(crate) fn depart(&mut self, client: ClientId) -> bool {
        let Some(topics) = self.by_client.remove(&client) else {
            return false;
        };
        for name in topics {
            self.leave(client, name);
        }
        true
    }

    fn leave(&mut self, client: ClientId, name: std::sync::Arc<str>) {
        let Some((hash, members)) = self.by_topic.get_mut(&name) else {
            debug_assert!(false, "a tracked topic has no member map");
            return;
        };
        let hash = *hash;
        let removed = members.remove(&client);
        self.members -= usize::from(removed.is_some());
        let meta = removed.unwrap_or_default();
        if members.is_empty() {
            self.by_topic.remove(&name);
        }
        self.queue(PresenceChange {
            topic: name,
            hash,
            event: PresenceEvent::Leave,
            node: self.node,
            client,
            meta,
        });
    }

    /// Queues `change` for delivery, and hands a copy to the watcher.
    fn queue(&mut self, change: PresenceChange) {
        if let Some(watcher) = &self.watcher {
            if watcher.send(change.clone()).is_err() {
                self.watcher = None; // the bridge is gone
            }
        }
        self.outbox.push_back(change);
    }

    /// Starts handing every change to `watcher`, names this engine's members `node`,
    /// and returns every member now as (topic, client, meta): with the changes that
    /// follow, the whole table, none missed or doubled (both under this table's lock).
    /// The rename is queued for this engine's subscribers (see [`rename`](Self::rename)),
    /// not handed to the watcher: other engines never knew the old name.
    pub(crate) fn watch(
        &mut self,
        watcher: PresenceWatcher,
        node: NodeId,
    ) -> Vec<(std::sync::Arc<str>, ClientId, Bytes)> {
        self.watcher = Some(watcher);
        self.rename(node);
        self.by_topic
            .iter()
            .flat_map(|(topic, (_, members))| {
                members.iter().map(move |(client, meta)| {
                    (std::sync::Arc::clone(topic), *client, meta.clone())
                })
            })
            .collect()
    }

    /// Stops the watcher; members are this engine's alone again, named `NodeId(0)`
    /// (renamed with events, see [`rename`](Self::rename)).
    pub(crate) fn unwatch(&mut self) {
        self.watcher = None;
        self.rename(NodeId(0));
    }

    /// Names this engine's members `node` from now on, and queues, for every member, a
    /// leave under the old name then a join under the new one: a subscriber that keeps
    /// its list from the events (or from `subscribe_with_members` and the events) holds
    /// the new names and none of the old, and one that keys members by client alone
    /// still lists each (the leave comes first). Under the table's lock with the name
    /// itself, so a
    /// subscriber's snapshot (taken under the same lock) has either the old names and
    /// then these events, or the new names and none of them.
    ///
    /// Two changes per member, for the rare attach and detach: O(members) here and in
    /// the delivery that follows.
    fn rename(&mut self, node: NodeId) {
        let old = std::mem::replace(&mut self.node, node);
        if old == node {
            return;
        }
        for (topic, (hash, members)) in &self.by_topic {
            for (client, meta) in members {
                for (event, node) in [(PresenceEvent::Leave, old), (PresenceEvent::Join, node)] {
                    self.outbox.push_back(PresenceChange {
                        topic: std::sync::Arc::clone(topic),
                        hash: *hash,
                        event,
                        node,
                        client: *client,
                        meta: meta.clone(),
                    });
                }
            }
        }
    }

    /// How many members `topic` has: O(1).
    pub(crate) fn count(&self, topic: &str) -> usize {
        self.by_topic
            .get(topic)
            .map_or(0, |(_, members)| members.len())
    }

    /// This engine's node id for its members.
    pub(crate) fn node(&self) -> NodeId {
        self.node
    }

    /// Calls `each` with the members of `topic` (client and metadata), ordered by
    /// client id.
    pub(crate) fn for_each_member(&self, topic: &str, mut each: impl FnMut(ClientId, &Bytes)) {
        if let Some((_, members)) = self.by_topic.get(topic) {
            for (client, meta) in members {
                each(*client, meta);
            }
        }
    }

    /// (client, topic) pairs tracked now.
    pub(crate) fn members(&self) -> usize {
        self.members
    }

    /// The oldest undelivered change.
    pub(crate) fn next_change(&mut self) -> Option<PresenceChange> {
        self.outbox.pop_front()
    }

    /// Forgets everyone, without events (the engine closed). Drops the watcher: a bridge
    /// sees the engine gone.
    pub(crate) fn clear(&mut self) {
        *self = Self::default();
    }
}

//! Presence across hosts: the bridge's side of the replicated member lists.
//!
//! Each bridged engine owns its members; the bridge mirrors them ([`Local`]) from the
//! engine's presence changes and tells the other engines with presence messages (deltas,
//! heartbeats, whole states on request, a goodbye), and keeps every other engine's
//! members ([`Replica`]) from theirs. [`PubSub::list`](crate::PubSub::list) and
//! [`count_members`](crate::PubSub::count_members) read the replica through the
//! engine's remote-members slot; the joins and leaves the replica makes are delivered to
//! this engine's subscribers of the topic as Presence frames naming the member's node.
//! The protocol and what it promises are in `presence::replica`.
//!
//! Two threads change the replica: the receiving thread (messages from other engines)
//! and the publisher thread (a node silent too long is taken as down). Each does it
//! holding `turn` from the change to the delivery of its events, so events reach
//! subscribers in the order the replica changed; `list` takes only the state's lock,
//! briefly. Both locks are `crate::sync`'s, so the loom models of presence across hosts
//! (`loom-tests/tests/presence.rs`) see them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use crossbeam_channel::Sender;

use crate::engine::presence_table::PresenceChange;
use crate::face::remote_members::RemoteMembers;
use crate::presence::replica::{Change, Event, Local, Replica, Timing};
use crate::sync::{lock, Mutex};
use crate::transport::presence::{encode_presence, PresenceEvent};
use crate::transport::presence_sync::Message;
use crate::vocab::client::ClientId;
use crate::vocab::member::Member;
use crate::vocab::node::NodeId;

/// Delivers a Presence frame to this engine's subscribers of a topic; `false` once the
/// engine is gone.
pub(crate) type Deliver = Box<dyn Fn(&str, &Bytes) -> bool + Send + Sync>;

/// This node's mirror of its own members and its replica of everyone else's.
struct State {
    local: Local,
    replica: Replica,
}

/// The presence exchange of one bridge, shared by its publisher and receiving threads
/// and the engine's remote-members slot.
pub(crate) struct Exchange {
    state: Mutex<State>,
    /// Held from a change of the replica to the delivery of its events.
    turn: Mutex<()>,
    /// Wakes the publisher thread when a received message calls for an answer (a state
    /// asked for, a state to ask for).
    kick: Sender<()>,
    deliver: Deliver,
    /// How often a node sends a heartbeat.
    pub(crate) heartbeat: Duration,
}

impl Exchange {
    /// An exchange for node `me`, whose engine tracks `members` now.
    pub(crate) fn new(
        me: NodeId,
        timing: Timing,
        heartbeat: Duration,
        members: Vec<(Arc<str>, ClientId, Bytes)>,
        kick: Sender<()>,
        deliver: Deliver,
    ) -> Self {
        let mut local = Local::new(me);
        for (topic, client, meta) in members {
            local.track(topic, client.as_u64(), meta);
        }
        Self {
            state: Mutex::new(State {
                local,
                replica: Replica::new(me, timing),
            }),
            turn: Mutex::new(()),
            kick,
            deliver,
            heartbeat,
        }
    }

    /// Mirrors changes of this engine's members (from its presence watcher).
    pub(crate) fn local_changes(&self, changes: impl IntoIterator<Item = PresenceChange>) {
        let mut state = lock(&self.state);
        for change in changes {
            match change.event {
                PresenceEvent::Join => {
                    state
                        .local
                        .track(change.topic, change.client.as_u64(), change.meta);
                }
                PresenceEvent::Leave => {
                    state.local.untrack(&change.topic, change.client.as_u64());
                }
            }
        }
    }

    /// What to send now: the changes not sent yet, this node's state if someone asked
    /// for it, a request for states this node is missing, and a heartbeat if `beat`.
    pub(crate) fn outgoing(&self, now: Instant, beat: bool) -> Vec<Message> {
        let mut state = lock(&self.state);
        let mut out = Vec::new();
        out.extend(state.local.take_delta());
        out.extend(state.local.take_state());
        out.extend(state.replica.request(now));
        if beat {
            out.push(state.local.heartbeat());
        }
        out
    }

    /// A request for every node's state: what an engine that just attached sends.
    pub(crate) fn hello(&self) -> Message {
        Message::Request {
            origin: lock(&self.state).local.node(),
            of: Vec::new(),
        }
    }

    /// A heartbeat at this node's current version (takes nothing pending).
    #[cfg_attr(not(feature = "nats"), allow(dead_code))] // NATS, on (re)connection
    pub(crate) fn heartbeat(&self) -> Message {
        lock(&self.state).local.heartbeat()
    }

    /// This node's goodbye.
    pub(crate) fn goodbye(&self) -> Message {
        lock(&self.state).local.goodbye()
    }

    /// Applies a message from another node and delivers the changes it makes. Returns
    /// `false` once the engine is gone.
    pub(crate) fn receive(&self, message: &Message, now: Instant) -> bool {
        let _turn = lock(&self.turn);
        let mut events = Vec::new();
        let answer = {
            let mut state = lock(&self.state);
            let asked = state.local.on_message(message);
            state.replica.receive(message, now, &mut events);
            asked || matches!(message, Message::Heartbeat { .. } | Message::Delta { .. })
        };
        if answer {
            // Full: the publisher thread is woken already.
            let _ = self.kick.try_send(());
        }
        self.deliver_all(&events)
    }

    /// Takes silent nodes as down (their members leave) and forgets those silent for
    /// longer, delivering the leaves. Returns `false` once the engine is gone.
    pub(crate) fn tick(&self, now: Instant) -> bool {
        let _turn = lock(&self.turn);
        let mut events = Vec::new();
        lock(&self.state).replica.tick(now, &mut events);
        self.deliver_all(&events)
    }

    /// The bridge is detaching: every other engine's member leaves this engine's list
    /// and its subscribers are told.
    pub(crate) fn forget_all(&self) {
        let _turn = lock(&self.turn);
        let events: Vec<Event> = {
            let state = lock(&self.state);
            state
                .replica
                .all()
                .map(|(topic, origin, client, meta)| Event {
                    change: Change::Leave,
                    topic: Arc::clone(topic),
                    origin,
                    client,
                    meta: meta.clone(),
                })
                .collect()
        };
        let mut state = lock(&self.state);
        state.replica = Replica::new(state.local.node(), state.replica.timing());
        drop(state);
        self.deliver_all(&events);
    }

    fn deliver_all(&self, events: &[Event]) -> bool {
        for event in events {
            let kind = match event.change {
                Change::Join => PresenceEvent::Join,
                Change::Leave => PresenceEvent::Leave,
            };
            let Ok(frame) =
                encode_presence(&event.topic, kind, event.origin, event.client, &event.meta)
            else {
                continue;
            };
            if !(self.deliver)(&event.topic, &frame) {
                return false;
            }
        }
        true
    }
}

impl RemoteMembers for Exchange {
    fn list(&self, topic: &str, out: &mut Vec<Member>) {
        let state = lock(&self.state);
        out.reserve(state.replica.count(topic));
        out.extend(
            state
                .replica
                .list(topic)
                .map(|(node, client, meta)| Member {
                    node,
                    client: ClientId::from_raw(client),
                    meta: meta.clone(),
                }),
        );
    }

    fn count(&self, topic: &str) -> usize {
        lock(&self.state).replica.count(topic)
    }

    fn in_turn(&self, body: &mut dyn FnMut()) {
        let _turn = lock(&self.turn);
        body();
    }
}

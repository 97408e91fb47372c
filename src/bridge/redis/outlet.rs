//! The Redis outlet: the publisher thread's connection. A batch goes out as one
//! pipeline of `PUBLISH`es: one round trip for up to a batch of frames.
//!
//! Under [`ChannelLayout::PerTopic`](crate::bridge::ChannelLayout::PerTopic) it also
//! passes interest changes on to the subscriber thread, and wakes it (it is blocked
//! reading its connection) with an empty message on this node's wake channel, so a
//! topic's first local subscriber gets the node subscribed in about a round trip.

use std::sync::Arc;

use crossbeam_channel::Sender;

use super::Settings;
use crate::bridge::backend::{Failure, Outlet};
use crate::bridge::batch::Batch;
use crate::bridge::interest::InterestChange;
use crate::vocab::trace;

/// The publisher thread's connection to Redis.
pub(crate) struct RedisOutlet {
    pub(crate) settings: Arc<Settings>,
    pub(crate) connection: Option<redis::Connection>,
    /// Per-topic layout: where interest changes go on to (the subscriber thread).
    pub(crate) to_subscriber: Option<Sender<Vec<InterestChange>>>,
    /// Whether a connection was up before (the next one is a reconnection).
    pub(crate) was_up: bool,
}

impl RedisOutlet {
    /// The connection failed: drop it (the publisher thread reconnects later).
    fn lost(&mut self, error: &redis::RedisError) {
        trace::bridge_lost("redis", "publisher", error);
        self.connection = None;
    }
}

impl Outlet for RedisOutlet {
    fn is_connected(&self) -> bool {
        self.connection.is_some()
    }

    fn connect(&mut self) -> bool {
        self.connection = self.settings.connect().ok();
        if self.connection.is_some() {
            trace::bridge_up("redis", "publisher", self.was_up);
            self.was_up = true;
        }
        self.connection.is_some()
    }

    fn publish(&mut self, batch: &mut Batch) -> Result<u64, Failure> {
        let Some(con) = self.connection.as_mut() else {
            return Err(Failure::NotSent);
        };
        let mut pipe = redis::pipe();
        for (topic, envelope) in batch.iter() {
            pipe.cmd("PUBLISH")
                .arg(self.settings.channel_for(topic))
                .arg(envelope)
                .ignore();
        }
        match pipe.exec(con) {
            Ok(()) => Ok(0),
            Err(e) => {
                // Some may have reached Redis; none is retried, so none arrives twice.
                self.lost(&e);
                Err(Failure::Unknown)
            }
        }
    }

    fn follow(&mut self, delta: Vec<InterestChange>) {
        let Some(to_subscriber) = &self.to_subscriber else {
            return;
        };
        if delta.is_empty() || to_subscriber.send(delta).is_err() {
            return;
        }
        if let Some(con) = self.connection.as_mut() {
            let wake = redis::cmd("PUBLISH")
                .arg(&self.settings.wake)
                .arg(&b""[..])
                .exec(con);
            if let Err(e) = wake {
                self.lost(&e);
            }
        }
        // Disconnected: the subscriber picks the changes up within one read timeout.
    }
}

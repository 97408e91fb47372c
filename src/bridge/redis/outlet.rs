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

/// The publisher thread's connection to Redis.
pub(crate) struct RedisOutlet {
    pub(crate) settings: Arc<Settings>,
    pub(crate) connection: Option<redis::Connection>,
    /// Per-topic layout: where interest changes go on to (the subscriber thread).
    pub(crate) to_subscriber: Option<Sender<Vec<InterestChange>>>,
}

impl Outlet for RedisOutlet {
    fn is_connected(&self) -> bool {
        self.connection.is_some()
    }

    fn connect(&mut self) -> bool {
        self.connection = self.settings.connect().ok();
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
            Err(_) => {
                // Some may have reached Redis; none is retried, so none arrives twice.
                self.connection = None;
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
            if wake.is_err() {
                self.connection = None;
            }
        }
        // Disconnected: the subscriber picks the changes up within one read timeout.
    }
}

//! The Redis backend (feature `redis`): Redis pub/sub channels, one blocking connection
//! for the publisher thread and one for a subscriber thread.
//!
//! Channel names: the namespace itself under
//! `ChannelLayout::Namespace`;
//! `NAMESPACE:t:TOPIC` per topic, `NAMESPACE:c` (the control channel: presence, which
//! every node subscribes to) and `NAMESPACE:w:NODE` (the wake channel) under
//! `ChannelLayout::PerTopic`.

mod outlet;
mod subscriber;

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::Receiver;

use super::backend::{Backend, Feed};
use super::inbound::Inbound;
use super::interest::Interest;
use super::{BridgeError, ChannelLayout};
use crate::transport::envelope::NodeId;
use outlet::RedisOutlet;
use subscriber::Subscriber;

/// What both Redis threads share: where Redis is and how to talk to it.
pub(crate) struct Settings {
    client: redis::Client,
    namespace: String,
    layout: ChannelLayout,
    /// Per-topic layout: this node's wake channel, `NAMESPACE:w:NODE`.
    pub(crate) wake: String,
    pub(crate) backoff_min: Duration,
    pub(crate) backoff_max: Duration,
    /// The subscriber connection's read timeout.
    pub(crate) read_timeout: Duration,
    pub(crate) ping_interval: Duration,
    /// Connect timeout; the publisher's read and write timeout.
    pub(crate) io_timeout: Duration,
}

/// The Redis settings a [`BridgeBuilder`](super::BridgeBuilder) carries.
pub(crate) struct RedisBackend {
    pub(crate) settings: Arc<Settings>,
}

impl RedisBackend {
    /// Checks `url` and makes the settings.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        url: &str,
        namespace: &str,
        node: NodeId,
        layout: ChannelLayout,
        backoff: (Duration, Duration),
        read_timeout: Duration,
        ping_interval: Duration,
        io_timeout: Duration,
    ) -> Result<Self, BridgeError> {
        if namespace.contains(':') {
            return Err(BridgeError::InvalidConfig(
                "a Redis namespace must not contain ':'",
            ));
        }
        let client =
            redis::Client::open(url).map_err(|e| BridgeError::InvalidUrl(e.to_string()))?;
        Ok(Self {
            settings: Arc::new(Settings {
                client,
                namespace: namespace.to_owned(),
                layout,
                wake: format!("{namespace}:w:{node}"),
                backoff_min: backoff.0,
                backoff_max: backoff.1,
                read_timeout,
                ping_interval,
                io_timeout,
            }),
        })
    }
}

impl Backend for RedisBackend {
    type Outlet = RedisOutlet;

    fn routes_by_interest(&self) -> bool {
        self.settings.layout == ChannelLayout::PerTopic
    }

    fn start<M: ?Sized + 'static>(
        self,
        inbound: Inbound<M>,
        interest: Vec<Interest>,
        stop: Receiver<()>,
        _feed: Option<Feed>,
    ) -> Result<(RedisOutlet, Vec<JoinHandle<()>>), BridgeError> {
        let (to_subscriber, changes) = if self.routes_by_interest() {
            let (tx, rx) = crossbeam_channel::unbounded();
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        let topics = interest
            .into_iter()
            .filter_map(|i| match i {
                Interest::Topic(topic) => Some(topic),
                Interest::Pattern(_) => None,
            })
            .collect();
        let subscriber = Subscriber {
            settings: Arc::clone(&self.settings),
            counters: Arc::clone(&inbound.counters),
            inbound,
            stop,
            changes,
            topics,
        };
        let thread = std::thread::Builder::new()
            .name("fanout-bridge-sub".to_owned())
            .spawn(move || subscriber.run())
            .map_err(BridgeError::Spawn)?;
        let mut outlet = RedisOutlet {
            settings: self.settings,
            connection: None,
            to_subscriber,
            was_up: false,
        };
        use super::backend::Outlet as _;
        outlet.connect();
        Ok((outlet, vec![thread]))
    }
}

impl Settings {
    /// The channel `topic`'s envelopes go to; the control channel for the empty topic
    /// (presence messages, which every node receives).
    pub(crate) fn channel_for(&self, topic: &str) -> Vec<u8> {
        match self.layout {
            ChannelLayout::Namespace => self.namespace.as_bytes().to_vec(),
            ChannelLayout::PerTopic if topic.is_empty() => self.control_channel(),
            ChannelLayout::PerTopic => {
                let mut channel = Vec::with_capacity(self.namespace.len() + 3 + topic.len());
                channel.extend_from_slice(self.namespace.as_bytes());
                channel.extend_from_slice(b":t:");
                channel.extend_from_slice(topic.as_bytes());
                channel
            }
        }
    }

    /// The channel every node subscribes to whatever its topics: the namespace's, or
    /// `NAMESPACE:c` under the per-topic layout.
    pub(crate) fn control_channel(&self) -> Vec<u8> {
        match self.layout {
            ChannelLayout::Namespace => self.namespace.as_bytes().to_vec(),
            ChannelLayout::PerTopic => format!("{}:c", self.namespace).into_bytes(),
        }
    }

    /// Whether `channel` is where `topic`'s envelopes go.
    pub(crate) fn is_channel_of(&self, channel: &str, topic: &str) -> bool {
        match self.layout {
            ChannelLayout::Namespace => channel == self.namespace,
            ChannelLayout::PerTopic => {
                channel
                    .strip_prefix(self.namespace.as_str())
                    .and_then(|rest| rest.strip_prefix(":t:"))
                    == Some(topic)
            }
        }
    }

    /// A new connection for the publisher (read timeout `io_timeout`).
    pub(crate) fn connect(&self) -> redis::RedisResult<redis::Connection> {
        self.connect_with_read_timeout(self.io_timeout)
    }

    /// A new connection whose reads time out after `read_timeout`.
    pub(crate) fn connect_with_read_timeout(
        &self,
        read_timeout: Duration,
    ) -> redis::RedisResult<redis::Connection> {
        let con = self.client.get_connection_with_timeout(self.io_timeout)?;
        con.set_read_timeout(Some(read_timeout))?;
        con.set_write_timeout(Some(self.io_timeout))?;
        Ok(con)
    }
}

//! The NATS backend (feature `nats`): one `async-nats` connection per bridge, on the
//! bridge's own io thread and runtime, subject per topic, NATS wildcards for patterns.
//!
//! Subjects: see [`subject`]. The connection sets `no_echo`, so the server never sends
//! a node its own frames; it subscribes to the subject of every topic and pattern its
//! local clients use, so NATS routes each frame only to the nodes (and, in a cluster,
//! the servers) that serve it, and to the namespace's control subject, where presence
//! messages go to every node.

mod io;
mod outlet;
pub(crate) mod subject;

use std::str::FromStr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use async_nats::ServerAddr;
use crossbeam_channel::Receiver;

use super::backend::{Backend, Feed};
use super::inbound::Inbound;
use super::interest::Interest;
use super::BridgeError;
use crate::transport::envelope::NodeId;
use io::{Connect, Io};
use outlet::NatsOutlet;
use subject::{valid_namespace, Subjects};

/// Longest subject published or subscribed to, in bytes: below the NATS server's
/// default `max_control_line` (4 KiB), which closes a connection that sends a longer
/// one. Frames of topics with longer subjects are dropped and counted.
pub(crate) const MAX_SUBJECT_LEN: usize = 4000;

/// The NATS settings a [`BridgeBuilder`](super::BridgeBuilder) carries.
pub(crate) struct NatsBackend {
    pub(crate) connect: Connect,
    pub(crate) subjects: Subjects,
}

impl NatsBackend {
    /// Checks `urls` (comma-separated `nats://host:port`, the servers of one cluster)
    /// and the namespace.
    pub(crate) fn new(
        urls: &str,
        namespace: &str,
        separator: char,
        node: NodeId,
        backoff: (Duration, Duration),
        ping_interval: Duration,
        io_timeout: Duration,
    ) -> Result<Self, BridgeError> {
        if !valid_namespace(namespace) {
            return Err(BridgeError::InvalidConfig(
                "a NATS namespace is one or more `.`-separated tokens without whitespace, \
                 control characters, `*`, `>` or `%`",
            ));
        }
        let servers = urls
            .split(',')
            .map(|url| ServerAddr::from_str(url.trim()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| BridgeError::InvalidUrl(e.to_string()))?;
        Ok(Self {
            connect: Connect {
                servers,
                backoff,
                io_timeout,
                ping_interval,
                subscription_capacity: 1 << 16,
                name: format!("fanout-bridge-{node}"),
            },
            subjects: Subjects::new(namespace, separator),
        })
    }
}

impl Backend for NatsBackend {
    type Outlet = NatsOutlet;

    fn routes_by_interest(&self) -> bool {
        true
    }

    fn drains_queue(&self) -> bool {
        true
    }

    fn start<M: ?Sized + 'static>(
        self,
        inbound: Inbound<M>,
        interest: Vec<Interest>,
        _stop: Receiver<()>,
        feed: Option<Feed>,
    ) -> Result<(NatsOutlet, Vec<JoinHandle<()>>), BridgeError> {
        let Some(feed) = feed else {
            return Err(BridgeError::InvalidConfig(
                "the NATS backend drains the queue",
            ));
        };
        // The io thread stops when the outlet (the publisher thread's) is dropped.
        let (to_io, changes) = tokio::sync::mpsc::unbounded_channel();
        let (client_tx, client_rx) = crossbeam_channel::bounded(1);
        let io = Io {
            connect: self.connect,
            subjects: self.subjects,
            counters: Arc::clone(&inbound.counters),
            inbound,
            interest,
            changes,
            client: client_tx,
            feed,
        };
        let thread = std::thread::Builder::new()
            .name("fanout-bridge-nats".to_owned())
            .spawn(move || io.run())
            .map_err(BridgeError::Spawn)?;
        // With retry-on-initial-connect the client comes back at once, up or not.
        let Ok(client) = client_rx.recv() else {
            let _ = thread.join();
            return Err(BridgeError::Spawn(std::io::Error::other(
                "the NATS io thread could not start its runtime or client",
            )));
        };
        Ok((NatsOutlet { client, to_io }, vec![thread]))
    }
}

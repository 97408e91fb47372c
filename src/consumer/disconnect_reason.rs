//! [`DisconnectReason`]: why a consumer's channel ended, read off its sink's status.

use crate::sink::Status;

/// Why a [`Channel`](crate::Channel) stopped receiving.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DisconnectReason {
    /// It was unsubscribed or unregistered.
    Unsubscribed,
    /// Its queue was full under [`OverflowPolicy::Disconnect`](crate::OverflowPolicy::Disconnect).
    Overflow,
    /// The engine shut down.
    Shutdown,
    /// Cloning a message into its queue (or, for a conflating channel, computing its
    /// key) panicked.
    Panicked,
}

impl DisconnectReason {
    /// What a consumer is told about a sink in `status`: `None` while it is open.
    pub(crate) fn of(status: Status) -> Option<Self> {
        match status {
            Status::Open => None,
            Status::Unsubscribed | Status::ConsumerGone => Some(DisconnectReason::Unsubscribed),
            Status::Overflow => Some(DisconnectReason::Overflow),
            Status::Shutdown => Some(DisconnectReason::Shutdown),
            Status::Panicked => Some(DisconnectReason::Panicked),
        }
    }
}

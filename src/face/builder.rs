//! [`Builder`]: engine settings, shared by both faces.

use std::marker::PhantomData;

use crate::engine::EngineConfig;
use crate::vocab::policy::ChannelConfig;

/// Settings for a new engine: `PubSub::builder()` or `Broadcaster::builder()`, then
/// `build()`.
///
/// ```
/// use fanout::{ChannelConfig, OverflowPolicy, PubSub};
///
/// let pubsub = PubSub::<str>::builder()
///     .command_capacity(16_384)
///     .thread_name("chat-registry")
///     .max_topic_len(64)
///     .default_channel(ChannelConfig::new(256, OverflowPolicy::DropOldest))
///     .build()?;
/// # Ok::<(), fanout::StartError>(())
/// ```
#[must_use = "a builder does nothing until `build` is called"]
pub struct Builder<E> {
    pub(crate) config: EngineConfig,
    face: PhantomData<fn() -> E>,
}

impl<E> Builder<E> {
    pub(crate) fn new() -> Self {
        Self {
            config: EngineConfig::default(),
            face: PhantomData,
        }
    }

    /// Capacity of the bounded queue where callers post changes while another caller holds
    /// the writer role (default 4096). A
    /// caller mutating while it is full blocks until the writer catches up; broadcasts
    /// never touch it.
    pub fn command_capacity(mut self, capacity: usize) -> Self {
        self.config.command_capacity = capacity;
        self
    }

    /// Name of the engine's background thread, which removes dead sinks and serves
    /// changes a combiner left behind (default `fanout-janitor`).
    pub fn thread_name(mut self, name: impl Into<String>) -> Self {
        self.config.thread_name = name.into();
        self
    }

    /// Longest topic name accepted, in UTF-8 bytes (default 256, at most 65,535).
    pub fn max_topic_len(mut self, max: usize) -> Self {
        self.config.max_topic_len = max;
        self
    }

    /// Capacity and overflow policy of channels made without an explicit configuration
    /// (default: 1024 frames, [`DropNewest`](crate::OverflowPolicy::DropNewest)).
    pub fn default_channel(mut self, config: ChannelConfig) -> Self {
        self.config.default_channel = config;
        self
    }
}

impl<E> std::fmt::Debug for Builder<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Builder")
            .field("config", &self.config)
            .finish()
    }
}

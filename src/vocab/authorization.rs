//! The join authorization hook: who may subscribe to what.
//!
//! A [`PubSub`](crate::PubSub) built with
//! [`Builder::can_subscribe`](crate::Builder::can_subscribe) asks the hook before every
//! subscription is applied — [`subscribe`](crate::PubSub::subscribe), each
//! [`Mutation::Subscribe`](crate::Mutation::Subscribe) of an
//! [`apply`](crate::PubSub::apply) batch, exact topics and wildcard patterns alike. A
//! pattern is checked as written (`room.*`), not per topic it would cover, so a hook that
//! guards a topic must also refuse the patterns that match it (see [`Denied`]). A
//! denial changes nothing, comes back as [`Error::Denied`](crate::Error::Denied) with the
//! hook's reason, and is counted in [`Stats::denied`](crate::Stats::denied).
//!
//! The hook runs on the subscribing thread, before the change reaches the writer, so it
//! may take its time (look up a session, say) without holding up other mutations. A hook
//! that panics is a denial, not a crash.

use std::borrow::Cow;
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use crate::vocab::client::ClientId;

/// A refusal from the [`can_subscribe`](crate::Builder::can_subscribe) hook, with its
/// reason.
///
/// The hook is asked before every subscription is applied — exact topics and wildcard
/// patterns, from `subscribe` and from `apply` batches. A pattern is checked as written
/// (`inbox.*`), not per topic it would cover, so a hook that guards a topic must also
/// refuse the patterns that match it, as this one does by allowing only what it knows.
/// A denial changes nothing and is counted in [`Stats::denied`](crate::Stats::denied); a
/// hook that panics is a denial.
///
/// ```
/// use fanout::{Denied, Error, PubSub};
///
/// // Clients may join rooms, and only their own inbox.
/// let pubsub = PubSub::<str>::builder()
///     .can_subscribe(|client, subscription| {
///         let own_inbox = format!("inbox.{}", client.as_u64());
///         if subscription.starts_with("room.") || subscription == own_inbox {
///             Ok(())
///         } else {
///             Err(Denied::new("not your inbox"))
///         }
///     })
///     .build()?;
/// let alice = pubsub.generate_client_id();
/// pubsub.register(alice, |_| {})?;
/// pubsub.subscribe(alice, "room.rust")?;
/// pubsub.subscribe(alice, &*format!("inbox.{}", alice.as_u64()))?;
/// assert!(matches!(pubsub.subscribe(alice, "inbox.999"), Err(Error::Denied(_))));
/// assert!(matches!(pubsub.subscribe(alice, "inbox.*"), Err(Error::Denied(_))));
/// assert_eq!(pubsub.stats().denied, 2);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denied {
    reason: Cow<'static, str>,
}

impl Denied {
    /// A denial for `reason` (shown to whoever handles the error).
    pub fn new(reason: impl Into<Cow<'static, str>>) -> Self {
        Self {
            reason: reason.into(),
        }
    }

    /// Why the subscription was refused.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

impl fmt::Display for Denied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "subscription denied: {}", self.reason)
    }
}

impl std::error::Error for Denied {}

/// The signature of the hook.
type HookFn = dyn Fn(ClientId, &str) -> Result<(), Denied> + Send + Sync;

/// The hook, as the engine's configuration keeps it.
#[derive(Clone)]
pub(crate) struct SubscribeHook(Arc<HookFn>);

impl fmt::Debug for SubscribeHook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SubscribeHook")
    }
}

impl SubscribeHook {
    pub(crate) fn new(
        hook: impl Fn(ClientId, &str) -> Result<(), Denied> + Send + Sync + 'static,
    ) -> Self {
        Self(Arc::new(hook))
    }

    /// Asks the hook whether `client` may subscribe to `subscription`. A panic is a denial.
    pub(crate) fn check(&self, client: ClientId, subscription: &str) -> Result<(), Denied> {
        match catch_unwind(AssertUnwindSafe(|| (self.0)(client, subscription))) {
            Ok(answer) => answer,
            Err(panic) => {
                // Dropping a panic payload can itself panic; leak it instead.
                std::mem::forget(panic);
                Err(Denied::new("the can_subscribe hook panicked"))
            }
        }
    }
}

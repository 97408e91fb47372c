//! Sinks: where a broadcast hands each subscriber its frame.
//!
//! A sink is a callback (`Fn(&T)`, called on the publisher's thread with a reference to
//! the one shared frame), a bounded channel (the frame is cloned into the queue — one
//! atomic increment for `Bytes`) or a conflating channel (at most one pending frame per
//! key, see [`conflating_sink`]) or, with the `async` feature, a bounded channel whose
//! consumer can be awaited (see `sink/async_channel_sink.rs`). A [`Sink`] is a gate byte
//! and a boxed body (a trait object: the callback, or a channel's parts, whose flavours
//! are a private enum); each flavour lives in its own file.
//!
//! Every sink has an open/closed [`SinkStatus`], which the writer closes when the
//! subscriber is removed. A queue-backed sink shares it, with a count of dropped
//! frames, as a [`SinkState`] with its consumer ([`Channel`](crate::Channel)), and keeps
//! an inline copy of "open" as its gate; a callback, which nobody else observes and which
//! never drops a frame, keeps only the status byte, as its gate.

#[cfg(feature = "async")]
pub(crate) mod async_channel_sink;
mod callback_sink;
mod channel_sink;
pub(crate) mod conflating_sink;
mod key_index;
mod state;

#[cfg(feature = "async")]
pub(crate) use async_channel_sink::AsyncChannelSink;
pub(crate) use callback_sink::CallbackSink;
pub(crate) use channel_sink::{ChannelSink, SinkCloser};
pub(crate) use conflating_sink::{ConflatingSink, Pending};
pub(crate) use state::{SinkState, SinkStatus, Status};

use crate::sync::queue::Sender;
use crate::sync::Arc;
use crate::vocab::client::ClientId;
use crate::vocab::stats::DropCause;

/// What one delivery attempt did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Delivery {
    /// The sink took the frame.
    Delivered,
    /// The sink's policy dropped a frame (the new one, or an old one to make room);
    /// already counted on the sink.
    Dropped {
        /// How many frames were dropped by this attempt.
        frames: u64,
        /// Whether the new frame was still delivered (drop-oldest makes room for it).
        delivered: bool,
    },
    /// The sink is closed (unsubscribed, disconnected, consumer gone); nothing happened.
    Skipped,
    /// This attempt found the sink dead (its consumer left, or it overflowed under the
    /// disconnect policy) and closed it: the writer must be asked to prune it.
    Closed {
        /// Frames dropped by this attempt (the new frame, under the disconnect policy).
        dropped: u64,
    },
}

/// One subscriber's sink: its client, its gate (open callback, open channel, or
/// closed) and its body (the callback, or a channel's parts).
///
/// # Why a gate byte and a trait object, not a flavour `enum`
///
/// A delivery reads one byte, [`gate`](Self::gate), and tests it once: positive is an
/// open callback, whose body is then called through its vtable; 0 an open channel;
/// negative a closed sink. With the flavour as an enum (a callback variant with its own
/// status byte, a channel variant with an open flag), a callback delivery tested the
/// flavour's tag and then loaded and tested the status: two branches where one does
/// (with the walk's loop reshaped, 19 → 15 instructions per callback delivery,
/// `scripts/callgrind_floor.sh cb_fanout`; see `engine/delivery.rs`). The body is a
/// `Box<dyn Body<T>>` of the same 16 bytes the boxed callback took: for a callback its
/// `call` is the user's function (monomorphised into the vtable entry); for a channel
/// it gives the boxed parts, read only off the plain queue's hot path.
pub(crate) struct Sink<T> {
    /// The client it delivers to. Here (8 bytes of every sink) so that the writer's
    /// client table can be keyed by the sink's pointer alone: its entry is 24 bytes, not
    /// 32, and the table, between half and seven eighths full, holds 1.1–2.1 entries per
    /// client (at 1,000,000 callback clients, 8.8 bytes less per client in all;
    /// `benches/memory.rs`).
    id: ClientId,
    /// What a delivery checks, in one byte at the same place for every flavour. For a
    /// callback, its status ([`Status`] values: `Open` is 0), which nobody outside the
    /// engine observes and which a panic or a removal closes. For a channel, an inline
    /// copy of "open" ([`SinkStatus::CHANNEL_OPEN`] or [`SinkStatus::CHANNEL_CLOSED`]):
    /// `false` once the sink is closed for any reason (unsubscribed, overflow, shutdown,
    /// its consumer gone). Whoever closes the state closes this too ([`Sink::close`]); a
    /// queue's, an async channel's or a conflating channel's consumer, which holds only
    /// the state, does it through its [`SinkCloser`] when dropped. A channel's full
    /// status lives in its parts' [`SinkState`], shared with its consumer.
    gate: SinkStatus,
    /// The callback, or the channel's parts.
    body: Box<dyn Body<T> + Send + Sync>,
}

/// What a sink holds behind its gate.
pub(crate) trait Body<T> {
    /// Calls the callback with `item`. Only a callback's gate opens onto this: a channel's
    /// never reads as an open callback.
    fn call(&self, item: &T);

    /// A channel's parts; `None` for a callback. A virtual call: read off the plain
    /// queue's hot path only (a refused item, a conflating or async delivery, closing).
    fn channel(&self) -> Option<&ChannelParts<T>>;

    /// Wakes an async channel's consumer if it is parked (see
    /// [`Sink::wake_if_parked`]); nothing for any other flavour.
    #[cfg(feature = "async")]
    fn wake_if_parked(&self) {}
}

/// What a queue-backed sink keeps out of line: its flavour and the state it shares with
/// its consumer. Boxed (the sink's body), it costs every callback sink nothing; inline,
/// it made every sink 56 bytes instead of 40 when a callback's was 40 (16 bytes per
/// callback client, 1M clients in `benches/memory.rs`). A delivery to a plain queue
/// reads none of it: it checks the sink's gate and pushes through the copy of the
/// queue's sender its subscriber list keeps (`engine/recipient.rs`). The state, a
/// separate allocation, is read only when a queue refuses an item (or a conflating
/// channel drops one): checking it on every delivery was one more cache line, a miss nearly every time at 4,096
/// subscribers (benches/NOTES-2026-12.md, "Workload 2"). Conflating and async deliveries
/// reach these parts through the body's vtable (one more call, beside a mutex or a
/// fence).
pub(crate) struct ChannelParts<T> {
    kind: ChannelKind<T>,
    state: Arc<SinkState>,
}

impl<T: Send> Body<T> for ChannelParts<T> {
    fn call(&self, _: &T) {
        unreachable!("a channel's gate never reads as an open callback")
    }

    fn channel(&self) -> Option<&ChannelParts<T>> {
        Some(self)
    }

    #[cfg(feature = "async")]
    fn wake_if_parked(&self) {
        if let ChannelKind::Layered(LayeredKind::Async(sink)) = &self.kind {
            sink.wake_if_parked();
        }
    }
}

impl<T> ChannelParts<T> {
    /// The queue pushed to: a plain queue's, or an async channel's (whose push is the
    /// plain queue's); `None` for a conflating channel.
    fn queue(&self) -> Option<&ChannelSink<T>> {
        match &self.kind {
            ChannelKind::Queue(sink) => Some(sink),
            #[cfg(feature = "async")]
            ChannelKind::Layered(LayeredKind::Async(sink)) => Some(sink.queue()),
            ChannelKind::Layered(_) => None,
        }
    }
}

/// The queue-backed flavours, one level down. With three variants side by side the
/// broadcast walk spent more instructions decoding the enum on every delivery
/// (`scripts/callgrind_floor.sh`: 24–25 instead of 20 per callback delivery, 163 instead
/// of 153 per channel delivery); nested, a callback delivery is back to 20 and a channel
/// delivery costs 159. (A plain queue's delivery no longer decodes it: it pushes through
/// the subscriber list's sender; see [`Sink::deliver`].)
///
/// For the same reason the plain queue stays alone on one side of a two-way choice and
/// the flavours layered on a queue sit one level further down: with the async flavour
/// as a third variant here, a channel delivery cost 163 instead of 159 (measured with
/// `FEATURES=async`); the conflating and async flavours pay the extra decode instead,
/// beside a mutex (conflating) or a fence (async).
enum ChannelKind<T> {
    Queue(ChannelSink<T>),
    Layered(LayeredKind<T>),
}

/// Queue flavours that add something of their own around a queue.
enum LayeredKind<T> {
    /// A table of the latest item per pending key.
    Conflating(ConflatingSink<T>),
    /// A waker slot. Boxed: inline, it would make `Sink` (every callback sink included)
    /// larger; an async delivery pays one more pointer load.
    #[cfg(feature = "async")]
    Async(Box<AsyncChannelSink<T>>),
}

impl<T: Clone> Sink<T> {
    /// Client `id`'s callback sink.
    pub(crate) fn callback(id: ClientId, sink: CallbackSink<T>) -> Self {
        Self {
            id,
            gate: SinkStatus::new(),
            body: sink.into_body(),
        }
    }

    /// A queue-backed sink for client `id`: open, with `kind` and `state` as its parts.
    fn channel_of(id: ClientId, kind: ChannelKind<T>, state: Arc<SinkState>) -> Self
    where
        T: Send + 'static,
    {
        Self {
            id,
            gate: SinkStatus::channel_open(),
            body: Box::new(ChannelParts { kind, state }),
        }
    }

    /// Client `id`'s queue sink.
    pub(crate) fn channel(id: ClientId, sink: ChannelSink<T>, state: Arc<SinkState>) -> Self
    where
        T: Send + 'static,
    {
        Self::channel_of(id, ChannelKind::Queue(sink), state)
    }

    /// Client `id`'s conflating sink.
    pub(crate) fn conflating(id: ClientId, sink: ConflatingSink<T>, state: Arc<SinkState>) -> Self
    where
        T: Send + 'static,
    {
        Self::channel_of(
            id,
            ChannelKind::Layered(LayeredKind::Conflating(sink)),
            state,
        )
    }

    /// Client `id`'s async channel sink.
    #[cfg(feature = "async")]
    pub(crate) fn async_channel(
        id: ClientId,
        sink: AsyncChannelSink<T>,
        state: Arc<SinkState>,
    ) -> Self
    where
        T: Send + 'static,
    {
        Self::channel_of(
            id,
            ChannelKind::Layered(LayeredKind::Async(Box::new(sink))),
            state,
        )
    }

    /// Hands `item` to this sink. `queue` is the copy of a plain queue's sender the
    /// subscriber list keeps (see `engine/recipient.rs`): the delivery pushes through it,
    /// so the queue's address does not wait for this sink's line. By reference, so that
    /// a callback's delivery does not read it: as an `Option<&Sender>` made by the
    /// caller, its tag was loaded before the gate, on every delivery. May panic only if a
    /// user callback (or `T::clone`) panics; the engine's broadcast loop catches that.
    /// Always inlined into the walk; the channel flavour's body stays a call.
    #[inline(always)]
    pub(crate) fn deliver(&self, item: &T, queue: &Option<Sender<T>>) -> Delivery {
        // One load and one compare decide a callback delivery (Acquire: free on x86, and
        // what a channel's check needs). A panic closes a callback while it is still in
        // the snapshot; removal closes it after taking it out, so only a broadcast
        // already in flight can see it closed that way (and skips it).
        let gate = self.gate();
        if gate > 0 {
            self.call(item);
            return Delivery::Delivered;
        }
        self.deliver_past_gate(gate, item, queue)
    }

    /// The sink's gate: positive for an open callback (see [`SinkStatus::gate`]). The
    /// walk reads it itself, to give the callback's call a loop step of its own.
    #[inline(always)]
    pub(crate) fn gate(&self) -> i8 {
        self.gate.gate()
    }

    /// Calls an open callback (one whose [`gate`](Self::gate) is positive).
    #[inline(always)]
    pub(crate) fn call(&self, item: &T) {
        self.body.call(item);
    }

    /// [`deliver`](Self::deliver) once the gate, `gate`, is not an open callback's.
    #[inline(always)]
    pub(crate) fn deliver_past_gate(
        &self,
        gate: i8,
        item: &T,
        queue: &Option<Sender<T>>,
    ) -> Delivery {
        // The same flags tell an open channel (0) from a closed sink (negative).
        if gate != SinkStatus::CHANNEL_OPEN {
            return Delivery::Skipped;
        }
        // A plain queue: nothing of the sink but the gate is read on the way in; its
        // boxed parts only if the queue refuses the item. Under loom, whose `Arc` has no
        // `Weak` for the consumer to close the gate with, a queue checks the state as
        // well.
        if let Some(tx) = queue {
            if !cfg!(loom) || self.body.channel().is_some_and(|p| p.state.is_open()) {
                return ChannelSink::send_via(tx, item, self);
            }
            return Delivery::Skipped;
        }
        let Some(parts) = self.body.channel() else {
            return Delivery::Skipped;
        };
        // Every flavour's consumer closes the gate when it goes (a queue's, an async
        // channel's and a conflating channel's alike), so the gate alone decides, as for
        // the plain queue above; under loom the state as well.
        if cfg!(loom) && !parts.state.is_open() {
            return Delivery::Skipped;
        }
        match &parts.kind {
            ChannelKind::Queue(sink) => sink.send(item, self),
            #[cfg(feature = "async")]
            ChannelKind::Layered(LayeredKind::Async(sink)) => sink.send(item, self),
            ChannelKind::Layered(LayeredKind::Conflating(sink)) => sink.send(item, &parts.state),
        }
    }

    /// The queue this sink pushes to (a plain queue's, or an async channel's), for the
    /// cold path of a push made through the subscriber list's copy of its sender.
    #[cold]
    pub(crate) fn queue(&self) -> Option<&ChannelSink<T>> {
        self.body.channel()?.queue()
    }

    /// Records that delivering to this sink panicked: closes it, so later broadcasts
    /// still holding a snapshot with it skip it until the writer prunes it. Returns
    /// whether this call closed it (so exactly one caller counts the panic and asks for
    /// the prune).
    pub(crate) fn mark_panicked(&self) -> bool {
        self.close(Status::Panicked)
    }
}

impl<T> Sink<T> {
    /// The client this sink delivers to.
    #[inline]
    pub(crate) fn id(&self) -> &ClientId {
        &self.id
    }

    /// A clone of the queue's sender of a plain queue sink or an async channel's, for the
    /// subscriber list to keep; `None` for a callback or a conflating channel. An async
    /// channel's push is the plain queue's (its wake-up comes after the walk), so it
    /// takes the same path: through this sender, its parts read only if the queue
    /// refuses the item. Through its parts, behind the body's virtual call, an async
    /// delivery cost 187 instructions instead of 177 (`FEATURES=async
    /// scripts/callgrind_floor.sh as_fanout`).
    pub(crate) fn queue_sender(&self) -> Option<Sender<T>> {
        Some(self.body.channel()?.queue()?.sender().clone())
    }

    /// Whether this is an async channel's sink (whose consumer may be parked: see
    /// [`wake_if_parked`](Self::wake_if_parked)).
    #[cfg(feature = "async")]
    pub(crate) fn is_async(&self) -> bool {
        matches!(
            self.body.channel(),
            Some(parts) if matches!(parts.kind, ChannelKind::Layered(LayeredKind::Async(_)))
        )
    }

    /// The second half of a delivery to an async sink: wakes its consumer if it is
    /// parked. Called by the broadcast for every subscriber once all are served, after
    /// one `SeqCst` fence that follows every push (see `sync/waker_slot.rs`); a no-op
    /// for every other flavour.
    #[cfg(feature = "async")]
    #[inline]
    pub(crate) fn wake_if_parked(&self) {
        self.body.wake_if_parked();
    }

    /// Which policy drops this sink's frames, for the engine-wide counts by policy. Read
    /// only after a drop, on the cold path.
    #[cold]
    pub(crate) fn drop_cause(&self) -> DropCause {
        match self.body.channel() {
            // A callback never drops; it has no queue.
            None => DropCause::DropNewest,
            Some(parts) => match &parts.kind {
                ChannelKind::Queue(sink) => sink.drop_cause(),
                ChannelKind::Layered(LayeredKind::Conflating(_)) => DropCause::Conflating,
                #[cfg(feature = "async")]
                ChannelKind::Layered(LayeredKind::Async(sink)) => sink.drop_cause(),
            },
        }
    }

    /// Open/closed status (a callback's own gate; a queue's, the one its consumer
    /// shares).
    #[inline]
    pub(crate) fn state(&self) -> &SinkStatus {
        match self.body.channel() {
            None => &self.gate,
            Some(parts) => parts.state.status_cell(),
        }
    }

    /// Counts `frames` dropped by this sink's policy, where its consumer reads them. Only
    /// a queue-backed sink drops frames; for a callback this does nothing.
    pub(crate) fn count_dropped(&self, frames: u64) {
        if let Some(parts) = self.body.channel() {
            parts.state.count_dropped(frames);
        }
    }

    /// Closes the sink with `reason` if it is still open: a channel's inline gate, then
    /// the state (a callback's gate is its state). Returns whether this call closed the
    /// state, so exactly one party acts on the transition (counts it, asks for the
    /// prune).
    pub(crate) fn close(&self, reason: Status) -> bool {
        self.close_inline();
        self.state().close(reason)
    }

    /// Closes a channel's inline gate only: what a queue's consumer does when dropped,
    /// before its `Membership` closes the state. A no-op for a callback, which only a
    /// panic closes while it is still in a snapshot.
    pub(crate) fn close_inline(&self) {
        if self.body.channel().is_some() {
            self.gate.close_channel();
        }
    }

    /// Whether this is the sink whose consumer holds `state` (a channel's).
    pub(crate) fn has_consumer_state(&self, state: &Arc<SinkState>) -> bool {
        matches!(self.body.channel(), Some(parts) if Arc::ptr_eq(&parts.state, state))
    }
}

#[cfg(all(test, feature = "async"))]
mod tests {
    use std::mem::size_of;

    use super::{ChannelKind, ChannelSink, ConflatingSink};

    /// The async flavour is boxed so that it costs the other sinks nothing: the queue
    /// flavours' enum is exactly as large as its largest other variant.
    #[test]
    fn async_flavour_does_not_grow_the_sink() {
        type T = bytes::Bytes;
        let others = size_of::<ChannelSink<T>>().max(size_of::<ConflatingSink<T>>());
        assert_eq!(size_of::<ChannelKind<T>>(), others);
    }
}

#[cfg(all(test, not(loom)))]
mod callback_tests {
    use std::mem::size_of;
    use std::sync::atomic::AtomicUsize;

    use super::{CallbackSink, Delivery, Sink, Status};
    use crate::sync::{Arc, Ordering};
    use crate::vocab::client::ClientId;

    /// A callback's one status byte does both jobs of the flag and the state it replaced:
    /// once it panicked (or was closed for any reason), a broadcast still holding a
    /// snapshot with it skips it, and only the first close counts.
    #[test]
    fn a_closed_callback_is_skipped() {
        for reason in [Status::Panicked, Status::Unsubscribed] {
            let calls = Arc::new(AtomicUsize::new(0));
            let counted = Arc::clone(&calls);
            let sink = Sink::callback(
                ClientId::from_raw(7),
                CallbackSink::new(move |_: &u32| {
                    counted.fetch_add(1, Ordering::Relaxed);
                }),
            );
            assert_eq!(sink.deliver(&1, &None), Delivery::Delivered);
            let first = if reason == Status::Panicked {
                sink.mark_panicked()
            } else {
                sink.close(reason)
            };
            assert!(first);
            assert!(!sink.mark_panicked(), "closed once only");
            assert_eq!(sink.state().status(), reason);
            assert_eq!(sink.deliver(&2, &None), Delivery::Skipped);
            assert_eq!(calls.load(Ordering::Relaxed), 1);
            assert_eq!(*sink.id(), ClientId::from_raw(7));
        }
    }

    /// Every sink is as large as its largest flavour, and every callback client pays for
    /// its sink: the queue flavours' parts are boxed so that they do not set that size,
    /// and a callback keeps one status byte beside its function pointer. With its
    /// client's id: 32 bytes.
    #[test]
    fn a_sink_is_no_larger_than_a_callback_needs() {
        assert_eq!(size_of::<Sink<bytes::Bytes>>(), 32);
    }
}

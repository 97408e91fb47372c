//! Loom stand-in for the subset of `crossbeam_channel` the engine uses: [`bounded`], a
//! cloneable [`Sender`] (`try_send`, `send_timeout`) and a cloneable [`Receiver`] (`recv`,
//! `try_recv`, `recv_timeout`, `iter`, `try_iter`, `len`, `is_empty`), with crossbeam's
//! error and iterator types.
//!
//! Loom cannot look inside crossbeam's lock-free queue, so under `--cfg loom` the engine
//! uses this one: a `VecDeque` with a capacity behind a `loom::sync::Mutex`, two
//! `loom::sync::Condvar`s (`not_empty`, `not_full`), and sender/receiver counts. Every
//! operation is one critical section, so loom explores every interleaving *between*
//! queue operations; it does not model crossbeam's internals (which its own tests check).
//!
//! # Semantics kept from crossbeam
//!
//! - FIFO, bounded: `try_send` on a full queue returns [`TrySendError::Full`] with the item.
//! - Senders see `Disconnected` (and get the item back) once every [`Receiver`] is dropped.
//! - Receivers see `Disconnected` once every [`Sender`] is dropped **and** the queue is
//!   drained: items queued before the last sender left are still received.
//! - Blocked senders and receivers are woken by a disconnect.
//!
//! # How time is modelled
//!
//! Loom has no clock (`loom::sync::Condvar::wait_timeout` never times out), and a
//! timeout that could elapse at any moment would have to be modelled as a spin, whose
//! state space is unbounded. So a duration is read as one of two cases:
//!
//! - **`Duration::ZERO` has elapsed at once.** `send_timeout(item, ZERO)` on a full queue
//!   returns [`SendTimeoutError::Timeout`] at once (so does crossbeam: it tries once);
//!   `recv_timeout(ZERO)` on an empty queue returns [`RecvTimeoutError::Timeout`]. Use
//!   this to model a bound that elapses before the other side acts, e.g.
//!   `OverflowPolicy::Block(Duration::ZERO)` drops the frame on a full queue.
//! - **Any non-zero duration never elapses:** the call blocks like `send` / `recv` until
//!   there is room / an item, or a disconnect. This models the other side acting within
//!   the bound. A caller posting to the full command queue
//!   ([`Shared::post`](crate::engine::Shared), `send_timeout(LIVENESS_CHECK)` in
//!   `engine/combiner.rs`) therefore waits for room rather than looking again for the
//!   writer role every [`LIVENESS_CHECK`](crate::engine::command::LIVENESS_CHECK).
//!   A model in which the awaited event never comes is reported by loom as a deadlock,
//!   where the real code would time out and look again.
//!
//! # Known difference: dropping the last receiver drops the queued items
//!
//! Crossbeam keeps queued items until the whole channel is freed (every sender and
//! receiver dropped). This stand-in drops them as soon as the last [`Receiver`] goes
//! (outside its lock). For channel sinks the difference is invisible: once the
//! consumer's last receiver is gone, nothing can observe the queued frames except their
//! drop (which loom's leak check sees). The command queue's receiver lives as long as
//! the engine's shared state, so it is never the last to go while a caller waits.
//!
//! A capacity of zero (crossbeam's rendezvous channel) is not modelled; the engine never
//! asks for one.

use std::collections::VecDeque;
use std::error::Error;
use std::fmt;
use std::time::Duration;

use loom::sync::{Arc, Condvar, Mutex, MutexGuard};

use super::lock;

/// Creates a channel holding at most `cap` items.
///
/// # Panics
///
/// If `cap` is zero: rendezvous channels are not modelled.
pub fn bounded<T>(cap: usize) -> (Sender<T>, Receiver<T>) {
    assert!(
        cap > 0,
        "the loom queue stand-in does not model zero capacity"
    );
    let chan = Arc::new(Chan {
        state: Mutex::new(State {
            items: VecDeque::with_capacity(cap),
            cap,
            senders: 1,
            receivers: 1,
        }),
        not_empty: Condvar::new(),
        not_full: Condvar::new(),
    });
    (
        Sender {
            chan: Arc::clone(&chan),
        },
        Receiver { chan },
    )
}

struct Chan<T> {
    state: Mutex<State<T>>,
    /// Signalled when an item is queued, and (to all) when the last sender leaves.
    not_empty: Condvar,
    /// Signalled when an item is taken, and (to all) when the last receiver leaves.
    not_full: Condvar,
}

struct State<T> {
    items: VecDeque<T>,
    cap: usize,
    senders: usize,
    receivers: usize,
}

impl<T> Chan<T> {
    fn wait<'a>(condvar: &Condvar, guard: MutexGuard<'a, State<T>>) -> MutexGuard<'a, State<T>> {
        match condvar.wait(guard) {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Takes the head item, waking one blocked sender.
    fn pop(&self, state: &mut State<T>) -> Option<T> {
        let item = state.items.pop_front()?;
        self.not_full.notify_one();
        Some(item)
    }

    /// Queues `item` (the caller checked there is room), waking one blocked receiver.
    fn push(&self, state: &mut State<T>, item: T) {
        debug_assert!(state.items.len() < state.cap);
        state.items.push_back(item);
        self.not_empty.notify_one();
    }
}

// ----- sender -------------------------------------------------------------------------

/// The sending side. Cloneable; the channel disconnects for receivers when the last
/// clone is dropped.
pub struct Sender<T> {
    chan: Arc<Chan<T>>,
}

impl<T> Sender<T> {
    /// Queues `item` if there is room, without blocking.
    pub fn try_send(&self, item: T) -> Result<(), TrySendError<T>> {
        let mut state = lock(&self.chan.state);
        if state.receivers == 0 {
            return Err(TrySendError::Disconnected(item));
        }
        if state.items.len() == state.cap {
            return Err(TrySendError::Full(item));
        }
        self.chan.push(&mut state, item);
        Ok(())
    }

    /// Queues `item`, waiting for room. See the [module docs](self) for how `timeout` is
    /// modelled: zero returns `Timeout` at once on a full queue; any other duration
    /// waits until there is room or every receiver is gone.
    pub fn send_timeout(&self, item: T, timeout: Duration) -> Result<(), SendTimeoutError<T>> {
        let mut state = lock(&self.chan.state);
        loop {
            if state.receivers == 0 {
                return Err(SendTimeoutError::Disconnected(item));
            }
            if state.items.len() < state.cap {
                self.chan.push(&mut state, item);
                return Ok(());
            }
            if timeout.is_zero() {
                return Err(SendTimeoutError::Timeout(item));
            }
            state = Chan::wait(&self.chan.not_full, state);
        }
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        lock(&self.chan.state).senders += 1;
        Self {
            chan: Arc::clone(&self.chan),
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let mut state = lock(&self.chan.state);
        state.senders -= 1;
        if state.senders == 0 {
            // Receivers blocked on an empty queue must see the disconnect.
            self.chan.not_empty.notify_all();
        }
    }
}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad("Sender { .. }")
    }
}

// ----- receiver -----------------------------------------------------------------------

/// The receiving side. Cloneable; the channel disconnects for senders when the last
/// clone is dropped, and (unlike crossbeam) the items still queued are dropped then.
pub struct Receiver<T> {
    chan: Arc<Chan<T>>,
}

impl<T> Receiver<T> {
    /// Takes the head item if there is one, without blocking.
    pub fn try_recv(&self) -> Result<T, TryRecvError> {
        let mut state = lock(&self.chan.state);
        match self.chan.pop(&mut state) {
            Some(item) => Ok(item),
            None if state.senders == 0 => Err(TryRecvError::Disconnected),
            None => Err(TryRecvError::Empty),
        }
    }

    /// Waits for an item; `Err` once every sender is gone and the queue is drained.
    pub fn recv(&self) -> Result<T, RecvError> {
        self.recv_timeout(Duration::MAX).map_err(|_| RecvError)
    }

    /// Waits for an item. See the [module docs](self) for how `timeout` is modelled:
    /// zero returns `Timeout` at once on an empty queue; any other duration waits like
    /// [`recv`](Self::recv).
    pub fn recv_timeout(&self, timeout: Duration) -> Result<T, RecvTimeoutError> {
        let mut state = lock(&self.chan.state);
        loop {
            if let Some(item) = self.chan.pop(&mut state) {
                return Ok(item);
            }
            if state.senders == 0 {
                return Err(RecvTimeoutError::Disconnected);
            }
            if timeout.is_zero() {
                return Err(RecvTimeoutError::Timeout);
            }
            state = Chan::wait(&self.chan.not_empty, state);
        }
    }

    /// A blocking iterator that ends once the channel is disconnected and drained.
    pub fn iter(&self) -> Iter<'_, T> {
        Iter { receiver: self }
    }

    /// An iterator over the items queued now; it never blocks.
    pub fn try_iter(&self) -> TryIter<'_, T> {
        TryIter { receiver: self }
    }

    /// Items queued now.
    pub fn len(&self) -> usize {
        lock(&self.chan.state).items.len()
    }

    /// Whether nothing is queued now.
    pub fn is_empty(&self) -> bool {
        lock(&self.chan.state).items.is_empty()
    }
}

impl<T> Clone for Receiver<T> {
    fn clone(&self) -> Self {
        lock(&self.chan.state).receivers += 1;
        Self {
            chan: Arc::clone(&self.chan),
        }
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let orphans = {
            let mut state = lock(&self.chan.state);
            state.receivers -= 1;
            if state.receivers > 0 {
                return;
            }
            // Senders blocked on a full queue must see the disconnect.
            self.chan.not_full.notify_all();
            std::mem::take(&mut state.items)
        };
        // The known difference from crossbeam (see the module docs): queued items are
        // dropped now, outside the lock, since their drops may take other locks (a
        // command's `Reply` answers its caller).
        drop(orphans);
    }
}

impl<T> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad("Receiver { .. }")
    }
}

/// Blocking iterator over a [`Receiver`]; see [`Receiver::iter`].
pub struct Iter<'a, T> {
    receiver: &'a Receiver<T>,
}

impl<T> Iterator for Iter<'_, T> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        self.receiver.recv().ok()
    }
}

impl<T> fmt::Debug for Iter<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad("Iter { .. }")
    }
}

/// Non-blocking iterator over a [`Receiver`]; see [`Receiver::try_iter`].
pub struct TryIter<'a, T> {
    receiver: &'a Receiver<T>,
}

impl<T> Iterator for TryIter<'_, T> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        self.receiver.try_recv().ok()
    }
}

impl<T> fmt::Debug for TryIter<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad("TryIter { .. }")
    }
}

// ----- errors (as crossbeam's) ----------------------------------------------------------

/// Why [`Sender::try_send`] failed; holds the item.
#[derive(PartialEq, Eq, Clone, Copy)]
pub enum TrySendError<T> {
    /// The queue is full.
    Full(T),
    /// Every receiver is gone.
    Disconnected(T),
}

impl<T> fmt::Debug for TrySendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrySendError::Full(_) => f.pad("Full(..)"),
            TrySendError::Disconnected(_) => f.pad("Disconnected(..)"),
        }
    }
}

impl<T> fmt::Display for TrySendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrySendError::Full(_) => f.pad("sending on a full channel"),
            TrySendError::Disconnected(_) => f.pad("sending on a disconnected channel"),
        }
    }
}

impl<T> Error for TrySendError<T> {}

/// Why [`Sender::send_timeout`] failed; holds the item.
#[derive(PartialEq, Eq, Clone, Copy)]
pub enum SendTimeoutError<T> {
    /// The bound elapsed (only a zero bound, in this stand-in) with the queue full.
    Timeout(T),
    /// Every receiver is gone.
    Disconnected(T),
}

impl<T> fmt::Debug for SendTimeoutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendTimeoutError::Timeout(_) => f.pad("Timeout(..)"),
            SendTimeoutError::Disconnected(_) => f.pad("Disconnected(..)"),
        }
    }
}

impl<T> fmt::Display for SendTimeoutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendTimeoutError::Timeout(_) => f.pad("timed out waiting on send operation"),
            SendTimeoutError::Disconnected(_) => f.pad("sending on a disconnected channel"),
        }
    }
}

impl<T> Error for SendTimeoutError<T> {}

/// [`Receiver::recv`] found the channel disconnected and drained.
#[derive(PartialEq, Eq, Clone, Copy, Debug)]
pub struct RecvError;

impl fmt::Display for RecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad("receiving on an empty and disconnected channel")
    }
}

impl Error for RecvError {}

/// Why [`Receiver::try_recv`] returned nothing.
#[derive(PartialEq, Eq, Clone, Copy, Debug)]
pub enum TryRecvError {
    /// Nothing is queued.
    Empty,
    /// Nothing is queued and every sender is gone.
    Disconnected,
}

impl fmt::Display for TryRecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TryRecvError::Empty => f.pad("receiving on an empty channel"),
            TryRecvError::Disconnected => f.pad("receiving on an empty and disconnected channel"),
        }
    }
}

impl Error for TryRecvError {}

/// Why [`Receiver::recv_timeout`] returned nothing.
#[derive(PartialEq, Eq, Clone, Copy, Debug)]
pub enum RecvTimeoutError {
    /// The bound elapsed (only a zero bound, in this stand-in) with nothing queued.
    Timeout,
    /// Nothing is queued and every sender is gone.
    Disconnected,
}

impl fmt::Display for RecvTimeoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecvTimeoutError::Timeout => f.pad("timed out waiting on receive operation"),
            RecvTimeoutError::Disconnected => f.pad("channel is empty and disconnected"),
        }
    }
}

impl Error for RecvTimeoutError {}

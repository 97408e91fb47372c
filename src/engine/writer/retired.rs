//! The snapshots the writer replaced, kept until no broadcast holds them and then freed
//! under the writer role — and the sinks that left the registry, kept until every
//! snapshot that may still list them is freed.
//!
//! Why under the role: a snapshot's tries are [`WriterRc`](crate::engine::writer_rc)
//! pointers, whose counts only the role holder may touch, and freeing a snapshot
//! releases them. Broadcasts hold a snapshot through an `Arc` (their guard); after the
//! writer swaps a snapshot out of the cell it holds one more reference, and it frees the
//! snapshot only once [`Arc::get_mut`] finds that reference the only one — so no
//! broadcast ever drops the last reference to a snapshot.
//!
//! Why the sinks wait: no user code runs under the role (see [`writer`](super)), and
//! dropping a sink's last reference can run user code. A retired snapshot may list a sink
//! that has since left the registry; if freeing the snapshot dropped that sink's last
//! reference, user code would run under the role. So the sinks a batch removes are
//! attached to the newest record, and handed back (to be dropped after the role is
//! released) only once that record and every older one are freed. With no broadcast in
//! flight that is the same batch, so a sink is still dropped before the call that removed
//! it returns. A snapshot a broadcast still held is freed by a later batch, or by the
//! janitor, which settles again shortly after any batch that left one behind (otherwise
//! an engine whose last handle is inside a sink of such a snapshot would never be
//! dropped).

use std::collections::VecDeque;

use crate::engine::snapshot::Snapshot;
use crate::sink::Sink;
use crate::sync::Arc;

/// Replaced snapshots, oldest first.
pub(crate) struct Retired<T> {
    records: VecDeque<Record<T>>,
}

impl<T> Default for Retired<T> {
    fn default() -> Self {
        Self {
            records: VecDeque::new(),
        }
    }
}

/// One replaced snapshot (gone once freed) and the sinks waiting for it and every older
/// one to be freed.
struct Record<T> {
    snapshot: Option<Arc<Snapshot<T>>>,
    sinks: Vec<Arc<Sink<T>>>,
}

impl<T> Retired<T> {
    /// Keeps `snapshot`, just swapped out of the cell.
    pub(crate) fn retire(&mut self, snapshot: Arc<Snapshot<T>>) {
        self.records.push_back(Record {
            snapshot: Some(snapshot),
            sinks: Vec::new(),
        });
    }

    /// Takes the sinks a batch removed from the registry (any retired snapshot may list
    /// them), frees every retired snapshot no broadcast holds any more, and moves into
    /// `released` the sinks no retired snapshot can list any more: the caller drops them
    /// after releasing the role. Returns whether snapshots are still held by broadcasts
    /// (then somebody must settle again later: the janitor does, see
    /// [`janitor`](crate::engine::janitor)).
    pub(crate) fn settle(&mut self, released: &mut Vec<Arc<Sink<T>>>) -> bool {
        if let Some(newest) = self.records.back_mut() {
            newest.sinks.append(released);
        }
        for record in &mut self.records {
            if let Some(snapshot) = &mut record.snapshot {
                // Acquire (inside `get_mut`) pairs with the Release of every broadcast's
                // drop of its reference: their reads of the snapshot happen before the
                // frees below.
                if Arc::get_mut(snapshot).is_some() {
                    record.snapshot = None;
                }
            }
        }
        while let Some(oldest) = self.records.front() {
            if oldest.snapshot.is_some() {
                break;
            }
            if let Some(mut freed) = self.records.pop_front() {
                released.append(&mut freed.sinks);
            }
        }
        !self.records.is_empty()
    }
}

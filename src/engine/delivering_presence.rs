//! Which thread is delivering presence events now: a step that waits for the delivery
//! turn (`presence_snapshot`) must not be taken by the thread that holds it (a sink's
//! callback inside a delivery), or it would wait for itself.

use std::cell::Cell;

use crate::sync::thread_local;

thread_local! {
    /// Whether this thread is delivering presence events now.
    // Not `const { .. }`-initialised: loom's `thread_local!` (one per modelled thread,
    // picked in `crate::sync`) takes an ordinary expression only. The lazy check it costs
    // is paid per presence delivery, never per broadcast.
    #[allow(clippy::missing_const_for_thread_local)]
    static DELIVERING: Cell<bool> = Cell::new(false);
}

/// Marks this thread as delivering presence events until dropped.
pub(crate) struct DeliveringPresence(bool);

impl DeliveringPresence {
    pub(crate) fn enter() -> Self {
        Self(DELIVERING.with(|d| d.replace(true)))
    }
}

/// Whether this thread is delivering presence events now.
pub(crate) fn is_delivering() -> bool {
    DELIVERING.with(Cell::get)
}

impl Drop for DeliveringPresence {
    fn drop(&mut self) {
        DELIVERING.with(|d| d.set(self.0));
    }
}

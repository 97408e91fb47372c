//! Capped exponential backoff between reconnection attempts.

use std::time::Duration;

/// The delay before the next attempt: `min`, doubling after each failure up to `max`,
/// back to `min` after a success.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    /// First delay, and the delay after a success.
    min: Duration,
    /// Largest delay.
    max: Duration,
    /// The delay the next failure waits.
    next: Duration,
}

impl Backoff {
    pub(crate) fn new(min: Duration, max: Duration) -> Self {
        Self {
            min,
            max,
            next: min,
        }
    }

    /// The delay to wait after a failure; doubles the next one, up to `max`.
    pub(crate) fn failed(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(self.max);
        delay
    }

    /// A success: the next failure waits `min` again.
    pub(crate) fn succeeded(&mut self) {
        self.next = self.min;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_and_resets() {
        let ms = Duration::from_millis;
        let mut b = Backoff::new(ms(10), ms(50));
        let delays: Vec<_> = (0..5).map(|_| b.failed()).collect();
        assert_eq!(delays, [ms(10), ms(20), ms(40), ms(50), ms(50)]);
        b.succeeded();
        assert_eq!(b.failed(), ms(10));
    }
}

//! The sandbox's wall clock, which tests can move forward (`POST /__sandbox/clock`) to expire
//! tokens without waiting. Rate-limit windows and search lag use real monotonic time.

use std::sync::atomic::{AtomicI64, Ordering};

use jiff::{SignedDuration, Timestamp};

#[derive(Debug, Default)]
pub struct Clock {
    offset_seconds: AtomicI64,
}

impl Clock {
    pub fn now(&self) -> Timestamp {
        let offset = SignedDuration::from_secs(self.offset_seconds.load(Ordering::SeqCst));
        Timestamp::now()
            .checked_add(offset)
            .unwrap_or(Timestamp::MAX)
    }

    /// Moves the clock forward (or back, with a negative value); returns the new time.
    pub fn advance(&self, seconds: i64) -> Timestamp {
        self.offset_seconds.fetch_add(seconds, Ordering::SeqCst);
        self.now()
    }
}

/// GHL's timestamp format: RFC 3339 in UTC with milliseconds (`2021-07-02T05:18:26.704Z`).
pub fn iso(ts: Timestamp) -> String {
    ts.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_has_milliseconds_and_z() {
        let ts: Timestamp = "2021-07-02T05:18:26.704123Z".parse().unwrap();
        assert_eq!(iso(ts), "2021-07-02T05:18:26.704Z");
        let whole: Timestamp = "2030-01-10T15:00:00Z".parse().unwrap();
        assert_eq!(iso(whole), "2030-01-10T15:00:00.000Z");
    }

    #[test]
    fn advancing_moves_now() {
        let clock = Clock::default();
        let before = clock.now();
        let after = clock.advance(3600);
        assert!(after.duration_since(before) >= SignedDuration::from_secs(3599));
    }
}

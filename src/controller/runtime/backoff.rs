//! Per-object retry delays: exponential with full jitter, reset when the object reconciles
//! cleanly. One failing policy never slows the others.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use rand::RngExt;

use crate::controller::object::ObjectKey;

/// First retry delay.
pub const BASE: Duration = Duration::from_secs(5);
/// Longest retry delay.
pub const MAX: Duration = Duration::from_secs(300);

/// Failure counts by object.
#[derive(Debug, Default)]
pub struct Backoff {
    attempts: Mutex<HashMap<ObjectKey, u32>>,
}

impl Backoff {
    /// Records a failure of `key` and returns how long to wait before retrying.
    pub fn failed(&self, key: &ObjectKey) -> Duration {
        let attempt = {
            let mut attempts = self.attempts.lock().unwrap_or_else(|p| p.into_inner());
            let n = attempts.entry(key.clone()).or_default();
            *n = n.saturating_add(1);
            *n
        };
        let ceiling = ceiling(attempt);
        // Full jitter: anywhere between half the ceiling and the ceiling.
        let factor = rand::rng().random_range(0.5..=1.0);
        ceiling.mul_f64(factor)
    }

    /// Forgets the failures of `key` (it reconciled cleanly).
    pub fn succeeded(&self, key: &ObjectKey) {
        self.attempts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
    }
}

/// `BASE × 2^(attempt-1)`, capped at `MAX`.
pub fn ceiling(attempt: u32) -> Duration {
    let exponent = attempt.saturating_sub(1).min(16);
    BASE.saturating_mul(1 << exponent).min(MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::Kind;

    #[test]
    fn grows_exponentially_with_jitter_and_resets() {
        let b = Backoff::default();
        let p = ObjectKey::new(Kind::ContactSyncPolicy, "crm", "p");
        let other = ObjectKey::new(Kind::TagRule, "crm", "p");
        let delays: Vec<Duration> = (0..8).map(|_| b.failed(&p)).collect();
        for (i, d) in delays.iter().enumerate() {
            let top = ceiling(i as u32 + 1);
            assert!(*d <= top && *d >= top / 2, "attempt {i}: {d:?} vs {top:?}");
        }
        assert_eq!(ceiling(20), MAX);
        b.succeeded(&p);
        assert!(b.failed(&p) <= BASE);
        assert!(b.failed(&other) <= BASE, "objects are independent");
    }
}

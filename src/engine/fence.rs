//! Whether this process may still change anything. A leader's fence is open only while its
//! Lease is known to be held: each renewal extends it to the renewal time plus the renew
//! deadline, and losing the Lease closes it. Appliers check it before every GHL write and
//! state stores before every ledger write, so a process that lost its Lease stops writing
//! even while its in-flight reconciles wind down — and even if it cannot tell yet that it
//! lost (a stalled renewal simply lets the fence lapse).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A write permission shared by everything one process does.
#[derive(Clone, Debug, Default)]
pub struct Fence {
    /// `None`: always open (no leader election: the CLI, a single replica).
    lease: Option<Arc<Lapse>>,
}

#[derive(Debug)]
struct Lapse {
    start: Instant,
    /// Milliseconds after `start` at which the fence closes; 0 = closed.
    open_until: AtomicU64,
}

impl Fence {
    /// A fence that never closes.
    pub fn open() -> Self {
        Self::default()
    }

    /// A fence that is closed until [`Fence::extend`] opens it.
    pub fn leased() -> Self {
        Self {
            lease: Some(Arc::new(Lapse {
                start: Instant::now(),
                open_until: AtomicU64::new(0),
            })),
        }
    }

    /// Keeps the fence open until `until` (a renewal proved the Lease held).
    pub fn extend(&self, until: Instant) {
        if let Some(lapse) = &self.lease {
            let millis = until.saturating_duration_since(lapse.start).as_millis();
            lapse
                .open_until
                .store(u64::try_from(millis).unwrap_or(u64::MAX), Ordering::SeqCst);
        }
    }

    /// Closes the fence for good (the Lease was lost or given up).
    pub fn close(&self) {
        if let Some(lapse) = &self.lease {
            lapse.open_until.store(0, Ordering::SeqCst);
        }
    }

    /// Whether writes may go ahead now.
    pub fn is_open(&self) -> bool {
        self.is_open_at(Instant::now())
    }

    fn is_open_at(&self, now: Instant) -> bool {
        match &self.lease {
            None => true,
            Some(lapse) => {
                let elapsed = now.saturating_duration_since(lapse.start);
                let until = Duration::from_millis(lapse.open_until.load(Ordering::SeqCst));
                elapsed < until
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unleased_fence_is_always_open() {
        let fence = Fence::open();
        fence.close();
        assert!(fence.is_open());
    }

    #[test]
    fn a_leased_fence_is_open_only_until_its_last_extension() {
        let fence = Fence::leased();
        let now = Instant::now();
        assert!(!fence.is_open_at(now), "closed before the first renewal");
        fence.extend(now + Duration::from_secs(10));
        assert!(fence.is_open_at(now + Duration::from_secs(9)));
        assert!(
            !fence.is_open_at(now + Duration::from_secs(10)),
            "lapses by itself"
        );
        let copy = fence.clone();
        copy.close();
        assert!(!fence.is_open_at(now), "closing any copy closes all");
    }
}

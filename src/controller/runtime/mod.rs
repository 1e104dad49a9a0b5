//! The process: `ghl-operator run` and everything that keeps it going — the controllers'
//! wiring, the namespaces they watch, Lease election and shard Leases, the metrics and health
//! server, per-object backoff and locks, metrics, and the task that runs targeted reconciles.
//!
//! - [`run`]: the process' life in order (serve, wait to lead, reconcile, drain, step down);
//! - [`wiring`]: the three kube-runtime controllers and what makes each reconcile;
//! - [`scope`]: the namespaces watched;
//! - [`leases`]: the leader Lease and, with `--shards`, the shard Leases;
//! - [`server`]: `/metrics`, `/healthz`, `/readyz`;
//! - [`targeted`]: targeted reconciles of the contacts webhooks named;
//! - [`backoff`], [`metrics`], [`condition_gauges`]: per-object backoff, the operator's
//!   metrics, and its gauges of objects by condition.
//!
//! [`Runtime`] is the part of the [`Context`](super::context::Context) that paces reconciles:
//! their backoff, their locks, and which resyncs are deep.

pub mod backoff;
pub mod condition_gauges;
pub mod leases;
pub mod metrics;
pub mod run;
pub mod scope;
pub mod server;
pub mod targeted;
pub mod wiring;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use self::backoff::Backoff;
use super::object::ObjectKey;

/// How reconciles are paced: per-object backoff, one lock per object, and the count of
/// resyncs that picks the deep ones.
pub struct Runtime {
    pub backoff: Backoff,
    /// Every how many resyncs a policy also re-reads all notes and unsearchable fields.
    deep_every: u32,
    /// Resyncs per object, to pick the deep ones.
    resyncs: Mutex<HashMap<ObjectKey, u32>>,
    /// One lock per object: its full and targeted reconciles never overlap.
    locks: Mutex<HashMap<ObjectKey, Arc<tokio::sync::Mutex<()>>>>,
}

impl Runtime {
    pub fn new(deep_every: u32) -> Self {
        Self {
            backoff: Backoff::default(),
            deep_every: deep_every.max(1),
            resyncs: Mutex::new(HashMap::new()),
            locks: Mutex::new(HashMap::new()),
        }
    }

    /// The object's lock, held by each of its reconciles.
    pub async fn lock(&self, key: &ObjectKey) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = Arc::clone(
            self.locks
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .entry(key.clone())
                .or_default(),
        );
        lock.lock_owned().await
    }

    /// Counts a resync of `key`; true when this one should be deep (the first one is).
    pub fn deep_resync(&self, key: &ObjectKey) -> bool {
        let mut counts = self.resyncs.lock().unwrap_or_else(|p| p.into_inner());
        let n = counts.entry(key.clone()).or_default();
        let deep = n.is_multiple_of(self.deep_every);
        *n = n.wrapping_add(1);
        deep
    }

    /// Forgets `key`'s backoff, resync count and lock (it is gone, or another replica's).
    pub fn forget(&self, key: &ObjectKey) {
        self.backoff.succeeded(key);
        self.resyncs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
        self.locks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::Kind;

    #[test]
    fn every_nth_resync_is_deep_starting_with_the_first() {
        let runtime = Runtime::new(3);
        let key = ObjectKey::new(Kind::ContactSyncPolicy, "crm", "vip");
        let deep: Vec<bool> = (0..7).map(|_| runtime.deep_resync(&key)).collect();
        assert_eq!(deep, [true, false, false, true, false, false, true]);
        runtime.forget(&key);
        assert!(
            runtime.deep_resync(&key),
            "forgotten: the next is the first"
        );
    }
}

//! Sharding: `--shards N` splits the locations (and every connection, policy and rule on them)
//! over N shards by a stable hash of the location id ([`shard_of`]), each guarded by its own
//! Lease. Live replicas divide the shard Leases evenly; the runtime's lease manager takes,
//! renews and hands them over, and records here what this process holds. A replica reconciles only the objects of shards it holds, and every GHL and
//! ledger write checks the shard's own [`Fence`], so a shard's objects are never worked on by
//! two processes at once.
//!
//! Without sharding there is one shard: the leader Lease's (or, with no leader election, one
//! that is always held).
//!
//! All connections of one location share a shard, so one location's budget, its owners map
//! and its webhooks stay in one process.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tokio::sync::watch;

use crate::engine::fence::Fence;

/// The shard of `key` (a location id) among `count`: a stable hash, the same in every process
/// and every version.
pub fn shard_of(key: &str, count: u32) -> u32 {
    if count <= 1 {
        return 0;
    }
    let digest = Sha256::digest(key.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    (u64::from_be_bytes(first) % u64::from(count)) as u32
}

/// When a reconcile that ended with its shard's fence lapsed runs again.
pub const LAPSE_RETRY: Duration = Duration::from_secs(2);

/// One shard as this process sees it.
#[derive(Debug)]
struct Slot {
    /// Open while this process holds the shard's Lease (a fresh fence per acquisition, so
    /// work left from an earlier tenure can never write again).
    fence: Mutex<Fence>,
    /// Since when this process holds it (`None`: not held).
    since: Mutex<Option<Instant>>,
    /// Reconciles of the shard's objects running now.
    busy: AtomicUsize,
    /// Where the replica holding it (when another does) takes webhooks, as it advertised.
    route: Mutex<Option<String>>,
}

/// The shards this process holds: what reconciles check before they start, and the fences
/// their writes check.
#[derive(Debug)]
pub struct Shards {
    slots: Vec<Slot>,
    /// Bumped when a shard is gained (its objects must be reconciled).
    gained: watch::Sender<u64>,
}

/// A reconcile of a held shard's objects; the shard is not handed over while one runs.
#[derive(Debug)]
pub struct Work {
    shards: Arc<Shards>,
    shard: u32,
}

impl Drop for Work {
    fn drop(&mut self) {
        self.shards
            .slot(self.shard)
            .busy
            .fetch_sub(1, Ordering::SeqCst);
    }
}

impl Shards {
    fn with(fences: Vec<Fence>, since: Option<Instant>) -> Arc<Self> {
        Arc::new(Self {
            slots: fences
                .into_iter()
                .map(|fence| Slot {
                    fence: Mutex::new(fence),
                    since: Mutex::new(since),
                    busy: AtomicUsize::new(0),
                    route: Mutex::new(None),
                })
                .collect(),
            gained: watch::channel(0).0,
        })
    }

    /// One shard guarded by `fence` (the leader Lease's, or always open).
    pub fn single(fence: Fence) -> Arc<Self> {
        Self::with(vec![fence], Some(Instant::now()))
    }

    /// `count` shards, none held until the lease manager takes them.
    pub fn leased(count: u32) -> Arc<Self> {
        Self::with((0..count.max(1)).map(|_| Fence::leased()).collect(), None)
    }

    pub fn count(&self) -> u32 {
        u32::try_from(self.slots.len()).unwrap_or(u32::MAX)
    }

    fn slot(&self, shard: u32) -> &Slot {
        &self.slots[(shard as usize).min(self.slots.len() - 1)]
    }

    /// The shard of a location (or of another shard key).
    pub fn of(&self, key: &str) -> u32 {
        shard_of(key, self.count())
    }

    /// The write fence of `shard`: closed unless this process holds it.
    pub fn fence(&self, shard: u32) -> Fence {
        lock(&self.slot(shard).fence).clone()
    }

    pub fn holds(&self, shard: u32) -> bool {
        self.fence(shard).is_open()
    }

    /// Starts work on `shard` if this process holds it (took it and has not lost or given it
    /// up). Its fence may have lapsed for a moment (a renewal late under load): writes are
    /// still refused until it opens again, and a reconcile that ends with it lapsed is retried
    /// shortly ([`LAPSE_RETRY`]) — one skipped here would not run again until the object
    /// changed.
    pub fn enter(self: &Arc<Self>, shard: u32) -> Option<Work> {
        let slot = self.slot(shard);
        slot.busy.fetch_add(1, Ordering::SeqCst);
        let work = Work {
            shards: Arc::clone(self),
            shard,
        };
        self.held_since(shard).is_some().then_some(work)
    }

    /// When this process gained `shard` (`None`: it does not hold it).
    pub fn held_since(&self, shard: u32) -> Option<Instant> {
        *lock(&self.slot(shard).since)
    }

    /// The shards held now.
    pub fn held(&self) -> Vec<u32> {
        (0..self.count()).filter(|s| self.holds(*s)).collect()
    }

    /// `shard` was taken with `fence`: its objects are to be reconciled.
    pub fn gain(&self, shard: u32, fence: Fence) {
        let slot = self.slot(shard);
        *lock(&slot.fence) = fence;
        *lock(&slot.since) = Some(Instant::now());
        self.gained.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// `shard` is lost or being given up: its writes stop now.
    pub fn lose(&self, shard: u32) {
        let slot = self.slot(shard);
        lock(&slot.fence).close();
        *lock(&slot.since) = None;
    }

    /// Waits (at most `within`) until no reconcile of `shard`'s objects runs.
    pub async fn drained(&self, shard: u32, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while self.slot(shard).busy.load(Ordering::SeqCst) > 0 {
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        true
    }

    /// Where the replica that holds `shard` takes webhooks (`None`: this process holds it,
    /// nobody does, or its holder advertised no address).
    pub fn route(&self, shard: u32) -> Option<String> {
        lock(&self.slot(shard).route).clone()
    }

    /// Records where `shard`'s holder takes webhooks.
    pub fn set_route(&self, shard: u32, address: Option<String>) {
        *lock(&self.slot(shard).route) = address;
    }

    /// Hears of every shard gained.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.gained.subscribe()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_are_stable_and_spread() {
        assert_eq!(shard_of("loc-a", 1), 0);
        assert_eq!(shard_of("loc-a", 0), 0);
        // The same in every process: fixed values pin the hash.
        assert_eq!(shard_of("loc-a", 8), shard_of("loc-a", 8));
        let mut counts = [0u32; 4];
        for i in 0..4_000 {
            counts[shard_of(&format!("location-{i}"), 4) as usize] += 1;
        }
        for count in counts {
            assert!((850..=1150).contains(&count), "{counts:?}");
        }
    }

    #[test]
    fn only_held_shards_admit_work_and_their_fences_are_fresh_per_tenure() {
        let shards = Shards::leased(2);
        assert!(shards.enter(0).is_none());
        assert_eq!(shards.held(), Vec::<u32>::new());
        let first = Fence::leased();
        first.extend(Instant::now() + Duration::from_secs(60));
        shards.gain(0, first.clone());
        assert_eq!(shards.held(), [0]);
        let work = shards.enter(0).expect("held");
        let old = shards.fence(0);
        shards.lose(0);
        assert!(!old.is_open(), "writes of the lost tenure stop");
        assert!(shards.enter(0).is_none());
        // Taken again: a new fence; the old one stays closed.
        let second = Fence::leased();
        second.extend(Instant::now() + Duration::from_secs(60));
        shards.gain(0, second);
        assert!(shards.holds(0) && !old.is_open());
        drop(work);
    }

    #[test]
    fn a_lapsed_fence_refuses_writes_but_not_the_reconciles_of_the_tenure() {
        let shards = Shards::leased(1);
        let fence = Fence::leased();
        // A renewal late under load: the tenure goes on, its fence has lapsed.
        fence.extend(Instant::now());
        shards.gain(0, fence.clone());
        assert!(!shards.holds(0) && !fence.is_open(), "writes are refused");
        let work = shards.enter(0);
        assert!(
            work.is_some(),
            "the reconcile runs (and is retried if it ends lapsed)"
        );
        drop(work);
        shards.lose(0);
        assert!(shards.enter(0).is_none(), "a lost shard admits nothing");
    }

    #[tokio::test]
    async fn a_shard_is_drained_when_its_work_ends() {
        let shards = Shards::single(Fence::open());
        let work = shards.enter(0).expect("always held");
        assert!(!shards.drained(0, Duration::from_millis(100)).await);
        drop(work);
        assert!(shards.drained(0, Duration::from_millis(100)).await);
        assert!(shards.enter(0).is_some());
    }
}

//! Where ledgers live between runs. The applier commits [`Change`]s as it goes; a backend
//! makes each commit durable before returning. Backends: a local file (CLI) and, in the
//! operator, Kubernetes objects owned by the policy.

pub mod file;

use async_trait::async_trait;

use crate::engine::ledger::{Change, Ledger};

/// A state backend failed.
#[derive(Debug, thiserror::Error)]
#[error("state store: {0}")]
pub struct StateError(pub String);

/// What a store says when its fence refused a write.
const FENCED: &str = "not writing the ledger: this process no longer holds the leader Lease (or the object's shard Lease)";

impl StateError {
    /// A write refused because this process no longer holds the Lease behind the ledger.
    pub fn fenced() -> Self {
        Self(FENCED.into())
    }

    /// Whether this is [`StateError::fenced`].
    pub fn is_fenced(&self) -> bool {
        self.0 == FENCED
    }
}

/// Durable storage for one owner's ledger.
#[async_trait]
pub trait StateStore: Send + Sync {
    /// The ledger as last committed (empty when there is none).
    async fn load(&self) -> Result<Ledger, StateError>;
    /// Makes `changes` durable, in order. Called before and after GHL writes.
    async fn commit(&self, changes: &[Change]) -> Result<(), StateError>;
    /// Replaces the stored ledger with `ledger` (compaction at the end of a run).
    async fn compact(&self, ledger: &Ledger) -> Result<(), StateError>;
}

/// A store that keeps nothing (plan-only runs without `--state`).
#[derive(Debug, Default)]
pub struct MemoryStore {
    ledger: std::sync::Mutex<Ledger>,
}

#[async_trait]
impl StateStore for MemoryStore {
    async fn load(&self) -> Result<Ledger, StateError> {
        Ok(self
            .ledger
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone())
    }

    async fn commit(&self, changes: &[Change]) -> Result<(), StateError> {
        let mut ledger = self.ledger.lock().unwrap_or_else(|p| p.into_inner());
        for change in changes {
            ledger.apply(change);
        }
        Ok(())
    }

    async fn compact(&self, ledger: &Ledger) -> Result<(), StateError> {
        let mut stored = self.ledger.lock().unwrap_or_else(|p| p.into_inner());
        // Commits keep the stored copy current; replace it only if the caller's differs.
        if *stored != *ledger {
            *stored = ledger.clone();
        }
        Ok(())
    }
}

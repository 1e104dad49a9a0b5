//! Where ledgers live between runs. The applier commits [`Change`]s as it goes; a backend
//! makes each commit durable before returning. Backends: a local file ([`file`], the CLI), and
//! Secrets owned by the policy or rule ([`secret`], the operator; also read by the CLI's plans
//! against a cluster).

pub mod file;
pub mod secret;

use async_trait::async_trait;

use crate::engine::ledger::{Change, Ledger};

/// A state backend failed.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// A write refused because this process no longer holds the Lease behind the ledger.
    #[error(
        "not writing the ledger: this process no longer holds the leader Lease (or the object's shard Lease)"
    )]
    Fenced,
    /// Reading, writing or deleting one stored object failed.
    #[error("{action} {name}: {source}")]
    Api {
        action: &'static str,
        name: String,
        #[source]
        source: Box<kube::Error>,
    },
    /// A compare-and-swap write lost: someone wrote the object since it was read.
    #[error(
        "{name} changed under this process (another writer?); the ledger is read again on the next run"
    )]
    Conflict { name: String },
    /// An object at a ledger's name is not that ledger's.
    #[error("{name} is not this ledger's (wrong type, labels or owner); delete or rename it")]
    Foreign { name: String },
    /// This object has no ledger, and an earlier object of the same kind, namespace and name
    /// (uid `uid`) has one: it is taken over only when asked to (`ghl.servis.ai/adopt-ledger`).
    #[error(
        "{head} belongs to the ledger of an earlier {kind} of this name (uid {uid}), restored or left by a delete-and-recreate: annotate this object with ghl.servis.ai/adopt-ledger={uid} to take it over, or delete that ledger's Secrets to start afresh"
    )]
    FromPreviousOwner {
        kind: &'static str,
        uid: String,
        head: String,
    },
    /// A stored object is there but says something unusable.
    #[error("{name} {problem}")]
    Corrupt { name: String, problem: String },
    /// A store committed to before it was loaded (a bug of the caller).
    #[error("a ledger is loaded before it is committed to")]
    NotLoaded,
    /// A local state file.
    #[error("{path}: {source}")]
    File {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A local state file that is not one.
    #[error("{path}: not a ghl-operator state file: {source}")]
    NotAStateFile {
        path: std::path::PathBuf,
        #[source]
        source: serde_json::Error,
    },
    /// Serializing a ledger.
    #[error("encoding the ledger: {0}")]
    Encode(#[from] serde_json::Error),
}

impl StateError {
    /// A failed API call on `name`.
    pub fn api(action: &'static str, name: impl Into<String>, source: kube::Error) -> Self {
        Self::Api {
            action,
            name: name.into(),
            source: Box::new(source),
        }
    }

    /// Whether this is a write refused by the fence.
    pub fn is_fenced(&self) -> bool {
        matches!(self, Self::Fenced)
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

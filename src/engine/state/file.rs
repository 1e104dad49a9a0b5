//! The local-file backend: one JSON snapshot of every owner's ledger, plus a journal of changes
//! appended (and flushed) as they are committed. Loading replays the journal over the snapshot;
//! compaction rewrites the snapshot atomically (temp file + rename) and truncates the journal.
//! A process killed at any point loses nothing that was committed.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::{StateError, StateStore};
use crate::engine::ledger::{Change, Ledger};

/// The snapshot file's content.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Snapshot {
    version: u32,
    owners: BTreeMap<String, Ledger>,
}

#[derive(Serialize, Deserialize)]
struct JournalLine {
    owner: String,
    change: Change,
}

/// A state file shared by all owners of a run (`--state FILE`).
#[derive(Debug)]
pub struct StateFile {
    path: PathBuf,
    journal: PathBuf,
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    owners: BTreeMap<String, Ledger>,
    journal: File,
}

fn err(path: &Path, e: impl std::fmt::Display) -> StateError {
    StateError(format!("{}: {e}", path.display()))
}

impl StateFile {
    /// Opens (or creates) the state at `path`; its journal is `path` + `.journal`.
    pub fn open(path: impl Into<PathBuf>) -> Result<Arc<Self>, StateError> {
        let path = path.into();
        let journal_path = PathBuf::from(format!("{}.journal", path.display()));
        let mut owners = match std::fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice::<Snapshot>(&bytes)
                    .map_err(|e| err(&path, format!("not a ghl-operator state file: {e}")))?
                    .owners
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(err(&path, e)),
        };
        if let Ok(file) = File::open(&journal_path) {
            for (n, line) in BufReader::new(file).lines().enumerate() {
                let line = line.map_err(|e| err(&journal_path, e))?;
                if line.trim().is_empty() {
                    continue;
                }
                match serde_json::from_str::<JournalLine>(&line) {
                    Ok(entry) => owners.entry(entry.owner).or_default().apply(&entry.change),
                    // A torn last line (killed mid-write) carries nothing committed.
                    Err(_) => tracing::warn!(line = n + 1, "ignoring an incomplete journal line"),
                }
            }
        }
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| err(parent, e))?;
        }
        let journal = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&journal_path)
            .map_err(|e| err(&journal_path, e))?;
        Ok(Arc::new(Self {
            path,
            journal: journal_path,
            inner: Mutex::new(Inner { owners, journal }),
        }))
    }

    /// The store of one owner (e.g. `crm/ContactSyncPolicy/vip`).
    pub fn owner(self: &Arc<Self>, owner: impl Into<String>) -> FileStore {
        FileStore {
            file: Arc::clone(self),
            owner: owner.into(),
        }
    }

    /// Writes the snapshot and empties the journal.
    pub fn compact_all(&self) -> Result<(), StateError> {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let snapshot = Snapshot {
            version: 1,
            owners: inner.owners.clone(),
        };
        let temp = PathBuf::from(format!("{}.tmp", self.path.display()));
        let bytes = serde_json::to_vec_pretty(&snapshot).map_err(|e| err(&self.path, e))?;
        let mut file = File::create(&temp).map_err(|e| err(&temp, e))?;
        file.write_all(&bytes).map_err(|e| err(&temp, e))?;
        file.sync_all().map_err(|e| err(&temp, e))?;
        std::fs::rename(&temp, &self.path).map_err(|e| err(&self.path, e))?;
        inner
            .journal
            .set_len(0)
            .map_err(|e| err(&self.journal, e))?;
        Ok(())
    }
}

/// One owner's view of a [`StateFile`].
#[derive(Debug, Clone)]
pub struct FileStore {
    file: Arc<StateFile>,
    owner: String,
}

#[async_trait]
impl StateStore for FileStore {
    async fn load(&self) -> Result<Ledger, StateError> {
        let inner = self.file.inner.lock().unwrap_or_else(|p| p.into_inner());
        Ok(inner.owners.get(&self.owner).cloned().unwrap_or_default())
    }

    async fn commit(&self, changes: &[Change]) -> Result<(), StateError> {
        let mut inner = self.file.inner.lock().unwrap_or_else(|p| p.into_inner());
        let mut text = String::new();
        for change in changes {
            let line = JournalLine {
                owner: self.owner.clone(),
                change: change.clone(),
            };
            text.push_str(&serde_json::to_string(&line).map_err(|e| err(&self.file.journal, e))?);
            text.push('\n');
        }
        inner
            .journal
            .write_all(text.as_bytes())
            .and_then(|()| inner.journal.flush())
            .map_err(|e| err(&self.file.journal, e))?;
        let ledger = inner.owners.entry(self.owner.clone()).or_default();
        for change in changes {
            ledger.apply(change);
        }
        Ok(())
    }

    async fn compact(&self, ledger: &Ledger) -> Result<(), StateError> {
        {
            let mut inner = self.file.inner.lock().unwrap_or_else(|p| p.into_inner());
            inner.owners.insert(self.owner.clone(), ledger.clone());
        }
        self.file.compact_all()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn commits_survive_a_reopen_without_compaction() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        {
            let file = StateFile::open(&path).unwrap();
            let store = file.owner("crm/ContactSyncPolicy/vip");
            store
                .commit(&[Change::ContactBound {
                    key: "a@b.co".into(),
                    id: "c1".into(),
                    created: true,
                }])
                .await
                .unwrap();
            // Dropped without compaction, as a killed process would.
        }
        let file = StateFile::open(&path).unwrap();
        let ledger = file
            .owner("crm/ContactSyncPolicy/vip")
            .load()
            .await
            .unwrap();
        assert!(ledger.contacts["c1"].created);
        assert!(
            file.owner("crm/ContactSyncPolicy/other")
                .load()
                .await
                .unwrap()
                .contacts
                .is_empty()
        );
    }

    #[tokio::test]
    async fn compaction_folds_the_journal_and_a_torn_line_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let file = StateFile::open(&path).unwrap();
        let store = file.owner("o");
        store
            .commit(&[Change::ContactBound {
                key: "k".into(),
                id: "c1".into(),
                created: false,
            }])
            .await
            .unwrap();
        let ledger = store.load().await.unwrap();
        store.compact(&ledger).await.unwrap();
        assert_eq!(
            std::fs::metadata(dir.path().join("state.json.journal"))
                .unwrap()
                .len(),
            0
        );
        drop(file);
        std::fs::write(
            dir.path().join("state.json.journal"),
            "{\"owner\":\"o\",\"cha",
        )
        .unwrap();
        let reopened = StateFile::open(&path).unwrap();
        assert!(
            reopened
                .owner("o")
                .load()
                .await
                .unwrap()
                .contacts
                .contains_key("c1")
        );
    }

    #[test]
    fn a_foreign_file_is_refused_clearly() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        std::fs::write(&path, "hello").unwrap();
        let e = StateFile::open(&path).unwrap_err();
        assert!(
            e.to_string().contains("not a ghl-operator state file"),
            "{e}"
        );
    }
}

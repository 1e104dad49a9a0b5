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

/// The snapshot file's content, each owner's ledger left unparsed until it is wanted (a
/// 100,000-contact ledger is tens of megabytes parsed; a compaction wants every ledger but
/// its own, a load only its own).
#[derive(Debug, Deserialize)]
struct Snapshot {
    #[allow(dead_code)]
    version: u32,
    owners: BTreeMap<String, Box<serde_json::value::RawValue>>,
}

/// The snapshot as written, borrowing the ledgers (no copy of a large state).
#[derive(Serialize)]
struct SnapshotRef<'a> {
    version: u32,
    owners: BTreeMap<&'a str, &'a Ledger>,
}

#[derive(Serialize, Deserialize)]
struct JournalLine {
    owner: String,
    change: Change,
}

/// A state file shared by all owners of a run (`--state FILE`). Nothing is cached in memory:
/// a ledger is read when loaded and handed to its owner, so a large state exists once.
#[derive(Debug)]
pub struct StateFile {
    path: PathBuf,
    journal_path: PathBuf,
    journal: Mutex<File>,
}

fn err(path: &Path, source: std::io::Error) -> StateError {
    StateError::File {
        path: path.to_owned(),
        source,
    }
}

impl StateFile {
    /// Opens (or creates) the state at `path`; its journal is `path` + `.journal`.
    pub fn open(path: impl Into<PathBuf>) -> Result<Arc<Self>, StateError> {
        let path = path.into();
        let journal_path = PathBuf::from(format!("{}.journal", path.display()));
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| err(parent, e))?;
        }
        let journal = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&journal_path)
            .map_err(|e| err(&journal_path, e))?;
        let file = Self {
            path,
            journal_path,
            journal: Mutex::new(journal),
        };
        // Refuse a foreign or corrupt file now rather than mid-run.
        file.read_owners(|_| true)?;
        Ok(Arc::new(file))
    }

    /// The ledgers of the owners `wanted` picks: the snapshot with the journal replayed over
    /// it. Other owners' ledgers and journal lines are skipped, never parsed into a ledger.
    fn read_owners(
        &self,
        wanted: impl Fn(&str) -> bool,
    ) -> Result<BTreeMap<String, Ledger>, StateError> {
        let not_a_state_file = |source| StateError::NotAStateFile {
            path: self.path.clone(),
            source,
        };
        let mut owners = BTreeMap::new();
        match File::open(&self.path) {
            Ok(file) => {
                let snapshot: Snapshot =
                    serde_json::from_reader(BufReader::new(file)).map_err(not_a_state_file)?;
                for (owner, raw) in snapshot.owners {
                    if wanted(&owner) {
                        let ledger: Ledger =
                            serde_json::from_str(raw.get()).map_err(not_a_state_file)?;
                        owners.insert(owner, ledger);
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(err(&self.path, e)),
        }
        if let Ok(file) = File::open(&self.journal_path) {
            for (n, line) in BufReader::new(file).lines().enumerate() {
                let line = line.map_err(|e| err(&self.journal_path, e))?;
                if line.trim().is_empty() {
                    continue;
                }
                match serde_json::from_str::<JournalLine>(&line) {
                    Ok(entry) if wanted(&entry.owner) => {
                        owners.entry(entry.owner).or_default().apply(&entry.change);
                    }
                    Ok(_) => {}
                    // A torn last line (killed mid-write) carries nothing committed.
                    Err(_) => tracing::warn!(line = n + 1, "ignoring an incomplete journal line"),
                }
            }
        }
        Ok(owners)
    }

    /// The store of one owner (e.g. `crm/ContactSyncPolicy/vip`).
    pub fn owner(self: &Arc<Self>, owner: impl Into<String>) -> FileStore {
        FileStore {
            file: Arc::clone(self),
            owner: owner.into(),
        }
    }

    /// Writes a snapshot with `owner`'s ledger replaced, then empties the journal.
    fn compact_with(&self, owner: &str, ledger: &Ledger) -> Result<(), StateError> {
        let journal = self.journal.lock().unwrap_or_else(|p| p.into_inner());
        // The owner's own ledger is the one being written: neither parsed nor replayed.
        let others = self.read_owners(|name| name != owner)?;
        let mut owners: BTreeMap<&str, &Ledger> = others
            .iter()
            .filter(|(name, _)| name.as_str() != owner)
            .map(|(name, l)| (name.as_str(), l))
            .collect();
        owners.insert(owner, ledger);
        let snapshot = SnapshotRef { version: 1, owners };
        let temp = PathBuf::from(format!("{}.tmp", self.path.display()));
        let file = File::create(&temp).map_err(|e| err(&temp, e))?;
        let mut writer = std::io::BufWriter::new(file);
        serde_json::to_writer(&mut writer, &snapshot)?;
        let file = writer
            .into_inner()
            .map_err(|e| err(&temp, e.into_error()))?;
        file.sync_all().map_err(|e| err(&temp, e))?;
        std::fs::rename(&temp, &self.path).map_err(|e| err(&self.path, e))?;
        journal.set_len(0).map_err(|e| err(&self.journal_path, e))?;
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
        let _guard = self.file.journal.lock().unwrap_or_else(|p| p.into_inner());
        Ok(self
            .file
            .read_owners(|name| name == self.owner)?
            .remove(&self.owner)
            .unwrap_or_default())
    }

    async fn commit(&self, changes: &[Change]) -> Result<(), StateError> {
        let mut text = String::new();
        for change in changes {
            let line = JournalLine {
                owner: self.owner.clone(),
                change: change.clone(),
            };
            text.push_str(&serde_json::to_string(&line)?);
            text.push('\n');
        }
        let mut journal = self.file.journal.lock().unwrap_or_else(|p| p.into_inner());
        journal
            .write_all(text.as_bytes())
            .and_then(|()| journal.flush())
            .map_err(|e| err(&self.file.journal_path, e))
    }

    async fn compact(&self, ledger: &Ledger) -> Result<(), StateError> {
        self.file.compact_with(&self.owner, ledger)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::ledger::KeyDigest;

    #[tokio::test]
    async fn commits_survive_a_reopen_without_compaction() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        {
            let file = StateFile::open(&path).unwrap();
            let store = file.owner("crm/ContactSyncPolicy/vip");
            store
                .commit(&[Change::ContactBound {
                    key: KeyDigest::of("a@b.co"),
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
                key: KeyDigest::of("k"),
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

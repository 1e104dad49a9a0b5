//! The in-cluster state backend: a policy's (or rule's) ledger kept in Secrets it owns.
//!
//! - **Shards** hold the compacted ledger, split by contact id so each stays well under the
//!   1 MiB object limit (100,000 contacts take a few dozen shards).
//! - **Journal pages** hold changes committed since the last compaction, as JSON lines; a
//!   commit rewrites only the current page (small), and a full page starts the next one.
//! - `compact` folds everything into shards and deletes the pages.
//!
//! Loading merges the shards and replays the pages in order, so a process killed at any point
//! loses nothing committed. Every object carries an ownerReference to its owner (garbage
//! collected with it) and labels naming it. Keys in a ledger are digests, never emails.
//! Writes use server-side apply with the operator's field manager.

use std::collections::BTreeMap;

use async_trait::async_trait;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{DeleteParams, ListParams, ObjectMeta, Patch, PatchParams};
use kube::{Api, Client};
use tokio::sync::Mutex;

use super::object::Kind;
use crate::crd::vocabulary::{FIELD_MANAGER, LEDGER_SECRET_TYPE, label};
use crate::engine::ledger::{Change, Ledger};
use crate::engine::state::{StateError, StateStore};

/// Largest serialized shard; the API server allows 1 MiB per object.
const SHARD_BYTES: usize = 700 * 1024;
/// A journal page is rewritten on every commit, so it stays small.
const PAGE_BYTES: usize = 64 * 1024;
const DATA_KEY: &str = "ledger";
const ROLE_LABEL: &str = label::LEDGER_ROLE;
const INDEX_LABEL: &str = label::LEDGER_INDEX;
const SECRET_TYPE: &str = LEDGER_SECRET_TYPE;

/// Whose ledger.
#[derive(Clone, Debug)]
pub struct LedgerOwner {
    pub kind: Kind,
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub api_version: String,
}

impl LedgerOwner {
    /// The ledger owner for a policy or rule object.
    pub fn of<K: kube::Resource<DynamicType = ()>>(kind: Kind, obj: &K) -> Self {
        use kube::ResourceExt;
        Self {
            kind,
            namespace: obj.namespace().unwrap_or_default(),
            name: obj.name_any(),
            uid: obj.uid().unwrap_or_default(),
            api_version: K::api_version(&()).into_owned(),
        }
    }

    /// Object names: `ghl-ledger-<kind>-<name>-<role>-<n>`, shortened with a digest if long.
    fn object_name(&self, role: &str, index: usize) -> String {
        let base = format!(
            "ghl-ledger-{}-{}",
            self.kind.as_str().to_lowercase(),
            self.name
        );
        let base = if base.len() > 200 {
            let digest = crate::engine::ledger::key_digest(&base);
            format!("{}-{}", &base[..160], &digest[..12])
        } else {
            base
        };
        format!("{base}-{role}-{index}")
    }

    fn selector(&self) -> String {
        format!(
            "{}={},{}={}",
            label::OWNER_KIND,
            self.kind,
            label::OWNER_NAME,
            label_value(&self.name)
        )
    }
}

/// Label values are at most 63 characters.
fn label_value(name: &str) -> String {
    if name.len() <= 63 {
        name.to_owned()
    } else {
        crate::engine::ledger::key_digest(name)
    }
}

struct Page {
    index: usize,
    text: String,
}

/// A ledger in Secrets.
pub struct SecretLedgerStore {
    api: Api<Secret>,
    owner: LedgerOwner,
    /// The page being written and its content so far.
    page: Mutex<Page>,
}

impl SecretLedgerStore {
    pub fn new(client: Client, owner: LedgerOwner) -> Self {
        Self {
            api: Api::namespaced(client, &owner.namespace),
            owner,
            page: Mutex::new(Page {
                index: 0,
                text: String::new(),
            }),
        }
    }

    async fn list(&self) -> Result<Vec<Secret>, StateError> {
        let params = ListParams::default().labels(&self.owner.selector());
        self.api
            .list(&params)
            .await
            .map(|l| l.items)
            .map_err(|e| StateError(format!("listing ledger objects: {e}")))
    }

    async fn write(&self, role: &str, index: usize, text: &str) -> Result<(), StateError> {
        let name = self.owner.object_name(role, index);
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(self.owner.namespace.clone()),
                labels: Some(BTreeMap::from([
                    (
                        label::MANAGED_BY.to_owned(),
                        label::MANAGED_BY_VALUE.to_owned(),
                    ),
                    (
                        label::OWNER_KIND.to_owned(),
                        self.owner.kind.as_str().to_owned(),
                    ),
                    (label::OWNER_NAME.to_owned(), label_value(&self.owner.name)),
                    (ROLE_LABEL.to_owned(), role.to_owned()),
                    (INDEX_LABEL.to_owned(), index.to_string()),
                ])),
                owner_references: Some(vec![OwnerReference {
                    api_version: self.owner.api_version.clone(),
                    kind: self.owner.kind.as_str().to_owned(),
                    name: self.owner.name.clone(),
                    uid: self.owner.uid.clone(),
                    controller: Some(true),
                    block_owner_deletion: Some(false),
                }]),
                ..ObjectMeta::default()
            },
            type_: Some(SECRET_TYPE.to_owned()),
            data: Some(BTreeMap::from([(
                DATA_KEY.to_owned(),
                ByteString(text.as_bytes().to_vec()),
            )])),
            ..Secret::default()
        };
        let mut value = serde_json::to_value(&secret).map_err(|e| StateError(e.to_string()))?;
        value["apiVersion"] = "v1".into();
        value["kind"] = "Secret".into();
        self.api
            .patch(
                &name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(value),
            )
            .await
            .map(drop)
            .map_err(|e| StateError(format!("writing {name}: {e}")))
    }

    async fn delete(&self, name: &str) -> Result<(), StateError> {
        match self.api.delete(name, &DeleteParams::default()).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
            Err(e) => Err(StateError(format!("deleting {name}: {e}"))),
        }
    }
}

fn role_and_index(secret: &Secret) -> Option<(String, usize)> {
    let labels = secret.metadata.labels.as_ref()?;
    let role = labels.get(ROLE_LABEL)?.clone();
    let index = labels.get(INDEX_LABEL)?.parse().ok()?;
    Some((role, index))
}

fn text_of(secret: &Secret) -> String {
    secret
        .data
        .as_ref()
        .and_then(|d| d.get(DATA_KEY))
        .map(|b| String::from_utf8_lossy(&b.0).into_owned())
        .unwrap_or_default()
}

#[async_trait]
impl StateStore for SecretLedgerStore {
    async fn load(&self) -> Result<Ledger, StateError> {
        let objects = self.list().await?;
        let mut ledger = Ledger::default();
        let mut pages: Vec<(usize, String)> = Vec::new();
        for secret in &objects {
            match role_and_index(secret) {
                Some((role, _)) if role == "shard" => {
                    let shard: Ledger = serde_json::from_str(&text_of(secret))
                        .map_err(|e| StateError(format!("a ledger shard does not parse: {e}")))?;
                    ledger.merge(shard);
                }
                Some((role, index)) if role == "journal" => pages.push((index, text_of(secret))),
                _ => {}
            }
        }
        pages.sort_by_key(|(index, _)| *index);
        for (_, text) in &pages {
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                // A page is written whole, so every line parses; skip defensively if not.
                if let Ok(change) = serde_json::from_str::<Change>(line) {
                    ledger.apply(&change);
                }
            }
        }
        // New commits go after the last existing page.
        let mut page = self.page.lock().await;
        match pages.last() {
            Some((index, text)) => {
                page.index = *index;
                page.text = text.clone();
            }
            None => {
                page.index = 0;
                page.text.clear();
            }
        }
        Ok(ledger)
    }

    async fn commit(&self, changes: &[Change]) -> Result<(), StateError> {
        let mut lines = String::new();
        for change in changes {
            lines.push_str(&serde_json::to_string(change).map_err(|e| StateError(e.to_string()))?);
            lines.push('\n');
        }
        let mut page = self.page.lock().await;
        if !page.text.is_empty() && page.text.len() + lines.len() > PAGE_BYTES {
            page.index += 1;
            page.text.clear();
        }
        page.text.push_str(&lines);
        self.write("journal", page.index, &page.text).await
    }

    async fn compact(&self, ledger: &Ledger) -> Result<(), StateError> {
        let shards = split(ledger)?;
        for (index, text) in shards.iter().enumerate() {
            self.write("shard", index, text).await?;
        }
        let mut page = self.page.lock().await;
        for secret in self.list().await? {
            let Some((role, index)) = role_and_index(&secret) else {
                continue;
            };
            let surplus_shard = role == "shard" && index >= shards.len();
            if role == "journal" || surplus_shard {
                self.delete(&secret.metadata.name.unwrap_or_default())
                    .await?;
            }
        }
        page.index = 0;
        page.text.clear();
        Ok(())
    }
}

/// Splits a ledger into shard texts under [`SHARD_BYTES`] each (by contact id).
fn split(ledger: &Ledger) -> Result<Vec<String>, StateError> {
    let whole = serde_json::to_string(ledger).map_err(|e| StateError(e.to_string()))?;
    // Parts are by id hash, so sizes vary a little: aim a quarter under the limit.
    let mut count = whole.len().div_ceil(SHARD_BYTES * 3 / 4).max(1);
    loop {
        let parts = ledger.partition(count);
        let texts: Vec<String> = parts
            .iter()
            .map(|p| serde_json::to_string(p).map_err(|e| StateError(e.to_string())))
            .collect::<Result<_, _>>()?;
        if texts.iter().all(|t| t.len() <= SHARD_BYTES) {
            return Ok(texts);
        }
        count += count.div_ceil(8);
    }
}

//! The in-cluster state backend: a policy's (or rule's) ledger kept in Secrets it owns.
//!
//! - **Generations.** A *head* object names the live generation; the generation's **shards**
//!   hold the compacted ledger, split by contact id so each stays well under the 1 MiB object
//!   limit (100,000 contacts take a few dozen shards).
//! - **Journal pages** hold changes committed since the generation was written, as JSON lines.
//!   A commit rewrites only the current page; a full page starts the next one.
//! - **Compaction** writes the next generation's shards as new objects, switches the head by
//!   compare-and-swap, then deletes the old generation: a crash at any point leaves one whole
//!   generation live, never a mix. Small journals are left alone (they load fast).
//!
//! Nothing is written last-writer-wins: new objects are created (a name that exists is a
//! conflict) and existing ones replaced with the resourceVersion read. A second writer — a
//! process that lost its Lease — therefore fails instead of erasing commits, and every write
//! also checks the process' [`Fence`]. What this store remembers (the current page) changes
//! only after its write succeeded. Loading trusts only objects of the ledger type, with its
//! labels and an ownerReference to the owner's uid: a Secret merely labelled like a ledger
//! (which could claim `created: true` and so turn into a GHL delete) is ignored and reported.
//! Keys in a ledger are digests, never emails.

use std::collections::BTreeMap;

use async_trait::async_trait;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{DeleteParams, ListParams, ObjectMeta, PostParams};
use kube::{Api, Client};
use tokio::sync::Mutex;

use super::object::Kind;
use crate::crd::vocabulary::{LEDGER_SECRET_TYPE, label};
use crate::engine::fence::Fence;
use crate::engine::ledger::{Change, Ledger};
use crate::engine::state::{StateError, StateStore};

/// Largest serialized shard; the API server allows 1 MiB per object.
const SHARD_BYTES: usize = 700 * 1024;
/// A journal page is rewritten on every commit, so it stays small: what a sync writes to the
/// API server grows with commits × half a page. At 64 KiB, 200 locations of 500 contacts
/// converging at once filled etcd's 2 GB quota within minutes; at 8 KiB a 500-contact sync
/// writes about 8 MB of pages (and compaction folds them into shards at its end).
const PAGE_BYTES: usize = 8 * 1024;
const DATA_KEY: &str = "ledger";
const GENERATION_KEY: &str = "generation";

/// What an object of a ledger holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Head,
    Shard,
    Journal,
}

impl Role {
    fn as_str(self) -> &'static str {
        match self {
            Role::Head => "head",
            Role::Shard => "shard",
            Role::Journal => "journal",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        match text {
            "head" => Some(Role::Head),
            "shard" => Some(Role::Shard),
            "journal" => Some(Role::Journal),
            _ => None,
        }
    }
}

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

    /// `ghl-ledger-<kind>-<name>`, shortened with a digest if long.
    fn base_name(&self) -> String {
        let base = format!(
            "ghl-ledger-{}-{}",
            self.kind.as_str().to_lowercase(),
            self.name
        );
        if base.len() > 200 {
            let digest = crate::engine::ledger::key_digest(&base);
            format!("{}-{}", &base[..160], &digest[..12])
        } else {
            base
        }
    }

    /// Object names: `<base>-head`; generation 0 (and ledgers written before generations)
    /// `<base>-<role>-<n>`, later ones `<base>-g<generation>-<role>-<n>`.
    fn object_name(&self, generation: u64, role: Role, index: usize) -> String {
        let base = self.base_name();
        match (role, generation) {
            (Role::Head, _) => format!("{base}-head"),
            (_, 0) => format!("{base}-{}-{index}", role.as_str()),
            (_, g) => format!("{base}-g{g}-{}-{index}", role.as_str()),
        }
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

/// One object of the ledger, as read.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Part {
    name: String,
    role: Role,
    generation: u64,
    index: usize,
}

/// The object as a part of `owner`'s ledger, or `None` when it is not one: wrong type, no
/// ownerReference to the owner's uid, or labels that do not parse. Pure.
fn verify(secret: &Secret, owner: &LedgerOwner) -> Option<Part> {
    if secret.type_.as_deref() != Some(LEDGER_SECRET_TYPE) || owner.uid.is_empty() {
        return None;
    }
    let owned = secret
        .metadata
        .owner_references
        .iter()
        .flatten()
        .any(|r| r.uid == owner.uid && r.kind == owner.kind.as_str());
    if !owned {
        return None;
    }
    let labels = secret.metadata.labels.as_ref()?;
    let role = Role::parse(labels.get(label::LEDGER_ROLE)?)?;
    let index = match role {
        Role::Head => 0,
        _ => labels.get(label::LEDGER_INDEX)?.parse().ok()?,
    };
    let generation = match labels.get(label::LEDGER_GENERATION) {
        None => 0,
        Some(g) => g.parse().ok()?,
    };
    Some(Part {
        name: secret.metadata.name.clone()?,
        role,
        generation,
        index,
    })
}

/// Where commits go: the live generation and its current journal page.
#[derive(Clone, Debug, Default)]
struct Cursor {
    /// Whether `load` ran (a store that never loaded always compacts).
    loaded: bool,
    generation: u64,
    /// The head's resourceVersion (`None`: no head yet).
    head_version: Option<String>,
    page: usize,
    text: String,
    /// The page's resourceVersion (`None`: not written yet).
    page_version: Option<String>,
}

/// A ledger in Secrets.
pub struct SecretLedgerStore {
    api: Api<Secret>,
    owner: LedgerOwner,
    fence: Fence,
    cursor: Mutex<Cursor>,
}

impl SecretLedgerStore {
    pub fn new(client: Client, owner: LedgerOwner, fence: Fence) -> Self {
        Self {
            api: Api::namespaced(client, &owner.namespace),
            owner,
            fence,
            cursor: Mutex::new(Cursor::default()),
        }
    }

    fn check_fence(&self) -> Result<(), StateError> {
        if self.fence.is_open() {
            Ok(())
        } else {
            Err(StateError(
                "not writing the ledger: this process no longer holds the leader Lease (or the object's shard Lease)".into(),
            ))
        }
    }

    /// The verified parts of this ledger; objects with its labels that are not its own are
    /// reported and left out.
    async fn parts(&self) -> Result<Vec<(Part, Secret)>, StateError> {
        let params = ListParams::default().labels(&self.owner.selector());
        let objects = self
            .api
            .list(&params)
            .await
            .map_err(|e| StateError(format!("listing ledger objects: {e}")))?
            .items;
        let mut parts = Vec::with_capacity(objects.len());
        for secret in objects {
            match verify(&secret, &self.owner) {
                Some(part) => parts.push((part, secret)),
                None => tracing::warn!(
                    secret = secret.metadata.name.as_deref().unwrap_or_default(),
                    owner = %self.owner.name,
                    "ignoring a Secret labelled as a ledger that is not this owner's"
                ),
            }
        }
        Ok(parts)
    }

    fn secret(&self, generation: u64, role: Role, index: usize, data: (&str, &str)) -> Secret {
        let mut labels = BTreeMap::from([
            (
                label::MANAGED_BY.to_owned(),
                label::MANAGED_BY_VALUE.to_owned(),
            ),
            (
                label::OWNER_KIND.to_owned(),
                self.owner.kind.as_str().to_owned(),
            ),
            (label::OWNER_NAME.to_owned(), label_value(&self.owner.name)),
            (label::LEDGER_ROLE.to_owned(), role.as_str().to_owned()),
        ]);
        if role != Role::Head {
            labels.insert(label::LEDGER_INDEX.to_owned(), index.to_string());
            labels.insert(label::LEDGER_GENERATION.to_owned(), generation.to_string());
        }
        Secret {
            metadata: ObjectMeta {
                name: Some(self.owner.object_name(generation, role, index)),
                namespace: Some(self.owner.namespace.clone()),
                labels: Some(labels),
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
            type_: Some(LEDGER_SECRET_TYPE.to_owned()),
            data: Some(BTreeMap::from([(
                data.0.to_owned(),
                ByteString(data.1.as_bytes().to_vec()),
            )])),
            ..Secret::default()
        }
    }

    /// Creates `secret` (`version: None`) or replaces it only if it is still at `version`;
    /// returns the new resourceVersion. Someone else's write in between is a conflict.
    async fn put(&self, mut secret: Secret, version: Option<&str>) -> Result<String, StateError> {
        self.check_fence()?;
        let name = secret.metadata.name.clone().unwrap_or_default();
        let written = match version {
            None => self.api.create(&PostParams::default(), &secret).await,
            Some(version) => {
                secret.metadata.resource_version = Some(version.to_owned());
                self.api
                    .replace(&name, &PostParams::default(), &secret)
                    .await
            }
        };
        match written {
            Ok(secret) => Ok(secret.metadata.resource_version.unwrap_or_default()),
            Err(kube::Error::Api(e)) if e.code == 409 => Err(StateError(format!(
                "{name} changed under this process (another writer?); the ledger is read \
                 again on the next run"
            ))),
            Err(e) => Err(StateError(format!("writing {name}: {e}"))),
        }
    }

    async fn delete(&self, name: &str) -> Result<(), StateError> {
        self.check_fence()?;
        match self.api.delete(name, &DeleteParams::default()).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
            Err(e) => Err(StateError(format!("deleting {name}: {e}"))),
        }
    }

    /// The live generation and the head's resourceVersion (generation 0 without a head).
    async fn head(&self) -> Result<(u64, Option<String>), StateError> {
        let name = self.owner.object_name(0, Role::Head, 0);
        let head = self
            .api
            .get_opt(&name)
            .await
            .map_err(|e| StateError(format!("reading {name}: {e}")))?;
        let Some(head) = head else {
            return Ok((0, None));
        };
        if verify(&head, &self.owner).map(|p| p.role) != Some(Role::Head) {
            return Err(StateError(format!(
                "{name} is not this ledger's head (wrong type, labels or owner); \
                 delete or rename it"
            )));
        }
        let generation = text_of(&head, GENERATION_KEY)
            .trim()
            .parse()
            .map_err(|_| StateError(format!("{name} does not name a generation")))?;
        Ok((generation, head.metadata.resource_version))
    }
}

fn text_of(secret: &Secret, key: &str) -> String {
    secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .map(|b| String::from_utf8_lossy(&b.0).into_owned())
        .unwrap_or_default()
}

#[async_trait]
impl StateStore for SecretLedgerStore {
    async fn load(&self) -> Result<Ledger, StateError> {
        let (generation, head_version) = self.head().await?;
        let mut ledger = Ledger::default();
        let mut pages: Vec<(usize, String, Option<String>)> = Vec::new();
        for (part, secret) in self.parts().await? {
            if part.generation != generation {
                continue; // an old generation not deleted yet, or an unfinished compaction
            }
            match part.role {
                Role::Shard => {
                    let shard: Ledger = serde_json::from_str(&text_of(&secret, DATA_KEY))
                        .map_err(|e| StateError(format!("{} does not parse: {e}", part.name)))?;
                    ledger.merge(shard);
                }
                Role::Journal => pages.push((
                    part.index,
                    text_of(&secret, DATA_KEY),
                    secret.metadata.resource_version,
                )),
                Role::Head => {}
            }
        }
        pages.sort_by_key(|(index, ..)| *index);
        for (index, text, _) in &pages {
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                match serde_json::from_str::<Change>(line) {
                    Ok(change) => ledger.apply(&change),
                    // Pages are written whole; a line that does not parse was not ours.
                    Err(error) => {
                        tracing::warn!(page = index, %error, "skipping a ledger line that does not parse")
                    }
                }
            }
        }
        // New commits go after the last existing page.
        let (page, text, page_version) = pages.pop().unwrap_or_default();
        *self.cursor.lock().await = Cursor {
            loaded: true,
            generation,
            head_version,
            page,
            text,
            page_version,
        };
        Ok(ledger)
    }

    async fn commit(&self, changes: &[Change]) -> Result<(), StateError> {
        let mut lines = String::new();
        for change in changes {
            lines.push_str(&serde_json::to_string(change).map_err(|e| StateError(e.to_string()))?);
            lines.push('\n');
        }
        let mut cursor = self.cursor.lock().await;
        if !cursor.loaded {
            return Err(StateError(
                "a ledger is loaded before it is committed to".into(),
            ));
        }
        let (page, text, version) =
            if !cursor.text.is_empty() && cursor.text.len() + lines.len() > PAGE_BYTES {
                (cursor.page + 1, lines, None)
            } else {
                let mut text = cursor.text.clone();
                text.push_str(&lines);
                (cursor.page, text, cursor.page_version.clone())
            };
        let secret = self.secret(
            cursor.generation,
            Role::Journal,
            page,
            (DATA_KEY, text.as_str()),
        );
        let written = self.put(secret, version.as_deref()).await?;
        cursor.page = page;
        cursor.text = text;
        cursor.page_version = Some(written);
        Ok(())
    }

    async fn compact(&self, ledger: &Ledger) -> Result<(), StateError> {
        let mut cursor = self.cursor.lock().await;
        if cursor.loaded && cursor.page == 0 && cursor.text.len() <= PAGE_BYTES / 2 {
            return Ok(()); // a short journal loads as fast as shards
        }
        if !cursor.loaded {
            let (generation, head_version) = self.head().await?;
            cursor.generation = generation;
            cursor.head_version = head_version;
        }
        let next = cursor.generation.saturating_add(1);
        let parts = self.parts().await?;
        // Leftovers of an unfinished compaction to the same generation go first.
        for (part, _) in parts.iter().filter(|(p, _)| p.generation == next) {
            self.delete(&part.name).await?;
        }
        for (index, text) in split(ledger)?.iter().enumerate() {
            let shard = self.secret(next, Role::Shard, index, (DATA_KEY, text));
            self.put(shard, None).await?;
        }
        let generation = next.to_string();
        let head = self.secret(next, Role::Head, 0, (GENERATION_KEY, &generation));
        let head_version = self.put(head, cursor.head_version.as_deref()).await?;
        *cursor = Cursor {
            loaded: true,
            generation: next,
            head_version: Some(head_version),
            ..Cursor::default()
        };
        // The new generation is live: the rest is garbage (a failure here only leaves some).
        for (part, _) in &parts {
            if part.role != Role::Head
                && part.generation != next
                && let Err(error) = self.delete(&part.name).await
            {
                tracing::warn!(%error, "could not delete an old ledger object; retried at the next compaction");
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn owner() -> LedgerOwner {
        LedgerOwner {
            kind: Kind::ContactSyncPolicy,
            namespace: "crm".into(),
            name: "vip".into(),
            uid: "uid-1".into(),
            api_version: "ghl.servis.ai/v1alpha1".into(),
        }
    }

    fn object(type_: &str, owner_uid: &str, labels: &[(&str, &str)]) -> Secret {
        Secret {
            metadata: ObjectMeta {
                name: Some("ghl-ledger-contactsyncpolicy-vip-shard-0".into()),
                labels: Some(
                    labels
                        .iter()
                        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                        .collect(),
                ),
                owner_references: Some(vec![OwnerReference {
                    kind: "ContactSyncPolicy".into(),
                    uid: owner_uid.into(),
                    ..OwnerReference::default()
                }]),
                ..ObjectMeta::default()
            },
            type_: Some(type_.into()),
            ..Secret::default()
        }
    }

    #[test]
    fn only_the_owners_own_ledger_objects_are_trusted() {
        let role = label::LEDGER_ROLE;
        let index = label::LEDGER_INDEX;
        let generation = label::LEDGER_GENERATION;
        let shard = Some((Role::Shard, 0, 3));
        let table = [
            (
                "a shard",
                LEDGER_SECRET_TYPE,
                "uid-1",
                vec![(role, "shard"), (index, "3")],
                shard,
            ),
            (
                "a later generation",
                LEDGER_SECRET_TYPE,
                "uid-1",
                vec![(role, "journal"), (index, "0"), (generation, "7")],
                Some((Role::Journal, 7, 0)),
            ),
            (
                "a head",
                LEDGER_SECRET_TYPE,
                "uid-1",
                vec![(role, "head")],
                Some((Role::Head, 0, 0)),
            ),
            (
                "an Opaque Secret",
                "Opaque",
                "uid-1",
                vec![(role, "shard"), (index, "3")],
                None,
            ),
            (
                "another owner's uid",
                LEDGER_SECRET_TYPE,
                "uid-2",
                vec![(role, "shard"), (index, "3")],
                None,
            ),
            (
                "an unknown role",
                LEDGER_SECRET_TYPE,
                "uid-1",
                vec![(role, "admin"), (index, "3")],
                None,
            ),
            (
                "an index that is not a number",
                LEDGER_SECRET_TYPE,
                "uid-1",
                vec![(role, "shard"), (index, "-1")],
                None,
            ),
            (
                "a generation that is not a number",
                LEDGER_SECRET_TYPE,
                "uid-1",
                vec![(role, "shard"), (index, "1"), (generation, "x")],
                None,
            ),
        ];
        for (name, type_, uid, labels, expected) in table {
            let got = verify(&object(type_, uid, &labels), &owner())
                .map(|p| (p.role, p.generation, p.index));
            assert_eq!(got, expected, "{name}");
        }
    }

    #[test]
    fn generations_have_distinct_names_and_generation_zero_keeps_the_old_ones() {
        let owner = owner();
        assert_eq!(
            owner.object_name(0, Role::Shard, 2),
            "ghl-ledger-contactsyncpolicy-vip-shard-2"
        );
        assert_eq!(
            owner.object_name(3, Role::Journal, 0),
            "ghl-ledger-contactsyncpolicy-vip-g3-journal-0"
        );
        assert_eq!(
            owner.object_name(9, Role::Head, 0),
            "ghl-ledger-contactsyncpolicy-vip-head"
        );
    }
}

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
//! - **Loading by name.** The head records the live generation's shard count (and the
//!   generation it retired), so a load GETs the head, its shards and its pages until the first
//!   missing one. Nothing lists by label: a label-selected list makes etcd read every Secret
//!   of the namespace, and 200 ledgers loading at once in one namespace ran etcd out of memory.
//!
//! Nothing is written last-writer-wins: new objects are created (a name that exists is a
//! conflict) and existing ones replaced with the resourceVersion read. A second writer — a
//! process that lost its Lease — therefore fails instead of erasing commits, and every write
//! also checks the process' [`Fence`]. What this store remembers (the current page) changes
//! only after its write succeeded. Loading trusts only objects of the ledger type, with its
//! labels and an ownerReference to the owner's uid: a Secret at a ledger's name that is not
//! the owner's (which could claim `created: true` and so turn into a GHL delete) stops the
//! load with an error naming it; Secrets merely labelled like a ledger are never read.
//! Keys in a ledger are digests, never emails.

use std::collections::BTreeMap;

use async_trait::async_trait;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{DeleteParams, ObjectMeta, PostParams};
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
/// The head's count of the live generation's shards (heads written before it: probed).
const SHARDS_KEY: &str = "shards";
/// The head's record of the generation it replaced, `<generation> <shards> <pages>`, so a
/// cleanup that failed is finished by the next compaction.
const RETIRED_KEY: &str = "retired";

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
    /// The live generation's shard count.
    shards: usize,
    /// The generation the head retired (its objects may outlive a failed cleanup).
    retired: Option<Generation>,
    page: usize,
    text: String,
    /// The page's resourceVersion (`None`: not written yet).
    page_version: Option<String>,
}

/// A generation's extent: which objects it has.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Generation {
    generation: u64,
    shards: usize,
    pages: usize,
}

impl Generation {
    fn format(self) -> String {
        format!("{} {} {}", self.generation, self.shards, self.pages)
    }

    fn parse(text: &str) -> Option<Self> {
        let mut fields = text.split_whitespace().map(str::parse::<u64>);
        let (Some(Ok(generation)), Some(Ok(shards)), Some(Ok(pages)), None) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            return None;
        };
        // A head that counts more objects than a ledger can have is not believed.
        let count = |n: u64| usize::try_from(n).ok().filter(|n| *n <= MAX_OBJECTS);
        Some(Self {
            generation,
            shards: count(shards)?,
            pages: count(pages)?,
        })
    }
}

/// What the head says (all defaults without a head).
#[derive(Clone, Debug, Default)]
struct Head {
    generation: u64,
    version: Option<String>,
    /// `None`: a head written before it recorded its shards (or none): probe them.
    shards: Option<usize>,
    retired: Option<Generation>,
}

/// At most this many objects of one role are probed: a ledger of 100,000 contacts has a few
/// dozen shards; a journal is compacted long before.
const MAX_OBJECTS: usize = 10_000;

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
            Err(StateError::fenced())
        }
    }

    /// The object at `generation`/`role`/`index`, if there is one; an object at that name
    /// that is not this ledger's is an error (it would be trusted or overwritten otherwise).
    async fn get(
        &self,
        generation: u64,
        role: Role,
        index: usize,
    ) -> Result<Option<Secret>, StateError> {
        let name = self.owner.object_name(generation, role, index);
        let Some(secret) = self
            .api
            .get_opt(&name)
            .await
            .map_err(|e| StateError(format!("reading {name}: {e}")))?
        else {
            return Ok(None);
        };
        let expected = (role, if role == Role::Head { 0 } else { generation }, index);
        match verify(&secret, &self.owner) {
            Some(part) if (part.role, part.generation, part.index) == expected => Ok(Some(secret)),
            _ => Err(StateError(format!(
                "{name} is not this ledger's (wrong type, labels or owner); delete or rename it"
            ))),
        }
    }

    /// The objects of one role of a generation from index `from` up to the first missing one.
    async fn probe(
        &self,
        generation: u64,
        role: Role,
        from: usize,
    ) -> Result<Vec<Secret>, StateError> {
        let mut found = Vec::new();
        for index in from..MAX_OBJECTS {
            match self.get(generation, role, index).await? {
                Some(secret) => found.push(secret),
                None => break,
            }
        }
        Ok(found)
    }

    /// The shards of the live generation: the count the head records, else probed.
    async fn shards(&self, head: &Head) -> Result<Vec<Secret>, StateError> {
        let Some(count) = head.shards else {
            return self.probe(head.generation, Role::Shard, 0).await;
        };
        let mut shards = Vec::with_capacity(count);
        for index in 0..count {
            let secret = self.get(head.generation, Role::Shard, index).await?;
            shards.push(secret.ok_or_else(|| {
                StateError(format!(
                    "{} is missing: the ledger's head names {count} shards",
                    self.owner.object_name(head.generation, Role::Shard, index)
                ))
            })?);
        }
        Ok(shards)
    }

    /// Deletes every object of `old`; a failure only leaves garbage (warned about).
    async fn retire(&self, old: Generation) {
        let names = (0..old.shards)
            .map(|i| self.owner.object_name(old.generation, Role::Shard, i))
            .chain(
                (0..old.pages).map(|i| self.owner.object_name(old.generation, Role::Journal, i)),
            );
        for name in names {
            if let Err(error) = self.delete(&name).await {
                tracing::warn!(%error, "could not delete an old ledger object; retried at the next compaction");
            }
        }
    }

    fn secret(&self, generation: u64, role: Role, index: usize, data: &[(&str, &str)]) -> Secret {
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
            data: Some(
                data.iter()
                    .map(|(key, value)| ((*key).to_owned(), ByteString(value.as_bytes().to_vec())))
                    .collect(),
            ),
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

    /// What the head says (generation 0 and nothing else without a head).
    async fn head(&self) -> Result<Head, StateError> {
        let name = self.owner.object_name(0, Role::Head, 0);
        let Some(head) = self.get(0, Role::Head, 0).await? else {
            return Ok(Head::default());
        };
        let generation = text_of(&head, GENERATION_KEY)
            .trim()
            .parse()
            .map_err(|_| StateError(format!("{name} does not name a generation")))?;
        let shards = text_of(&head, SHARDS_KEY);
        let shards = match shards.trim() {
            "" => None,
            count => Some(
                count
                    .parse()
                    .ok()
                    .filter(|n| *n <= MAX_OBJECTS)
                    .ok_or_else(|| StateError(format!("{name} does not count its shards")))?,
            ),
        };
        Ok(Head {
            generation,
            shards,
            retired: Generation::parse(&text_of(&head, RETIRED_KEY)),
            version: head.metadata.resource_version,
        })
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
        let head = self.head().await?;
        let shards = self.shards(&head).await?;
        let mut ledger = Ledger::default();
        for secret in &shards {
            let shard: Ledger = serde_json::from_str(&text_of(secret, DATA_KEY)).map_err(|e| {
                let name = secret.metadata.name.as_deref().unwrap_or_default();
                StateError(format!("{name} does not parse: {e}"))
            })?;
            ledger.merge(shard);
        }
        let pages = self.probe(head.generation, Role::Journal, 0).await?;
        for (index, page) in pages.iter().enumerate() {
            for line in text_of(page, DATA_KEY)
                .lines()
                .filter(|l| !l.trim().is_empty())
            {
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
        let (page, text, page_version) = match pages.last() {
            Some(last) => (
                pages.len() - 1,
                text_of(last, DATA_KEY),
                last.metadata.resource_version.clone(),
            ),
            None => (0, String::new(), None),
        };
        *self.cursor.lock().await = Cursor {
            loaded: true,
            generation: head.generation,
            head_version: head.version,
            shards: shards.len(),
            retired: head.retired,
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
            &[(DATA_KEY, text.as_str())],
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
        let live = if cursor.loaded {
            Generation {
                generation: cursor.generation,
                shards: cursor.shards,
                pages: if cursor.page_version.is_some() {
                    cursor.page + 1
                } else {
                    0
                },
            }
        } else {
            let head = self.head().await?;
            let shards = self.shards(&head).await?.len();
            let pages = self.probe(head.generation, Role::Journal, 0).await?.len();
            cursor.head_version = head.version;
            cursor.retired = head.retired;
            Generation {
                generation: head.generation,
                shards,
                pages,
            }
        };
        // A cleanup the last compaction could not finish.
        if let Some(retired) = cursor.retired {
            self.retire(retired).await;
        }
        // Leftovers of an unfinished compaction to the same generation go first.
        let next = live.generation.saturating_add(1);
        for role in [Role::Shard, Role::Journal] {
            for secret in self.probe(next, role, 0).await? {
                self.delete(secret.metadata.name.as_deref().unwrap_or_default())
                    .await?;
            }
        }
        let texts = split(ledger)?;
        for (index, text) in texts.iter().enumerate() {
            let shard = self.secret(next, Role::Shard, index, &[(DATA_KEY, text)]);
            self.put(shard, None).await?;
        }
        let (generation, shards, retired) =
            (next.to_string(), texts.len().to_string(), live.format());
        let head = self.secret(
            next,
            Role::Head,
            0,
            &[
                (GENERATION_KEY, &generation),
                (SHARDS_KEY, &shards),
                (RETIRED_KEY, &retired),
            ],
        );
        let head_version = self.put(head, cursor.head_version.as_deref()).await?;
        *cursor = Cursor {
            loaded: true,
            generation: next,
            head_version: Some(head_version),
            shards: texts.len(),
            retired: Some(live),
            ..Cursor::default()
        };
        // The new generation is live: the old one is garbage.
        self.retire(live).await;
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
    fn a_retired_generation_is_believed_only_within_a_ledgers_size() {
        let generation = |generation, shards, pages| Generation {
            generation,
            shards,
            pages,
        };
        assert_eq!(
            Generation::parse(&generation(3, 12, 2).format()),
            Some(generation(3, 12, 2))
        );
        for bad in [
            "",
            "3 12",
            "3 12 2 1",
            "x 1 1",
            "3 -1 0",
            "3 99999999999 0",
            "3 0 10001",
        ] {
            assert_eq!(Generation::parse(bad), None, "{bad:?}");
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

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
//! - **Names.** Every object name starts `ghl-ledger-<kind>-<name>-<digest of the owner's
//!   uid>`, so no two owners' names meet. Ledgers written before that (no digest) are still
//!   read, and their next compaction writes the new names and deletes the old ones.
//!
//! Nothing is written last-writer-wins: new objects are created (a name that exists is a
//! conflict) and existing ones replaced with the resourceVersion read. A second writer — a
//! process that lost its Lease — therefore fails instead of erasing commits, and every write
//! also checks the process' [`Fence`]. What this store remembers (the current page) changes
//! only after its write succeeded. Loading trusts only objects of the ledger type, with its
//! labels and an ownerReference to the owner's uid: a Secret at a ledger's name that is not
//! the owner's (which could claim `created: true` and so turn into a GHL delete) stops the
//! load with an error naming it; Secrets merely labelled like a ledger are never read. Nothing
//! is deleted by name alone: a delete follows a GET that verified the object as the ledger's,
//! with that object's uid as a precondition.
//! Keys in a ledger are digests, never emails.
//!
//! - **Restores.** An object that has no ledger of its own looks once (a label-selected list
//!   served from the API server's cache) for the ledger of an earlier object of its kind,
//!   namespace and name — a Velero restore, or a delete-and-recreate, gives the object a new
//!   uid — and stops with [`StateError::FromPreviousOwner`] if there is one, rather than plan
//!   as if it owned nothing. With `ghl.servis.ai/adopt-ledger=<old uid>` it takes that ledger
//!   over: reads it (its objects may have lost their ownerReferences on the way), writes it
//!   as its own generation, then deletes the old objects.

mod objects;

use std::collections::HashMap;
use std::sync::LazyLock;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{DeleteParams, ListParams, PostParams, Preconditions, VersionMatch};
use kube::{Api, Client};
use tokio::sync::Mutex;

use self::objects::*;
pub use self::objects::{LedgerOwner, Naming};
use crate::engine::fence::Fence;
use crate::engine::ledger::{Change, Ledger};
use crate::engine::state::{StateError, StateStore};

/// Where commits go: the live generation and its current journal page.
#[derive(Clone, Debug, Default)]
struct Cursor {
    /// Whether `load` ran (a store that never loaded always compacts).
    loaded: bool,
    /// The live generation's naming.
    naming: Naming,
    generation: u64,
    /// The resourceVersion of the head under the owned naming (`None`: none yet).
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

/// Owners (by uid) found to have no earlier owner's ledger, and when: not looked for again
/// for [`NO_PREDECESSOR_FOR`] (Secrets restored after their object are found then).
static NO_PREDECESSOR: LazyLock<std::sync::Mutex<HashMap<String, std::time::Instant>>> =
    LazyLock::new(Default::default);
const NO_PREDECESSOR_FOR: std::time::Duration = std::time::Duration::from_secs(300);
/// Entries kept at most (uids of objects without a ledger of their own yet).
const NO_PREDECESSOR_MAX: usize = 100_000;

impl Cursor {
    /// The live generation's extent, as loaded (a page not written yet is no object).
    fn live(&self) -> Generation {
        Generation {
            naming: self.naming,
            generation: self.generation,
            shards: self.shards,
            pages: if self.page_version.is_some() {
                self.page + 1
            } else {
                0
            },
        }
    }
}

/// A ledger in Secrets.
pub struct SecretLedgerStore {
    api: Api<Secret>,
    owner: LedgerOwner,
    fence: Fence,
    cursor: Mutex<Cursor>,
    /// The earlier owner (uid) whose ledger to take over when this one has none.
    adopt: Option<String>,
    /// Objects without an ownerReference count as the owner's (an earlier owner's ledger
    /// being adopted: a restore or the garbage collector may have dropped them).
    unowned_ok: bool,
}

impl SecretLedgerStore {
    pub fn new(client: Client, owner: LedgerOwner, fence: Fence) -> Self {
        Self {
            api: Api::namespaced(client, &owner.namespace),
            owner,
            fence,
            cursor: Mutex::new(Cursor::default()),
            adopt: None,
            unowned_ok: false,
        }
    }

    /// Takes over the ledger of the earlier owner `uid` (same kind, namespace and name) if this
    /// one has none (`ghl.servis.ai/adopt-ledger`).
    pub fn adopting(mut self, uid: Option<String>) -> Self {
        self.adopt = uid.map(|u| u.trim().to_owned()).filter(|u| !u.is_empty());
        self
    }

    /// The earlier owner's ledger, as found under its names.
    fn predecessor(&self, uid: &str) -> Self {
        Self {
            api: self.api.clone(),
            owner: LedgerOwner {
                uid: uid.to_owned(),
                ..self.owner.clone()
            },
            fence: self.fence.clone(),
            cursor: Mutex::new(Cursor::default()),
            adopt: None,
            unowned_ok: true,
        }
    }

    /// Whether this owner has no ledger objects at all (no head, no first journal page, under
    /// either naming).
    pub async fn is_empty(&self) -> Result<bool, StateError> {
        for naming in [Naming::Owned, Naming::Legacy] {
            if self.get(naming, 0, Role::Head, 0).await?.is_some()
                || self.get(naming, 0, Role::Journal, 0).await?.is_some()
                || self.get(naming, 0, Role::Shard, 0).await?.is_some()
            {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// An earlier owner's ledger, if there is one: an object labelled with this kind and name
    /// that is not this owner's (a head, or the journal of a ledger too small to compact),
    /// with the uid it belonged to (from its ownerReference, or the uid annotation written
    /// since). Listed from the API server's cache, once per owner.
    async fn earlier_owner(&self) -> Result<Option<(String, String)>, StateError> {
        let checked = NO_PREDECESSOR
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&self.owner.uid)
            .copied();
        if checked.is_some_and(|at| at.elapsed() < NO_PREDECESSOR_FOR) {
            return Ok(None);
        }
        // Heads and journal pages only: a ledger's shards (up to 700 KB each) stay unread.
        let selector = format!(
            "{}={},{}={},{} in (head,journal)",
            crate::crd::vocabulary::label::OWNER_KIND,
            self.owner.kind.as_str(),
            crate::crd::vocabulary::label::OWNER_NAME,
            label_value(&self.owner.name),
            crate::crd::vocabulary::label::LEDGER_ROLE,
        );
        let params = ListParams {
            label_selector: Some(selector),
            resource_version: Some("0".into()),
            version_match: Some(VersionMatch::NotOlderThan),
            ..ListParams::default()
        };
        let heads = self
            .api
            .list(&params)
            .await
            .map_err(|e| StateError::api("listing", "ledger objects", e))?;
        let found = heads.items.iter().find_map(|object| {
            let uid = earlier_uid(object, &self.owner)?;
            // Only an object at that uid's names (one elsewhere is no ledger of it).
            let base = LedgerOwner {
                uid: uid.clone(),
                ..self.owner.clone()
            }
            .base_name(Naming::Owned);
            let name = object.metadata.name.clone()?;
            name.starts_with(&format!("{base}-")).then_some((uid, name))
        });
        if found.is_none() {
            let mut clean = NO_PREDECESSOR.lock().unwrap_or_else(|p| p.into_inner());
            if clean.len() >= NO_PREDECESSOR_MAX {
                clean.clear();
            }
            clean.insert(self.owner.uid.clone(), std::time::Instant::now());
        }
        Ok(found)
    }

    /// Takes over the ledger of the earlier owner `uid`: reads it whole, writes it as this
    /// owner's next generation, then deletes the earlier objects. `None`: it has none.
    async fn adopt_from(&self, uid: &str) -> Result<Option<Ledger>, StateError> {
        if uid == self.owner.uid {
            return Ok(None);
        }
        let earlier = self.predecessor(uid);
        if earlier.is_empty().await? {
            return Ok(None);
        }
        let ledger = earlier.load().await?;
        // Written under this owner first; the earlier objects go only once it is live.
        self.compact_whole(&ledger).await?;
        let old = earlier.cursor.lock().await.live();
        earlier.retire(old).await;
        for naming in [Naming::Owned, Naming::Legacy] {
            if let Ok(Some(head)) = earlier.get(naming, 0, Role::Head, 0).await
                && let Err(error) = earlier.delete(&head).await
            {
                tracing::warn!(%error, "could not delete an adopted ledger's head");
            }
        }
        tracing::info!(
            kind = self.owner.kind.as_str(),
            namespace = %self.owner.namespace,
            name = %self.owner.name,
            contacts = ledger.contacts.len(),
            "took over the ledger of an earlier object of this name (ghl.servis.ai/adopt-ledger)"
        );
        Ok(Some(ledger))
    }

    fn check_fence(&self) -> Result<(), StateError> {
        if self.fence.is_open() {
            Ok(())
        } else {
            Err(StateError::Fenced)
        }
    }

    /// The object at `generation`/`role`/`index`, if there is one; an object at that name
    /// that is not this ledger's is an error (it would be trusted or overwritten otherwise).
    async fn get(
        &self,
        naming: Naming,
        generation: u64,
        role: Role,
        index: usize,
    ) -> Result<Option<Secret>, StateError> {
        let name = self.owner.object_name(naming, generation, role, index);
        let Some(secret) = self
            .api
            .get_opt(&name)
            .await
            .map_err(|e| StateError::api("reading", &name, e))?
        else {
            return Ok(None);
        };
        let expected = (role, if role == Role::Head { 0 } else { generation }, index);
        let part = if self.unowned_ok {
            verify_adoptable(&secret, &self.owner)
        } else {
            verify(&secret, &self.owner)
        };
        match part {
            Some(part) if (part.role, part.generation, part.index) == expected => Ok(Some(secret)),
            _ => Err(StateError::Foreign { name }),
        }
    }

    /// The objects of one role of a generation from index `from` up to the first missing one.
    async fn probe(
        &self,
        naming: Naming,
        generation: u64,
        role: Role,
    ) -> Result<Vec<Secret>, StateError> {
        let mut found = Vec::new();
        for index in 0..MAX_OBJECTS {
            match self.get(naming, generation, role, index).await? {
                Some(secret) => found.push(secret),
                None => break,
            }
        }
        Ok(found)
    }

    /// The shards of the live generation: the count the head records, else probed.
    async fn shards(&self, head: &Head) -> Result<Vec<Secret>, StateError> {
        let Some(count) = head.shards else {
            return self.probe(head.naming, head.generation, Role::Shard).await;
        };
        let mut shards = Vec::with_capacity(count);
        for index in 0..count {
            let secret = self
                .get(head.naming, head.generation, Role::Shard, index)
                .await?;
            shards.push(secret.ok_or_else(|| {
                corrupt(
                    &self
                        .owner
                        .object_name(head.naming, head.generation, Role::Shard, index),
                    format!("is missing: the ledger's head names {count} shards"),
                )
            })?);
        }
        Ok(shards)
    }

    /// Deletes every object of `old` (and, for a legacy generation, the legacy head); a
    /// failure only leaves garbage (warned about), and an object at one of its names that is
    /// not the ledger's is left alone.
    async fn retire(&self, old: Generation) {
        let objects = (0..old.shards)
            .map(|i| (old.generation, Role::Shard, i))
            .chain((0..old.pages).map(|i| (old.generation, Role::Journal, i)))
            .chain((old.naming == Naming::Legacy).then_some((0, Role::Head, 0)));
        for (generation, role, index) in objects {
            let found = self.get(old.naming, generation, role, index).await;
            let deleted = match found {
                Ok(Some(secret)) => self.delete(&secret).await,
                Ok(None) => Ok(()),
                Err(error) => Err(error),
            };
            if let Err(error) = deleted {
                tracing::warn!(%error, "could not delete an old ledger object; retried at the next compaction");
            }
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
            Err(kube::Error::Api(e)) if e.code == 409 => Err(StateError::Conflict { name }),
            Err(e) => Err(StateError::api("writing", name, e)),
        }
    }

    /// Deletes `secret`, read and verified as the ledger's: only that very object (its uid
    /// is a precondition), so a Secret created at its name since is left alone.
    async fn delete(&self, secret: &Secret) -> Result<(), StateError> {
        self.check_fence()?;
        let name = secret.metadata.name.as_deref().unwrap_or_default();
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: secret.metadata.uid.clone(),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        match self.api.delete(name, &params).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => Ok(()),
            Err(e) => Err(StateError::api("deleting", name, e)),
        }
    }

    /// What the head says: the owned head, else a legacy one; without a head, generation 0
    /// under the naming whose objects exist (the owned one for a new ledger).
    async fn head(&self) -> Result<Head, StateError> {
        for naming in [Naming::Owned, Naming::Legacy] {
            if let Some(head) = self.get(naming, 0, Role::Head, 0).await? {
                return self.parse_head(naming, head);
            }
        }
        let owned = self
            .get(Naming::Owned, 0, Role::Journal, 0)
            .await?
            .is_some();
        let legacy = !owned
            && (self.get(Naming::Legacy, 0, Role::Shard, 0).await?.is_some()
                || self
                    .get(Naming::Legacy, 0, Role::Journal, 0)
                    .await?
                    .is_some());
        Ok(Head {
            naming: if legacy {
                Naming::Legacy
            } else {
                Naming::Owned
            },
            ..Head::default()
        })
    }

    fn parse_head(&self, naming: Naming, head: Secret) -> Result<Head, StateError> {
        let name = self.owner.object_name(naming, 0, Role::Head, 0);
        let generation = text_of(&head, GENERATION_KEY)
            .trim()
            .parse()
            .map_err(|_| corrupt(&name, "does not name a generation"))?;
        let shards = text_of(&head, SHARDS_KEY);
        let shards = match shards.trim() {
            "" => None,
            count => Some(
                count
                    .parse()
                    .ok()
                    .filter(|n| *n <= MAX_OBJECTS)
                    .ok_or_else(|| corrupt(&name, "does not count its shards"))?,
            ),
        };
        Ok(Head {
            naming,
            generation,
            shards,
            retired: Generation::parse(&text_of(&head, RETIRED_KEY)),
            // Only the owned head is ever replaced; a legacy one is succeeded by a new head.
            version: match naming {
                Naming::Owned => head.metadata.resource_version,
                Naming::Legacy => None,
            },
        })
    }
}

#[async_trait]
impl StateStore for SecretLedgerStore {
    async fn load(&self) -> Result<Ledger, StateError> {
        let head = self.head().await?;
        let shards = self.shards(&head).await?;
        // Nothing of its own (no head, no shard, no page; no extra reads otherwise): an earlier
        // owner's ledger is adopted when asked, and stops the load when not.
        let nothing = head.version.is_none() && head.naming == Naming::Owned && shards.is_empty();
        if nothing
            && !self.unowned_ok
            && self
                .get(Naming::Owned, 0, Role::Journal, 0)
                .await?
                .is_none()
        {
            if let Some(uid) = &self.adopt
                && let Some(ledger) = self.adopt_from(uid).await?
            {
                return Ok(ledger);
            }
            if let Some((uid, head)) = self.earlier_owner().await? {
                return Err(StateError::FromPreviousOwner {
                    kind: self.owner.kind.as_str(),
                    uid,
                    head,
                });
            }
        }
        let mut ledger = Ledger::default();
        for secret in &shards {
            let shard: Ledger = serde_json::from_str(&text_of(secret, DATA_KEY)).map_err(|e| {
                let name = secret.metadata.name.as_deref().unwrap_or_default();
                corrupt(name, format!("does not parse: {e}"))
            })?;
            ledger.merge(shard);
        }
        let pages = self
            .probe(head.naming, head.generation, Role::Journal)
            .await?;
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
            naming: head.naming,
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
            lines.push_str(&serde_json::to_string(change)?);
            lines.push('\n');
        }
        let mut cursor = self.cursor.lock().await;
        if !cursor.loaded {
            return Err(StateError::NotLoaded);
        }
        let (page, text, version) =
            if !cursor.text.is_empty() && cursor.text.len() + lines.len() > PAGE_BYTES {
                (cursor.page + 1, lines, None)
            } else {
                let mut text = cursor.text.clone();
                text.push_str(&lines);
                (cursor.page, text, cursor.page_version.clone())
            };
        let secret = secret(
            &self.owner,
            cursor.naming,
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
        {
            let cursor = self.cursor.lock().await;
            if cursor.loaded && cursor.page == 0 && cursor.text.len() <= PAGE_BYTES / 2 {
                return Ok(()); // a short journal loads as fast as shards
            }
        }
        self.compact_whole(ledger).await
    }
}

impl SecretLedgerStore {
    /// Writes `ledger` as the next generation's shards, switches the head to it, and retires
    /// the live generation (whatever its size). Also `ledger import`.
    pub async fn compact_whole(&self, ledger: &Ledger) -> Result<(), StateError> {
        let mut cursor = self.cursor.lock().await;
        let live = if cursor.loaded {
            cursor.live()
        } else {
            let head = self.head().await?;
            let shards = self.shards(&head).await?.len();
            let pages = self
                .probe(head.naming, head.generation, Role::Journal)
                .await?
                .len();
            cursor.head_version = head.version;
            cursor.retired = head.retired;
            Generation {
                naming: head.naming,
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
            for secret in self.probe(Naming::Owned, next, role).await? {
                self.delete(&secret).await?;
            }
        }
        let texts = split(ledger)?;
        for (index, text) in texts.iter().enumerate() {
            let shard = secret(
                &self.owner,
                Naming::Owned,
                next,
                Role::Shard,
                index,
                &[(DATA_KEY, text)],
            );
            self.put(shard, None).await?;
        }
        let (generation, shards, retired) =
            (next.to_string(), texts.len().to_string(), live.format());
        let head = secret(
            &self.owner,
            Naming::Owned,
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
            naming: Naming::Owned,
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

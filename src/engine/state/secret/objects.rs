//! The objects of a ledger in Secrets, pure: their names, labels and roles, how a Secret is
//! recognised as one (type, labels, ownerReference to the owner's uid), how the head records
//! generations, and how a ledger is split into shards under the object size limit.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::ObjectMeta;

use crate::crd::Kind;
use crate::crd::vocabulary::{LEDGER_SECRET_TYPE, annotation, label};
use crate::engine::ledger::Ledger;
use crate::engine::state::StateError;

/// Largest serialized shard; the API server allows 1 MiB per object.
pub(super) const SHARD_BYTES: usize = 700 * 1024;
/// A journal page is rewritten on every commit, so it stays small: what a sync writes to the
/// API server grows with commits × half a page. At 64 KiB, 200 locations of 500 contacts
/// converging at once filled etcd's 2 GB quota within minutes; at 8 KiB a 500-contact sync
/// writes about 8 MB of pages (and compaction folds them into shards at its end).
pub(super) const PAGE_BYTES: usize = 8 * 1024;
pub(super) const DATA_KEY: &str = "ledger";
pub(super) const GENERATION_KEY: &str = "generation";
/// The head's count of the live generation's shards (heads written before it: probed).
pub(super) const SHARDS_KEY: &str = "shards";
/// The head's record of the generation it replaced, `<generation> <shards> <pages>`, so a
/// cleanup that failed is finished by the next compaction.
pub(super) const RETIRED_KEY: &str = "retired";

/// What an object of a ledger holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Role {
    Head,
    Shard,
    Journal,
}

impl Role {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Role::Head => "head",
            Role::Shard => "shard",
            Role::Journal => "journal",
        }
    }

    pub(super) fn parse(text: &str) -> Option<Self> {
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

    /// The prefix of every object name of this ledger under `naming`.
    pub fn base_name(&self, naming: Naming) -> String {
        let kind = self.kind.as_str().to_lowercase();
        match naming {
            Naming::Owned => {
                // Names are DNS subdomains: cut long ones where a dash may follow.
                let mut name = &self.name[..self.name.len().min(OWNED_NAME_BYTES)];
                name = name.trim_end_matches(['-', '.']);
                let uid = crate::engine::ledger::key_digest(&self.uid);
                format!("ghl-ledger-{kind}-{name}-{}", &uid[..UID_DIGEST_CHARS])
            }
            Naming::Legacy => {
                let base = format!("ghl-ledger-{kind}-{}", self.name);
                if base.len() > 200 {
                    let digest = crate::engine::ledger::key_digest(&base);
                    format!("{}-{}", &base[..160], &digest[..12])
                } else {
                    base
                }
            }
        }
    }

    /// Object names: `<base>-head`, `<base>-g<generation>-<role>-<n>`; under the legacy
    /// naming, generation 0 (and ledgers written before generations) was `<base>-<role>-<n>`.
    pub(super) fn object_name(
        &self,
        naming: Naming,
        generation: u64,
        role: Role,
        index: usize,
    ) -> String {
        let base = self.base_name(naming);
        match (role, naming, generation) {
            (Role::Head, _, _) => format!("{base}-head"),
            (_, Naming::Legacy, 0) => format!("{base}-{}-{index}", role.as_str()),
            (_, _, g) => format!("{base}-g{g}-{}-{index}", role.as_str()),
        }
    }
}

/// How many characters of an owner's name go into its ledger's object names (the rest of a
/// name, up to Kubernetes' 253, is the prefix, the uid digest and the role).
const OWNED_NAME_BYTES: usize = 150;
/// Hex characters of the owner uid's digest in object names: 40 bits, and uids are the API
/// server's to choose, not a user's.
const UID_DIGEST_CHARS: usize = 10;

/// How a ledger's objects are named.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Naming {
    /// `ghl-ledger-<kind>-<name>-<uid digest>-…`: the base ends in a digest of the owner's uid,
    /// so no two owners' names meet (under the legacy naming, generation 3 of `vip` and
    /// generation 0 of a policy named `vip-g3` had the same names).
    #[default]
    Owned,
    /// `ghl-ledger-<kind>-<name>-…`, as ledgers were written before: read, compacted into the
    /// owned naming at the next compaction, then deleted.
    Legacy,
}

/// [`StateError::Corrupt`] for the object `name`.
pub(super) fn corrupt(name: &str, problem: impl Into<String>) -> StateError {
    StateError::Corrupt {
        name: name.to_owned(),
        problem: problem.into(),
    }
}

/// Label values are at most 63 characters.
pub(super) fn label_value(name: &str) -> String {
    if name.len() <= 63 {
        name.to_owned()
    } else {
        crate::engine::ledger::key_digest(name)
    }
}

/// One object of the ledger, as read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Part {
    pub(super) role: Role,
    pub(super) generation: u64,
    pub(super) index: usize,
}

/// The object as a part of `owner`'s ledger, or `None` when it is not one: wrong type, no
/// ownerReference to the owner's uid, or labels that do not parse. Pure.
pub(super) fn verify(secret: &Secret, owner: &LedgerOwner) -> Option<Part> {
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

/// The object as a part of the earlier owner `owner`'s ledger being adopted: as [`verify`],
/// except that an object without any ownerReference is accepted (a restore, or the garbage
/// collector's orphaning, may have dropped it); one owned by anything else is not. Pure.
pub(super) fn verify_adoptable(secret: &Secret, owner: &LedgerOwner) -> Option<Part> {
    // Labelled as a ledger of exactly this kind and name (names cut at 150 bytes could
    // otherwise meet another object's).
    let labels = secret.metadata.labels.as_ref()?;
    if labels.get(label::OWNER_KIND).map(String::as_str) != Some(owner.kind.as_str())
        || labels.get(label::OWNER_NAME) != Some(&label_value(&owner.name))
    {
        return None;
    }
    let unowned = secret
        .metadata
        .owner_references
        .as_ref()
        .is_none_or(|refs| refs.is_empty());
    if !unowned {
        return verify(secret, owner);
    }
    let mut owned = secret.clone();
    owned.metadata.owner_references = Some(vec![OwnerReference {
        uid: owner.uid.clone(),
        kind: owner.kind.as_str().to_owned(),
        ..OwnerReference::default()
    }]);
    verify(&owned, owner)
}

/// The uid of the earlier owner a ledger head belonged to, when it is not `owner`'s: from its
/// ownerReference of `owner`'s kind, else its uid annotation. `None` for `owner`'s own head,
/// a head of another kind, or one that says no uid. Pure.
pub(super) fn earlier_uid(head: &Secret, owner: &LedgerOwner) -> Option<String> {
    if head.type_.as_deref() != Some(LEDGER_SECRET_TYPE) {
        return None;
    }
    let referenced = head
        .metadata
        .owner_references
        .iter()
        .flatten()
        .find(|r| r.kind == owner.kind.as_str())
        .map(|r| r.uid.clone());
    let annotated = head
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(annotation::LEDGER_OWNER_UID).cloned());
    referenced
        .or(annotated)
        .filter(|uid| !uid.is_empty() && *uid != owner.uid)
}

/// A generation's extent: which objects it has.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Generation {
    pub(super) naming: Naming,
    pub(super) generation: u64,
    pub(super) shards: usize,
    pub(super) pages: usize,
}

const LEGACY: &str = "legacy";

impl Generation {
    /// `<generation> <shards> <pages>`, and ` legacy` for a generation under the legacy naming.
    pub(super) fn format(self) -> String {
        let text = format!("{} {} {}", self.generation, self.shards, self.pages);
        match self.naming {
            Naming::Owned => text,
            Naming::Legacy => format!("{text} {LEGACY}"),
        }
    }

    pub(super) fn parse(text: &str) -> Option<Self> {
        let mut fields = text.split_whitespace();
        let mut number = || fields.next().map(str::parse::<u64>);
        let (Some(Ok(generation)), Some(Ok(shards)), Some(Ok(pages))) =
            (number(), number(), number())
        else {
            return None;
        };
        let naming = match (fields.next(), fields.next()) {
            (None, None) => Naming::Owned,
            (Some(LEGACY), None) => Naming::Legacy,
            _ => return None,
        };
        // A head that counts more objects than a ledger can have is not believed.
        let count = |n: u64| usize::try_from(n).ok().filter(|n| *n <= MAX_OBJECTS);
        Some(Self {
            naming,
            generation,
            shards: count(shards)?,
            pages: count(pages)?,
        })
    }
}

/// What the head says (all defaults without a head).
#[derive(Clone, Debug, Default)]
pub(super) struct Head {
    /// The naming of the live generation (and of the head read).
    pub(super) naming: Naming,
    pub(super) generation: u64,
    pub(super) version: Option<String>,
    /// `None`: a head written before it recorded its shards (or none): probe them.
    pub(super) shards: Option<usize>,
    pub(super) retired: Option<Generation>,
}

/// At most this many objects of one role are probed: a ledger of 100,000 contacts has a few
/// dozen shards; a journal is compacted long before.
pub(super) const MAX_OBJECTS: usize = 10_000;

pub(super) fn text_of(secret: &Secret, key: &str) -> String {
    secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .map(|b| String::from_utf8_lossy(&b.0).into_owned())
        .unwrap_or_default()
}

/// Splits a ledger into shard texts under [`SHARD_BYTES`] each (by contact id).
pub(super) fn split(ledger: &Ledger) -> Result<Vec<String>, StateError> {
    let whole = serde_json::to_string(ledger)?;
    // Parts are by id hash, so sizes vary a little: aim a quarter under the limit.
    let mut count = whole.len().div_ceil(SHARD_BYTES * 3 / 4).max(1);
    loop {
        let parts = ledger.partition(count);
        let texts: Vec<String> = parts
            .iter()
            .map(serde_json::to_string)
            .collect::<Result<_, _>>()?;
        if texts.iter().all(|t| t.len() <= SHARD_BYTES) {
            return Ok(texts);
        }
        count += count.div_ceil(8);
    }
}

/// The Secret holding `data` as object `role`/`index` of `owner`'s ledger at `generation`
/// (under the legacy naming only for the journal of a legacy generation not compacted yet).
pub(super) fn secret(
    owner: &LedgerOwner,
    naming: Naming,
    generation: u64,
    role: Role,
    index: usize,
    data: &[(&str, &str)],
) -> Secret {
    let mut labels = BTreeMap::from([
        (
            label::MANAGED_BY.to_owned(),
            label::MANAGED_BY_VALUE.to_owned(),
        ),
        (label::OWNER_KIND.to_owned(), owner.kind.as_str().to_owned()),
        (label::OWNER_NAME.to_owned(), label_value(&owner.name)),
        (label::LEDGER_ROLE.to_owned(), role.as_str().to_owned()),
    ]);
    if role != Role::Head {
        labels.insert(label::LEDGER_INDEX.to_owned(), index.to_string());
        labels.insert(label::LEDGER_GENERATION.to_owned(), generation.to_string());
    }
    Secret {
        metadata: ObjectMeta {
            name: Some(owner.object_name(naming, generation, role, index)),
            namespace: Some(owner.namespace.clone()),
            labels: Some(labels),
            // The owner's uid also outside the ownerReference, which a restore may drop.
            annotations: Some(BTreeMap::from([(
                annotation::LEDGER_OWNER_UID.to_owned(),
                owner.uid.clone(),
            )])),
            owner_references: Some(vec![OwnerReference {
                api_version: owner.api_version.clone(),
                kind: owner.kind.as_str().to_owned(),
                name: owner.name.clone(),
                uid: owner.uid.clone(),
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
        let generation = |naming, generation, shards, pages| Generation {
            naming,
            generation,
            shards,
            pages,
        };
        for retired in [
            generation(Naming::Owned, 3, 12, 2),
            generation(Naming::Legacy, 0, 1, 0),
        ] {
            assert_eq!(Generation::parse(&retired.format()), Some(retired));
        }
        assert_eq!(
            Generation::parse("3 12 2"),
            Some(generation(Naming::Owned, 3, 12, 2)),
            "heads written before namings record owned generations"
        );
        for bad in [
            "",
            "3 12",
            "3 12 2 1",
            "3 12 2 legacy x",
            "x 1 1",
            "3 -1 0",
            "3 99999999999 0",
            "3 0 10001",
        ] {
            assert_eq!(Generation::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn names_carry_the_owners_uid_and_legacy_names_are_still_found() {
        let owner = owner();
        let digest = &crate::engine::ledger::key_digest("uid-1")[..UID_DIGEST_CHARS];
        let base = format!("ghl-ledger-contactsyncpolicy-vip-{digest}");
        let legacy = "ghl-ledger-contactsyncpolicy-vip";
        let table = [
            (
                Naming::Owned,
                0,
                Role::Journal,
                0,
                format!("{base}-g0-journal-0"),
            ),
            (
                Naming::Owned,
                3,
                Role::Shard,
                2,
                format!("{base}-g3-shard-2"),
            ),
            (Naming::Owned, 9, Role::Head, 0, format!("{base}-head")),
            (
                Naming::Legacy,
                0,
                Role::Shard,
                2,
                format!("{legacy}-shard-2"),
            ),
            (
                Naming::Legacy,
                3,
                Role::Journal,
                0,
                format!("{legacy}-g3-journal-0"),
            ),
            (Naming::Legacy, 9, Role::Head, 0, format!("{legacy}-head")),
        ];
        for (naming, generation, role, index, expected) in table {
            assert_eq!(owner.object_name(naming, generation, role, index), expected);
        }
    }

    #[test]
    fn owners_whose_names_nest_never_share_an_object_name() {
        // Under the legacy naming, generation 3 of `vip` was generation 0 of `vip-g3`.
        let named = |name: &str, uid: &str| LedgerOwner {
            name: name.into(),
            uid: uid.into(),
            ..owner()
        };
        let (vip, vip_g3) = (named("vip", "uid-1"), named("vip-g3", "uid-2"));
        assert_eq!(
            vip.object_name(Naming::Legacy, 3, Role::Shard, 0),
            vip_g3.object_name(Naming::Legacy, 0, Role::Shard, 0),
            "the collision the owned naming removes"
        );
        let names = |owner: &LedgerOwner| {
            let mut names = vec![owner.object_name(Naming::Owned, 0, Role::Head, 0)];
            for generation in 0..5 {
                for role in [Role::Shard, Role::Journal] {
                    for index in 0..3 {
                        names.push(owner.object_name(Naming::Owned, generation, role, index));
                    }
                }
            }
            names
        };
        let theirs = names(&vip_g3);
        assert!(names(&vip).iter().all(|name| !theirs.contains(name)));
    }

    #[test]
    fn long_names_are_cut_to_a_valid_object_name() {
        let long = LedgerOwner {
            name: format!("{}.-{}", "a".repeat(148), "b".repeat(100)),
            ..owner()
        };
        let name = long.object_name(Naming::Owned, u64::MAX, Role::Journal, MAX_OBJECTS);
        assert!(name.len() <= 253, "{}", name.len());
        assert!(!name.contains(".-") && !name.contains("--"), "{name}");
    }
}

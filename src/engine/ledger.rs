//! The ledger: what a policy or rule owns in GHL, by GHL id — contacts it created or adopted,
//! tags it added, tasks and notes it created — plus in-flight intents. It changes only through
//! [`Change`]s, which the applier persists *before* (intents) and *after* (results) each GHL
//! call, so a rerun after a crash at any point neither duplicates nor loses anything.
//! Pure data; persistence lives in `state`.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::engine::collections::{SmallMap, TagSet, Text};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

use crate::engine::fields::Field;

/// Everything one owner (a ContactSyncPolicy or TagRule) holds.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", from = "LedgerData")]
pub struct Ledger {
    /// Owned or adopted contacts by GHL id.
    #[serde(default)]
    pub contacts: BTreeMap<Text, OwnedContact>,
    /// Contact creates started but not confirmed, by match key digest.
    #[serde(default)]
    pub pending: BTreeMap<KeyDigest, Timestamp>,
    /// Match key → GHL id, kept in step with `contacts` (not stored).
    #[serde(skip)]
    keys: HashMap<KeyDigest, Text>,
}

/// The stored form of a ledger (without the derived index).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LedgerData {
    #[serde(default)]
    contacts: BTreeMap<Text, OwnedContact>,
    #[serde(default)]
    pending: BTreeMap<KeyDigest, Timestamp>,
}

impl From<LedgerData> for Ledger {
    fn from(data: LedgerData) -> Self {
        let keys = data
            .contacts
            .iter()
            .map(|(id, c)| (c.key, id.clone()))
            .collect();
        Ledger {
            contacts: data.contacts,
            pending: data.pending,
            keys,
        }
    }
}

/// A contact under management. What few contacts carry (tasks, notes, hidden-field digests,
/// the time of our last write) lives apart, so a plain managed contact stays small (a ledger
/// can hold 100,000).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(from = "OwnedContactData", into = "OwnedContactData")]
pub struct OwnedContact {
    /// Digest of the match key it was declared with.
    pub key: KeyDigest,
    /// True when this owner created it (only then may `prune` delete it).
    pub created: bool,
    /// Tags this owner added (the only tags it will ever remove).
    pub tags: TagSet,
    /// Fingerprint of the contact's searchable data after our last write or check; a search
    /// result that differs means GHL changed it (or search has not caught up yet).
    pub fingerprint: Option<u64>,
    /// Everything else; `None` when all of it is empty.
    more: Option<Box<OwnedMore>>,
}

#[derive(Clone, Debug, Default, PartialEq)]
struct OwnedMore {
    tasks: SmallMap<String, OwnedItem>,
    notes: SmallMap<String, OwnedItem>,
    /// When we last wrote the contact (search lags writes for a while).
    written_at: Option<Timestamp>,
    /// Digests ([`key_digest`]) of the values GHL last held for fields search does not return.
    hidden: SmallMap<String, String>,
}

impl OwnedMore {
    fn is_empty(&self) -> bool {
        self.tasks.is_empty()
            && self.notes.is_empty()
            && self.written_at.is_none()
            && self.hidden.is_empty()
    }
}

/// The stored form of an owned contact (the same JSON as before the split).
#[skip_serializing_none]
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct OwnedContactData {
    key: KeyDigest,
    #[serde(default)]
    created: bool,
    #[serde(default)]
    tags: TagSet,
    #[serde(default)]
    tasks: SmallMap<String, OwnedItem>,
    #[serde(default)]
    notes: SmallMap<String, OwnedItem>,
    fingerprint: Option<u64>,
    written_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "SmallMap::is_empty")]
    hidden: SmallMap<String, String>,
}

impl From<OwnedContactData> for OwnedContact {
    fn from(data: OwnedContactData) -> Self {
        let more = OwnedMore {
            tasks: data.tasks,
            notes: data.notes,
            written_at: data.written_at,
            hidden: data.hidden,
        };
        OwnedContact {
            key: data.key,
            created: data.created,
            tags: data.tags,
            fingerprint: data.fingerprint,
            more: (!more.is_empty()).then(|| Box::new(more)),
        }
    }
}

impl From<OwnedContact> for OwnedContactData {
    fn from(contact: OwnedContact) -> Self {
        let more = contact.more.map(|m| *m).unwrap_or_default();
        OwnedContactData {
            key: contact.key,
            created: contact.created,
            tags: contact.tags,
            tasks: more.tasks,
            notes: more.notes,
            fingerprint: contact.fingerprint,
            written_at: more.written_at,
            hidden: more.hidden,
        }
    }
}

/// An owned task or note. `id: None` means its create is in flight.
#[skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OwnedItem {
    pub id: Option<String>,
    /// Fingerprint of the declared content last written or confirmed.
    pub fingerprint: Option<u64>,
    /// Closed by its owner for good (a TagRule completed the task as the contact left): never
    /// written again.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub closed: bool,
}

/// Tasks or notes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ItemKind {
    Task,
    Note,
}

/// One durable change to a ledger.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "camelCase")]
pub enum Change {
    /// About to create the contact with this match key.
    #[serde(rename_all = "camelCase")]
    CreateStarted { key: KeyDigest, at: Timestamp },
    /// The create started for this key definitely did not happen (GHL refused it).
    #[serde(rename_all = "camelCase")]
    CreateAbandoned { key: KeyDigest },
    /// The contact with this key is `id` (created by us, or adopted).
    #[serde(rename_all = "camelCase")]
    ContactBound {
        key: KeyDigest,
        id: String,
        created: bool,
    },
    /// GHL's data for the contact as of our write or check.
    #[serde(rename_all = "camelCase")]
    ContactObserved {
        id: String,
        fingerprint: u64,
        written_at: Option<Timestamp>,
        hidden: SmallMap<String, String>,
    },
    /// The contact is no longer managed (released, pruned, or gone from GHL).
    #[serde(rename_all = "camelCase")]
    ContactForgotten { id: String },
    /// About to add these tags (recorded first: only tags that were absent are added).
    #[serde(rename_all = "camelCase")]
    TagsAdded { id: String, tags: BTreeSet<String> },
    /// These tags were removed, or are no longer ours.
    #[serde(rename_all = "camelCase")]
    TagsReleased { id: String, tags: BTreeSet<String> },
    /// About to create a task or note.
    #[serde(rename_all = "camelCase")]
    ItemStarted {
        id: String,
        kind: ItemKind,
        key: String,
    },
    /// The task or note with this key is `item_id`, with this content.
    #[serde(rename_all = "camelCase")]
    ItemBound {
        id: String,
        kind: ItemKind,
        key: String,
        item_id: String,
        fingerprint: u64,
    },
    /// The task was completed for good (or found gone) as its contact left a TagRule: it stays
    /// owned, so it is never created again, and is never written again.
    #[serde(rename_all = "camelCase")]
    ItemClosed {
        id: String,
        kind: ItemKind,
        key: String,
    },
    /// The task or note is no longer owned (deleted, released or gone).
    #[serde(rename_all = "camelCase")]
    ItemForgotten {
        id: String,
        kind: ItemKind,
        key: String,
    },
}

impl Ledger {
    /// Applies a change. Changes naming unknown contacts are ignored (replays are idempotent).
    ///
    /// One piece: one arm per kind of change, the ledger's whole state machine in one place.
    pub fn apply(&mut self, change: &Change) {
        match change {
            Change::CreateStarted { key, at } => {
                // The earliest unresolved intent: a create may have happened since then.
                self.pending.entry(*key).or_insert(*at);
            }
            Change::CreateAbandoned { key } => {
                self.pending.remove(key);
            }
            Change::ContactBound { key, id, created } => {
                self.pending.remove(key);
                let entry = self.contacts.entry(Text::from(id.as_str())).or_default();
                if entry.key != *key {
                    let old = std::mem::replace(&mut entry.key, *key);
                    if self.keys.get(&old).is_some_and(|known| known == id) {
                        self.keys.remove(&old);
                    }
                }
                entry.created |= *created;
                self.keys.insert(*key, Text::from(id.as_str()));
            }
            Change::ContactObserved {
                id,
                fingerprint,
                written_at,
                hidden,
            } => {
                if let Some(c) = self.contacts.get_mut(id.as_str()) {
                    c.fingerprint = Some(*fingerprint);
                    if written_at.is_some() || !hidden.is_empty() {
                        let more = c.more_mut();
                        if written_at.is_some() {
                            more.written_at = *written_at;
                        }
                        for (field, value) in hidden {
                            more.hidden.insert(field.clone(), value.clone());
                        }
                    }
                }
            }
            Change::ContactForgotten { id } => {
                if let Some(gone) = self.contacts.remove(id.as_str())
                    && self.keys.get(&gone.key).is_some_and(|known| known == id)
                {
                    self.keys.remove(&gone.key);
                }
            }
            Change::TagsAdded { id, tags } => {
                if let Some(c) = self.contacts.get_mut(id.as_str()) {
                    c.tags.extend(tags.iter().map(String::as_str));
                }
            }
            Change::TagsReleased { id, tags } => {
                if let Some(c) = self.contacts.get_mut(id.as_str()) {
                    c.tags.retain(|t| !tags.contains(t));
                }
            }
            Change::ItemStarted { id, kind, key } => {
                if let Some(c) = self.contacts.get_mut(id.as_str()) {
                    c.items_mut(*kind).entry(key.clone()).or_default();
                }
            }
            Change::ItemBound {
                id,
                kind,
                key,
                item_id,
                fingerprint,
            } => {
                if let Some(c) = self.contacts.get_mut(id.as_str()) {
                    c.items_mut(*kind).insert(
                        key.clone(),
                        OwnedItem {
                            id: Some(item_id.clone()),
                            fingerprint: Some(*fingerprint),
                            closed: false,
                        },
                    );
                }
            }
            Change::ItemClosed { id, kind, key } => {
                if let Some(item) = self
                    .contacts
                    .get_mut(id.as_str())
                    .and_then(|c| c.items_mut(*kind).get_mut(key))
                {
                    item.closed = true;
                }
            }
            Change::ItemForgotten { id, kind, key } => {
                if let Some(c) = self.contacts.get_mut(id.as_str()) {
                    c.items_mut(*kind).remove(key);
                    c.tidy();
                }
            }
        }
    }

    /// Adds another part of the same ledger (shards are disjoint by contact id).
    pub fn merge(&mut self, other: Ledger) {
        for (id, contact) in other.contacts {
            self.keys.insert(contact.key, id.clone());
            self.contacts.insert(id, contact);
        }
        self.pending.extend(other.pending);
    }

    /// Splits the ledger into `parts` disjoint parts by contact id (pending creates go to the
    /// first). [`Ledger::merge`] of all parts gives the ledger back.
    pub fn partition(&self, parts: usize) -> Vec<Ledger> {
        let parts = parts.max(1);
        let mut out: Vec<Ledger> = (0..parts).map(|_| Ledger::default()).collect();
        for (id, contact) in &self.contacts {
            let part = (fingerprint([id.as_str()]) % parts as u64) as usize;
            out[part].keys.insert(contact.key, id.clone());
            out[part].contacts.insert(id.clone(), contact.clone());
        }
        out[0].pending = self.pending.clone();
        out
    }

    /// The part of the ledger about the contacts `ids` and the creates pending for `keys`
    /// (for a targeted sync: what a plan over those contacts may see and change).
    pub fn subset(
        &self,
        ids: &std::collections::BTreeSet<String>,
        keys: &std::collections::BTreeSet<KeyDigest>,
    ) -> Ledger {
        let mut out = Ledger::default();
        for id in ids {
            if let Some((id, contact)) = self.contacts.get_key_value(id.as_str()) {
                out.keys.insert(contact.key, id.clone());
                out.contacts.insert(id.clone(), contact.clone());
            }
        }
        out.pending = self
            .pending
            .iter()
            .filter(|(key, _)| keys.contains(*key))
            .map(|(key, at)| (*key, *at))
            .collect();
        out
    }

    /// The owned contact declared with `key`, if any.
    pub fn by_key(&self, key: &KeyDigest) -> Option<(&Text, &OwnedContact)> {
        let id = self.keys.get(key)?;
        self.contacts.get_key_value(id)
    }
}

static NO_ITEMS: SmallMap<String, OwnedItem> = SmallMap::new();
static NO_HIDDEN: SmallMap<String, String> = SmallMap::new();

impl OwnedContact {
    /// The owned tasks or notes, by key.
    pub fn items(&self, kind: ItemKind) -> &SmallMap<String, OwnedItem> {
        match (&self.more, kind) {
            (None, _) => &NO_ITEMS,
            (Some(more), ItemKind::Task) => &more.tasks,
            (Some(more), ItemKind::Note) => &more.notes,
        }
    }

    fn more_mut(&mut self) -> &mut OwnedMore {
        self.more.get_or_insert_with(Box::default)
    }

    /// Back to no extra part when it holds nothing.
    fn tidy(&mut self) {
        if self.more.as_ref().is_some_and(|m| m.is_empty()) {
            self.more = None;
        }
    }

    fn items_mut(&mut self, kind: ItemKind) -> &mut SmallMap<String, OwnedItem> {
        let more = self.more_mut();
        match kind {
            ItemKind::Task => &mut more.tasks,
            ItemKind::Note => &mut more.notes,
        }
    }

    /// When we last wrote the contact.
    pub fn written_at(&self) -> Option<Timestamp> {
        self.more.as_ref().and_then(|m| m.written_at)
    }

    /// Digests of the hidden fields' values last written or confirmed, by field name.
    pub fn hidden_values(&self) -> &SmallMap<String, String> {
        self.more.as_ref().map_or(&NO_HIDDEN, |m| &m.hidden)
    }

    /// Digest of the hidden field's value last written or confirmed ([`key_digest`]).
    pub fn hidden(&self, field: Field) -> Option<&str> {
        self.hidden_values().get(field.name()).map(String::as_str)
    }
}

/// The form match keys and hidden field values take in a ledger: a truncated SHA-256 digest,
/// so ledgers (stored in files and Secrets) hold no email addresses, phones or names.
pub fn key_digest(key: &str) -> String {
    KeyDigest::of(key).to_string()
}

/// A match key's digest as a number: the 128 bits [`key_digest`] writes as hex, in 16 bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyDigest(pub u128);

impl KeyDigest {
    pub fn of(key: &str) -> Self {
        use sha2::{Digest, Sha256};
        let digest = Sha256::digest(key.as_bytes());
        let mut first = [0u8; 16];
        first.copy_from_slice(&digest[..16]);
        Self(u128::from_be_bytes(first))
    }

    /// Reads the hex form; `None` for anything else.
    pub fn from_hex(text: &str) -> Option<Self> {
        (text.len() == 32)
            .then(|| u128::from_str_radix(text, 16).ok())
            .flatten()
            .map(Self)
    }
}

impl Serialize for KeyDigest {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for KeyDigest {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // A key written by an older version that is not a digest (a TagRule's ledger keyed its
        // contacts by id) reads as its digest, as the current version writes it.
        let text = compact_str::CompactString::deserialize(deserializer)?;
        Ok(Self::from_hex(&text).unwrap_or_else(|| Self::of(&text)))
    }
}

impl std::fmt::Display for KeyDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

/// A stable 64-bit fingerprint (FNV-1a) of some text parts, for change detection.
pub fn fingerprint<'a>(parts: impl IntoIterator<Item = &'a str>) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for byte in part.bytes().chain(std::iter::once(0x1f)) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Timestamp {
        "2030-01-01T00:00:00Z".parse().unwrap()
    }

    #[test]
    fn a_create_goes_from_intent_to_binding() {
        let mut ledger = Ledger::default();
        ledger.apply(&Change::CreateStarted {
            key: KeyDigest::of("a@b.co"),
            at: now(),
        });
        assert!(ledger.pending.contains_key(&KeyDigest::of("a@b.co")));
        ledger.apply(&Change::ContactBound {
            key: KeyDigest::of("a@b.co"),
            id: "c1".into(),
            created: true,
        });
        assert!(ledger.pending.is_empty());
        assert!(ledger.contacts["c1"].created);
        assert_eq!(ledger.by_key(&KeyDigest::of("a@b.co")).unwrap().0, "c1");
        // Adopting later never downgrades ownership.
        ledger.apply(&Change::ContactBound {
            key: KeyDigest::of("a@b.co"),
            id: "c1".into(),
            created: false,
        });
        assert!(ledger.contacts["c1"].created);
    }

    #[test]
    fn tags_and_items_track_what_we_own() {
        let mut ledger = Ledger::default();
        ledger.apply(&Change::ContactBound {
            key: KeyDigest::of("k"),
            id: "c1".into(),
            created: false,
        });
        ledger.apply(&Change::TagsAdded {
            id: "c1".into(),
            tags: ["vip".into(), "x".into()].into(),
        });
        ledger.apply(&Change::TagsReleased {
            id: "c1".into(),
            tags: ["x".into()].into(),
        });
        assert_eq!(
            ledger.contacts["c1"].tags,
            ["vip".to_owned()].into_iter().collect::<TagSet>()
        );
        ledger.apply(&Change::ItemStarted {
            id: "c1".into(),
            kind: ItemKind::Task,
            key: "t".into(),
        });
        assert_eq!(
            ledger.contacts["c1"]
                .items(ItemKind::Task)
                .get("t")
                .unwrap()
                .id,
            None,
            "in flight"
        );
        ledger.apply(&Change::ItemBound {
            id: "c1".into(),
            kind: ItemKind::Task,
            key: "t".into(),
            item_id: "t1".into(),
            fingerprint: 7,
        });
        assert_eq!(
            ledger.contacts["c1"]
                .items(ItemKind::Task)
                .get("t")
                .unwrap()
                .id
                .as_deref(),
            Some("t1")
        );
        ledger.apply(&Change::ItemForgotten {
            id: "c1".into(),
            kind: ItemKind::Task,
            key: "t".into(),
        });
        assert!(ledger.contacts["c1"].items(ItemKind::Task).is_empty());
        ledger.apply(&Change::ContactForgotten { id: "c1".into() });
        assert!(ledger.contacts.is_empty());
    }

    #[test]
    fn changes_round_trip_through_json() {
        let change = Change::ItemBound {
            id: "c".into(),
            kind: ItemKind::Note,
            key: "n".into(),
            item_id: "n1".into(),
            fingerprint: 1,
        };
        let text = serde_json::to_string(&change).unwrap();
        assert!(text.contains("\"op\":\"itemBound\""), "{text}");
        assert_eq!(serde_json::from_str::<Change>(&text).unwrap(), change);
    }

    #[test]
    fn partitions_merge_back_into_the_ledger() {
        let mut ledger = Ledger::default();
        for i in 0..50 {
            ledger.apply(&Change::ContactBound {
                key: KeyDigest::of(&format!("k{i}")),
                id: format!("c{i}"),
                created: i % 2 == 0,
            });
        }
        ledger.apply(&Change::CreateStarted {
            key: KeyDigest::of("pending"),
            at: now(),
        });
        let parts = ledger.partition(4);
        assert_eq!(parts.iter().map(|p| p.contacts.len()).sum::<usize>(), 50);
        assert!(
            parts.iter().all(|p| !p.contacts.is_empty()),
            "ids spread over parts"
        );
        let mut merged = Ledger::default();
        for part in parts {
            merged.merge(part);
        }
        assert_eq!(merged, ledger);
        assert_eq!(merged.by_key(&KeyDigest::of("k7")).unwrap().0, "c7");
    }

    #[test]
    fn key_digests_read_back_as_numbers() {
        let hex = key_digest("ada@example.com");
        assert_eq!(
            KeyDigest::from_hex(&hex),
            Some(KeyDigest::of("ada@example.com"))
        );
        assert_eq!(KeyDigest::from_hex("not hex"), None);
        assert_eq!(KeyDigest::from_hex(&"f".repeat(33)), None);
    }

    #[test]
    fn key_digests_hide_the_key_but_are_stable() {
        let digest = key_digest("ada@example.com");
        assert_eq!(digest.len(), 32);
        assert!(!digest.contains("ada"));
        assert_eq!(digest, key_digest("ada@example.com"));
        assert_ne!(digest, key_digest("grace@example.com"));
    }

    #[test]
    fn fingerprints_separate_parts() {
        assert_ne!(fingerprint(["ab", "c"]), fingerprint(["a", "bc"]));
        assert_eq!(fingerprint(["x"]), fingerprint(["x"]));
    }
}

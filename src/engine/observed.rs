//! What GHL holds, as far as the planner needs it: compact views of the relevant contacts
//! (only fields, custom fields and tags), their tasks and notes where read, and the managed
//! contacts GHL no longer has. Pure data.

use std::collections::{BTreeSet, HashMap, HashSet};

use jiff::Timestamp;
use serde_json::Value;

use crate::crd::contact_sync_policy::MatchBy;
use crate::engine::collections::{SmallMap, TagSet, Text};
use crate::engine::fields::{Field, normalize_custom_value, normalize_phone, normalize_tag};
use crate::engine::ledger::fingerprint;
use crate::ghl::models::{Contact, Note, Task};

/// Fields GHL's search results do not carry (the search `Contact` schema lacks them); known
/// only from GET, create and update answers.
pub const HIDDEN_FROM_SEARCH: [Field; 4] = [
    Field::Name,
    Field::Address1,
    Field::Website,
    Field::Timezone,
];

/// A contact reduced to what can be managed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ContactView {
    pub id: Text,
    pub fields: SmallMap<Field, Text>,
    /// True when read through GET/create/update (every field known); false for search
    /// results, where [`HIDDEN_FROM_SEARCH`] fields are unknown.
    pub complete: bool,
    pub custom: SmallMap<String, Value>,
    pub tags: TagSet,
    /// When GHL says the contact was added (`dateAdded`), if it said.
    pub added: Option<Timestamp>,
}

impl ContactView {
    /// Whether GHL added the contact at or after `at` (on GHL's clock: a contact added just
    /// before, seen through clock skew, counts as not — the safe side for ownership).
    pub fn added_since(&self, at: Timestamp) -> bool {
        self.added.is_some_and(|added| added >= at)
    }

    pub fn from_contact(contact: &Contact, complete: bool) -> Self {
        let fields = Field::ALL
            .into_iter()
            .filter(|f| complete || !HIDDEN_FROM_SEARCH.contains(f))
            .filter_map(|f| f.read(contact).map(|v| (f, Text::from(v))))
            .collect();
        let custom = contact
            .custom_fields
            .iter()
            .filter(|c| !c.value.is_null())
            .map(|c| (c.id.clone(), c.value.clone()))
            .collect();
        Self {
            id: Text::from(contact.id.as_str()),
            fields,
            complete,
            custom,
            tags: contact.tags.iter().map(|t| normalize_tag(t)).collect(),
            added: contact
                .date_added
                .as_deref()
                .and_then(|d| d.parse::<Timestamp>().ok()),
        }
    }

    /// The value of `field`: `Some(None)` when known to be empty, `None` when unknown.
    pub fn known(&self, field: Field) -> Option<Option<&str>> {
        if !self.complete && HIDDEN_FROM_SEARCH.contains(&field) {
            None
        } else {
            Some(self.fields.get(&field).map(Text::as_str))
        }
    }

    /// The match key under `match_by`.
    pub fn key(&self, match_by: MatchBy) -> Option<String> {
        match match_by {
            MatchBy::Email => self
                .fields
                .get(&Field::Email)
                .map(|e| Field::Email.normalize(e)),
            MatchBy::Phone => self.fields.get(&Field::Phone).map(|p| normalize_phone(p)),
        }
        .filter(|k| !k.is_empty())
    }

    /// Fingerprint of what search can see: comparable between search results and full reads.
    pub fn fingerprint(&self) -> u64 {
        let mut parts: Vec<String> = Vec::new();
        for field in Field::ALL {
            if HIDDEN_FROM_SEARCH.contains(&field) {
                continue;
            }
            parts.push(field.name().into());
            parts.push(
                self.fields
                    .get(&field)
                    .map(|v| field.normalize(v))
                    .unwrap_or_default(),
            );
        }
        for (id, value) in &self.custom {
            parts.push(format!("cf:{id}"));
            parts.push(normalize_custom_value(value));
        }
        parts.push("tags".into());
        parts.extend(self.tags.iter().map(str::to_owned));
        fingerprint(parts.iter().map(String::as_str))
    }

    /// Digests of the normalized values of the hidden fields (when known), for the ledger:
    /// enough to tell whether a declared value is what GHL holds, without keeping names or
    /// addresses in state. Only values GHL holds are recorded: unrecorded counts as unknown.
    pub fn hidden_values(&self) -> SmallMap<String, String> {
        if !self.complete {
            return SmallMap::new();
        }
        HIDDEN_FROM_SEARCH
            .iter()
            .filter_map(|f| {
                let value = f.normalize(self.fields.get(f)?);
                Some((
                    f.name().to_owned(),
                    crate::engine::ledger::key_digest(&value),
                ))
            })
            .collect()
    }
}

/// The ledger's baseline for a contact nothing is written to, when it differs from what GHL
/// shows now (so the next run can tell our changes from others').
pub fn baseline_change(
    id: &str,
    view: &ContactView,
    owned: &crate::engine::ledger::OwnedContact,
) -> Option<crate::engine::ledger::Change> {
    let fingerprint = view.fingerprint();
    let hidden = view.hidden_values();
    let stale = owned.fingerprint != Some(fingerprint)
        || (!hidden.is_empty() && hidden != *owned.hidden_values());
    stale.then(|| crate::engine::ledger::Change::ContactObserved {
        id: id.to_owned(),
        fingerprint,
        written_at: None,
        hidden,
    })
}

/// The observed state for one plan.
#[derive(Clone, Debug, Default)]
pub struct Observed {
    pub contacts: HashMap<Text, ContactView>,
    /// Match key → ids of contacts with it (several when the location allows duplicates).
    pub by_key: HashMap<Text, Vec<Text>>,
    /// Managed contacts GHL answered 404 for.
    pub gone: BTreeSet<String>,
    /// Tasks by contact id, for contacts whose tasks were read.
    pub tasks: HashMap<String, Vec<Task>>,
    /// Notes by contact id, for contacts whose notes were read.
    pub notes: HashMap<String, Vec<Note>>,
    /// Contacts seen fully in sync with their record (their views are not kept: at 100,000
    /// contacts a routine resync holds only this set).
    pub settled: HashSet<Text>,
}

impl Observed {
    /// Adds (or replaces) a contact view, indexing it under `match_by`.
    pub fn insert(&mut self, view: ContactView, match_by: MatchBy) {
        if let Some(key) = view.key(match_by) {
            let ids = self.by_key.entry(Text::from(key)).or_default();
            if !ids.contains(&view.id) {
                ids.push(view.id.clone());
            }
        }
        self.contacts.insert(view.id.clone(), view);
    }

    /// Drops the view of `id`, known to be in sync, keeping only that fact.
    pub fn settle(&mut self, id: &str, match_by: MatchBy) {
        if let Some(view) = self.contacts.remove(id) {
            if let Some(key) = view.key(match_by)
                && let Some(ids) = self.by_key.get_mut(key.as_str())
            {
                ids.retain(|known| known != id);
                if ids.is_empty() {
                    self.by_key.remove(key.as_str());
                }
            }
            self.settled.insert(view.id);
        }
    }

    /// Whether `id` is present in GHL: seen (with its view) or settled.
    pub fn has(&self, id: &str) -> bool {
        self.contacts.contains_key(id) || self.settled.contains(id)
    }
}

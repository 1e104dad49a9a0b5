//! What a plan is: the writes planned for each declared contact (its fields, tags, tasks and
//! notes), the releases of contacts no longer declared, and what it all adds up to (counts,
//! the summary status shows, the changes `safety` limits). Pure data; the planner in
//! [`super`] makes it, the applier carries it out.

use std::collections::BTreeSet;

use serde::Serialize;

use crate::crd::common::PlanSummary;
use crate::crd::contact_sync_policy::{RecordFailure, SyncCounts};
use crate::engine::collections::{SmallMap, TagSet, Text};
use crate::engine::desired::DesiredContact;
use crate::engine::fields::Field;
use crate::engine::ledger::{ItemKind, KeyDigest};
use crate::ghl::models::{
    CreateContact, CreateNote, CreateTask, CustomFieldInput, UpdateNote, UpdateTask,
};

/// A managed attribute: a standard field or a custom field.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase", tag = "kind", content = "name")]
pub enum Attribute {
    Field(#[serde(serialize_with = "field_name")] Field),
    Custom(String),
}

fn field_name<S: serde::Serializer>(field: &Field, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(field.name())
}

impl Attribute {
    pub fn name(&self) -> String {
        match self {
            Attribute::Field(f) => f.name().to_owned(),
            Attribute::Custom(id) => format!("customFields.{id}"),
        }
    }

    pub fn is_personal(&self) -> bool {
        matches!(self, Attribute::Field(f) if f.is_personal())
    }
}

/// One attribute to change on an existing contact.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FieldChange {
    pub attribute: Attribute,
    /// The current value, when known.
    pub from: Option<String>,
    pub to: serde_json::Value,
}

/// What happens to a declared contact as a whole.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase", tag = "action")]
pub enum Target {
    /// Nothing matches: create it. `resolve` when an earlier create may have happened
    /// (crash or lost answer): look it up with an upsert first.
    Create {
        body: Box<CreateBody>,
        resolve: bool,
    },
    /// It exists: `adopt` when it is not yet in the ledger.
    Existing { id: String, adopt: bool },
}

/// A contact's create body, kept as compactly as the declared record (a new policy's first
/// plan holds one per record: 100,000 of GHL's request structs would cost ~70 MB). It is
/// written out in GHL's shape — [`CreateBody::request`] — when sent, shown or hashed, so it
/// serializes exactly as the request it stands for.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CreateBody {
    pub fields: SmallMap<Field, Text>,
    pub custom_fields: SmallMap<String, serde_json::Value>,
    pub tags: TagSet,
}

impl CreateBody {
    /// The `POST /contacts/` body.
    pub fn request(&self) -> CreateContact {
        let mut body = CreateContact::default();
        for (field, value) in self.fields.iter() {
            field.write_create(&mut body, value);
        }
        body.fields.custom_fields = self
            .custom_fields
            .iter()
            .map(|(id, value)| CustomFieldInput {
                id: id.clone(),
                field_value: value.clone(),
            })
            .collect();
        body.tags = self.tags.iter().map(str::to_owned).collect();
        body
    }
}

impl Serialize for CreateBody {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.request().serialize(s)
    }
}

/// A task or note operation.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase", tag = "action")]
pub enum ItemOp {
    /// Create it. `resolve`: an earlier create may have happened; look for it first.
    /// `replaces`: the owned id that was not found (re-checked before creating).
    Create {
        kind: ItemKind,
        key: String,
        body: ItemBody,
        fingerprint: u64,
        resolve: bool,
        replaces: Option<String>,
    },
    /// An existing, unowned task/note with the same title/body: take it over.
    Adopt {
        kind: ItemKind,
        key: String,
        id: String,
        fingerprint: u64,
    },
    /// Change fields of an owned task/note.
    Update {
        kind: ItemKind,
        key: String,
        id: String,
        body: ItemUpdate,
        fields: Vec<String>,
        fingerprint: u64,
    },
    /// Only the completion of a task changes.
    Complete {
        key: String,
        id: String,
        completed: bool,
        fingerprint: u64,
    },
    /// Delete an owned task/note (prune).
    Delete {
        kind: ItemKind,
        key: String,
        id: String,
    },
    /// Stop owning it (no longer declared without prune, or already gone).
    Forget { kind: ItemKind, key: String },
}

/// The create body of a task or note.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase", tag = "type")]
pub enum ItemBody {
    Task(CreateTask),
    Note(CreateNote),
}

/// The update body of a task or note.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase", tag = "type")]
pub enum ItemUpdate {
    Task(UpdateTask),
    Note(UpdateNote),
}

impl ItemOp {
    pub fn kind(&self) -> ItemKind {
        match self {
            ItemOp::Create { kind, .. }
            | ItemOp::Adopt { kind, .. }
            | ItemOp::Update { kind, .. }
            | ItemOp::Delete { kind, .. }
            | ItemOp::Forget { kind, .. } => *kind,
            ItemOp::Complete { .. } => ItemKind::Task,
        }
    }

    pub fn key(&self) -> &str {
        match self {
            ItemOp::Create { key, .. }
            | ItemOp::Adopt { key, .. }
            | ItemOp::Update { key, .. }
            | ItemOp::Complete { key, .. }
            | ItemOp::Delete { key, .. }
            | ItemOp::Forget { key, .. } => key,
        }
    }

    /// Whether it calls GHL to write.
    pub fn is_write(&self) -> bool {
        !matches!(self, ItemOp::Adopt { .. } | ItemOp::Forget { .. })
    }
}

/// Everything planned for one declared contact.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ContactPlan {
    /// Where the record was declared.
    pub source: Text,
    /// The match key (personal data: never shown unless asked).
    #[serde(skip)]
    pub key: Text,
    /// The key as the ledger knows it.
    #[serde(skip)]
    pub ledger_key: KeyDigest,
    pub target: Target,
    /// The owned id GHL no longer has (the contact is re-created).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replaces: Option<String>,
    pub changes: Vec<FieldChange>,
    /// Field changes `PUT` cannot make (`companyName`), made through an upsert.
    pub upsert_changes: Vec<FieldChange>,
    pub add_tags: BTreeSet<String>,
    pub remove_tags: BTreeSet<String>,
    pub items: Vec<ItemOp>,
    /// Attributes that differ but are `Observe`d (reported, never written).
    pub observed_drift: Vec<String>,
    /// GHL changed the contact since our last write or check.
    pub drifted: bool,
    /// Adopting the contact an earlier create of ours made (its answer was lost): it is
    /// recorded as created by this owner.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub recovered: bool,
}

impl ContactPlan {
    /// The plan of a contact settled as in sync during observation: nothing to do.
    pub(super) fn unchanged(contact: &DesiredContact, id: &str) -> Self {
        Self::empty(
            contact,
            Target::Existing {
                id: id.to_owned(),
                adopt: false,
            },
        )
    }

    /// A plan for `contact` at `target` that changes nothing yet.
    pub(crate) fn empty(contact: &DesiredContact, target: Target) -> Self {
        ContactPlan {
            source: contact.source.clone(),
            key: contact.key.clone(),
            ledger_key: contact.ledger_key,
            target,
            replaces: None,
            changes: Vec::new(),
            upsert_changes: Vec::new(),
            add_tags: BTreeSet::new(),
            remove_tags: BTreeSet::new(),
            items: Vec::new(),
            observed_drift: Vec::new(),
            drifted: false,
            recovered: false,
        }
    }

    /// Number of GHL writes this plan makes.
    pub fn writes(&self) -> usize {
        let contact = match &self.target {
            Target::Create { .. } => 1,
            Target::Existing { .. } => usize::from(!self.changes.is_empty()),
        };
        contact
            + usize::from(!self.upsert_changes.is_empty())
            + usize::from(!self.add_tags.is_empty())
            + usize::from(!self.remove_tags.is_empty())
            + self.items.iter().filter(|i| i.is_write()).count()
    }

    /// True when nothing needs doing (ledger-only adoptions aside).
    pub fn is_noop(&self) -> bool {
        self.writes() == 0
            && !matches!(self.target, Target::Existing { adopt: true, .. })
            && self
                .items
                .iter()
                .all(|i| !matches!(i, ItemOp::Adopt { .. } | ItemOp::Forget { .. }))
    }

    /// The GHL id, when the contact exists.
    pub fn id(&self) -> Option<&str> {
        match &self.target {
            Target::Existing { id, .. } => Some(id),
            Target::Create { .. } => None,
        }
    }
}

/// A managed contact that is no longer declared.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Release {
    pub id: String,
    /// Delete the contact itself (`prune`, and this owner created it).
    pub delete_contact: bool,
    /// Tags this owner added that the contact still carries.
    pub remove_tags: BTreeSet<String>,
    /// Owned tasks/notes to delete (`prune`).
    pub delete_items: Vec<(ItemKind, String, String)>,
    /// GHL no longer has it: only forget it.
    pub gone: bool,
}

impl Release {
    pub fn writes(&self) -> usize {
        if self.gone {
            return 0;
        }
        if self.delete_contact {
            return 1;
        }
        usize::from(!self.remove_tags.is_empty()) + self.delete_items.len()
    }

    pub fn deletes(&self) -> usize {
        if self.gone {
            0
        } else if self.delete_contact {
            1
        } else {
            self.delete_items.len()
        }
    }
}

/// The plan for one ContactSyncPolicy.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    pub contacts: Vec<ContactPlan>,
    /// Contacts in sync that are counted but not listed (`PlanOptions::omit_in_sync`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub in_sync_omitted: u32,
    pub releases: Vec<Release>,
    /// Records refused by validation (not applied; reported).
    pub failures: Vec<RecordFailure>,
    /// Why releases were held back, if they were.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub releases_deferred: Option<String>,
    /// Why the plan must not be applied (a safety limit), if so.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blocked: Option<String>,
}

impl crate::engine::settle::Settle for Plan {
    fn is_empty(&self) -> bool {
        Plan::is_empty(self)
    }

    fn hash(&self) -> String {
        Plan::hash(self)
    }
}

impl Plan {
    /// Total GHL writes.
    pub fn writes(&self) -> usize {
        self.contacts.iter().map(ContactPlan::writes).sum::<usize>()
            + self.releases.iter().map(Release::writes).sum::<usize>()
    }

    /// What `safety.maxChanges` counts: GHL writes, plus contacts released without a write
    /// (no longer managed; a contact already gone from GHL does not count).
    pub fn changes(&self) -> usize {
        let released: usize = self
            .releases
            .iter()
            .map(|r| if r.gone { 0 } else { r.writes().max(1) })
            .sum();
        self.contacts.iter().map(ContactPlan::writes).sum::<usize>() + released
    }

    /// Total deletes (contacts, tasks, notes).
    pub fn deletes(&self) -> usize {
        let items: usize = self
            .contacts
            .iter()
            .flat_map(|c| &c.items)
            .filter(|i| matches!(i, ItemOp::Delete { .. }))
            .count();
        items + self.releases.iter().map(Release::deletes).sum::<usize>()
    }

    /// True when applying would change nothing in GHL or in the ledger.
    pub fn is_empty(&self) -> bool {
        self.contacts.iter().all(ContactPlan::is_noop) && self.releases.is_empty()
    }

    /// Counts for status and the summary line.
    pub fn summary(&self) -> PlanSummary {
        let mut s = PlanSummary::default();
        let mut samples = Vec::new();
        for c in &self.contacts {
            let mut touched = false;
            match &c.target {
                Target::Create { .. } => {
                    s.create += 1;
                    touched = true;
                }
                Target::Existing { adopt, .. } => {
                    if *adopt {
                        s.adopt += 1;
                        touched = true;
                    }
                    if !c.changes.is_empty()
                        || !c.upsert_changes.is_empty()
                        || !c.add_tags.is_empty()
                        || !c.remove_tags.is_empty()
                    {
                        s.update += 1;
                        touched = true;
                    }
                }
            }
            for item in &c.items {
                match item {
                    ItemOp::Create { .. } => s.create += 1,
                    ItemOp::Update { .. } | ItemOp::Complete { .. } => s.update += 1,
                    ItemOp::Delete { .. } => s.delete += 1,
                    ItemOp::Adopt { .. } | ItemOp::Forget { .. } => continue,
                }
                touched = true;
            }
            if touched && samples.len() < 10 {
                samples.push(match c.id() {
                    Some(id) => format!("contact/{id}"),
                    None => c.source.to_string(),
                });
            }
        }
        for r in &self.releases {
            if r.gone {
                continue;
            }
            if r.delete_contact {
                s.delete += 1;
            } else {
                s.delete += r.delete_items.len() as u32;
                if !r.remove_tags.is_empty() {
                    s.update += 1;
                }
            }
            if samples.len() < 10 {
                samples.push(format!("contact/{}", r.id));
            }
        }
        s.samples = samples;
        s.hash = (!self.is_empty()).then(|| self.hash());
        s
    }

    /// Status counts: declared, in sync, drifted, failed.
    pub fn counts(&self) -> SyncCounts {
        SyncCounts {
            desired: self.contacts.len() as u32 + self.in_sync_omitted,
            in_sync: self
                .contacts
                .iter()
                .filter(|c| c.is_noop() && c.observed_drift.is_empty())
                .count() as u32
                + self.in_sync_omitted,
            drifted: self
                .contacts
                .iter()
                .filter(|c| c.drifted && (!c.is_noop() || !c.observed_drift.is_empty()))
                .count() as u32,
            failed: self.failures.len() as u32,
        }
    }
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

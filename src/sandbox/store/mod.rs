//! The sandbox's data: one location's contacts, tasks, notes and appointments, changed only
//! through the operations GHL offers, each of which also records the webhook events GHL sends.
//!
//! - [`contacts`]: contacts, tags, search and listing;
//! - [`items`]: tasks and notes;
//! - [`admin`]: appointments and the admin routes' edits.

mod admin;
mod contacts;
pub mod fields;
mod items;
mod keys;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use serde_json::{Map, Value, json};

use super::clock::{Clock, iso};
use super::config::SeedError;
use super::errors::{ApiError, ApiResult};
use super::ids::IdGen;
use super::search::{SearchIndex, SearchRequest};
use super::seed::Seed;
use super::validate::{
    CONTACT_ATTRIBUTES, Field, Kind, NOT_UPDATABLE, check, check_update, opt, req,
};

/// A webhook event: its `type` and payload (without the `timestamp` / `webhookId` envelope).
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    pub kind: &'static str,
    pub payload: Map<String, Value>,
}

#[derive(Clone, Debug)]
struct Contact {
    id: String,
    attributes: Map<String, Value>,
    tags: Vec<String>,
    custom_fields: BTreeMap<String, Value>,
    business_id: Option<String>,
    date_added: Timestamp,
    date_updated: Timestamp,
}

#[derive(Clone, Debug)]
struct Task {
    id: String,
    contact_id: String,
    title: String,
    body: Option<String>,
    due_date: String,
    completed: bool,
    assigned_to: Option<String>,
    date_added: Timestamp,
}

#[derive(Clone, Debug)]
struct Note {
    id: String,
    contact_id: String,
    body: String,
    extra: Map<String, Value>,
    date_added: Timestamp,
}

/// `POST /contacts/` and `/contacts/upsert` bodies.
const CONTACT_WRITE_EXTRA: &[Field] = &[
    opt("tags", Kind::TextList),
    opt("customFields", Kind::CustomFields),
];
const CREATE_EXTRA: &[Field] = &[req("locationId", Kind::Text)];
const UPSERT_EXTRA: &[Field] = &[
    req("locationId", Kind::Text),
    opt("createNewIfDuplicateAllowed", Kind::Bool),
];
/// A task's fields (all optional in an update).
const TASK_FIELDS: &[Field] = &[
    req("title", Kind::Text),
    opt("body", Kind::Text),
    req("dueDate", Kind::Text),
    req("completed", Kind::Bool),
    opt("assignedTo", Kind::Text),
];
const TASK_COMPLETED: &[Field] = &[req("completed", Kind::Bool)];
/// A note's fields (all optional in an update).
const NOTE_FIELDS: &[Field] = &[
    req("body", Kind::Text),
    opt("userId", Kind::Text),
    opt("title", Kind::Text),
    opt("color", Kind::Text),
    opt("pinned", Kind::Bool),
];
const TAGS_BODY: &[Field] = &[req("tags", Kind::TextList)];
const BULK_TAGS: &[Field] = &[
    req("contacts", Kind::TextList),
    req("tags", Kind::TextList),
    req("locationId", Kind::Text),
    opt("removeAllTags", Kind::Bool),
];
const TASK_SEARCH: &[Field] = &[
    opt("contactId", Kind::TextList),
    opt("completed", Kind::Bool),
    opt("assignedTo", Kind::TextList),
    opt("query", Kind::Text),
    opt("limit", Kind::Number),
    opt("skip", Kind::Number),
    opt("businessId", Kind::Text),
];

/// One location's data.
pub struct Store {
    location_id: String,
    allow_duplicates: bool,
    contacts: BTreeMap<String, Contact>,
    tasks: BTreeMap<String, Task>,
    notes: BTreeMap<String, Note>,
    appointments: BTreeMap<String, Map<String, Value>>,
    index: SearchIndex,
    keys: keys::MatchKeys,
    ids: Arc<IdGen>,
    clock: Arc<Clock>,
    events: Vec<Event>,
}

/// Normalizes a tag the way GHL stores them (trimmed, lower case).
fn normalize_tag(tag: &str) -> String {
    tag.trim().to_lowercase()
}

/// Digits of a phone number, for duplicate matching.
fn phone_digits(phone: &str) -> String {
    phone.chars().filter(char::is_ascii_digit).collect()
}

fn text_list(value: Option<&Value>) -> Vec<String> {
    value
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

impl Store {
    pub fn new(
        location_id: String,
        allow_duplicates: bool,
        search_lag: Duration,
        ids: Arc<IdGen>,
        clock: Arc<Clock>,
    ) -> Self {
        Self {
            location_id,
            allow_duplicates,
            contacts: BTreeMap::new(),
            tasks: BTreeMap::new(),
            notes: BTreeMap::new(),
            appointments: BTreeMap::new(),
            index: SearchIndex::new(search_lag),
            keys: keys::MatchKeys::default(),
            ids,
            clock,
            events: Vec::new(),
        }
    }

    pub fn location_id(&self) -> &str {
        &self.location_id
    }

    /// Empties the location, then loads `seed` (visible to search at once, as old data is).
    pub fn reset(&mut self, seed: &Seed, default_allow_duplicates: bool) -> Result<(), SeedError> {
        self.contacts.clear();
        self.tasks.clear();
        self.notes.clear();
        self.appointments.clear();
        self.index.clear();
        self.keys.clear();
        self.events.clear();
        self.allow_duplicates = seed
            .allow_duplicate_contact
            .unwrap_or(default_allow_duplicates);
        let result = self.load(seed);
        let snapshots: Vec<(String, Value)> = self
            .contacts
            .values()
            .map(|c| (c.id.clone(), self.contact_json(c)))
            .collect();
        for (id, snapshot) in snapshots {
            self.file_keys(&id);
            self.index.insert_now(id, snapshot);
        }
        result
    }

    fn load(&mut self, seed: &Seed) -> Result<(), SeedError> {
        let now = self.clock.now();
        for (n, contact) in seed.contacts.iter().enumerate() {
            let attributes = Value::Object(contact.attributes.clone());
            let refused = |problem: String| SeedError::Contact {
                contact: n,
                problem,
            };
            check(&attributes, &[CONTACT_ATTRIBUTES])
                .map_err(|e| refused(e.body["message"].to_string()))?;
            let id = contact.id.clone().unwrap_or_else(|| self.ids.id());
            let record = Contact {
                id: id.clone(),
                attributes: contact
                    .attributes
                    .iter()
                    .filter(|(_, v)| !v.is_null())
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
                tags: dedupe(contact.tags.iter().map(|t| normalize_tag(t))),
                custom_fields: contact.custom_fields.clone(),
                business_id: contact.business_id.clone(),
                date_added: now,
                date_updated: now,
            };
            self.contacts.insert(id.clone(), record);
            for task in &contact.tasks {
                let task_id = self.ids.id();
                self.tasks.insert(
                    task_id.clone(),
                    Task {
                        id: task_id,
                        contact_id: id.clone(),
                        title: task.title.clone(),
                        body: task.body.clone(),
                        due_date: normalize_date(&task.due_date)
                            .map_err(|e| refused(e.to_string()))?,
                        completed: task.completed,
                        assigned_to: task.assigned_to.clone(),
                        date_added: now,
                    },
                );
            }
            for note in &contact.notes {
                let note_id = self.ids.id();
                self.notes.insert(
                    note_id.clone(),
                    Note {
                        id: note_id,
                        contact_id: id.clone(),
                        body: note.body.clone(),
                        extra: Map::new(),
                        date_added: now,
                    },
                );
            }
            for appointment in &contact.appointments {
                let event_id = appointment
                    .get("id")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .unwrap_or_else(|| self.ids.id());
                let mut event = appointment.clone();
                event.insert("id".into(), json!(event_id));
                event.insert("contactId".into(), json!(id));
                event.insert("locationId".into(), json!(self.location_id));
                self.appointments.insert(event_id, event);
            }
        }
        Ok(())
    }

    /// Takes the webhook events recorded since the last call.
    pub fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }
}

fn dedupe(tags: impl Iterator<Item = String>) -> Vec<String> {
    let mut seen = BTreeSet::new();
    tags.filter(|t| !t.is_empty() && seen.insert(t.clone()))
        .collect()
}

/// A due date that is not one.
#[derive(Debug, thiserror::Error)]
#[error("dueDate must be a valid ISO 8601 date string, got {0:?}")]
struct InvalidDate(String);

/// Parses a due date and formats it as GHL returns it (`2030-01-10T15:00:00.000Z`).
fn normalize_date(text: &str) -> Result<String, InvalidDate> {
    text.parse::<Timestamp>()
        .map(iso)
        .map_err(|_| InvalidDate(text.to_owned()))
}

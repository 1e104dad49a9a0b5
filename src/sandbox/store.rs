//! The sandbox's data: one location's contacts, tasks, notes and appointments, changed only
//! through the operations GHL offers, each of which also records the webhook events GHL sends.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use serde_json::{Map, Value, json};

use super::clock::{Clock, iso};
use super::errors::{ApiError, ApiResult};
use super::ids::IdGen;
use super::search::{SearchIndex, SearchRequest};
use super::seed::Seed;
use super::validate::{CONTACT_ATTRIBUTES, Field, Kind, NOT_UPDATABLE, check, opt, req};

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
const TASK_CREATE: &[Field] = &[
    req("title", Kind::Text),
    opt("body", Kind::Text),
    req("dueDate", Kind::Text),
    req("completed", Kind::Bool),
    opt("assignedTo", Kind::Text),
];
const TASK_UPDATE: &[Field] = &[
    opt("title", Kind::Text),
    opt("body", Kind::Text),
    opt("dueDate", Kind::Text),
    opt("completed", Kind::Bool),
    opt("assignedTo", Kind::Text),
];
const TASK_COMPLETED: &[Field] = &[req("completed", Kind::Bool)];
const NOTE_CREATE: &[Field] = &[
    req("body", Kind::Text),
    opt("userId", Kind::Text),
    opt("title", Kind::Text),
    opt("color", Kind::Text),
    opt("pinned", Kind::Bool),
];
const NOTE_UPDATE: &[Field] = &[
    opt("body", Kind::Text),
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
            ids,
            clock,
            events: Vec::new(),
        }
    }

    pub fn location_id(&self) -> &str {
        &self.location_id
    }

    /// Empties the location, then loads `seed` (visible to search at once, as old data is).
    pub fn reset(&mut self, seed: &Seed, default_allow_duplicates: bool) -> Result<(), String> {
        self.contacts.clear();
        self.tasks.clear();
        self.notes.clear();
        self.appointments.clear();
        self.index.clear();
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
            self.index.insert_now(id, snapshot);
        }
        result
    }

    fn load(&mut self, seed: &Seed) -> Result<(), String> {
        let now = self.clock.now();
        for (n, contact) in seed.contacts.iter().enumerate() {
            let attributes = Value::Object(contact.attributes.clone());
            check(&attributes, &[CONTACT_ATTRIBUTES])
                .map_err(|e| format!("seed contact {n}: {}", e.body["message"]))?;
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
                            .map_err(|e| format!("seed contact {n}: {e}"))?,
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

    // ----- contacts -----

    fn contact_json(&self, c: &Contact) -> Value {
        let mut out = c.attributes.clone();
        out.insert("id".into(), json!(c.id));
        out.insert("locationId".into(), json!(self.location_id));
        let first = c.attributes.get("firstName").and_then(Value::as_str);
        let last = c.attributes.get("lastName").and_then(Value::as_str);
        if let Some(first) = first {
            out.insert("firstNameLowerCase".into(), json!(first.to_lowercase()));
        }
        if let Some(last) = last {
            out.insert("lastNameLowerCase".into(), json!(last.to_lowercase()));
        }
        let full = [first, last]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" ");
        if !out.contains_key("name") && !full.is_empty() {
            out.insert("name".into(), json!(full));
        }
        if !full.is_empty() {
            out.insert("fullNameLowerCase".into(), json!(full.to_lowercase()));
        }
        if let Some(email) = c.attributes.get("email").and_then(Value::as_str) {
            out.insert("emailLowerCase".into(), json!(email.to_lowercase()));
        }
        out.remove("gender");
        out.remove("inboundDndSettings");
        out.insert("type".into(), json!("lead"));
        out.insert("tags".into(), json!(c.tags));
        let custom: Vec<Value> = c
            .custom_fields
            .iter()
            .map(|(id, value)| json!({"id": id, "value": value}))
            .collect();
        out.insert("customFields".into(), Value::Array(custom));
        if let Some(business) = &c.business_id {
            out.insert("businessId".into(), json!(business));
        }
        out.insert("dateAdded".into(), json!(iso(c.date_added)));
        out.insert("dateUpdated".into(), json!(iso(c.date_updated)));
        Value::Object(out)
    }

    fn contact(&self, id: &str) -> ApiResult<&Contact> {
        self.contacts
            .get(id)
            .ok_or_else(|| ApiError::not_found("Contact"))
    }

    /// Records a contact's new state for search and the webhook of `kind`.
    fn changed(&mut self, id: &str, kind: &'static str) {
        let snapshot = self.contacts.get(id).map(|c| self.contact_json(c));
        self.index.record(id, snapshot.clone());
        if let Some(Value::Object(contact)) = snapshot {
            self.events.push(Event {
                kind,
                payload: contact_event_payload(contact),
            });
        }
    }

    fn check_location(&self, body: &Map<String, Value>) -> ApiResult<()> {
        match body.get("locationId").and_then(Value::as_str) {
            Some(location) if location != self.location_id => Err(ApiError::forbidden_location()),
            _ => Ok(()),
        }
    }

    pub fn get_contact(&self, id: &str) -> ApiResult<Value> {
        Ok(json!({"contact": self.contact_json(self.contact(id)?)}))
    }

    /// The existing contact a new one would duplicate, by the location's rules: email first,
    /// then phone.
    fn duplicate_of(&self, body: &Map<String, Value>) -> Option<(String, &'static str)> {
        if self.allow_duplicates {
            return None;
        }
        if let Some(email) = body.get("email").and_then(Value::as_str) {
            let email = email.to_lowercase();
            if let Some(c) = self.contacts.values().find(|c| {
                c.attributes
                    .get("email")
                    .and_then(Value::as_str)
                    .is_some_and(|e| e.to_lowercase() == email)
            }) {
                return Some((c.id.clone(), "email"));
            }
        }
        if let Some(phone) = body.get("phone").and_then(Value::as_str) {
            let digits = phone_digits(phone);
            if !digits.is_empty()
                && let Some(c) = self.contacts.values().find(|c| {
                    c.attributes
                        .get("phone")
                        .and_then(Value::as_str)
                        .is_some_and(|p| phone_digits(p) == digits)
                })
            {
                return Some((c.id.clone(), "phone"));
            }
        }
        None
    }

    pub fn create_contact(&mut self, body: &Value) -> ApiResult<Value> {
        let object = check(
            body,
            &[CONTACT_ATTRIBUTES, CONTACT_WRITE_EXTRA, CREATE_EXTRA],
        )?;
        self.check_location(object)?;
        if let Some((existing, field)) = self.duplicate_of(object) {
            return Err(ApiError {
                status: 400,
                body: json!({"statusCode": 400, "message": "This location does not allow duplicated contacts.",
                             "meta": {"contactId": existing, "matchingField": field}}),
            });
        }
        let id = self.ids.id();
        let now = self.clock.now();
        let mut contact = Contact {
            id: id.clone(),
            attributes: Map::new(),
            tags: Vec::new(),
            custom_fields: BTreeMap::new(),
            business_id: None,
            date_added: now,
            date_updated: now,
        };
        apply_attributes(&mut contact, object);
        self.contacts.insert(id.clone(), contact);
        self.changed(&id, "ContactCreate");
        Ok(json!({"contact": self.contact_json(self.contact(&id)?)}))
    }

    pub fn update_contact(&mut self, id: &str, body: &Value) -> ApiResult<Value> {
        let updatable: Vec<Field> = CONTACT_ATTRIBUTES
            .iter()
            .filter(|f| !NOT_UPDATABLE.contains(&f.name))
            .map(|f| opt(f.name, f.kind))
            .collect();
        let object = check(body, &[&updatable, CONTACT_WRITE_EXTRA])?;
        self.contact(id)?;
        if let Some(email) = object.get("email").and_then(Value::as_str)
            && let Some((other, _)) =
                self.duplicate_of(&Map::from_iter([("email".into(), json!(email))]))
            && other != id
        {
            return Err(ApiError::bad_request(
                "This location does not allow duplicated contacts.",
            ));
        }
        let tags_before = self.contact(id)?.tags.clone();
        let now = self.clock.now();
        let contact = self
            .contacts
            .get_mut(id)
            .ok_or_else(|| ApiError::not_found("Contact"))?;
        apply_attributes(contact, object);
        contact.date_updated = now;
        let tags_changed = contact.tags != tags_before;
        self.changed(id, "ContactUpdate");
        if tags_changed {
            self.changed(id, "ContactTagUpdate");
        }
        Ok(json!({"succeded": true, "contact": self.contact_json(self.contact(id)?)}))
    }

    pub fn delete_contact(&mut self, id: &str) -> ApiResult<Value> {
        let payload = self.contact_json(self.contact(id)?);
        self.contacts.remove(id);
        self.tasks.retain(|_, t| t.contact_id != id);
        self.notes.retain(|_, n| n.contact_id != id);
        self.appointments
            .retain(|_, a| a.get("contactId").and_then(Value::as_str) != Some(id));
        self.index.record(id, None);
        if let Value::Object(contact) = payload {
            self.events.push(Event {
                kind: "ContactDelete",
                payload: contact_event_payload(contact),
            });
        }
        Ok(json!({"succeded": true}))
    }

    /// Upsert per the location's duplicate rules. When email and phone match different
    /// contacts, the email match is updated and the phone is silently dropped (as GHL does).
    pub fn upsert_contact(&mut self, body: &Value) -> ApiResult<Value> {
        let object = check(
            body,
            &[CONTACT_ATTRIBUTES, CONTACT_WRITE_EXTRA, UPSERT_EXTRA],
        )?;
        self.check_location(object)?;
        let force_new = self.allow_duplicates
            && object
                .get("createNewIfDuplicateAllowed")
                .and_then(Value::as_bool)
                .unwrap_or(false);
        let mut matching = Map::new();
        for key in ["email", "phone"] {
            if let Some(v) = object.get(key) {
                matching.insert(key.into(), v.clone());
            }
        }
        let existing = if force_new {
            None
        } else {
            let rules = self.allow_duplicates;
            self.allow_duplicates = false;
            let found = self.duplicate_of(&matching);
            self.allow_duplicates = rules;
            found
        };
        let trace_id = self.ids.string(24);
        match existing {
            None => {
                let mut create = object.clone();
                create.remove("createNewIfDuplicateAllowed");
                let duplicates = std::mem::replace(&mut self.allow_duplicates, true);
                let created = self.create_contact(&Value::Object(create));
                self.allow_duplicates = duplicates;
                let created = created?;
                Ok(json!({"new": true, "contact": created["contact"], "traceId": trace_id}))
            }
            Some((id, matched_by)) => {
                let mut update = object.clone();
                update.remove("locationId");
                update.remove("createNewIfDuplicateAllowed");
                if matched_by == "email"
                    && let Some(phone) = update.get("phone").and_then(Value::as_str)
                {
                    let digits = phone_digits(phone);
                    let phone_owner = self.contacts.values().find(|c| {
                        c.id != id
                            && c.attributes
                                .get("phone")
                                .and_then(Value::as_str)
                                .is_some_and(|p| phone_digits(p) == digits)
                    });
                    if phone_owner.is_some() {
                        update.remove("phone");
                    }
                }
                let tags_before = self.contact(&id)?.tags.clone();
                let now = self.clock.now();
                let contact = self
                    .contacts
                    .get_mut(&id)
                    .ok_or_else(|| ApiError::not_found("Contact"))?;
                // Upsert writes what GHL's update writes, companyName included.
                apply_attributes(contact, &update);
                contact.date_updated = now;
                let tags_changed = contact.tags != tags_before;
                self.changed(&id, "ContactUpdate");
                if tags_changed {
                    self.changed(&id, "ContactTagUpdate");
                }
                Ok(
                    json!({"new": false, "contact": self.contact_json(self.contact(&id)?), "traceId": trace_id}),
                )
            }
        }
    }

    pub fn add_tags(&mut self, id: &str, body: &Value) -> ApiResult<Value> {
        let object = check(body, &[TAGS_BODY])?;
        let tags = text_list(object.get("tags"));
        self.change_tags(id, &tags, &[])
    }

    pub fn remove_tags(&mut self, id: &str, body: &Value) -> ApiResult<Value> {
        let object = check(body, &[TAGS_BODY])?;
        let tags = text_list(object.get("tags"));
        self.change_tags(id, &[], &tags)
    }

    fn change_tags(&mut self, id: &str, add: &[String], remove: &[String]) -> ApiResult<Value> {
        let now = self.clock.now();
        let contact = self
            .contacts
            .get_mut(id)
            .ok_or_else(|| ApiError::not_found("Contact"))?;
        let before = contact.tags.clone();
        let removed: BTreeSet<String> = remove.iter().map(|t| normalize_tag(t)).collect();
        let mut tags: Vec<String> = contact
            .tags
            .iter()
            .filter(|t| !removed.contains(*t))
            .cloned()
            .collect();
        tags.extend(add.iter().map(|t| normalize_tag(t)));
        contact.tags = dedupe(tags.into_iter());
        let changed = contact.tags != before;
        if changed {
            contact.date_updated = now;
        }
        let tags = contact.tags.clone();
        if changed {
            self.changed(id, "ContactTagUpdate");
        }
        Ok(json!({"tags": tags}))
    }

    pub fn bulk_tags(&mut self, kind: &str, body: &Value) -> ApiResult<Value> {
        if !matches!(kind, "add" | "remove") {
            return Err(ApiError::bad_request(format!(
                "type must be add or remove, got {kind}"
            )));
        }
        let object = check(body, &[BULK_TAGS])?;
        self.check_location(object)?;
        let tags = text_list(object.get("tags"));
        let remove_all = object
            .get("removeAllTags")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        if remove_all && kind != "remove" {
            return Err(ApiError::unprocessable(vec![
                "removeAllTags can only be used with the remove type".into(),
            ]));
        }
        let mut responses = Vec::new();
        let mut errors = 0;
        for id in text_list(object.get("contacts")) {
            if id.len() != 20 || !id.chars().all(|c| c.is_ascii_alphanumeric()) {
                errors += 1;
                responses.push(json!({"contactId": id, "message": "contact id is not a valid firebase id", "type": "error"}));
                continue;
            }
            let Some(old) = self.contacts.get(&id).map(|c| c.tags.clone()) else {
                errors += 1;
                responses.push(
                    json!({"contactId": id, "message": "contact is deleted", "type": "error"}),
                );
                continue;
            };
            let remove = if remove_all {
                old.clone()
            } else {
                tags.clone()
            };
            let (add, remove) = if kind == "add" {
                (tags.clone(), Vec::new())
            } else {
                (Vec::new(), remove)
            };
            self.change_tags(&id, &add, &remove)?;
            let new = self
                .contacts
                .get(&id)
                .map(|c| c.tags.clone())
                .unwrap_or_default();
            let added: Vec<&String> = new.iter().filter(|t| !old.contains(t)).collect();
            let removed: Vec<&String> = old.iter().filter(|t| !new.contains(t)).collect();
            responses.push(
                json!({"contactId": id, "message": "Tags updated", "type": "success",
                                  "oldTags": old, "tagsAdded": added, "tagsRemoved": removed}),
            );
        }
        Ok(json!({"succeded": errors == 0, "errorCount": errors, "responses": responses}))
    }

    /// `POST /contacts/search` over the lagging index.
    pub fn search(&mut self, body: &Value) -> ApiResult<Value> {
        let object = body.as_object().ok_or_else(|| {
            ApiError::unprocessable(vec!["request body must be a JSON object".into()])
        })?;
        if object.get("locationId").is_none_or(|v| !v.is_string()) {
            return Err(ApiError::unprocessable(vec![
                "locationId must be a string".into(),
            ]));
        }
        self.check_location(object)?;
        let request = SearchRequest::parse(object)?;
        let (contacts, total) = request.run(self.index.visible());
        Ok(json!({"contacts": contacts, "total": total}))
    }

    /// The deprecated `GET /contacts/`: by `dateAdded`, then id, over the lagging index.
    pub fn list_contacts(&mut self, query: &BTreeMap<String, String>) -> ApiResult<Value> {
        let location = query.get("locationId").ok_or_else(|| {
            ApiError::unprocessable(vec!["locationId should not be empty".into()])
        })?;
        if *location != self.location_id {
            return Err(ApiError::forbidden_location());
        }
        let limit: usize = match query.get("limit") {
            None => 20,
            Some(l) => match l.parse::<usize>() {
                Ok(n) if (1..=100).contains(&n) => n,
                _ => {
                    return Err(ApiError::unprocessable(vec![
                        "limit must not be greater than 100".into(),
                    ]));
                }
            },
        };
        let text = query.get("query").map(|q| q.to_lowercase());
        let mut all: Vec<(i64, String, Value)> = self
            .index
            .visible()
            .filter(|c| {
                text.as_ref().is_none_or(|q| {
                    ["firstName", "lastName", "email", "phone", "companyName"]
                        .iter()
                        .filter_map(|f| c.get(*f).and_then(Value::as_str))
                        .any(|v| v.to_lowercase().contains(q.as_str()))
                })
            })
            .map(|c| {
                let added = c["dateAdded"]
                    .as_str()
                    .and_then(|d| d.parse::<Timestamp>().ok())
                    .map(|t| t.as_millisecond())
                    .unwrap_or(0);
                (
                    added,
                    c["id"].as_str().unwrap_or_default().to_owned(),
                    c.clone(),
                )
            })
            .collect();
        all.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        let total = all.len();
        let start = match query.get("startAfterId") {
            Some(after_id) => all
                .iter()
                .position(|(_, id, _)| id == after_id)
                .map(|p| p + 1)
                .or_else(|| {
                    let after: i64 = query.get("startAfter")?.parse().ok()?;
                    all.iter().position(|(t, _, _)| *t > after)
                })
                .unwrap_or(total),
            None => 0,
        };
        let page: Vec<(i64, String, Value)> = all.into_iter().skip(start).take(limit).collect();
        let meta = page.last().map(|(t, id, _)| {
            json!({"total": total, "startAfterId": id, "startAfter": t,
                   "currentPage": start / limit + 1, "nextPage": (start + limit < total).then_some(start / limit + 2),
                   "prevPage": (start >= limit).then_some(start / limit)})
        });
        let contacts: Vec<Value> = page.into_iter().map(|(_, _, c)| c).collect();
        Ok(
            json!({"contacts": contacts, "count": contacts.len(), "meta": meta.unwrap_or(json!({"total": total}))}),
        )
    }

    pub fn contacts_by_business(
        &mut self,
        business_id: &str,
        query: &BTreeMap<String, String>,
    ) -> ApiResult<Value> {
        let location = query.get("locationId").ok_or_else(|| {
            ApiError::unprocessable(vec!["locationId should not be empty".into()])
        })?;
        if *location != self.location_id {
            return Err(ApiError::forbidden_location());
        }
        let number = |key: &str, default: usize| -> ApiResult<usize> {
            query.get(key).map_or(Ok(default), |v| {
                v.parse().map_err(|_| {
                    ApiError::unprocessable(vec![format!("{key} must be a number string")])
                })
            })
        };
        let (limit, skip) = (number("limit", 25)?, number("skip", 0)?);
        let matching: Vec<Value> = self
            .index
            .visible()
            .filter(|c| c.get("businessId").and_then(Value::as_str) == Some(business_id))
            .cloned()
            .collect();
        let count = matching.len();
        let contacts: Vec<Value> = matching.into_iter().skip(skip).take(limit).collect();
        Ok(json!({"contacts": contacts, "count": count}))
    }

    // ----- tasks -----

    fn task_json(t: &Task) -> Value {
        let mut out = json!({"id": t.id, "title": t.title, "dueDate": t.due_date, "completed": t.completed,
                             "contactId": t.contact_id});
        if let Some(body) = &t.body {
            out["body"] = json!(body);
        }
        if let Some(user) = &t.assigned_to {
            out["assignedTo"] = json!(user);
        }
        out
    }

    fn task_event(&mut self, kind: &'static str, task: &Task) {
        let mut payload = Map::new();
        payload.insert("id".into(), json!(task.id));
        payload.insert("contactId".into(), json!(task.contact_id));
        payload.insert("title".into(), json!(task.title));
        payload.insert("dueDate".into(), json!(task.due_date));
        payload.insert("dateAdded".into(), json!(iso(task.date_added)));
        if let Some(body) = &task.body {
            payload.insert("body".into(), json!(body));
        }
        if let Some(user) = &task.assigned_to {
            payload.insert("assignedTo".into(), json!(user));
        }
        self.events.push(Event { kind, payload });
    }

    fn task(&self, contact_id: &str, task_id: &str) -> ApiResult<&Task> {
        self.contact(contact_id)?;
        self.tasks
            .get(task_id)
            .filter(|t| t.contact_id == contact_id)
            .ok_or_else(|| ApiError::not_found("Task"))
    }

    pub fn list_tasks(&self, contact_id: &str) -> ApiResult<Value> {
        self.contact(contact_id)?;
        let tasks: Vec<Value> = self
            .tasks
            .values()
            .filter(|t| t.contact_id == contact_id)
            .map(Self::task_json)
            .collect();
        Ok(json!({"tasks": tasks}))
    }

    pub fn get_task(&self, contact_id: &str, task_id: &str) -> ApiResult<Value> {
        Ok(json!({"task": Self::task_json(self.task(contact_id, task_id)?)}))
    }

    pub fn create_task(&mut self, contact_id: &str, body: &Value) -> ApiResult<Value> {
        let object = check(body, &[TASK_CREATE])?;
        self.contact(contact_id)?;
        let due = object["dueDate"].as_str().unwrap_or_default();
        let task = Task {
            id: self.ids.id(),
            contact_id: contact_id.to_owned(),
            title: object["title"].as_str().unwrap_or_default().to_owned(),
            body: object
                .get("body")
                .and_then(Value::as_str)
                .map(str::to_owned),
            due_date: normalize_date(due).map_err(|e| ApiError::unprocessable(vec![e]))?,
            completed: object["completed"].as_bool().unwrap_or(false),
            assigned_to: object
                .get("assignedTo")
                .and_then(Value::as_str)
                .map(str::to_owned),
            date_added: self.clock.now(),
        };
        self.task_event("TaskCreate", &task);
        if task.completed {
            self.task_event("TaskComplete", &task);
        }
        let out = Self::task_json(&task);
        self.tasks.insert(task.id.clone(), task);
        Ok(json!({"task": out}))
    }

    pub fn update_task(
        &mut self,
        contact_id: &str,
        task_id: &str,
        body: &Value,
    ) -> ApiResult<Value> {
        let object = check(body, &[TASK_UPDATE])?.clone();
        self.task(contact_id, task_id)?;
        let due = match object.get("dueDate").and_then(Value::as_str) {
            Some(d) => Some(normalize_date(d).map_err(|e| ApiError::unprocessable(vec![e]))?),
            None => None,
        };
        let task = self
            .tasks
            .get_mut(task_id)
            .ok_or_else(|| ApiError::not_found("Task"))?;
        let was_completed = task.completed;
        if let Some(title) = object.get("title").and_then(Value::as_str) {
            task.title = title.to_owned();
        }
        if let Some(body) = object.get("body") {
            task.body = body.as_str().map(str::to_owned);
        }
        if let Some(due) = due {
            task.due_date = due;
        }
        if let Some(done) = object.get("completed").and_then(Value::as_bool) {
            task.completed = done;
        }
        if let Some(user) = object.get("assignedTo") {
            task.assigned_to = user.as_str().map(str::to_owned);
        }
        let task = task.clone();
        // GHL documents no TaskUpdate webhook; completing through an update fires TaskComplete.
        if task.completed && !was_completed {
            self.task_event("TaskComplete", &task);
        }
        Ok(json!({"task": Self::task_json(&task)}))
    }

    pub fn complete_task(
        &mut self,
        contact_id: &str,
        task_id: &str,
        body: &Value,
    ) -> ApiResult<Value> {
        let object = check(body, &[TASK_COMPLETED])?;
        let done = object["completed"].as_bool().unwrap_or(false);
        self.task(contact_id, task_id)?;
        let task = self
            .tasks
            .get_mut(task_id)
            .ok_or_else(|| ApiError::not_found("Task"))?;
        let was = task.completed;
        task.completed = done;
        let task = task.clone();
        if done && !was {
            self.task_event("TaskComplete", &task);
        }
        Ok(json!({"task": Self::task_json(&task)}))
    }

    pub fn delete_task(&mut self, contact_id: &str, task_id: &str) -> ApiResult<Value> {
        let task = self.task(contact_id, task_id)?.clone();
        self.tasks.remove(task_id);
        self.task_event("TaskDelete", &task);
        Ok(json!({"succeded": true}))
    }

    /// `POST /locations/:id/tasks/search` (reads live data: GHL's task search is not the
    /// contact search index).
    pub fn search_tasks(&self, location_id: &str, body: &Value) -> ApiResult<Value> {
        if location_id != self.location_id {
            return Err(ApiError::forbidden_location());
        }
        let object = check(body, &[TASK_SEARCH])?;
        let contacts: BTreeSet<String> = text_list(object.get("contactId")).into_iter().collect();
        let assignees: BTreeSet<String> = text_list(object.get("assignedTo")).into_iter().collect();
        let completed = object.get("completed").and_then(Value::as_bool);
        let query = object
            .get("query")
            .and_then(Value::as_str)
            .map(str::to_lowercase);
        let limit = object.get("limit").and_then(Value::as_u64).unwrap_or(25) as usize;
        let skip = object.get("skip").and_then(Value::as_u64).unwrap_or(0) as usize;
        let tasks: Vec<Value> = self
            .tasks
            .values()
            .filter(|t| contacts.is_empty() || contacts.contains(&t.contact_id))
            .filter(|t| completed.is_none_or(|c| t.completed == c))
            .filter(|t| {
                assignees.is_empty()
                    || t.assigned_to
                        .as_ref()
                        .is_some_and(|a| assignees.contains(a))
            })
            .filter(|t| {
                query
                    .as_ref()
                    .is_none_or(|q| t.title.to_lowercase().contains(q))
            })
            .skip(skip)
            .take(limit)
            .map(Self::task_json)
            .collect();
        Ok(json!({"tasks": tasks}))
    }

    // ----- notes -----

    fn note_json(n: &Note) -> Value {
        let mut out = n.extra.clone();
        out.insert("id".into(), json!(n.id));
        out.insert("body".into(), json!(n.body));
        out.insert("contactId".into(), json!(n.contact_id));
        out.insert("dateAdded".into(), json!(iso(n.date_added)));
        Value::Object(out)
    }

    fn note_event(&mut self, kind: &'static str, note: &Note) {
        let mut payload = Map::new();
        payload.insert("id".into(), json!(note.id));
        payload.insert("body".into(), json!(note.body));
        payload.insert("contactId".into(), json!(note.contact_id));
        payload.insert("dateAdded".into(), json!(iso(note.date_added)));
        self.events.push(Event { kind, payload });
    }

    fn note(&self, contact_id: &str, note_id: &str) -> ApiResult<&Note> {
        self.contact(contact_id)?;
        self.notes
            .get(note_id)
            .filter(|n| n.contact_id == contact_id)
            .ok_or_else(|| ApiError::not_found("Note"))
    }

    pub fn list_notes(&self, contact_id: &str) -> ApiResult<Value> {
        self.contact(contact_id)?;
        let notes: Vec<Value> = self
            .notes
            .values()
            .filter(|n| n.contact_id == contact_id)
            .map(Self::note_json)
            .collect();
        Ok(json!({"notes": notes}))
    }

    pub fn get_note(&self, contact_id: &str, note_id: &str) -> ApiResult<Value> {
        Ok(json!({"note": Self::note_json(self.note(contact_id, note_id)?)}))
    }

    pub fn create_note(&mut self, contact_id: &str, body: &Value) -> ApiResult<Value> {
        let object = check(body, &[NOTE_CREATE])?;
        self.contact(contact_id)?;
        let mut extra = object.clone();
        let text = extra
            .remove("body")
            .and_then(|b| b.as_str().map(str::to_owned))
            .unwrap_or_default();
        let note = Note {
            id: self.ids.id(),
            contact_id: contact_id.to_owned(),
            body: text,
            extra,
            date_added: self.clock.now(),
        };
        self.note_event("NoteCreate", &note);
        let out = Self::note_json(&note);
        self.notes.insert(note.id.clone(), note);
        Ok(json!({"note": out}))
    }

    pub fn update_note(
        &mut self,
        contact_id: &str,
        note_id: &str,
        body: &Value,
    ) -> ApiResult<Value> {
        let object = check(body, &[NOTE_UPDATE])?.clone();
        self.note(contact_id, note_id)?;
        let note = self
            .notes
            .get_mut(note_id)
            .ok_or_else(|| ApiError::not_found("Note"))?;
        for (key, value) in object {
            if key == "body" {
                if let Some(text) = value.as_str() {
                    note.body = text.to_owned();
                }
            } else {
                note.extra.insert(key, value);
            }
        }
        let note = note.clone();
        self.note_event("NoteUpdate", &note);
        Ok(json!({"note": Self::note_json(&note)}))
    }

    pub fn delete_note(&mut self, contact_id: &str, note_id: &str) -> ApiResult<Value> {
        let note = self.note(contact_id, note_id)?.clone();
        self.notes.remove(note_id);
        self.note_event("NoteDelete", &note);
        Ok(json!({"succeded": true}))
    }

    // ----- appointments -----

    pub fn list_appointments(&self, contact_id: &str) -> ApiResult<Value> {
        self.contact(contact_id)?;
        let events: Vec<&Map<String, Value>> = self
            .appointments
            .values()
            .filter(|a| a.get("contactId").and_then(Value::as_str) == Some(contact_id))
            .collect();
        Ok(json!({"events": events}))
    }

    // ----- admin -----

    /// Everything the location holds (`GET /__sandbox/state`).
    pub fn dump(&self) -> Value {
        let contacts: Vec<Value> = self
            .contacts
            .values()
            .map(|c| self.contact_json(c))
            .collect();
        let tasks: Vec<Value> = self.tasks.values().map(Self::task_json).collect();
        let notes: Vec<Value> = self.notes.values().map(Self::note_json).collect();
        let tags: BTreeSet<&String> = self.contacts.values().flat_map(|c| &c.tags).collect();
        json!({"locationId": self.location_id, "contacts": contacts, "tasks": tasks, "notes": notes,
               "appointments": self.appointments.values().collect::<Vec<_>>(), "tags": tags})
    }

    /// Changes a contact as a person in GHL's UI would (no API call counted, webhooks sent):
    /// attributes as in an update (null clears), `tags` replaced, `customFields` as `{id: value}`.
    pub fn edit_contact(&mut self, id: &str, patch: &Value) -> ApiResult<Value> {
        let object = patch
            .as_object()
            .ok_or_else(|| ApiError::unprocessable(vec!["the patch must be an object".into()]))?;
        let now = self.clock.now();
        let contact = self
            .contacts
            .get_mut(id)
            .ok_or_else(|| ApiError::not_found("Contact"))?;
        let tags_before = contact.tags.clone();
        for (key, value) in object {
            match key.as_str() {
                "tags" => {
                    contact.tags = dedupe(text_list(Some(value)).iter().map(|t| normalize_tag(t)))
                }
                "customFields" => {
                    if let Some(fields) = value.as_object() {
                        for (field, v) in fields {
                            if v.is_null() {
                                contact.custom_fields.remove(field);
                            } else {
                                contact.custom_fields.insert(field.clone(), v.clone());
                            }
                        }
                    }
                }
                _ if value.is_null() => {
                    contact.attributes.remove(key);
                }
                _ => {
                    contact.attributes.insert(key.clone(), value.clone());
                }
            }
        }
        contact.date_updated = now;
        let tags_changed = contact.tags != tags_before;
        self.changed(id, "ContactUpdate");
        if tags_changed {
            self.changed(id, "ContactTagUpdate");
        }
        Ok(self.contact_json(self.contact(id)?))
    }
}

/// Writes create/update/upsert fields onto a contact. Tags replace the whole list; custom
/// field values are set by id; null clears an attribute.
fn apply_attributes(contact: &mut Contact, body: &Map<String, Value>) {
    for (key, value) in body {
        match key.as_str() {
            "locationId" | "createNewIfDuplicateAllowed" => {}
            "tags" => {
                contact.tags = dedupe(text_list(Some(value)).iter().map(|t| normalize_tag(t)));
            }
            "customFields" => {
                for field in value.as_array().into_iter().flatten() {
                    let id = field
                        .get("id")
                        .or_else(|| field.get("key"))
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned();
                    let v = field
                        .get("field_value")
                        .or_else(|| field.get("fieldValue"))
                        .cloned()
                        .unwrap_or(Value::Null);
                    if v.is_null() || v == json!("") {
                        contact.custom_fields.remove(&id);
                    } else {
                        contact.custom_fields.insert(id, v);
                    }
                }
            }
            _ if value.is_null() => {
                contact.attributes.remove(key);
            }
            _ => {
                contact.attributes.insert(key.clone(), value.clone());
            }
        }
    }
}

/// The fields GHL's contact events carry (`ContactCreate.md` and siblings).
const CONTACT_EVENT_FIELDS: &[&str] = &[
    "id",
    "address1",
    "city",
    "companyName",
    "country",
    "source",
    "dateAdded",
    "dateOfBirth",
    "dnd",
    "email",
    "name",
    "firstName",
    "lastName",
    "phone",
    "postalCode",
    "state",
    "tags",
    "website",
    "assignedTo",
    "customFields",
];

fn contact_event_payload(contact: Map<String, Value>) -> Map<String, Value> {
    let mut payload: Map<String, Value> = contact
        .into_iter()
        .filter(|(k, _)| CONTACT_EVENT_FIELDS.contains(&k.as_str()))
        .collect();
    payload.insert("attachments".into(), json!([]));
    payload
}

fn dedupe(tags: impl Iterator<Item = String>) -> Vec<String> {
    let mut seen = BTreeSet::new();
    tags.filter(|t| !t.is_empty() && seen.insert(t.clone()))
        .collect()
}

/// Parses a due date and formats it as GHL returns it (`2030-01-10T15:00:00.000Z`).
fn normalize_date(text: &str) -> Result<String, String> {
    text.parse::<Timestamp>()
        .map(iso)
        .map_err(|_| format!("dueDate must be a valid ISO 8601 date string, got {text:?}"))
}

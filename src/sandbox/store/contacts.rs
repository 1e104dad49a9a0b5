//! Contacts: create (with GHL's duplicate rules), read, update, upsert, delete, tags, search
//! and listing — each recording the webhook events GHL sends.

use super::*;

impl Store {
    // ----- contacts -----

    pub(super) fn contact_json(&self, c: &Contact) -> Value {
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

    pub(super) fn contact(&self, id: &str) -> ApiResult<&Contact> {
        self.contacts
            .get(id)
            .ok_or_else(|| ApiError::not_found("Contact"))
    }

    /// Records a contact's new state for search and the webhook of `kind`.
    pub(super) fn changed(&mut self, id: &str, kind: &'static str) {
        self.file_keys(id);
        let snapshot = self.contacts.get(id).map(|c| self.contact_json(c));
        self.index.record(id, snapshot.clone());
        if let Some(Value::Object(contact)) = snapshot {
            self.events.push(Event {
                kind,
                payload: contact_event_payload(contact),
            });
        }
    }

    /// Files the contact under its current match keys (or unfiles it when gone).
    pub(super) fn file_keys(&mut self, id: &str) {
        let attribute = |name: &str| {
            self.contacts
                .get(id)
                .and_then(|c| c.attributes.get(name))
                .and_then(Value::as_str)
        };
        let (email, phone) = (attribute("email"), attribute("phone"));
        let (email, phone) = (email.map(str::to_owned), phone.map(str::to_owned));
        self.keys.file(id, email.as_deref(), phone.as_deref());
    }

    pub(super) fn check_location(&self, body: &Map<String, Value>) -> ApiResult<()> {
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
    pub(super) fn duplicate_of(&self, body: &Map<String, Value>) -> Option<(String, &'static str)> {
        if self.allow_duplicates {
            return None;
        }
        if let Some(email) = body.get("email").and_then(Value::as_str)
            && let Some(id) = self.keys.email(email)
        {
            return Some((id.to_owned(), "email"));
        }
        if let Some(phone) = body.get("phone").and_then(Value::as_str)
            && let Some(id) = self.keys.phone(&phone_digits(phone))
        {
            return Some((id.to_owned(), "phone"));
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
        self.file_keys(id);
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

    pub(super) fn change_tags(
        &mut self,
        id: &str,
        add: &[String],
        remove: &[String],
    ) -> ApiResult<Value> {
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
}

/// Writes create/update/upsert fields onto a contact. Tags replace the whole list; custom
/// field values are set by id; null clears an attribute.
pub(super) fn apply_attributes(contact: &mut Contact, body: &Map<String, Value>) {
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
pub(super) const CONTACT_EVENT_FIELDS: &[&str] = &[
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

pub(super) fn contact_event_payload(contact: Map<String, Value>) -> Map<String, Value> {
    let mut payload: Map<String, Value> = contact
        .into_iter()
        .filter(|(k, _)| CONTACT_EVENT_FIELDS.contains(&k.as_str()))
        .collect();
    payload.insert("attachments".into(), json!([]));
    payload
}

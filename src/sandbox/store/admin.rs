//! Appointments (read-only), and what the admin routes do: dump the state, edit a contact the
//! way a person in GHL's UI would.

use super::*;

impl Store {
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

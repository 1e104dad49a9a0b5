//! Appointments (read-only through the API, as the Contacts API offers no writes), and what
//! the admin routes do: dump the state, edit a contact or book an appointment the way a person
//! in GHL's UI would.

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

    /// Books an appointment for a contact, as GHL's calendar UI would (`AppointmentCreate`).
    pub fn create_appointment(&mut self, contact_id: &str, body: &Value) -> ApiResult<Value> {
        self.contact(contact_id)?;
        let fields = body.as_object().ok_or_else(|| {
            ApiError::unprocessable(vec!["the appointment must be an object".into()])
        })?;
        let id = self.ids.id();
        let now = iso(self.clock.now());
        let mut appointment = fields.clone();
        appointment.insert("id".into(), json!(id));
        appointment.insert("contactId".into(), json!(contact_id));
        appointment.insert("locationId".into(), json!(self.location_id));
        appointment
            .entry("appointmentStatus")
            .or_insert(json!("confirmed"));
        appointment.insert("dateAdded".into(), json!(now));
        appointment.insert("dateUpdated".into(), json!(now));
        self.appointment_event("AppointmentCreate", &appointment);
        self.appointments.insert(id, appointment.clone());
        Ok(json!({"appointment": appointment}))
    }

    /// Changes an appointment (moved, renamed, cancelled) as GHL's UI would
    /// (`AppointmentUpdate`).
    pub fn update_appointment(&mut self, id: &str, patch: &Value) -> ApiResult<Value> {
        let fields = patch
            .as_object()
            .ok_or_else(|| ApiError::unprocessable(vec!["the patch must be an object".into()]))?;
        let now = iso(self.clock.now());
        let appointment = self
            .appointments
            .get_mut(id)
            .ok_or_else(|| ApiError::not_found("Appointment"))?;
        for (key, value) in fields {
            if !matches!(key.as_str(), "id" | "contactId" | "locationId") {
                appointment.insert(key.clone(), value.clone());
            }
        }
        appointment.insert("dateUpdated".into(), json!(now));
        let appointment = appointment.clone();
        self.appointment_event("AppointmentUpdate", &appointment);
        Ok(json!({"appointment": appointment}))
    }

    /// GHL nests the appointment under `appointment`.
    fn appointment_event(&mut self, kind: &'static str, appointment: &Map<String, Value>) {
        let mut payload = Map::new();
        payload.insert("appointment".into(), Value::Object(appointment.clone()));
        self.events.push(Event { kind, payload });
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

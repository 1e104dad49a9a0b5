//! GHL's webhooks, read from their flat JSON: the envelope (`type`, `locationId`,
//! `webhookId`, `timestamp`) and, for the events the operator acts on, which contact changed
//! and how. Anything else is kept as its type only. Pure; malformed bodies are refused.

use jiff::Timestamp;
use serde_json::Value;

use crate::ghl::models::Contact;

/// What part of a contact an event is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Part {
    /// The contact's own fields or tags.
    Contact,
    Tasks,
    Notes,
    Appointments,
}

/// What changed.
#[derive(Clone, Debug, PartialEq)]
pub enum Change {
    /// A contact or one of its parts changed (created, updated, completed, deleted).
    Contact {
        id: String,
        part: Part,
        /// The contact's email and phone, when the event carries them (contact events).
        email: Option<String>,
        phone: Option<String>,
        /// The contact as the event carries it (`ContactCreate`, `ContactUpdate`: every field
        /// search returns), so a targeted sync can plan without reading it again.
        snapshot: Option<Box<Contact>>,
    },
    /// The contact itself was deleted.
    ContactDeleted { id: String },
    /// An event about a contact that does not say which (e.g. `TaskCreate` without
    /// `contactId`, a known GHL defect): only a full look finds it.
    Unattributed,
    /// The app was installed on or uninstalled from a location (or a whole agency) of this
    /// company: an agency connection's list of installed locations is out of date. It creates
    /// nothing by itself.
    Installation { company_id: String },
    /// An event the operator does not act on.
    Other,
}

/// One verified webhook.
#[derive(Clone, Debug, PartialEq)]
pub struct Webhook {
    /// GHL's event type (`ContactUpdate`, `NoteCreate`, …).
    pub kind: String,
    pub location_id: String,
    pub webhook_id: String,
    pub timestamp: Timestamp,
    pub change: Change,
}

/// Why a body is not a GHL event.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    #[error("the body is not a JSON object")]
    NotAnObject,
    #[error("the event has no {0}")]
    Missing(&'static str),
    #[error("the event's timestamp is not an RFC 3339 time")]
    Timestamp,
}

fn text<'a>(object: &'a Value, field: &str) -> Option<&'a str> {
    object
        .get(field)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

fn owned(object: &Value, field: &str) -> Option<String> {
    text(object, field).map(str::to_owned)
}

impl Webhook {
    /// Reads an event from the raw body.
    pub fn parse(body: &[u8]) -> Result<Self, Malformed> {
        let value: Value = serde_json::from_slice(body).map_err(|_| Malformed::NotAnObject)?;
        if !value.is_object() {
            return Err(Malformed::NotAnObject);
        }
        let kind = owned(&value, "type").ok_or(Malformed::Missing("type"))?;
        let webhook_id = owned(&value, "webhookId").ok_or(Malformed::Missing("webhookId"))?;
        let timestamp = text(&value, "timestamp")
            .ok_or(Malformed::Missing("timestamp"))?
            .parse::<Timestamp>()
            .map_err(|_| Malformed::Timestamp)?;
        // App events name the location only sometimes (an agency-wide install has none).
        let location_id = owned(&value, "locationId").unwrap_or_default();
        let change = change_of(&kind, &value);
        let agency_wide = matches!(change, Change::Other | Change::Installation { .. });
        if location_id.is_empty() && !agency_wide {
            return Err(Malformed::Missing("locationId"));
        }
        Ok(Self {
            kind,
            location_id,
            webhook_id,
            timestamp,
            change,
        })
    }

    /// Whether `timestamp` lies within `window` of `now`, either way (a replayed or badly
    /// delayed webhook does not).
    pub fn fresh(&self, now: Timestamp, window: std::time::Duration) -> bool {
        let window = jiff::SignedDuration::try_from(window).unwrap_or(jiff::SignedDuration::MAX);
        let gap = now.duration_since(self.timestamp).abs();
        gap <= window
    }
}

fn change_of(kind: &str, value: &Value) -> Change {
    let contact = |part, id: Option<String>, with_keys: bool| match id {
        Some(id) => Change::Contact {
            id,
            part,
            email: if with_keys {
                owned(value, "email")
            } else {
                None
            },
            phone: if with_keys {
                owned(value, "phone")
            } else {
                None
            },
            snapshot: None,
        },
        None => Change::Unattributed,
    };
    match kind {
        "ContactDelete" => match owned(value, "id") {
            Some(id) => Change::ContactDeleted { id },
            None => Change::Unattributed,
        },
        // GHL's contact events all carry the whole record (its examples for tag and DND
        // updates have every field a ContactUpdate has): a bulk tag change needs no reads.
        "ContactCreate" | "ContactUpdate" | "ContactTagUpdate" | "ContactDndUpdate" => {
            let mut change = contact(Part::Contact, owned(value, "id"), true);
            // Only a whole contact record (GHL's carry `dateAdded`, as every record does) is
            // taken for the contact; anything less leaves it to be read.
            let whole = value.get("dateAdded").is_some_and(Value::is_string);
            if let Change::Contact { id, snapshot, .. } = &mut change
                && whole
            {
                *snapshot = serde_json::from_value::<Contact>(value.clone())
                    .ok()
                    .filter(|c| c.id == *id)
                    .map(|mut c| {
                        // `type` is the event's, not the contact's.
                        c.contact_type = None;
                        Box::new(c)
                    });
            }
            change
        }
        "NoteCreate" | "NoteUpdate" | "NoteDelete" => {
            contact(Part::Notes, owned(value, "contactId"), false)
        }
        "TaskCreate" | "TaskComplete" | "TaskDelete" | "TaskUpdate" => {
            contact(Part::Tasks, owned(value, "contactId"), false)
        }
        "AppointmentCreate" | "AppointmentUpdate" | "AppointmentDelete" => contact(
            Part::Appointments,
            value.get("appointment").and_then(|a| owned(a, "contactId")),
            false,
        ),
        "INSTALL" | "UNINSTALL" => match owned(value, "companyId") {
            Some(company_id) => Change::Installation { company_id },
            None => Change::Other,
        },
        _ => Change::Other,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use super::*;

    fn body(value: Value) -> Vec<u8> {
        serde_json::to_vec(&value).unwrap()
    }

    fn envelope(kind: &str, extra: Value) -> Vec<u8> {
        let mut value = json!({"type": kind, "locationId": "loc", "webhookId": "w1",
                               "timestamp": "2030-01-01T00:00:00Z"});
        value
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        body(value)
    }

    /// GHL's own contact event examples (vendored): the contact each carries is read with
    /// every field search returns, custom fields and tags included.
    #[test]
    fn contact_events_carry_the_contact() {
        for example in [
            include_str!("../../tests/fixtures/ghl/webhooks/events/ContactUpdate.example.json"),
            include_str!("../../tests/fixtures/ghl/webhooks/events/ContactCreate.example.json"),
            include_str!("../../tests/fixtures/ghl/webhooks/events/ContactTagUpdate.example.json"),
            include_str!("../../tests/fixtures/ghl/webhooks/events/ContactDndUpdate.example.json"),
        ] {
            let mut example: Value = serde_json::from_str(example).unwrap();
            example["webhookId"] = json!("w1");
            example["timestamp"] = json!("2030-01-01T00:00:00Z");
            let event = Webhook::parse(&serde_json::to_vec(&example).unwrap()).unwrap();
            let Change::Contact {
                snapshot: Some(contact),
                ..
            } = event.change
            else {
                panic!(
                    "expected a contact change with its snapshot: {:?}",
                    event.change
                )
            };
            assert_eq!(contact.id, example["id"].as_str().unwrap());
            assert!(contact.first_name.is_some());
            assert!(
                contact.contact_type.is_none(),
                "the event's type is not the contact's"
            );
            assert_eq!(
                contact.tags.len(),
                example["tags"].as_array().unwrap().len()
            );
            assert_eq!(
                contact.custom_fields.len(),
                example["customFields"].as_array().unwrap().len()
            );
        }
        // An event that carries less (no `dateAdded`): no snapshot, the contact is read.
        let tags = Webhook::parse(&envelope("ContactTagUpdate", json!({"id": "c1"}))).unwrap();
        assert!(matches!(
            tags.change,
            Change::Contact { snapshot: None, .. }
        ));
    }

    #[test]
    fn events_name_the_contact_and_the_part() {
        let cases = [
            (
                envelope(
                    "ContactUpdate",
                    json!({"id": "c1", "email": "a@b.co", "dateAdded": "2030-01-01T00:00:00Z"}),
                ),
                Change::Contact {
                    id: "c1".into(),
                    part: Part::Contact,
                    email: Some("a@b.co".into()),
                    phone: None,
                    snapshot: Some(Box::new(Contact {
                        id: "c1".into(),
                        location_id: Some("loc".into()),
                        email: Some("a@b.co".into()),
                        date_added: Some("2030-01-01T00:00:00Z".into()),
                        ..Contact::default()
                    })),
                },
            ),
            (
                // Not a whole record: the contact is read.
                envelope("ContactUpdate", json!({"id": "c1", "email": "a@b.co"})),
                Change::Contact {
                    id: "c1".into(),
                    part: Part::Contact,
                    email: Some("a@b.co".into()),
                    phone: None,
                    snapshot: None,
                },
            ),
            (
                envelope(
                    "NoteCreate",
                    json!({"id": "n1", "contactId": "c1", "body": "x"}),
                ),
                Change::Contact {
                    id: "c1".into(),
                    part: Part::Notes,
                    email: None,
                    phone: None,
                    snapshot: None,
                },
            ),
            (
                envelope("TaskComplete", json!({"id": "t1", "contactId": "c2"})),
                Change::Contact {
                    id: "c2".into(),
                    part: Part::Tasks,
                    email: None,
                    phone: None,
                    snapshot: None,
                },
            ),
            (
                envelope(
                    "AppointmentUpdate",
                    json!({"appointment": {"id": "a1", "contactId": "c3"}}),
                ),
                Change::Contact {
                    id: "c3".into(),
                    part: Part::Appointments,
                    email: None,
                    phone: None,
                    snapshot: None,
                },
            ),
            (
                envelope("ContactDelete", json!({"id": "c4"})),
                Change::ContactDeleted { id: "c4".into() },
            ),
            (
                envelope("TaskCreate", json!({"id": "t2"})),
                Change::Unattributed,
            ),
            (
                envelope("OpportunityCreate", json!({"id": "o1"})),
                Change::Other,
            ),
            (
                envelope("INSTALL", json!({"appId": "app", "companyId": "co1"})),
                Change::Installation {
                    company_id: "co1".into(),
                },
            ),
            (
                envelope("UNINSTALL", json!({"appId": "app", "companyId": "co1"})),
                Change::Installation {
                    company_id: "co1".into(),
                },
            ),
            (envelope("INSTALL", json!({"appId": "app"})), Change::Other),
        ];
        for (raw, expected) in cases {
            let event = Webhook::parse(&raw).unwrap();
            assert_eq!(event.change, expected, "{}", event.kind);
            assert_eq!(
                (event.location_id.as_str(), event.webhook_id.as_str()),
                ("loc", "w1")
            );
        }
    }

    #[test]
    fn malformed_bodies_are_refused_with_the_reason() {
        let cases: [(&[u8], Malformed); 6] = [
            (b"not json", Malformed::NotAnObject),
            (b"[1, 2]", Malformed::NotAnObject),
            (
                br#"{"locationId": "l", "webhookId": "w", "timestamp": "2030-01-01T00:00:00Z"}"#,
                Malformed::Missing("type"),
            ),
            (
                br#"{"type": "ContactUpdate", "locationId": "l", "timestamp": "2030-01-01T00:00:00Z"}"#,
                Malformed::Missing("webhookId"),
            ),
            (
                br#"{"type": "ContactUpdate", "locationId": "l", "webhookId": "w", "timestamp": "yesterday"}"#,
                Malformed::Timestamp,
            ),
            (
                br#"{"type": "ContactUpdate", "webhookId": "w", "id": "c", "timestamp": "2030-01-01T00:00:00Z"}"#,
                Malformed::Missing("locationId"),
            ),
        ];
        for (raw, expected) in cases {
            assert_eq!(Webhook::parse(raw), Err(expected));
        }
    }

    #[test]
    fn freshness_is_a_window_either_way() {
        let event = Webhook::parse(&envelope("ContactUpdate", json!({"id": "c"}))).unwrap();
        let at = |s: &str| s.parse::<Timestamp>().unwrap();
        let window = Duration::from_secs(300);
        assert!(event.fresh(at("2030-01-01T00:04:59Z"), window));
        assert!(
            event.fresh(at("2029-12-31T23:55:01Z"), window),
            "a little ahead is fine"
        );
        assert!(
            !event.fresh(at("2030-01-01T00:05:01Z"), window),
            "replayed later"
        );
        assert!(
            !event.fresh(at("2029-12-31T23:54:00Z"), window),
            "from the future"
        );
    }
}

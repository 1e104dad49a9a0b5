//! One delivery of the change feed as a CloudEvents 1.0 structured event (JSON), shaped as
//! PRODUCT.md specifies. Its id depends on the content only, so a retry — or a catch-up that
//! finds a contact as it was already delivered — carries the same id. Pure.

use std::collections::BTreeSet;

use jiff::Timestamp;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

/// `type` of a contact that changed (itself or its tasks, notes, appointments).
pub const CHANGED: &str = "ai.servis.ghl.contact.changed";
/// `type` of a contact deleted in GHL.
pub const DELETED: &str = "ai.servis.ghl.contact.deleted";

/// What one delivery says about one contact.
#[derive(Clone, Debug, PartialEq)]
pub struct Snapshot {
    pub location_id: String,
    pub contact_id: String,
    /// The contact as `GET /contacts/:id` answers; `None` once deleted.
    pub contact: Option<Value>,
    /// Each `Some` when the sink includes it.
    pub tasks: Option<Value>,
    pub notes: Option<Value>,
    pub appointments: Option<Value>,
    /// The GHL events (or `CatchUp`, `Snapshot`) that led to it.
    pub triggers: BTreeSet<String>,
    /// When the change happened, as far as known.
    pub time: Timestamp,
    /// The contact was read by search (a burst's window, a catch-up), not by GET: GHL's
    /// search results may lack some of a GET's fields. Said as `data.readBy: "search"`.
    pub read_by_search: bool,
}

/// A delivery ready to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope {
    pub id: String,
    pub body: Vec<u8>,
}

impl Snapshot {
    fn kind(&self) -> &'static str {
        if self.contact.is_some() {
            CHANGED
        } else {
            DELETED
        }
    }

    /// The event's `data`, without the triggers (which do not change the content).
    fn content(&self) -> Map<String, Value> {
        let mut data = Map::new();
        data.insert("locationId".into(), json!(self.location_id));
        data.insert(
            "contact".into(),
            self.contact
                .clone()
                .unwrap_or_else(|| json!({"id": self.contact_id})),
        );
        for (name, part) in [
            ("tasks", &self.tasks),
            ("notes", &self.notes),
            ("appointments", &self.appointments),
        ] {
            if let Some(value) = part {
                data.insert(name.into(), value.clone());
            }
        }
        if self.read_by_search && self.contact.is_some() {
            data.insert("readBy".into(), json!("search"));
        }
        data
    }

    /// The CloudEvent.
    pub fn envelope(&self) -> Envelope {
        let content = self.content();
        let mut digest = Sha256::new();
        digest.update(self.kind().as_bytes());
        digest.update([0]);
        digest.update(self.contact_id.as_bytes());
        digest.update([0]);
        digest.update(serde_json::to_vec(&content).unwrap_or_default());
        let id: String = digest.finalize()[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let mut data = content;
        data.insert("triggers".into(), json!(self.triggers));
        let event = json!({
            "specversion": "1.0",
            "id": id,
            "source": format!("ghl/locations/{}", self.location_id),
            "type": self.kind(),
            "subject": self.contact_id,
            "time": self.time.to_string(),
            "datacontenttype": "application/json",
            "data": data,
        });
        Envelope {
            id,
            body: serde_json::to_vec(&event).unwrap_or_default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot() -> Snapshot {
        Snapshot {
            location_id: "loc".into(),
            contact_id: "c1".into(),
            contact: Some(json!({"id": "c1", "firstName": "Ada"})),
            tasks: Some(json!([{"id": "t1", "title": "Call"}])),
            notes: None,
            appointments: Some(json!([])),
            triggers: ["ContactUpdate".to_owned()].into(),
            time: "2030-01-01T00:00:00Z".parse().unwrap(),
            read_by_search: false,
        }
    }

    #[test]
    fn a_change_as_a_cloudevent() {
        let envelope = snapshot().envelope();
        let event: Value = serde_json::from_slice(&envelope.body).unwrap();
        assert_eq!(event["specversion"], "1.0");
        assert_eq!(event["id"], envelope.id.as_str());
        assert_eq!(event["source"], "ghl/locations/loc");
        assert_eq!(event["type"], CHANGED);
        assert_eq!(event["subject"], "c1");
        assert_eq!(event["time"], "2030-01-01T00:00:00Z");
        assert_eq!(event["datacontenttype"], "application/json");
        assert_eq!(event["data"]["contact"]["firstName"], "Ada");
        assert_eq!(event["data"]["tasks"][0]["title"], "Call");
        assert!(event["data"].get("notes").is_none(), "not included");
        assert_eq!(event["data"]["triggers"], json!(["ContactUpdate"]));
        assert!(event["data"].get("readBy").is_none(), "read by GET");
        let searched = Snapshot {
            read_by_search: true,
            ..snapshot()
        };
        let event: Value = serde_json::from_slice(&searched.envelope().body).unwrap();
        assert_eq!(event["data"]["readBy"], "search");
    }

    #[test]
    fn the_id_follows_the_content_only() {
        let a = snapshot();
        let mut b = snapshot();
        b.triggers = ["CatchUp".to_owned()].into();
        b.time = "2030-06-01T00:00:00Z".parse().unwrap();
        assert_eq!(a.envelope().id, b.envelope().id, "same content, same id");
        let mut c = snapshot();
        c.contact = Some(json!({"id": "c1", "firstName": "Augusta"}));
        assert_ne!(a.envelope().id, c.envelope().id);
        let mut deleted = snapshot();
        deleted.contact = None;
        let event: Value = serde_json::from_slice(&deleted.envelope().body).unwrap();
        assert_eq!(event["type"], DELETED);
        assert_eq!(event["data"]["contact"], json!({"id": "c1"}));
    }
}

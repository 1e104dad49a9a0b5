//! Reading a changed contact from GHL as a delivery needs it: the contact and the parts the
//! due sinks include (tasks, notes, appointments); a contact GHL no longer has is a deletion.

use std::collections::BTreeSet;

use jiff::Timestamp;
use serde_json::Value;

use super::SinkConfig;
use super::cloudevent::Snapshot;
use super::queue::Due;
use crate::crd::export::ExportPart;
use crate::ghl::{ErrorClass, GhlApi, GhlError};

/// Why a change could not be read from GHL (the delivery is retried).
#[derive(Clone, Debug, thiserror::Error)]
pub enum ReadError {
    #[error("the connection is not ready")]
    NotReady,
    /// GHL failed, by the error's category (its text may name the contact).
    #[error("reading the contact from GHL: {0}")]
    Ghl(&'static str),
}

impl From<GhlError> for ReadError {
    fn from(e: GhlError) -> Self {
        Self::Ghl(e.category())
    }
}

/// A contact as GHL holds it now, with its parts; `contact: None` when it is gone.
pub(super) struct Found {
    contact: Option<Value>,
    tasks: Option<Value>,
    notes: Option<Value>,
    appointments: Option<Value>,
    time: Timestamp,
}

impl Found {
    pub(super) fn for_sink(
        &self,
        location: &str,
        contact: &str,
        sink: &SinkConfig,
        due: &Due,
    ) -> Snapshot {
        let part = |p: ExportPart, value: &Option<Value>| {
            if self.contact.is_some() && sink.include.contains(&p) {
                value.clone()
            } else {
                None
            }
        };
        Snapshot {
            location_id: location.to_owned(),
            contact_id: contact.to_owned(),
            contact: self.contact.clone(),
            tasks: part(ExportPart::Tasks, &self.tasks),
            notes: part(ExportPart::Notes, &self.notes),
            appointments: part(ExportPart::Appointments, &self.appointments),
            triggers: due.triggers.clone(),
            time: self.time,
        }
    }
}

/// Reads the contact and `parts` (GHL trouble is an error: the delivery retries).
pub(super) async fn fetch(
    api: &dyn GhlApi,
    id: &str,
    parts: &BTreeSet<ExportPart>,
) -> Result<Found, ReadError> {
    let contact = match api.get_contact(id).await {
        Ok(contact) => contact,
        Err(e) if e.class() == ErrorClass::NotFound => {
            return Ok(Found {
                contact: None,
                tasks: None,
                notes: None,
                appointments: None,
                time: Timestamp::now(),
            });
        }
        Err(e) => return Err(e.into()),
    };
    let time = contact
        .date_updated
        .as_deref()
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(Timestamp::now);
    let value = |v: Result<Value, serde_json::Error>| v.unwrap_or(Value::Null);
    let tasks = if parts.contains(&ExportPart::Tasks) {
        Some(value(serde_json::to_value(api.list_tasks(id).await?)))
    } else {
        None
    };
    let notes = if parts.contains(&ExportPart::Notes) {
        Some(value(serde_json::to_value(api.list_notes(id).await?)))
    } else {
        None
    };
    let appointments = if parts.contains(&ExportPart::Appointments) {
        Some(value(serde_json::to_value(
            api.list_appointments(id).await?,
        )))
    } else {
        None
    };
    Ok(Found {
        contact: Some(value(serde_json::to_value(&contact))),
        tasks,
        notes,
        appointments,
        time,
    })
}

//! Reading a changed contact from GHL as a delivery needs it: the contact and the parts the
//! due sinks include (tasks, notes, appointments); a contact GHL no longer has is a deletion.

use std::collections::{BTreeSet, HashMap};

use futures::TryStreamExt;
use jiff::Timestamp;
use serde_json::{Value, json};

use super::cloudevent::Snapshot;
use super::queue::Due;
use super::{SEARCH_PAGE, SinkConfig};
use crate::crd::export::ExportPart;
use crate::ghl::models::{
    Contact, ContactSearch, FilterOperator, SearchFilter, SearchSort, SortDirection,
};
use crate::ghl::paginate::search_all;
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
    /// The contact's `dateUpdated`, when GHL gave it.
    pub(super) updated: Option<Timestamp>,
    /// Read by search (GHL's search results may lack fields a GET has).
    pub(super) by_search: bool,
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
            read_by_search: self.by_search,
        }
    }

    /// A contact as a search page returned it (no parts: for sinks that include none).
    pub(super) fn searched(contact: &Contact) -> Self {
        let updated = updated(contact);
        Found {
            contact: Some(serde_json::to_value(contact).unwrap_or(Value::Null)),
            tasks: None,
            notes: None,
            appointments: None,
            time: updated.unwrap_or_else(Timestamp::now),
            updated,
            by_search: true,
        }
    }
}

fn updated(contact: &Contact) -> Option<Timestamp> {
    contact.date_updated.as_deref().and_then(|t| t.parse().ok())
}

/// The contacts among `wanted` that a search by `dateUpdated` within `[from, to]` finds, in
/// pages of [`SEARCH_PAGE`] (one call a page, however many changed); it stops once every
/// wanted contact is found.
pub(super) async fn search_changed(
    api: &dyn GhlApi,
    from: Timestamp,
    to: Timestamp,
    wanted: &BTreeSet<String>,
) -> Result<HashMap<String, Contact>, ReadError> {
    let search = ContactSearch {
        page_limit: SEARCH_PAGE,
        filters: vec![SearchFilter::condition(
            "dateUpdated",
            FilterOperator::Range,
            Some(json!({"gte": from.to_string(), "lte": to.to_string()})),
        )],
        sort: vec![SearchSort {
            field: "dateUpdated".into(),
            direction: SortDirection::Asc,
        }],
        ..ContactSearch::default()
    };
    let mut found = HashMap::new();
    let mut pages = search_all(api, search);
    while found.len() < wanted.len()
        && let Some(contact) = pages.try_next().await?
    {
        if wanted.contains(&contact.id) {
            found.insert(contact.id.clone(), contact);
        }
    }
    Ok(found)
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
                updated: None,
                by_search: false,
            });
        }
        Err(e) => return Err(e.into()),
    };
    let updated = updated(&contact);
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
        time: updated.unwrap_or_else(Timestamp::now),
        updated,
        by_search: false,
    })
}

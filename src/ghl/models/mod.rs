//! Typed request and response bodies of the GHL v2 Contacts and OAuth APIs.
//!
//! Field names follow the official OpenAPI specs (`apps/contacts.json`, `apps/oauth.json`);
//! `tests/ghl_spec_models.rs` deserializes the specs' own examples into these types and checks
//! that every field we send is declared by the spec. Responses tolerate unknown fields and
//! `null`s (GHL adds fields and sends nulls freely); requests carry only declared fields,
//! because GHL answers unknown fields on PUT with 422.

mod appointment;
mod contact;
mod custom_field;
mod note;
mod oauth;
mod search;
mod tags;
mod task;

pub use appointment::{Appointment, AppointmentList};
pub use contact::{
    Contact, ContactEnvelope, ContactList, ContactsMeta, CreateContact, CreatedContactEnvelope,
    CustomFieldInput, CustomFieldValue, DeleteAck, DndSetting, DndSettings, ListContactsQuery,
    UpdateContact, UpdatedContactEnvelope, UpsertContact, UpsertOutcome,
};
pub use custom_field::{CustomFieldDefinition, CustomFieldList};
pub use note::{CreateNote, Note, NoteEnvelope, NoteList, UpdateNote};
pub use oauth::{
    GrantType, InstalledLocation, InstalledLocations, LocationTokenGrant, LocationTokenRequest,
    TokenGrant, TokenRequest, UserTypeParam,
};
pub use search::{
    ContactSearch, FilterOperator, MAX_PAGE_LIMIT, PAGE_NUMBER_CAP, SearchContactsResponse,
    SearchFilter, SearchSort, SortDirection, TaskSearch, TaskSearchResponse,
};
pub use tags::TagsBody;
pub use task::{CompleteTask, CreateTask, Task, TaskEnvelope, TaskList, UpdateTask};

use serde::{Deserialize, Deserializer};

/// Deserializes a list that GHL may send as `null` or leave out.
pub(crate) fn nullable_vec<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(deserializer)?.unwrap_or_default())
}

/// Deserializes a number GHL may send as a JSON number or a numeric string.
pub(crate) fn lenient_u64<'de, D>(deserializer: D) -> Result<Option<u64>, D::Error>
where
    D: Deserializer<'de>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum NumberOrText {
        Number(f64),
        Text(String),
    }
    match Option::<NumberOrText>::deserialize(deserializer)? {
        None => Ok(None),
        Some(NumberOrText::Number(n)) if n >= 0.0 && n.is_finite() => Ok(Some(n as u64)),
        Some(NumberOrText::Number(n)) => Err(serde::de::Error::custom(format!(
            "expected a non-negative number, got {n}"
        ))),
        Some(NumberOrText::Text(s)) => s
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| serde::de::Error::custom("expected a number")),
    }
}

//! Contacts: the read model and the create / update / upsert bodies
//! (`GetContectByIdSchema`, `CreateContactDto`, `UpdateContactDto`, `UpsertContactDto`).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

use super::{lenient_u64, nullable_vec};

/// A contact as GHL returns it from get, create, update, upsert, list and search.
/// The search-only fields (`followers`, `searchAfter`) are empty elsewhere.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Contact {
    pub id: String,
    pub location_id: Option<String>,
    pub name: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub company_name: Option<String>,
    pub address1: Option<String>,
    pub city: Option<String>,
    pub state: Option<String>,
    pub postal_code: Option<String>,
    pub country: Option<String>,
    pub website: Option<String>,
    pub timezone: Option<String>,
    pub source: Option<String>,
    pub date_of_birth: Option<String>,
    pub assigned_to: Option<String>,
    pub dnd: Option<bool>,
    pub dnd_settings: Option<DndSettings>,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub contact_type: Option<String>,
    #[serde(
        default,
        deserialize_with = "nullable_vec",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub tags: Vec<String>,
    #[serde(
        default,
        deserialize_with = "nullable_vec",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub custom_fields: Vec<CustomFieldValue>,
    pub business_id: Option<String>,
    pub date_added: Option<String>,
    pub date_updated: Option<String>,
    #[serde(
        default,
        deserialize_with = "nullable_vec",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub followers: Vec<String>,
    /// Search only: the cursor to pass as `searchAfter` to get the records after this one.
    #[serde(
        default,
        deserialize_with = "nullable_vec",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub search_after: Vec<serde_json::Value>,
}

/// A custom field value as GHL returns it: `{id, value}` (the value may be any JSON).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
pub struct CustomFieldValue {
    pub id: String,
    #[serde(default)]
    pub value: serde_json::Value,
}

/// A custom field value to write: `{id, field_value}` (v2 naming).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
pub struct CustomFieldInput {
    pub id: String,
    pub field_value: serde_json::Value,
}

/// Do-not-disturb settings per channel (v2 keys).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
pub struct DndSettings {
    #[serde(rename = "Call", default, skip_serializing_if = "Option::is_none")]
    pub call: Option<DndSetting>,
    #[serde(rename = "Email", default, skip_serializing_if = "Option::is_none")]
    pub email: Option<DndSetting>,
    #[serde(rename = "SMS", default, skip_serializing_if = "Option::is_none")]
    pub sms: Option<DndSetting>,
    #[serde(rename = "WhatsApp", default, skip_serializing_if = "Option::is_none")]
    pub whatsapp: Option<DndSetting>,
    #[serde(rename = "GMB", default, skip_serializing_if = "Option::is_none")]
    pub gmb: Option<DndSetting>,
    #[serde(rename = "FB", default, skip_serializing_if = "Option::is_none")]
    pub fb: Option<DndSetting>,
}

/// One channel's do-not-disturb state.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
pub struct DndSetting {
    #[serde(default)]
    pub status: String,
    pub message: Option<String>,
    pub code: Option<String>,
}

/// Body of `POST /contacts/` (without `locationId`, which the client adds): the update
/// body's fields, plus the tag list and `companyName`, which only a create takes.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CreateContact {
    #[serde(flatten)]
    pub fields: UpdateContact,
    /// Replaces the whole tag list; prefer the tag endpoints on existing contacts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    pub company_name: Option<String>,
}

/// Body of `PUT /contacts/:id`: `UpdateContactDto`, which has no `locationId`, `gender` or
/// `companyName` (GHL answers 422 to fields it does not declare).
#[skip_serializing_none]
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct UpdateContact {
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub address1: Option<String>,
    pub city: Option<String>,
    pub state: Option<String>,
    pub postal_code: Option<String>,
    pub website: Option<String>,
    pub timezone: Option<String>,
    pub dnd: Option<bool>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub custom_fields: Vec<CustomFieldInput>,
    pub source: Option<String>,
    pub date_of_birth: Option<String>,
    pub country: Option<String>,
    pub assigned_to: Option<String>,
}

impl UpdateContact {
    /// True when the body would change nothing.
    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }
}

/// Body of `POST /contacts/upsert`: the create fields plus `createNewIfDuplicateAllowed`.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct UpsertContact {
    #[serde(flatten)]
    pub contact: CreateContact,
    pub create_new_if_duplicate_allowed: Option<bool>,
}

/// `{contact: ...}` from `GET /contacts/:id`.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
pub struct ContactEnvelope {
    pub contact: Contact,
}

/// `{contact: ...}` from `POST /contacts/` (201).
pub type CreatedContactEnvelope = ContactEnvelope;

/// `{succeded, contact}` from `PUT /contacts/:id`.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
pub struct UpdatedContactEnvelope {
    #[serde(default)]
    pub succeded: bool,
    pub contact: Contact,
}

/// `{new, contact, traceId}` from `POST /contacts/upsert`.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct UpsertOutcome {
    /// True when GHL created the contact, false when it updated an existing one.
    #[serde(default)]
    pub new: bool,
    pub contact: Contact,
    pub trace_id: Option<String>,
}

/// `{succeded: true}` — GHL's (misspelled) acknowledgement of deletes.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
pub struct DeleteAck {
    #[serde(default)]
    pub succeded: bool,
}

/// Query of the deprecated `GET /contacts/` (one page).
#[skip_serializing_none]
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ListContactsQuery {
    /// Page size, at most 100.
    pub limit: Option<u32>,
    pub start_after_id: Option<String>,
    pub start_after: Option<u64>,
    pub query: Option<String>,
}

/// `{contacts, count, meta}` from `GET /contacts/`.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
pub struct ContactList {
    #[serde(default, deserialize_with = "nullable_vec")]
    pub contacts: Vec<Contact>,
    #[serde(
        default,
        deserialize_with = "lenient_u64",
        skip_serializing_if = "Option::is_none"
    )]
    pub count: Option<u64>,
    pub meta: Option<ContactsMeta>,
}

/// Paging cursor of `GET /contacts/` (`ContactsMetaSchema`).
#[skip_serializing_none]
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ContactsMeta {
    #[serde(
        default,
        deserialize_with = "lenient_u64",
        skip_serializing_if = "Option::is_none"
    )]
    pub total: Option<u64>,
    pub next_page_url: Option<String>,
    pub start_after_id: Option<String>,
    #[serde(
        default,
        deserialize_with = "lenient_u64",
        skip_serializing_if = "Option::is_none"
    )]
    pub start_after: Option<u64>,
    #[serde(
        default,
        deserialize_with = "lenient_u64",
        skip_serializing_if = "Option::is_none"
    )]
    pub current_page: Option<u64>,
    #[serde(
        default,
        deserialize_with = "lenient_u64",
        skip_serializing_if = "Option::is_none"
    )]
    pub next_page: Option<u64>,
    #[serde(
        default,
        deserialize_with = "lenient_u64",
        skip_serializing_if = "Option::is_none"
    )]
    pub prev_page: Option<u64>,
}

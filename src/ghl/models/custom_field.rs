//! A location's custom field definitions (`GET /locations/:locationId/customFields`,
//! `apps/locations.json`: `CustomFieldsListSuccessfulResponseDto` of `CustomFieldSchema`),
//! read to resolve field keys (`contact.tier`) to the per-location ids contacts carry.

use serde::Deserialize;

use super::nullable_vec;

/// One custom field definition (only what resolving keys needs; the rest is ignored).
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct CustomFieldDefinition {
    #[serde(default)]
    pub id: String,
    /// `contact.<name>` for contact fields.
    #[serde(default)]
    pub field_key: Option<String>,
    /// `contact` or `opportunity`.
    #[serde(default)]
    pub model: Option<String>,
}

/// The list endpoint's answer.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CustomFieldList {
    #[serde(default, deserialize_with = "nullable_vec")]
    pub custom_fields: Vec<CustomFieldDefinition>,
}

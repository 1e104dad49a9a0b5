//! Tags on contacts: per-contact add/remove (`TagsDTO`) and the bulk endpoint (`UpdateTagsDTO`).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{lenient_u64, nullable_vec};

/// `{tags: [...]}`: the body of `POST`/`DELETE /contacts/:id/tags` and their responses.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
pub struct TagsBody {
    #[serde(default, deserialize_with = "nullable_vec")]
    pub tags: Vec<String>,
}

/// The `{type}` of `POST /contacts/bulk/tags/update/{type}`.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum BulkTagKind {
    Add,
    Remove,
}

impl BulkTagKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Add => "add",
            Self::Remove => "remove",
        }
    }
}

/// Body of the bulk tag endpoint (without `locationId`, which the client adds).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BulkTags {
    /// Contact ids.
    pub contacts: Vec<String>,
    pub tags: Vec<String>,
    /// Only with `remove`: remove every tag from the contacts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remove_all_tags: Option<bool>,
}

/// Response of the bulk tag endpoint (`UpdateTagsResponseDTO`).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BulkTagsResponse {
    #[serde(default)]
    pub succeded: bool,
    #[serde(default, deserialize_with = "lenient_u64")]
    pub error_count: Option<u64>,
    #[serde(default, deserialize_with = "nullable_vec")]
    pub responses: Vec<BulkTagResult>,
}

/// The outcome for one contact of a bulk tag call. The spec types these as strings but its
/// example (and GHL) send objects; both are accepted.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(untagged)]
pub enum BulkTagResult {
    Detailed(BulkTagDetail),
    Text(String),
}

/// The object form of [`BulkTagResult`].
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BulkTagDetail {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// `success` or `error`.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub result_type: Option<String>,
    #[serde(
        default,
        deserialize_with = "nullable_vec",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub old_tags: Vec<String>,
    #[serde(
        default,
        deserialize_with = "nullable_vec",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub tags_added: Vec<String>,
    #[serde(
        default,
        deserialize_with = "nullable_vec",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub tags_removed: Vec<String>,
}

impl BulkTagResult {
    /// True when GHL reported success for this contact.
    pub fn is_success(&self) -> bool {
        match self {
            Self::Detailed(d) => d.result_type.as_deref() == Some("success"),
            Self::Text(t) => t.eq_ignore_ascii_case("tags updated"),
        }
    }
}

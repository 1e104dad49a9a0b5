//! `POST /contacts/search` and `POST /locations/:locationId/tasks/search`.
//!
//! The current contacts spec leaves the search body empty (`SearchBodyV2DTO: {}`); the fields
//! here follow GHL's search documentation (see `API-FACTS.md` §4.2) and the response follows the
//! 2025-08-26 spec revision (`SearchContactSuccessResponseDto`).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

use super::contact::Contact;
use super::task::Task;
use super::{lenient_u64, nullable_vec};

/// GHL returns at most this many records through `page` numbers; beyond it only `searchAfter`
/// cursors work.
pub const PAGE_NUMBER_CAP: u64 = 10_000;
/// Largest `pageLimit` GHL accepts.
pub const MAX_PAGE_LIMIT: u32 = 500;

/// Body of a contact search (without `locationId`, which the client adds).
#[skip_serializing_none]
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ContactSearch {
    /// Page size, at most 500.
    pub page_limit: u32,
    /// 1-based page number; not combined with `searchAfter`.
    pub page: Option<u32>,
    /// Cursor: the `searchAfter` of the last record of the previous page.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub search_after: Vec<serde_json::Value>,
    /// Conditions, all of which must hold.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub filters: Vec<SearchFilter>,
    /// At most two sort keys.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sort: Vec<SearchSort>,
    /// Full-text query (at most 75 characters).
    pub query: Option<String>,
}

/// A search condition, or a group of them.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(untagged)]
pub enum SearchFilter {
    Group {
        /// `AND` or `OR`.
        group: String,
        filters: Vec<SearchFilter>,
    },
    Condition {
        field: String,
        operator: FilterOperator,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        value: Option<serde_json::Value>,
    },
}

impl SearchFilter {
    pub fn condition(
        field: impl Into<String>,
        operator: FilterOperator,
        value: Option<serde_json::Value>,
    ) -> Self {
        Self::Condition {
            field: field.into(),
            operator,
            value,
        }
    }
}

/// Search operators.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum FilterOperator {
    Eq,
    NotEq,
    Contains,
    NotContains,
    Exists,
    NotExists,
    Range,
}

/// A sort key.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SearchSort {
    pub field: String,
    pub direction: SortDirection,
}

/// Sort direction.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SortDirection {
    Asc,
    Desc,
}

/// `{contacts, total}`.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
pub struct SearchContactsResponse {
    #[serde(default, deserialize_with = "nullable_vec")]
    pub contacts: Vec<Contact>,
    #[serde(default, deserialize_with = "lenient_u64")]
    pub total: Option<u64>,
}

/// Body of the location task search (`TaskSearchParamsDto`).
#[skip_serializing_none]
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TaskSearch {
    /// Contact ids whose tasks to return (all contacts when empty).
    #[serde(rename = "contactId", default, skip_serializing_if = "Vec::is_empty")]
    pub contact_ids: Vec<String>,
    pub completed: Option<bool>,
    #[serde(rename = "assignedTo", default, skip_serializing_if = "Vec::is_empty")]
    pub assigned_to: Vec<String>,
    pub query: Option<String>,
    pub limit: u32,
    pub skip: u32,
    pub business_id: Option<String>,
}

/// `{tasks: [...]}` from the location task search. (The spec types `tasks` as an array of
/// arrays; GHL sends task objects.)
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
pub struct TaskSearchResponse {
    #[serde(default, deserialize_with = "nullable_vec")]
    pub tasks: Vec<Task>,
}

//! Appointments of a contact (`GetEventSchema`), read-only here.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

use super::nullable_vec;

/// An appointment (calendar event) of a contact. Times are as GHL sends them
/// (`2021-07-16 11:00:00`, not always ISO-8601).
#[skip_serializing_none]
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Appointment {
    pub id: String,
    pub calendar_id: Option<String>,
    pub status: Option<String>,
    pub title: Option<String>,
    pub assigned_user_id: Option<String>,
    pub notes: Option<String>,
    pub start_time: Option<String>,
    pub end_time: Option<String>,
    pub address: Option<String>,
    pub location_id: Option<String>,
    pub contact_id: Option<String>,
    pub group_id: Option<String>,
    pub appointment_status: Option<String>,
    #[serde(
        default,
        deserialize_with = "nullable_vec",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub users: Vec<String>,
    pub date_added: Option<String>,
    pub date_updated: Option<String>,
    #[serde(
        default,
        deserialize_with = "nullable_vec",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub assigned_resources: Vec<String>,
}

/// `{events: [...]}`.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
pub struct AppointmentList {
    #[serde(default, deserialize_with = "nullable_vec")]
    pub events: Vec<Appointment>,
}

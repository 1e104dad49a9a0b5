//! Pre-existing data a sandbox starts with (`--seed FILE`): contacts with their tasks, notes
//! and appointments, for adoption tests and demos.
//!
//! ```yaml
//! allowDuplicateContact: false
//! contacts:
//! - email: grace@example.com
//!   firstName: Grace
//!   tags: [customer]
//!   customFields: {ZtPpXCQ5SVSmrSrpGOq6: silver}
//!   tasks: [{title: Renewal call, dueDate: "2030-02-01T10:00:00Z"}]
//!   notes: [{body: Prefers email}]
//!   appointments: [{title: Demo, startTime: "2030-02-03 10:00:00", endTime: "2030-02-03 10:30:00"}]
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The whole seed file.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Seed {
    /// Overrides the location's "Allow Duplicate Contact" setting.
    #[serde(default)]
    pub allow_duplicate_contact: Option<bool>,
    #[serde(default)]
    pub contacts: Vec<SeedContact>,
}

/// One pre-existing contact. Attributes use GHL's field names (`firstName`, `email`, ...).
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SeedContact {
    /// Fixed id (20 characters like GHL's); generated when omitted.
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub custom_fields: BTreeMap<String, Value>,
    #[serde(default)]
    pub business_id: Option<String>,
    #[serde(default)]
    pub tasks: Vec<SeedTask>,
    #[serde(default)]
    pub notes: Vec<SeedNote>,
    /// Appointments as GHL returns them (`GetEventSchema` fields); read-only in the sandbox.
    #[serde(default)]
    pub appointments: Vec<Map<String, Value>>,
    /// Contact attributes (`firstName`, `email`, `phone`, `companyName`, ...).
    #[serde(flatten)]
    pub attributes: Map<String, Value>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SeedTask {
    pub title: String,
    #[serde(default)]
    pub body: Option<String>,
    pub due_date: String,
    #[serde(default)]
    pub completed: bool,
    #[serde(default)]
    pub assigned_to: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SeedNote {
    pub body: String,
}

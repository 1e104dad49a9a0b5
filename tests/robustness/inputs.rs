//! Generators of hostile input: JSON built from the product's own vocabulary, with extreme
//! numbers and awkward strings at the leaves.

use proptest::prelude::*;
use serde_json::{Map, Value};

/// Field names of the CRDs, GHL answers and webhook events: generated objects use them, so
/// most cases reach the code behind deserialization.
pub const VOCABULARY: &[&str] = &[
    // ContactSyncPolicy / TagRule / GhlConnection
    "connectionRef",
    "name",
    "namespace",
    "matchBy",
    "contacts",
    "contactsFrom",
    "configMapRef",
    "secretRef",
    "key",
    "format",
    "fieldPolicy",
    "prune",
    "deletionPolicy",
    "safety",
    "maxDeletes",
    "maxChanges",
    "mode",
    "resyncInterval",
    "email",
    "phone",
    "firstName",
    "lastName",
    "companyName",
    "address1",
    "city",
    "state",
    "country",
    "postalCode",
    "website",
    "timezone",
    "dnd",
    "source",
    "customFields",
    "tags",
    "tasks",
    "notes",
    "title",
    "body",
    "dueDate",
    "assignedTo",
    "completed",
    "selector",
    "filters",
    "field",
    "operator",
    "value",
    "policyRef",
    "noteContains",
    "addTags",
    "removeTags",
    "locationId",
    "baseUrl",
    "apiVersion",
    "auth",
    "privateIntegrationToken",
    "oauth",
    "clientSecretRef",
    "tokenSecretRef",
    "authorizationCodeSecretRef",
    "renewBefore",
    "rotationSchedule",
    "userType",
    "companyId",
    "maxAge",
    "rateLimit",
    "sharePercent",
    "requestsPerWindow",
    "window",
    "dailyLimit",
    "consumers",
    "secretName",
    "minInterval",
    "rolloutRestartTargets",
    "kind",
    "webhooks",
    "catchUpInterval",
    "export",
    "sinks",
    "url",
    "parts",
    // GHL answers
    "contact",
    "id",
    "dateAdded",
    "dateUpdated",
    "total",
    "meta",
    "startAfterId",
    "startAfter",
    "searchAfter",
    "nextPageUrl",
    "succeded",
    "succeeded",
    "new",
    "traceId",
    "message",
    "statusCode",
    "error",
    "isCompleted",
    "contactId",
    "userId",
    "appointments",
    "startTime",
    "endTime",
    "appointmentStatus",
    "calendarId",
    "access_token",
    "refresh_token",
    "expires_in",
    "scope",
    // webhooks
    "type",
    "webhookId",
    "timestamp",
    "ContactCreate",
    "ContactTagUpdate",
    "NoteCreate",
    "TaskCreate",
    "AppointmentCreate",
    "ContactDelete",
];

pub const STRINGS: &[&str] = &[
    "",
    " ",
    "a@example.com",
    "+14155550100",
    "not an email",
    "0s",
    "1s",
    "10m",
    "30d",
    "366d",
    "367d",
    "18446744073709551615s",
    "99999999999999999999d",
    "1ms",
    "-1s",
    "1e9s",
    "2030-01-01T00:00:00Z",
    "9999-12-31T23:59:59Z",
    "-009999-01-01T00:00:00Z",
    "not a date",
    "Apply",
    "Plan",
    "Delete",
    "Orphan",
    "email",
    "phone",
    "csv",
    "json",
    "yaml",
    "eq",
    "not_exists",
    "Enforce",
    "InitOnly",
    "Observe",
    "Location",
    "Company",
    "https://services.leadconnectorhq.com",
    "http://169.254.169.254/latest/meta-data",
    "https://user:pass@evil.example",
    "* * * * *",
    "0 */12 * * *",
    "\u{0}",
    "\u{202e}gnp.exe",
    "ünïcödé 👋",
    "a,b;c\n\"d",
];

/// A leaf value: extremes of every JSON number kind, and awkward strings.
fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        prop_oneof![
            Just(0i64),
            Just(-1),
            Just(i64::MIN),
            Just(i64::MAX),
            any::<i64>()
        ]
        .prop_map(Value::from),
        prop_oneof![Just(u64::MAX), Just(u64::from(u32::MAX) + 1), any::<u64>()]
            .prop_map(Value::from),
        any::<f64>()
            .prop_filter("JSON numbers are finite", |f| f.is_finite())
            .prop_map(Value::from),
        prop::sample::select(STRINGS).prop_map(Value::from),
        ".{0,24}".prop_map(Value::from),
    ]
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(VOCABULARY).prop_map(str::to_owned),
        1 => "[a-zA-Z_.]{1,12}",
    ]
}

/// Any JSON value, objects keyed mostly by the vocabulary.
pub fn json() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(key(), inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<String, Value>>())),
        ]
    })
}

/// An object with `base` merged over generated fields (so required fields are usually there).
pub fn object_over(base: Value) -> impl Strategy<Value = Value> {
    prop::collection::btree_map(key(), json(), 0..10).prop_map(move |fields| {
        let mut object: Map<String, Value> = fields.into_iter().collect();
        if let Value::Object(base) = &base {
            for (k, v) in base {
                object.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
        Value::Object(object)
    })
}

/// Text that might be a `contactsFrom` source: arbitrary, or CSV / JSON / YAML shaped.
pub fn source_text() -> impl Strategy<Value = String> {
    let csv_row = prop::collection::vec(prop::sample::select(STRINGS), 0..6).prop_map(|cells| {
        cells
            .iter()
            .map(|c| c.replace('\n', " "))
            .collect::<Vec<_>>()
            .join(",")
    });
    prop_oneof![
        ".{0,200}",
        (
            prop::collection::vec(prop::sample::select(VOCABULARY), 0..6),
            prop::collection::vec(csv_row, 0..6)
        )
            .prop_map(|(header, rows)| format!(
                "{}\n{}",
                header.join(","),
                rows.join("\n")
            )),
        prop::collection::vec(object_over(Value::Null), 0..6)
            .prop_map(|records| Value::Array(records).to_string()),
        json().prop_map(|v| v.to_string()),
    ]
}

//! `ContactSyncPolicy`: the contacts a sub-account must hold, with their tasks, notes and tags.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

use super::common::{
    Conditions, ConfigMapKeyRef, ConnectionRef, DeletionPolicy, DurationString, Mode, PlanSummary,
    SecretKeyRef, conditions_schema,
};

/// Declared contacts, their tasks, notes and tags, kept in sync with one GHL sub-account.
#[skip_serializing_none]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "ghl.servis.ai",
    version = "v1alpha1",
    kind = "ContactSyncPolicy",
    namespaced,
    status = "ContactSyncPolicyStatus",
    shortname = "csp",
    shortname = "ghlpolicy",
    category = "ghl",
    doc = "Contacts (with tasks, notes and tags) that a GHL sub-account must hold; planned and applied like Terraform.",
    printcolumn = r#"{"name": "Mode", "type": "string", "jsonPath": ".spec.mode"}"#,
    printcolumn = r#"{"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name": "Synced", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Synced\")].status"}"#,
    printcolumn = r#"{"name": "Reason", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name": "Message", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].message", "priority": 1}"#,
    printcolumn = r#"{"name": "Desired", "type": "integer", "jsonPath": ".status.counts.desired"}"#,
    printcolumn = r#"{"name": "InSync", "type": "integer", "jsonPath": ".status.counts.inSync"}"#,
    printcolumn = r#"{"name": "Drifted", "type": "integer", "jsonPath": ".status.counts.drifted"}"#,
    printcolumn = r#"{"name": "Failed", "type": "integer", "jsonPath": ".status.counts.failed"}"#,
    printcolumn = r#"{"name": "LastSync", "type": "date", "jsonPath": ".status.lastSyncTime", "priority": 1}"#,
    printcolumn = r#"{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}"#,
    cel
)]
#[serde(rename_all = "camelCase")]
pub struct ContactSyncPolicySpec {
    /// The GhlConnection to use. Immutable: a policy's ledger belongs to one sub-account.
    #[x_kube(validation = Rule::new("self == oldSelf").message("connectionRef is immutable"))]
    pub connection_ref: ConnectionRef,

    /// How a declared contact is matched to a contact already in GHL (adoption): `email`
    /// (default) or `phone`. A matched contact is adopted, never duplicated.
    #[serde(default)]
    pub match_by: MatchBy,

    /// `Apply` (default) writes the plan to GHL; `Plan` only reports it in status.
    #[serde(default)]
    pub mode: Mode,

    /// Delete contacts, tasks and notes this policy created and no longer declares. If
    /// omitted, false: undeclared objects are left in GHL and forgotten.
    #[serde(default)]
    pub prune: bool,

    /// `Orphan` (default) leaves GHL untouched when the policy is deleted; `Delete` removes
    /// what the policy created or added (its ledger) first.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,

    /// Full drift check every this long (jittered). If omitted, `10m`. GHL webhooks trigger
    /// targeted checks sooner.
    /// From `1s` to `30d`; another value stalls the object, naming this field.
    pub resync_interval: Option<DurationString>,

    /// Limits per run; a plan beyond them is not applied and the policy reports `Stalled`.
    pub safety: Option<Safety>,

    /// Per-field ownership: `Enforce` (default; revert drift), `InitOnly` (set on create
    /// only) or `Observe` (report drift, never write). Keys are contact field names
    /// (`firstName`, `phone`, ...), `customFields.<id>` or `customFields.<key>`, or `tags`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub field_policy: BTreeMap<String, FieldPolicy>,

    /// Contacts declared inline.
    #[serde(default, skip_serializing_if = "InlineContacts::is_empty")]
    pub contacts: InlineContacts,

    /// Contacts declared in ConfigMap or Secret keys, or HTTP documents (CSV, JSON or YAML),
    /// for large lists. At most 256 sources.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256))]
    pub contacts_from: Vec<ContactSource>,
}

/// The field that identifies a declared contact in GHL.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
pub enum MatchBy {
    /// Match on the (case-insensitive) email address.
    #[default]
    Email,
    /// Match on the phone number (E.164).
    Phone,
}

/// Who owns a contact field.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FieldPolicy {
    /// The declared value wins: drift is reverted.
    #[default]
    Enforce,
    /// Set when the contact is created; afterwards GHL's value is left alone.
    InitOnly,
    /// Never written; differences are reported as drift.
    Observe,
}

/// Per-run limits on what a plan may do.
#[skip_serializing_none]
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Safety {
    /// Most deletes one run may make. If omitted, 10.
    pub max_deletes: Option<u32>,
    /// Most changes one run may make: GHL writes (creates, updates, tag changes, deletes)
    /// plus contacts the policy stops managing. If omitted, 1000.
    pub max_changes: Option<u32>,
}

/// Contacts declared inline (`spec.contacts`), held as the compact JSON they parse from.
///
/// An operator caches every policy it watches, and parsed records cost about five times their
/// JSON (a 500-contact policy: ~290 KB against ~60 KB; 200 such policies, 57 MB). They are
/// parsed — and so validated — when the object is read, and again, briefly, when the desired
/// state is built. On the wire, and in the CRD's schema, this is the array of records.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct InlineContacts {
    json: Box<str>,
    len: usize,
}

impl InlineContacts {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The records, parsed.
    pub fn records(&self) -> Vec<ContactRecord> {
        if self.len == 0 {
            return Vec::new();
        }
        serde_json::from_str(&self.json).expect("InlineContacts holds JSON it wrote from records")
    }
}

impl From<Vec<ContactRecord>> for InlineContacts {
    fn from(records: Vec<ContactRecord>) -> Self {
        Self {
            json: serde_json::to_string(&records)
                .expect("contact records serialize to JSON")
                .into(),
            len: records.len(),
        }
    }
}

impl FromIterator<ContactRecord> for InlineContacts {
    fn from_iter<I: IntoIterator<Item = ContactRecord>>(iter: I) -> Self {
        Self::from(iter.into_iter().collect::<Vec<_>>())
    }
}

impl std::fmt::Debug for InlineContacts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "InlineContacts({} records)", self.len)
    }
}

impl Serialize for InlineContacts {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.records().serialize(s)
    }
}

impl<'de> Deserialize<'de> for InlineContacts {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Vec::<ContactRecord>::deserialize(d).map(Self::from)
    }
}

impl JsonSchema for InlineContacts {
    fn inline_schema() -> bool {
        <Vec<ContactRecord>>::inline_schema()
    }

    fn schema_name() -> std::borrow::Cow<'static, str> {
        <Vec<ContactRecord>>::schema_name()
    }

    fn schema_id() -> std::borrow::Cow<'static, str> {
        <Vec<ContactRecord>>::schema_id()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        <Vec<ContactRecord>>::json_schema(generator)
    }
}

/// One declared contact. Only the fields given are managed; omitted fields are left alone.
#[skip_serializing_none]
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ContactRecord {
    /// Email address; required when `matchBy: email`.
    pub email: Option<String>,
    /// Phone number in E.164 form (`+14155550100`); required when `matchBy: phone`.
    pub phone: Option<String>,
    /// First name.
    pub first_name: Option<String>,
    /// Last name.
    pub last_name: Option<String>,
    /// Full name, when first/last are not used.
    pub name: Option<String>,
    /// Company name (set on create; GHL ignores it on update).
    pub company_name: Option<String>,
    /// Street address.
    pub address1: Option<String>,
    /// City.
    pub city: Option<String>,
    /// State or region.
    pub state: Option<String>,
    /// Postal code.
    pub postal_code: Option<String>,
    /// Two-letter country code (`US`).
    pub country: Option<String>,
    /// Website URL.
    pub website: Option<String>,
    /// IANA time zone (`America/Chicago`).
    pub timezone: Option<String>,
    /// Lead source.
    pub source: Option<String>,
    /// Birth date, `YYYY-MM-DD`.
    pub date_of_birth: Option<String>,
    /// GHL user id the contact is assigned to.
    pub assigned_to: Option<String>,
    /// Do-not-disturb on all channels.
    pub dnd: Option<bool>,
    /// Custom field values by field key (`contact.tier`, the same in every sub-account that
    /// has the field; resolved per location) or by GHL custom field id: a string, a number, or
    /// a list of strings. An unknown key fails the record.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(schema_with = "custom_field_values_schema")]
    pub custom_fields: BTreeMap<String, serde_json::Value>,
    /// Tags the contact must carry. Other tags on the contact are left alone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Tasks the contact must have, identified by `key`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["key"]))]
    pub tasks: Vec<TaskRecord>,
    /// Notes the contact must have, identified by `key`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["key"]))]
    pub notes: Vec<NoteRecord>,
}

/// A declared task on a contact.
#[skip_serializing_none]
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct TaskRecord {
    /// Stable identity of the task within its contact (the operator maps it to a GHL task id).
    #[schemars(length(min = 1, max = 128))]
    pub key: String,
    /// Task title.
    #[schemars(length(min = 1))]
    pub title: String,
    /// Task description.
    pub body: Option<String>,
    /// Due date and time (RFC 3339, e.g. `2030-01-10T15:00:00Z`).
    pub due_date: String,
    /// GHL user id the task is assigned to.
    pub assigned_to: Option<String>,
    /// Whether the task is done. If omitted, false.
    #[serde(default)]
    pub completed: bool,
}

/// A declared note on a contact.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct NoteRecord {
    /// Stable identity of the note within its contact (the operator maps it to a GHL note id).
    #[schemars(length(min = 1, max = 128))]
    pub key: String,
    /// Note text.
    #[schemars(length(min = 1))]
    pub body: String,
}

/// A ConfigMap key, a Secret key or an HTTP URL holding contact records.
#[skip_serializing_none]
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("(has(self.configMapRef) ? 1 : 0) + (has(self.secretRef) ? 1 : 0) + (has(self.http) ? 1 : 0) == 1").message("set exactly one of configMapRef, secretRef or http"),
    validation = Rule::new("!has(self.refreshInterval) || has(self.http)").message("refreshInterval applies to http sources only")
)]
pub struct ContactSource {
    /// A ConfigMap key with the records.
    pub config_map_ref: Option<ConfigMapKeyRef>,
    /// A Secret key with the records (for lists that must not be readable by everyone).
    pub secret_ref: Option<SecretKeyRef>,
    /// A document the operator fetches over HTTP(S), from a URL its installer allows
    /// (`--allowed-source-url`), with conditional requests: an unchanged document costs one
    /// `304` per `refreshInterval`, a changed one triggers a reconcile.
    pub http: Option<HttpSource>,
    /// How often an `http` source is asked whether it changed. If omitted, `5m`. From `10s`
    /// to `30d`.
    pub refresh_interval: Option<DurationString>,
    /// `csv` (header row of field names; `tags` separated by `;`), `json` (an array of
    /// records) or `yaml` (a list of records). If omitted, guessed from the key's extension.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "record_format_schema")]
    pub format: Option<RecordFormat>,
    /// Renames the source's keys (JSON/YAML keys, CSV columns) to contact fields:
    /// `{<contact field, tags or customFields.<key>>: <source key>}`, so records shaped by
    /// another system (`{"mail": …, "given": …}`) need no transform step. With a map, keys
    /// that are neither mapped nor contact fields are ignored.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub field_map: BTreeMap<String, String>,
}

/// An HTTP(S) document with contact records.
#[skip_serializing_none]
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct HttpSource {
    /// The document's URL. Redirects are not followed; the answer is capped in size and time.
    #[schemars(length(min = 1, max = 2048))]
    pub url: String,
    /// A Secret (labelled `ghl.servis.ai/secret-type: source`) whose keys are request header
    /// names and whose values are their values (`Authorization: Bearer …`).
    pub headers_secret_ref: Option<SecretNameRef>,
}

/// A Secret in the object's namespace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SecretNameRef {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// Encodings for `contactsFrom`.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum RecordFormat {
    Csv,
    Json,
    Yaml,
}

/// Observed state of a ContactSyncPolicy. Written only by the operator.
#[skip_serializing_none]
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ContactSyncPolicyStatus {
    /// The `metadata.generation` this status describes.
    pub observed_generation: Option<i64>,

    /// `Ready`, `Synced`, `Drifted`, `Conflict` (records left to an older policy declaring the
    /// same contacts), `Stalled`, `Reconciling`.
    #[serde(default)]
    #[schemars(schema_with = "conditions_schema")]
    pub conditions: Conditions,

    /// The last computed plan (in `Plan` mode: what would be applied).
    pub plan: Option<PlanSummary>,

    /// How many declared contacts are in which state.
    pub counts: Option<SyncCounts>,

    /// When the last sync (plan and, in `Apply` mode, apply) finished.
    pub last_sync_time: Option<Time>,

    /// When the last sync finished with GHL matching the declared state.
    pub last_successful_sync_time: Option<Time>,

    /// Records that failed validation or could not be applied (at most 20; see `counts.failed`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<RecordFailure>,
}

/// Counts of declared contacts by state.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SyncCounts {
    /// Valid declared contacts.
    #[serde(default)]
    pub desired: u32,
    /// Contacts whose GHL state matches the declaration.
    #[serde(default)]
    pub in_sync: u32,
    /// Contacts changed in GHL since the operator last wrote them.
    #[serde(default)]
    pub drifted: u32,
    /// Records rejected or not applied.
    #[serde(default)]
    pub failed: u32,
}

/// One record the operator could not handle. Never carries personal data: records are named
/// by position and GHL id.
#[skip_serializing_none]
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RecordFailure {
    /// Where the record came from, e.g. `contacts[3]` or `contactsFrom[0][17]`.
    pub record: String,
    /// The offending field, when one is to blame.
    pub field: Option<String>,
    /// A stable CamelCase reason.
    pub reason: String,
    /// What went wrong and how to fix it.
    pub message: String,
}

/// Custom field values are free-form JSON (string, number or list); validated by the operator.
/// An optional enum without `null` among its values: API servers before 1.21 refuse a CRD
/// whose enum lists `null` (the field being optional is enough).
fn record_format_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "string",
        "enum": ["csv", "json", "yaml"]
    })
}

fn custom_field_values_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "additionalProperties": {
            "x-kubernetes-preserve-unknown-fields": true
        }
    })
}

#[cfg(test)]
mod inline_contacts_tests {
    use super::*;

    #[test]
    fn inline_contacts_read_and_write_as_the_array_of_records() {
        let yaml = "connectionRef: {name: acme}\ncontacts:\n- email: ada@example.com\n  tags: [vip]\n  customFields: {tier: 3}\n- phone: '+12025550100'\n";
        let spec: ContactSyncPolicySpec = serde_saphyr::from_str(yaml).unwrap();
        assert_eq!(spec.contacts.len(), 2);
        let records = spec.contacts.records();
        assert_eq!(records[0].email.as_deref(), Some("ada@example.com"));
        assert_eq!(records[0].custom_fields["tier"], 3);
        assert_eq!(records[1].phone.as_deref(), Some("+12025550100"));
        // Written back, it is the array it was read from.
        let json = serde_json::to_value(&spec).unwrap();
        assert_eq!(json["contacts"][0]["tags"], serde_json::json!(["vip"]));
        assert_eq!(json["contacts"].as_array().unwrap().len(), 2);
        let again: ContactSyncPolicySpec = serde_json::from_value(json).unwrap();
        assert_eq!(again.contacts, spec.contacts);
        // An invalid record is refused when the object is read, as before.
        let bad = "connectionRef: {name: acme}\ncontacts:\n- email: [not, text]\n";
        assert!(serde_saphyr::from_str::<ContactSyncPolicySpec>(bad).is_err());
        // None declared: nothing written.
        let none: ContactSyncPolicySpec =
            serde_json::from_value(serde_json::json!({"connectionRef": {"name": "a"}})).unwrap();
        assert!(none.contacts.is_empty() && none.contacts.records().is_empty());
        assert!(
            serde_json::to_value(&none)
                .unwrap()
                .get("contacts")
                .is_none()
        );
    }

    #[test]
    fn inline_contacts_have_the_schema_of_the_array() {
        let ours = schemars::schema_for!(InlineContacts);
        let array = schemars::schema_for!(Vec<ContactRecord>);
        assert_eq!(ours, array);
    }
}

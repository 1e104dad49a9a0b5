//! `TagRule`: tags that the contacts matching a selector must (or must not) carry.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

use super::common::{
    Conditions, ConnectionRef, DeletionPolicy, DurationString, Mode, PlanSummary, conditions_schema,
};

/// Tags that contacts matching a selector must carry or lose.
#[skip_serializing_none]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "ghl.servis.ai",
    version = "v1alpha1",
    kind = "TagRule",
    namespaced,
    status = "TagRuleStatus",
    shortname = "ghltr",
    shortname = "tagrule",
    category = "ghl",
    doc = "Tags that GHL contacts matching a selector must carry (addTags) or lose (removeTags).",
    printcolumn = r#"{"name": "Mode", "type": "string", "jsonPath": ".spec.mode"}"#,
    printcolumn = r#"{"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name": "Reason", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name": "Message", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].message", "priority": 1}"#,
    printcolumn = r#"{"name": "Matched", "type": "integer", "jsonPath": ".status.matched"}"#,
    printcolumn = r#"{"name": "Compliant", "type": "integer", "jsonPath": ".status.compliant"}"#,
    printcolumn = r#"{"name": "Pending", "type": "integer", "jsonPath": ".status.pending"}"#,
    printcolumn = r#"{"name": "Conflict", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Conflict\")].status", "priority": 1}"#,
    printcolumn = r#"{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}"#,
    cel
)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("(has(self.addTags) ? size(self.addTags) : 0) + (has(self.removeTags) ? size(self.removeTags) : 0) + (has(self.tasks) ? size(self.tasks) : 0) + (has(self.notes) ? size(self.notes) : 0) > 0").message("set at least one of addTags, removeTags, tasks or notes"),
    validation = Rule::new("!has(self.addTags) || !has(self.removeTags) || self.addTags.all(t, !(t in self.removeTags))").message("a tag cannot be in both addTags and removeTags")
)]
pub struct TagRuleSpec {
    /// The GhlConnection to use. Immutable.
    #[x_kube(validation = Rule::new("self == oldSelf").message("connectionRef is immutable"))]
    pub connection_ref: ConnectionRef,

    /// Which contacts the rule applies to.
    pub selector: TagSelector,

    /// Tags every matching contact must carry.
    #[serde(default)]
    pub add_tags: Vec<String>,

    /// Tags no matching contact may carry.
    #[serde(default)]
    pub remove_tags: Vec<String>,

    /// Tasks every matching contact gets once, when it enters the rule (identified by `key`).
    /// The rule owns what it creates: a task a person completes or deletes in GHL stays so, and
    /// edits to it are left alone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 20))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["key"]))]
    pub tasks: Vec<RuleTask>,

    /// Notes every matching contact gets once, when it enters the rule (identified by `key`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 20))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["key"]))]
    pub notes: Vec<RuleNote>,

    /// What a contact that leaves the rule keeps: `Keep` (default) leaves its tasks and notes
    /// as they are; `CompleteTasks` marks the open tasks the rule created completed.
    #[serde(default)]
    pub on_leave: OnLeave,

    /// `Apply` (default) writes tag changes; `Plan` only reports them.
    #[serde(default)]
    pub mode: Mode,

    /// `Orphan` (default) keeps the tags this rule added when the rule is deleted; `Delete`
    /// removes them (only those the rule itself added, per its ledger).
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,

    /// Full re-evaluation every this long (jittered). If omitted, `10m`.
    /// From `1s` to `30d`; another value stalls the object, naming this field.
    pub resync_interval: Option<DurationString>,
    /// Per-run limits: a larger plan is not applied, and the rule stalls until it is raised.
    pub safety: Option<RuleSafety>,
}

/// A task the rule gives each matching contact once.
#[skip_serializing_none]
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RuleTask {
    /// Stable identity of the task within the rule: a contact gets one task per key, ever.
    #[schemars(length(min = 1, max = 128))]
    pub key: String,
    /// Task title.
    #[schemars(length(min = 1, max = 512))]
    pub title: String,
    /// Task description.
    #[schemars(length(max = 10000))]
    pub body: Option<String>,
    /// When the task is due, from the moment the contact entered the rule (`24h`, `2d`).
    /// If omitted, `24h`. At most a year.
    pub due_in: Option<DurationString>,
    /// GHL user id the task is assigned to.
    #[schemars(length(max = 128))]
    pub assigned_to: Option<String>,
}

/// A note the rule gives each matching contact once.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RuleNote {
    /// Stable identity of the note within the rule: a contact gets one note per key, ever.
    #[schemars(length(min = 1, max = 128))]
    pub key: String,
    /// Note text.
    #[schemars(length(min = 1, max = 10000))]
    pub body: String,
}

/// What happens to the tasks of a contact that leaves the rule.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OnLeave {
    /// Its tasks and notes stay as they are.
    #[default]
    Keep,
    /// The open tasks the rule created are marked completed (notes stay).
    CompleteTasks,
}

/// Per-run limits on what a TagRule may change.
#[skip_serializing_none]
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RuleSafety {
    /// Most changes one run may make: tag writes (one per contact for additions, one for
    /// removals), tasks and notes created, completed or deleted, plus contacts the rule stops
    /// tracking. If omitted, 1000.
    pub max_changes: Option<u32>,
}

/// Selects contacts with GHL search semantics. All filters must match (AND).
#[skip_serializing_none]
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct TagSelector {
    /// Search filters, all of which must match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub filters: Vec<ContactFilter>,

    /// Only contacts managed by this ContactSyncPolicy (same namespace).
    pub policy_ref: Option<PolicyRef>,

    /// Also require a note on the contact containing this phrase (case-insensitive).
    pub note_contains: Option<String>,
}

/// A ContactSyncPolicy in the rule's namespace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PolicyRef {
    /// Name of the ContactSyncPolicy.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// One search filter.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.operator in ['exists', 'not_exists'] ? !has(self.value) : has(self.value)").message("value is required, except with exists / not_exists where it must be omitted"))]
pub struct ContactFilter {
    /// Contact field: `email`, `phone`, `tags`, `source`, `companyName`, `city`, `state`,
    /// `country`, `postalCode`, `firstNameLowerCase`, `lastNameLowerCase`, `assignedTo`,
    /// `dnd`, `dateAdded`, `dateUpdated`, or `customFields.<id>` / `customFields.<key>`
    /// (`customFields.contact.tier`, resolved per location).
    #[schemars(length(min = 1))]
    pub field: String,
    /// `eq`, `not_eq`, `contains`, `not_contains`, `exists` or `not_exists`.
    pub operator: FilterOperator,
    /// The value to compare with (omit for `exists` / `not_exists`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 75))]
    pub value: Option<String>,
}

/// GHL search operators.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum FilterOperator {
    Eq,
    NotEq,
    Contains,
    NotContains,
    Exists,
    NotExists,
}

/// Observed state of a TagRule. Written only by the operator.
#[skip_serializing_none]
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TagRuleStatus {
    /// The `metadata.generation` this status describes.
    pub observed_generation: Option<i64>,

    /// `Ready`, `Synced`, `Conflict`, `Stalled`, `Reconciling`.
    #[serde(default)]
    #[schemars(schema_with = "conditions_schema")]
    pub conditions: Conditions,

    /// Contacts the selector matches.
    #[serde(default)]
    pub matched: u32,

    /// Matched contacts already carrying / lacking the tags as required.
    #[serde(default)]
    pub compliant: u32,

    /// Matched contacts still to change.
    #[serde(default)]
    pub pending: u32,

    /// Matched contacts with a tag left alone because another owner (a ContactSyncPolicy, or
    /// another rule) wants it the other way (see the `Conflict` condition).
    #[serde(default)]
    pub conflicted: u32,

    /// The last computed plan.
    pub plan: Option<PlanSummary>,

    /// When the last evaluation finished.
    pub last_sync_time: Option<Time>,
}

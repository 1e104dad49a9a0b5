//! The change feed of a GhlConnection (`spec.export`) and what the connection reports of the
//! webhooks it receives: every change in the location delivered to downstream systems as
//! signed CloudEvents. Types only; the feed lives in `crate::feed`.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

use super::common::{DurationString, SecretKeyRef};

/// Sinks per connection, at most (the schema's `maxItems`; the feed takes no more).
pub const MAX_SINKS: usize = 10;

/// Where the location's changes go.
#[skip_serializing_none]
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ExportSpec {
    /// How often to search for changes the webhooks missed (GHL drops a webhook it cannot
    /// deliver), from `status.export.cursor` on. If omitted, `5m`. From `10s` to `1d`.
    pub catch_up_interval: Option<DurationString>,

    /// The receivers. Each gets every change once at least, the newest state of a contact
    /// never overwritten by an older one.
    #[schemars(length(min = 1, max = 10))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub sinks: Vec<SinkSpec>,
}

/// One receiver of the change feed.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SinkSpec {
    /// Names the sink in status; unique among the sinks.
    #[schemars(length(min = 1, max = 63))]
    pub name: String,

    /// Where to POST each change (`https://`, or `http://` inside the cluster). The operator
    /// sends contact data only to URLs its installer allows (`--allowed-sink-url`); another URL
    /// leaves the sink idle, with the reason in `status.export.sinks[].lastError`.
    #[schemars(length(min = 1, max = 2048))]
    pub url: String,

    /// The Standard Webhooks signing secret: `whsec_` followed by base64. Read as the official Standard Webhooks libraries read it: without the prefix
    /// the value is base64 all the same; a value that is not base64 leaves the sink idle
    /// (`Exporting` False, `SinkFailing`).
    pub signing_secret_ref: SecretKeyRef,

    /// What each delivery carries besides the contact itself.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include: Vec<ExportPart>,
}

/// Parts of a contact a delivery can carry.
#[derive(
    JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord,
)]
#[serde(rename_all = "lowercase")]
pub enum ExportPart {
    Tasks,
    Notes,
    Appointments,
}

/// The webhooks received for the connection's location.
#[skip_serializing_none]
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WebhookStatus {
    /// Webhooks accepted since the operator started (duplicates not counted).
    #[serde(default)]
    pub received: u64,
    /// When the last one was accepted.
    pub last_received_at: Option<Time>,
}

/// Where the change feed stands.
#[skip_serializing_none]
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ExportStatus {
    /// Every change made before this time has been delivered to every sink (or refused by
    /// it); the catch-up search starts here.
    pub cursor: Option<Time>,

    /// The last `ghl.servis.ai/export-snapshot` annotation value acted on.
    pub snapshot: Option<String>,

    /// Each sink's counts since the operator started.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub sinks: Vec<SinkStatus>,

    /// What the receiver accepted and not every sink has yet, kept in the connection's outbox
    /// Secret so that a crash loses none of it.
    pub outbox: Option<OutboxStatus>,
}

/// The size of a connection's outbox.
#[skip_serializing_none]
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct OutboxStatus {
    /// Accepted changes not yet delivered to every sink.
    #[serde(default)]
    pub entries: u64,
    /// Their stored size (bounded; past it webhooks are answered 429, which GHL retries).
    #[serde(default)]
    pub bytes: u64,
    /// When the oldest was accepted.
    pub oldest_at: Option<Time>,
}

/// One sink's deliveries.
#[skip_serializing_none]
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SinkStatus {
    /// The sink (as named in `spec.export.sinks`).
    pub name: String,
    /// Changes the sink accepted.
    #[serde(default)]
    pub delivered: u64,
    /// Contacts with a change not delivered yet.
    #[serde(default)]
    pub pending: u64,
    /// When the oldest of them changed.
    pub oldest_pending_at: Option<Time>,
    /// Changes given up on: refused by the sink (4xx other than 429) or not accepted within
    /// 24 hours.
    #[serde(default)]
    pub failed: u64,
    pub last_delivered_at: Option<Time>,
    /// The last delivery error (status or transport), if any since the last success.
    pub last_error: Option<String>,
    /// Changes the sink refused with a 4xx answer (other than 408 and 429): not retried,
    /// counted in `failed` too.
    #[serde(default)]
    pub rejected: u64,
    /// The sink cannot be sent to, or its last delivery failed; false again once it accepts one.
    #[serde(default)]
    pub failing: bool,
}

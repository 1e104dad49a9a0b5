//! Types shared by the three custom resources: references, modes, durations and the
//! condition list. Pure data; no I/O.

use std::borrow::Cow;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::KubeSchema;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

/// A key inside a Secret in the same namespace as the referring object.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key inside the Secret's data.
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

/// A whole Secret in the same namespace as the referring object.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SecretRef {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// A key inside a ConfigMap in the same namespace as the referring object.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ConfigMapKeyRef {
    /// Name of the ConfigMap.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key inside the ConfigMap's data.
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

/// The GhlConnection a policy or rule talks to GHL through.
#[skip_serializing_none]
#[derive(
    KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord,
)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionRef {
    /// Name of the GhlConnection.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Namespace of the GhlConnection. If omitted, the referring object's own namespace.
    /// Other namespaces are refused unless the operator runs with `--allow-cross-namespace-refs`.
    pub namespace: Option<String>,
}

/// Whether a policy or rule writes to GHL.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    /// Compute the plan and apply it (the default).
    #[default]
    Apply,
    /// Compute and report the plan in status; write nothing to GHL.
    Plan,
}

/// What happens to the GHL data a policy or rule owns when the policy or rule is deleted.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DeletionPolicy {
    /// Leave everything in GHL as it is (the default).
    #[default]
    Orphan,
    /// Delete exactly what this object created or added (its ledger) before it goes away.
    Delete,
}

/// A duration written the human way: `90s`, `10m`, `1h30m`, `90d`, `2w`.
///
/// Kept as the user's string in the object (so the operator never rewrites spec); parsed
/// with [`DurationString::parse`] when used.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash)]
#[serde(transparent)]
pub struct DurationString(pub String);

/// The pattern the API server enforces for [`DurationString`] fields.
pub const DURATION_PATTERN: &str = r"^([0-9]+(ms|s|m|h|d|w))+$";
/// The longest duration text the API server accepts.
pub const DURATION_MAX_LENGTH: u32 = 32;
/// The longest duration any field accepts (a year and a day), so that arithmetic on instants
/// and durations from specs can never overflow.
pub const MAX_DURATION: Duration = Duration::from_secs(366 * 86_400);

impl DurationString {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// Parses the duration, accepting exactly what [`DURATION_PATTERN`] accepts, up to
    /// [`MAX_DURATION`]. Fails with a message naming the value (objects stored under an older
    /// schema can still carry junk).
    pub fn parse(&self) -> Result<Duration, InvalidDuration> {
        let invalid = || InvalidDuration::new(&self.0, InvalidDuration::FORM);
        let mut rest = self.0.as_str();
        if rest.is_empty() {
            return Err(invalid());
        }
        let mut total = Duration::ZERO;
        while !rest.is_empty() {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            let amount: u64 = rest[..digits].parse().map_err(|_| invalid())?;
            rest = &rest[digits..];
            let (unit, seconds_per_unit) = [
                ("ms", 0),
                ("s", 1),
                ("m", 60),
                ("h", 3_600),
                ("d", 86_400),
                ("w", 604_800),
            ]
            .into_iter()
            .find(|(unit, _)| rest.starts_with(unit))
            .ok_or_else(invalid)?;
            rest = &rest[unit.len()..];
            let part = if unit == "ms" {
                Duration::from_millis(amount)
            } else {
                Duration::from_secs(amount.checked_mul(seconds_per_unit).ok_or_else(invalid)?)
            };
            total = total.checked_add(part).ok_or_else(invalid)?;
            if total > MAX_DURATION {
                return Err(InvalidDuration::new(&self.0, InvalidDuration::TOO_LONG));
            }
        }
        Ok(total)
    }

    /// Parses the value of spec field `field` and checks it lies within `min..=max`; the
    /// error names the field, so it can be reported as it is.
    pub fn parse_field(
        &self,
        field: &str,
        min: Duration,
        max: Duration,
    ) -> Result<Duration, InvalidField> {
        let value = self.parse().map_err(|source| InvalidField::Duration {
            field: field.to_owned(),
            source,
        })?;
        if value < min || value > max {
            return Err(InvalidField::OutOfRange {
                field: field.to_owned(),
                value: format!("{:?}", self.0),
                min: humantime::format_duration(min).to_string(),
                max: humantime::format_duration(max).to_string(),
            });
        }
        Ok(value)
    }
}

/// Parses an optional duration field: `default` when absent (see [`DurationString::parse_field`]).
pub fn duration_field(
    value: Option<&DurationString>,
    field: &str,
    default: Duration,
    min: Duration,
    max: Duration,
) -> Result<Duration, InvalidField> {
    match value {
        Some(value) => value.parse_field(field, min, max),
        None => Ok(default),
    }
}

/// A spec field that cannot be used as it is; the message names the field, so it can be
/// reported as it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidField {
    #[error("{field}: {source}")]
    Duration {
        field: String,
        #[source]
        source: InvalidDuration,
    },
    #[error("{field}: {value} is out of range (from {min} to {max})")]
    OutOfRange {
        field: String,
        value: String,
        min: String,
        max: String,
    },
}

impl std::str::FromStr for DurationString {
    type Err = InvalidDuration;

    /// Accepts only what [`DurationString::parse`] accepts.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let value = Self::new(text);
        value.parse()?;
        Ok(value)
    }
}

impl std::fmt::Display for DurationString {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A duration string that does not parse, or is longer than [`MAX_DURATION`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {value:?}: {why}")]
pub struct InvalidDuration {
    pub value: String,
    pub why: &'static str,
}

impl InvalidDuration {
    const FORM: &'static str = "expected a number with a unit (ms, s, m, h, d, w), e.g. 10m or 90d";
    const TOO_LONG: &'static str = "longer than 366d";

    fn new(value: &str, why: &'static str) -> Self {
        // Junk can be long; the message keeps a bounded prefix of it.
        let value: String = value.chars().take(40).collect();
        Self { value, why }
    }
}

impl JsonSchema for DurationString {
    fn schema_name() -> Cow<'static, str> {
        "DurationString".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": DURATION_PATTERN,
            "maxLength": DURATION_MAX_LENGTH,
        })
    }
}

/// Conditions as a list keyed by `type`, so server-side apply merges them per type.
pub type Conditions = Vec<Condition>;

/// Schema for a condition list: the standard `metav1.Condition` items, marked as a map list
/// keyed by `type` (`x-kubernetes-list-type: map`).
pub fn conditions_schema(generator: &mut SchemaGenerator) -> Schema {
    let mut schema = <Vec<Condition>>::json_schema(generator);
    schema.insert("x-kubernetes-list-type".into(), "map".into());
    schema.insert(
        "x-kubernetes-list-map-keys".into(),
        serde_json::json!(["type"]),
    );
    schema
}

/// Counts of how a plan would change GHL, with a few sample keys. Sample keys are record
/// indexes or GHL ids, never personal data.
#[skip_serializing_none]
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PlanSummary {
    /// Objects to create in GHL (contacts, tasks, notes).
    #[serde(default)]
    pub create: u32,
    /// Objects to update in GHL, including tags added or removed.
    #[serde(default)]
    pub update: u32,
    /// Objects to delete in GHL (only with `prune`, or on deletion with `deletionPolicy: Delete`).
    #[serde(default)]
    pub delete: u32,
    /// Existing contacts to adopt (matched by `matchBy`, not created).
    #[serde(default)]
    pub adopt: u32,
    /// Up to ten affected keys, e.g. `contact/<ghl id>` or `contacts[12]` for records not yet created.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub samples: Vec<String>,
    /// A digest of what the plan would write: annotate the object
    /// `ghl.servis.ai/approve-plan=<hash>` to apply exactly this plan once.
    pub hash: Option<String>,
    /// Why the plan is not applied: a safety limit, or `mode: Plan`.
    pub blocked: Option<String>,
    /// The hash of the last plan applied by approval (each approval applies once).
    pub approved: Option<String>,
    /// Who approved it: the user the API server authenticated, as the operator's admission
    /// webhook stamped it; `unverified` when the operator runs without the webhook.
    pub approved_by: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_the_documented_forms() {
        let cases = [
            ("90s", 90),
            ("10m", 600),
            ("1h30m", 5400),
            ("90d", 90 * 86_400),
            ("2w", 14 * 86_400),
            ("1w2d", 9 * 86_400),
        ];
        for (text, secs) in cases {
            assert_eq!(
                DurationString::new(text).parse().unwrap(),
                Duration::from_secs(secs),
                "{text}"
            );
        }
    }

    #[test]
    fn durations_reject_junk_with_the_value_in_the_message() {
        for bad in ["", "10", "ten minutes", "-5m", "5 m", "1y", "m5", "1min"] {
            let err = DurationString::new(bad).parse().unwrap_err();
            assert!(err.to_string().contains(&format!("{bad:?}")), "{err}");
        }
    }

    #[test]
    fn huge_durations_are_refused_not_overflowed() {
        for huge in [
            "18446744073709551615s",
            "18446744073709551615w",
            "367d",
            "366d1ms",
            "9999999999999999999999999999ms",
        ] {
            let err = DurationString::new(huge).parse().unwrap_err();
            assert!(err.to_string().contains("invalid duration"), "{err}");
        }
        assert_eq!(DurationString::new("366d").parse().unwrap(), MAX_DURATION);
    }

    #[test]
    fn fields_are_checked_against_their_range_and_named() {
        let ten_s = DurationString::new("10s");
        let (min, max) = (Duration::from_secs(1), Duration::from_secs(60));
        assert_eq!(
            ten_s.parse_field("spec.resyncInterval", min, max),
            Ok(Duration::from_secs(10))
        );
        let err = DurationString::new("2h")
            .parse_field("spec.resyncInterval", min, max)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("spec.resyncInterval: \"2h\" is out of range"),
            "{err}"
        );
        let err = DurationString::new("soon")
            .parse_field("spec.resyncInterval", min, max)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("spec.resyncInterval: invalid duration"),
            "{err}"
        );
        assert_eq!(
            duration_field(None, "x", Duration::from_secs(5), min, max),
            Ok(Duration::from_secs(5))
        );
    }
}

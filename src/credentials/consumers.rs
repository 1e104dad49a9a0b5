//! Dependents of a connection's credential: a Secret kept filled with the current access token
//! (server-side apply, owned by the connection), and workloads rolled when — and only when —
//! the token's content changes, at most once per `minInterval`.
//!
//! Each target remembers the token fingerprint it last rolled for in its own annotations, so an
//! operator restart never rolls anything, and a workload first seen is adopted without a roll.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{ObjectMeta, Patch, PatchParams};
use kube::{Api, Client, Resource, ResourceExt};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

use crate::crd::GhlConnection;
use crate::crd::connection::{RolloutTarget, WorkloadKind};
use crate::crd::vocabulary::{FIELD_MANAGER, annotation, label};

/// `minInterval` when the spec names none.
pub const DEFAULT_MIN_INTERVAL: Duration = Duration::from_secs(600);

/// Why the consumer Secret was not written.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// It exists and is not the operator's: never overwritten or adopted.
    #[error(
        "Secret {0} exists and was not created by the operator for this connection; name another Secret"
    )]
    NotOurs(String),
    #[error(transparent)]
    Kube(#[from] kube::Error),
}

/// Whether `secret` is the operator's consumer Secret for `connection`: labelled as managed by
/// the operator and owned by the connection.
pub fn is_ours(secret: &Secret, connection: &GhlConnection) -> bool {
    let labelled = secret
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(label::MANAGED_BY))
        .is_some_and(|v| v == label::MANAGED_BY_VALUE);
    let owned = secret
        .metadata
        .owner_references
        .iter()
        .flatten()
        .any(|o| Some(&o.uid) == connection.metadata.uid.as_ref());
    labelled && owned
}

/// Writes the consumer Secret (key `token`) for `connection` — only a Secret the operator
/// created for it (or none yet).
pub async fn publish_secret(
    client: &Client,
    connection: &GhlConnection,
    secret_name: &str,
    token: &SecretString,
    fingerprint: &str,
) -> Result<(), PublishError> {
    let namespace = connection.namespace().unwrap_or_default();
    let api: Api<Secret> = Api::namespaced(client.clone(), &namespace);
    if let Some(existing) = api.get_opt(secret_name).await?
        && !is_ours(&existing, connection)
    {
        return Err(PublishError::NotOurs(secret_name.to_owned()));
    }
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(secret_name.to_owned()),
            namespace: Some(namespace),
            labels: Some(BTreeMap::from([(
                label::MANAGED_BY.to_owned(),
                label::MANAGED_BY_VALUE.to_owned(),
            )])),
            annotations: Some(BTreeMap::from([(
                annotation::TOKEN_FINGERPRINT.to_owned(),
                fingerprint.to_owned(),
            )])),
            owner_references: Some(vec![OwnerReference {
                api_version: GhlConnection::api_version(&()).into_owned(),
                kind: GhlConnection::kind(&()).into_owned(),
                name: connection.name_any(),
                uid: connection.uid().unwrap_or_default(),
                controller: Some(true),
                block_owner_deletion: Some(false),
            }]),
            ..ObjectMeta::default()
        },
        type_: Some("Opaque".into()),
        data: Some(BTreeMap::from([(
            "token".to_owned(),
            ByteString(token.expose_secret().as_bytes().to_vec()),
        )])),
        ..Secret::default()
    };
    let mut value = serde_json::to_value(&secret).map_err(kube::Error::SerdeError)?;
    value["apiVersion"] = "v1".into();
    value["kind"] = "Secret".into();
    api.patch(
        secret_name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(value),
    )
    .await
    .map(drop)
    .map_err(PublishError::Kube)
}

/// What happened to one target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rollout {
    /// Already running with this token.
    Current,
    /// First seen: adopted without a roll.
    Adopted,
    Restarted,
    /// Rolled too recently; due again after this long.
    Deferred(Duration),
    /// The workload does not exist.
    Missing,
    /// The workload does not opt in to restarts by this connection
    /// (`ghl.servis.ai/restart-on-rotation`): left alone.
    NotPermitted,
}

/// Whether a workload's annotations allow `connection` to restart it.
pub fn permits(annotations: &std::collections::BTreeMap<String, String>, connection: &str) -> bool {
    annotations
        .get(annotation::RESTART_ON_ROTATION)
        .is_some_and(|names| names.split(',').any(|n| n.trim() == connection))
}

/// The decision for a target, from its annotations (pure).
pub fn decide(
    rolled_for: Option<&str>,
    rolled_at: Option<Timestamp>,
    fingerprint: &str,
    min_interval: Duration,
    now: Timestamp,
) -> Rollout {
    match rolled_for {
        None => Rollout::Adopted,
        Some(f) if f == fingerprint => Rollout::Current,
        Some(_) => {
            let since = rolled_at
                .and_then(|at| Duration::try_from(now.duration_since(at)).ok())
                .unwrap_or(Duration::MAX);
            if since < min_interval {
                Rollout::Deferred(min_interval - since)
            } else {
                Rollout::Restarted
            }
        }
    }
}

/// One rollout's inputs, whatever the workload's kind.
struct Roll<'a> {
    name: &'a str,
    connection: &'a str,
    fingerprint: &'a str,
    min_interval: Duration,
    now: Timestamp,
}

impl Roll<'_> {
    async fn on<K>(&self, api: Api<K>) -> Result<Rollout, kube::Error>
    where
        K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    {
        let (name, fingerprint, now) = (self.name, self.fingerprint, self.now);
        let Some(object) = api.get_opt(name).await? else {
            return Ok(Rollout::Missing);
        };
        let annotations = object.annotations();
        if !permits(annotations, self.connection) {
            return Ok(Rollout::NotPermitted);
        }
        let rolled_for = annotations
            .get(annotation::RESTARTED_FOR_REVISION)
            .map(String::as_str);
        let rolled_at = annotations
            .get(annotation::RESTARTED_AT)
            .and_then(|t| t.parse().ok());
        let decision = decide(rolled_for, rolled_at, fingerprint, self.min_interval, now);
        let patch = match decision {
            Rollout::Adopted => {
                json!({"metadata": {"annotations": {annotation::RESTARTED_FOR_REVISION: fingerprint}}})
            }
            Rollout::Restarted => json!({
                "metadata": {"annotations": {annotation::RESTARTED_FOR_REVISION: fingerprint, annotation::RESTARTED_AT: now.to_string()}},
                "spec": {"template": {"metadata": {"annotations": {annotation::KUBECTL_RESTARTED_AT: now.to_string()}}}}
            }),
            _ => return Ok(decision),
        };
        api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        Ok(decision)
    }
}

/// Rolls `target` if the token changed since its last roll — when the target opts in to
/// restarts by `connection`.
pub async fn rollout(
    client: &Client,
    namespace: &str,
    connection: &str,
    target: &RolloutTarget,
    fingerprint: &str,
    min_interval: Duration,
    now: Timestamp,
) -> Result<Rollout, kube::Error> {
    let roll = Roll {
        name: &target.name,
        connection,
        fingerprint,
        min_interval,
        now,
    };
    let client = client.clone();
    match target.kind {
        WorkloadKind::Deployment => {
            roll.on(Api::<Deployment>::namespaced(client, namespace))
                .await
        }
        WorkloadKind::StatefulSet => {
            roll.on(Api::<StatefulSet>::namespaced(client, namespace))
                .await
        }
        WorkloadKind::DaemonSet => {
            roll.on(Api::<DaemonSet>::namespaced(client, namespace))
                .await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    #[test]
    fn rolls_only_for_a_new_token_and_not_too_often() {
        let min = Duration::from_secs(600);
        let now = at("2030-01-01T01:00:00Z");
        assert_eq!(
            decide(None, None, "fp1", min, now),
            Rollout::Adopted,
            "first sight: no roll"
        );
        assert_eq!(
            decide(
                Some("fp1"),
                Some(at("2030-01-01T00:00:00Z")),
                "fp1",
                min,
                now
            ),
            Rollout::Current
        );
        assert_eq!(
            decide(
                Some("fp1"),
                Some(at("2030-01-01T00:00:00Z")),
                "fp2",
                min,
                now
            ),
            Rollout::Restarted
        );
        assert_eq!(
            decide(
                Some("fp1"),
                Some(at("2030-01-01T00:55:00Z")),
                "fp2",
                min,
                now
            ),
            Rollout::Deferred(Duration::from_secs(300))
        );
        assert_eq!(
            decide(Some("fp1"), None, "fp2", min, now),
            Rollout::Restarted,
            "adopted, never rolled"
        );
    }
}

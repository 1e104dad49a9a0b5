//! Private Integration Tokens: read from the user's Secret, fingerprinted, and aged. The
//! operator records when it first saw each token value (annotations on the Secret), so the age
//! survives restarts and `RotationDue` can be raised past `maxAge`.

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use secrecy::SecretString;
use serde_json::json;

use super::Problem;
use super::schedule;
use super::token_secret::fingerprint;
use crate::crd::connection::PrivateIntegrationTokenAuth;
use crate::crd::vocabulary::{annotation, reason};

/// A PIT as the operator sees it.
#[derive(Clone, Debug)]
pub struct Pit {
    pub token: SecretString,
    pub fingerprint: String,
    /// When this value was first seen.
    pub observed_at: Timestamp,
    /// How many distinct values the Secret has held.
    pub revision: u64,
    /// When it becomes due for rotation (with `maxAge`).
    pub due_at: Option<Timestamp>,
    pub rotation_due: bool,
}

fn annotation_of<'a>(secret: &'a Secret, key: &str) -> Option<&'a str> {
    secret
        .metadata
        .annotations
        .as_ref()?
        .get(key)
        .map(String::as_str)
}

/// Reads the token and its age; a new value is stamped with `now` (and the next revision).
pub async fn observe(
    client: &Client,
    namespace: &str,
    auth: &PrivateIntegrationTokenAuth,
    now: Timestamp,
) -> Result<Pit, Problem> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let name = &auth.secret_ref.name;
    let missing = |message: String| Problem::stalled(reason::SECRET_NOT_FOUND, message);
    let secret = secrets
        .get_opt(name)
        .await
        .map_err(|e| missing(format!("cannot read Secret {name}: {e}")))?
        .ok_or_else(|| missing(format!("Secret {name} does not exist")))?;
    let value = secret
        .data
        .as_ref()
        .and_then(|d| d.get(&auth.secret_ref.key))
        .map(|b| String::from_utf8_lossy(&b.0).trim().to_owned())
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            missing(format!(
                "Secret {name} has no key {:?}",
                auth.secret_ref.key
            ))
        })?;
    let token = SecretString::from(value);
    let fp = fingerprint(&token);
    let known = annotation_of(&secret, annotation::TOKEN_FINGERPRINT) == Some(fp.as_str());
    let previous_revision: u64 = annotation_of(&secret, annotation::TOKEN_REVISION)
        .and_then(|r| r.parse().ok())
        .unwrap_or(0);
    let (observed_at, revision) = match annotation_of(&secret, annotation::TOKEN_OBSERVED_AT)
        .and_then(|t| t.parse().ok())
    {
        Some(at) if known => (at, previous_revision.max(1)),
        _ => {
            let revision = previous_revision + 1;
            let patch = json!({"metadata": {"annotations": {
                annotation::TOKEN_FINGERPRINT: fp,
                annotation::TOKEN_OBSERVED_AT: now.to_string(),
                annotation::TOKEN_REVISION: revision.to_string(),
            }}});
            // Best effort: without it the age restarts with the next process.
            if let Err(error) = secrets
                .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                tracing::warn!(secret = %name, %error, "could not record when the token was first seen");
            }
            (now, revision)
        }
    };
    let max_age = match &auth.max_age {
        Some(d) => Some(d.parse().map_err(|e| {
            Problem::stalled(
                reason::INVALID_SPEC,
                format!("spec.auth.privateIntegrationToken.maxAge: {e}"),
            )
        })?),
        None => None,
    };
    Ok(Pit {
        token,
        fingerprint: fp,
        observed_at,
        revision,
        due_at: max_age.map(|m| schedule::pit_due_at(observed_at, m)),
        rotation_due: max_age.is_some_and(|m| schedule::pit_rotation_due(observed_at, m, now)),
    })
}

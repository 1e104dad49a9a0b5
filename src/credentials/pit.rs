//! Private Integration Tokens: read from the user's Secret (never written: it is not the
//! operator's), fingerprinted, and aged. When the operator first saw each value is kept in the
//! connection's status (`credentials.fingerprint`, `lastRotatedAt`, `revision`), so the age
//! survives restarts and `RotationDue` can be raised past `maxAge`. (Earlier versions kept it
//! in annotations on the Secret; those are still read once.)

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client};
use secrecy::SecretString;

use super::Problem;
use super::keys::OperatorKeys;
use super::schedule;
use super::token_secret::fingerprint;
use crate::crd::connection::{CredentialStatus, PrivateIntegrationTokenAuth};
use crate::crd::vocabulary::{annotation, reason};
use crate::refs::{self, SecretRole};

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

/// When a token value was first seen, and as which revision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seen {
    pub fingerprint: String,
    pub at: Timestamp,
    pub revision: u64,
}

/// What the connection's status (or, from earlier versions, the Secret's annotations) says
/// about the token seen last.
fn last_seen(previous: Option<&CredentialStatus>, secret: &Secret) -> Option<Seen> {
    if let Some(status) = previous
        && let (Some(fingerprint), Some(at)) = (&status.fingerprint, &status.last_rotated_at)
    {
        return Some(Seen {
            fingerprint: fingerprint.clone(),
            at: at.0,
            revision: u64::try_from(status.revision).unwrap_or(0),
        });
    }
    Some(Seen {
        fingerprint: annotation_of(secret, annotation::TOKEN_FINGERPRINT)?.to_owned(),
        at: annotation_of(secret, annotation::TOKEN_OBSERVED_AT)?
            .parse()
            .ok()?,
        revision: annotation_of(secret, annotation::TOKEN_REVISION)
            .and_then(|r| r.parse().ok())
            .unwrap_or(0),
    })
}

/// The token's age: the same value keeps when it was first seen; a new one is seen `now`, as
/// the next revision. Pure.
pub fn age(fingerprint: &str, last: Option<&Seen>, now: Timestamp) -> (Timestamp, u64) {
    match last {
        Some(seen) if seen.fingerprint == fingerprint => (seen.at, seen.revision.max(1)),
        Some(seen) => (now, seen.revision.saturating_add(1)),
        None => (now, 1),
    }
}

/// Reads the token and its age (see [`age`]), from the Secret and the connection's last
/// credential status; `keys` make the fingerprint status shows.
pub async fn observe(
    (client, keys): (&Client, &OperatorKeys),
    namespace: &str,
    auth: &PrivateIntegrationTokenAuth,
    previous: Option<&CredentialStatus>,
    now: Timestamp,
) -> Result<Pit, Problem> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let name = &auth.secret_ref.name;
    let missing = |message: String| Problem::stalled(reason::SECRET_NOT_FOUND, message);
    let secret = refs::opted_in(&secrets, name, SecretRole::Pit)
        .await
        .map_err(|e| Problem::stalled(e.reason(), e.to_string()))?
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
    let fp = keys.fingerprint(&token);
    // Status written before fingerprints were keyed names the same token by its digest.
    let legacy = fingerprint(&token);
    let last = last_seen(previous, &secret).map(|seen| {
        if seen.fingerprint == legacy {
            Seen {
                fingerprint: fp.clone(),
                ..seen
            }
        } else {
            seen
        }
    });
    let (observed_at, revision) = age(&fp, last.as_ref(), now);
    let max_age = match &auth.max_age {
        Some(d) => Some(
            d.parse_field(
                "spec.auth.privateIntegrationToken.maxAge",
                std::time::Duration::from_secs(1),
                crate::crd::common::MAX_DURATION,
            )
            .map_err(|e| Problem::stalled(reason::INVALID_SPEC, e.to_string()))?,
        ),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_keeps_its_age_until_its_value_changes() {
        let t = |s: &str| s.parse::<Timestamp>().unwrap();
        let seen = Seen {
            fingerprint: "abc".into(),
            at: t("2030-01-01T00:00:00Z"),
            revision: 3,
        };
        let now = t("2030-03-01T00:00:00Z");
        assert_eq!(age("abc", Some(&seen), now), (seen.at, 3), "same value");
        assert_eq!(age("def", Some(&seen), now), (now, 4), "rotated");
        assert_eq!(age("def", None, now), (now, 1), "first seen");
        let max = Seen {
            revision: u64::MAX,
            ..seen
        };
        assert_eq!(age("new", Some(&max), now).1, u64::MAX, "no overflow");
    }
}

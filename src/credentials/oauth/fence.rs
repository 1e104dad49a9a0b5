//! Writes to the token Secret, each fenced by compare-and-swap on its resourceVersion: the
//! claim before a single-use token is spent, the new grant over the claim, the claim's release
//! after a spend GHL certainly did not process.

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};

use crate::crd::connection::OAuthAuth;
use crate::crd::vocabulary::{label, reason};
use crate::credentials::Problem;
use crate::credentials::failpoint::crash_point;
use crate::credentials::token_secret::{self, Claim, StoredGrant};

pub(super) async fn read_secret(
    secrets: &Api<Secret>,
    name: &str,
) -> Result<Option<Secret>, Problem> {
    secrets.get_opt(name).await.map_err(|e| {
        Problem::retry(
            reason::PROGRESSING,
            format!("cannot read Secret {name}: {e}"),
            Duration::from_secs(5),
        )
    })
}

/// Replaces `base` (compare-and-swap on its resourceVersion) with `change(base)`, or, with no
/// base, creates the Secret as `change(empty)`.
async fn put(
    secrets: &Api<Secret>,
    name: &str,
    base: Option<Secret>,
    change: impl FnOnce(Secret) -> Secret,
) -> Result<Secret, kube::Error> {
    match base {
        Some(secret) => {
            secrets
                .replace(name, &PostParams::default(), &change(secret))
                .await
        }
        None => {
            let empty = Secret {
                metadata: ObjectMeta {
                    name: Some(name.to_owned()),
                    labels: Some(
                        [(
                            label::MANAGED_BY.to_owned(),
                            label::MANAGED_BY_VALUE.to_owned(),
                        )]
                        .into(),
                    ),
                    ..ObjectMeta::default()
                },
                type_: Some("Opaque".into()),
                ..Secret::default()
            };
            secrets.create(&PostParams::default(), &change(empty)).await
        }
    }
}

/// Writes the claim with compare-and-swap; returns the claimed Secret (its new version).
pub(super) async fn claim(
    secrets: &Api<Secret>,
    name: &str,
    current: Option<Secret>,
    claim: &Claim,
) -> Result<Secret, Problem> {
    crash_point("before-claim");
    let result = put(secrets, name, current, |s| {
        token_secret::with_claim(s, claim)
    })
    .await;
    let claimed = result.map_err(|e| match e {
        kube::Error::Api(e) if e.code == 409 => Problem::retry(
            reason::PROGRESSING,
            format!("Secret {name} changed while claiming it; retrying"),
            Duration::from_secs(1),
        ),
        e => Problem::retry(
            reason::PROGRESSING,
            format!("cannot claim Secret {name}: {e}"),
            Duration::from_secs(5),
        ),
    })?;
    crash_point("after-claim");
    Ok(claimed)
}

/// Stores `grant` over `base` (compare-and-swap on its version), clearing any claim. On a
/// conflict the Secret is read again and the write repeated: the grant in hand is the newest
/// valid one (its predecessor was spent under our claim), so it must win.
pub(super) async fn persist(
    secrets: &Api<Secret>,
    name: &str,
    base: Option<Secret>,
    grant: &StoredGrant,
) -> Result<Secret, Problem> {
    let mut base = base;
    let mut delay = Duration::from_millis(200);
    for _ in 0..8 {
        let result = put(secrets, name, base.clone(), |s| {
            token_secret::with_grant(s, grant)
        })
        .await;
        match result {
            Ok(stored) => return Ok(stored),
            Err(error) => {
                tracing::warn!(secret = name, %error, "could not store the new tokens; retrying from memory");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
                if let Ok(fresh) = secrets.get_opt(name).await {
                    base = fresh;
                }
            }
        }
    }
    Err(Problem::retry(
        reason::PROGRESSING,
        format!("could not store the new tokens in Secret {name}; kept in memory and retrying"),
        Duration::from_secs(2),
    ))
}

/// Clears our claim after a spend GHL certainly did not process.
pub(super) async fn release(secrets: &Api<Secret>, name: &str, claimed: Secret) {
    if let Err(error) = secrets
        .replace(
            name,
            &PostParams::default(),
            &token_secret::without_claim(claimed),
        )
        .await
    {
        tracing::warn!(secret = name, %error, "could not clear the refresh claim");
    }
}

/// Drops `previous_access_token` once the new token has worked (best effort).
pub async fn confirm(client: &Client, namespace: &str, auth: &OAuthAuth) {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let name = &auth.token_secret_ref.name;
    let Ok(Some(secret)) = secrets.get_opt(name).await else {
        return;
    };
    if token_secret::claim_of(&secret).is_some() {
        return;
    }
    let Some(mut grant) = token_secret::read(&secret) else {
        return;
    };
    if grant.previous_access_token.take().is_none() {
        return;
    }
    if let Err(error) = secrets
        .replace(
            name,
            &PostParams::default(),
            &token_secret::with_grant(secret, &grant),
        )
        .await
    {
        tracing::debug!(%error, "could not drop the previous access token yet");
    }
}

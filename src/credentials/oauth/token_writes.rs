//! Writes to the token Secret, each a compare-and-swap on its resourceVersion: the claim
//! before a single-use token is spent, the new grant over the claim (only while the claim is
//! still there), the claim withdrawn after a spend GHL certainly did not process.

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};

use crate::crd::connection::OAuthAuth;
use crate::crd::vocabulary::{label, reason};
use crate::credentials::Problem;
use crate::credentials::failpoint::crash_point;
use crate::credentials::token_secret::{self, Claim, Holding, StoredGrant};

/// The connection about to use a token Secret.
#[derive(Clone, Copy, Debug)]
pub struct Holder<'a> {
    /// Its name (in the Secret's namespace).
    pub connection: &'a str,
    /// Whether no older connection of the namespace names the same token Secret.
    pub eldest: bool,
}

/// `current` (the token Secret `name` as read), checked as `holder`'s own: a Secret the user
/// wrote, or another connection's, is refused before anything is read from it or written to
/// it; one the operator wrote before it marked its holder is marked first (compare-and-swap).
pub(super) async fn take(
    secrets: &Api<Secret>,
    name: &str,
    current: Option<Secret>,
    holder: Holder<'_>,
) -> Result<Option<Secret>, Problem> {
    let Some(secret) = current else {
        return Ok(None);
    };
    match token_secret::holding(Some(&secret), holder.connection, holder.eldest) {
        Holding::Own => Ok(Some(secret)),
        Holding::NotOperators => Err(Problem::stalled(
            reason::SECRET_NOT_OWNED,
            format!(
                "Secret {name} exists and was not created by the operator (it lacks the label app.kubernetes.io/managed-by=ghl-operator): name a new Secret in tokenSecretRef, or label this one to hand it over"
            ),
        )),
        Holding::Another => Err(Problem::stalled(
            reason::SECRET_NOT_OWNED,
            format!(
                "Secret {name} holds the tokens of {}: name a token Secret of this connection's own",
                match token_secret::holder(&secret) {
                    Some(other) => format!("GhlConnection {other}"),
                    None => "an older GhlConnection naming it".to_owned(),
                }
            ),
        )),
        Holding::Unmarked => secrets
            .replace(
                name,
                &PostParams::default(),
                &token_secret::marked(secret, holder.connection),
            )
            .await
            .map(Some)
            .map_err(|e| {
                Problem::retry(
                    reason::PROGRESSING,
                    format!("could not mark Secret {name} as this connection's: {e}"),
                    Duration::from_secs(2),
                )
            }),
    }
}

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
/// base, creates the Secret as `change(empty)`, marked as `holder`'s.
async fn put(
    secrets: &Api<Secret>,
    (name, holder): (&str, &str),
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
            let created = token_secret::marked(change(empty), holder);
            secrets.create(&PostParams::default(), &created).await
        }
    }
}

/// Writes the claim with compare-and-swap; returns the claimed Secret (its new version).
/// `secret`: the token Secret's name and the connection it serves.
pub(super) async fn claim(
    secrets: &Api<Secret>,
    secret: (&str, &str),
    current: Option<Secret>,
    claim: &Claim,
) -> Result<Secret, Problem> {
    let name = secret.0;
    crash_point("before-claim");
    let result = put(secrets, secret, current, |s| {
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

/// What must still hold on the token Secret for a grant to be written over it: a write never
/// replaces a grant newer than the one it was derived from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Guard {
    /// A spend happened under this claim: the claim must still be there (then the grant in
    /// hand is the only valid one, and must be stored).
    Claim(Claim),
    /// A location token was added to the grant at this revision: the Secret must still hold
    /// that revision, unclaimed.
    Revision(u64),
}

impl Guard {
    /// Whether `secret` (read after a conflict) may be overwritten. Pure.
    pub(super) fn holds(&self, secret: &Secret) -> bool {
        let claim = token_secret::claim_of(secret);
        match self {
            Guard::Claim(ours) => claim.as_ref() == Some(ours),
            Guard::Revision(revision) => {
                claim.is_none()
                    && token_secret::read(secret).is_some_and(|g| g.revision == *revision)
            }
        }
    }
}

/// How storing a grant ended, short of an error.
#[derive(Debug)]
pub(super) enum Stored {
    Written,
    /// The Secret moved on (a newer grant, another claim): ours was not written.
    Superseded,
}

/// Stores `grant` over `base` (compare-and-swap on its version), clearing any claim. On a
/// conflict the Secret is read again, and the write repeated only while `guard` holds.
/// `secret`: the token Secret's name and the connection it serves.
pub(super) async fn persist(
    secrets: &Api<Secret>,
    secret: (&str, &str),
    base: Option<Secret>,
    grant: &StoredGrant,
    guard: &Guard,
) -> Result<Stored, Problem> {
    let name = secret.0;
    let mut base = base;
    let mut delay = Duration::from_millis(200);
    for _ in 0..8 {
        if let Some(current) = &base
            && !guard.holds(current)
        {
            tracing::warn!(
                secret = name,
                "the token Secret moved on (a newer grant or another claim); not overwriting it"
            );
            return Ok(Stored::Superseded);
        }
        let result = put(secrets, secret, base.clone(), |s| {
            token_secret::with_grant(s, grant)
        })
        .await;
        match result {
            Ok(_) => return Ok(Stored::Written),
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
pub(super) async fn withdraw(secrets: &Api<Secret>, name: &str, claimed: Secret) {
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

#[cfg(test)]
mod tests {
    use jiff::Timestamp;
    use secrecy::SecretString;

    use super::*;

    fn claim(holder: &str) -> Claim {
        Claim {
            what: "refresh".into(),
            digest: "abc".into(),
            holder: holder.into(),
            at: "2030-01-01T00:00:00Z".into(),
        }
    }

    fn secret(revision: u64, claimed: Option<&Claim>) -> Secret {
        let grant = StoredGrant {
            access_token: SecretString::from("at"),
            refresh_token: Some(SecretString::from("rt")),
            expires_at: Timestamp::UNIX_EPOCH,
            scope: None,
            user_type: None,
            revision,
            refreshed_at: Timestamp::UNIX_EPOCH,
            code_digest: None,
            previous_access_token: None,
            location_access_token: None,
            location_expires_at: None,
        };
        let stored = token_secret::with_grant(Secret::default(), &grant);
        match claimed {
            Some(c) => token_secret::with_claim(stored, c),
            None => stored,
        }
    }

    #[test]
    fn a_grant_is_written_only_over_what_it_was_derived_from() {
        let ours = claim("op-0");
        let theirs = claim("op-1");
        // (guard, Secret found after a conflict, may overwrite)
        let table = [
            (Guard::Claim(ours.clone()), secret(4, Some(&ours)), true),
            (Guard::Claim(ours.clone()), secret(4, Some(&theirs)), false),
            (Guard::Claim(ours.clone()), secret(5, None), false),
            (Guard::Revision(4), secret(4, None), true),
            (Guard::Revision(4), secret(5, None), false),
            (Guard::Revision(4), secret(4, Some(&theirs)), false),
        ];
        for (n, (guard, found, expected)) in table.into_iter().enumerate() {
            assert_eq!(guard.holds(&found), expected, "case {n}: {guard:?}");
        }
    }
}

//! The OAuth lifecycle of one GhlConnection: bootstrap from a one-time authorization code,
//! refresh on schedule, agency → location tokens — never losing or double-spending a
//! single-use token.
//!
//! Every spend (code exchange or refresh) follows the same guarded sequence:
//! 1. **claim**: annotate the token Secret with what is about to be spent, using
//!    compare-and-swap on its resourceVersion — a concurrent process gets a 409 and backs off;
//! 2. **spend**: one call to GHL (never retried after a lost answer);
//! 3. **persist**: write the new pair with compare-and-swap on the claimed version, clearing the
//!    claim; a failed write is retried from memory and the pair is never dropped;
//! 4. **install**: only now do clients use the new access token.
//!
//! A claim left behind by a crash — or by a spend that got no clear answer (5xx, timeout) —
//! means the token may already be spent: it is never spent again (GHL would count a reuse);
//! the connection reports `ReauthorizationRequired` and recovers as soon as a new
//! authorization code is supplied. Grants are written only over what they were derived from
//! (see [`token_writes::Guard`]), and nothing is spent by a process that no longer leads.

mod agency;
pub mod borrowed;
pub mod consent;
mod spend;
mod token_writes;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client};
use secrecy::SecretString;

pub use token_writes::{Holder, confirm};

use super::Problem;
use super::schedule::{self, RenewalPolicy, Schedule};
use super::token_secret::{self, Claim, StoredGrant, fingerprint};
use crate::crd::common::MAX_DURATION;
use crate::crd::connection::{GhlConnectionSpec, OAuthAuth, UserType};
use crate::crd::vocabulary::reason;
use crate::engine::fence::Fence;
use crate::ghl::models::UserTypeParam;
use crate::ghl::oauth::{ClientCredentials, OAuthClient};
use crate::refs::{self, SecretRole};
use agency::finish;
use spend::{exchange, refresh};
use token_writes::{Guard, persist, read_secret, take};

/// A claim younger than this, held by another process, is a refresh in progress.
const CLAIM_PATIENCE: Duration = Duration::from_secs(60);

/// A usable credential.
#[derive(Clone, Debug)]
pub struct Usable {
    /// What clients send: the access token, or for agency grants the location token.
    pub token: SecretString,
    pub grant: StoredGrant,
    pub next_renewal: Timestamp,
    /// A refresh or exchange happened in this call.
    pub rotated: bool,
    /// Why renewal does not follow `renewBefore` as written, if it does not.
    pub renewal_adjusted: Option<String>,
    /// The grant could not be renewed (a refresh refused, or one with no clear answer): the
    /// current access token still serves until it expires, and a person should consent
    /// before then. The message says why and until when.
    pub renewal_failed: Option<String>,
}

/// An access token this close to its expiry is not served on after a failed renewal.
const SERVE_MARGIN: jiff::SignedDuration = jiff::SignedDuration::from_secs(30);

/// Whether `grant`'s access token may still be served after a failed renewal: it is good for
/// more than [`SERVE_MARGIN`]. Pure.
fn serves_until_expiry(grant: &StoredGrant, now: Timestamp) -> bool {
    now.checked_add(SERVE_MARGIN)
        .is_ok_and(|edge| grant.expires_at > edge)
}

/// When a grant whose renewal failed stops being served (and consent is asked for).
fn serve_end(grant: &StoredGrant) -> Timestamp {
    grant
        .expires_at
        .checked_sub(SERVE_MARGIN)
        .unwrap_or(grant.expires_at)
}

/// The current grant, served on after its renewal failed (`why`), until it expires.
fn serving_after_failed_renewal(grant: StoredGrant, why: String) -> Usable {
    let expires = grant.expires_at;
    Usable {
        token: grant.access_token.clone(),
        next_renewal: serve_end(&grant),
        grant,
        rotated: false,
        renewal_adjusted: None,
        renewal_failed: Some(format!(
            "{why}; the current access token serves until it expires at {expires}: consent again before then (status.consent.url)"
        )),
    }
}

/// Per-process OAuth state: one refresh in flight per connection, and what must not be lost.
#[derive(Default)]
pub struct OAuthManager {
    locks: Mutex<HashMap<ConnectionKey, Arc<tokio::sync::Mutex<Pending>>>>,
    /// Consecutive failed (retryable) attempts per connection, for status.
    failures: Mutex<HashMap<ConnectionKey, u32>>,
}

/// `(namespace, name)` of a GhlConnection.
type ConnectionKey = (String, String);

#[derive(Default)]
pub(super) struct Pending {
    /// A grant GHL issued that is not stored yet (write failed): retried before anything
    /// else, while its guard holds.
    unpersisted: Option<(StoredGrant, Guard)>,
    /// Another process' claim as first seen by this one, on this process' clock: its age is
    /// measured from here, never by comparing two nodes' clocks.
    claim_seen: Option<(Claim, Instant)>,
    /// Codes GHL refused (by digest), so a bad code is not tried on every reconcile.
    pub(super) rejected_codes: HashSet<String>,
}

/// Refuses `doing` (spending or minting tokens) when this process no longer leads.
fn leading(fence: &Fence, doing: &str) -> Result<(), Problem> {
    if fence.is_open() {
        Ok(())
    } else {
        Err(Problem::retry(
            reason::PROGRESSING,
            format!("this process no longer holds the leader Lease; not {doing}"),
            Duration::from_secs(5),
        ))
    }
}

/// What a reconcile passes in.
pub struct Inputs<'a> {
    pub client: &'a Client,
    pub oauth: &'a OAuthClient,
    pub namespace: &'a str,
    pub connection: &'a str,
    /// Whether no older connection of the namespace names the same token Secret.
    pub eldest: bool,
    pub spec: &'a GhlConnectionSpec,
    pub auth: &'a OAuthAuth,
    /// This process (written into claims).
    pub identity: &'a str,
    /// Open while this process leads: nothing is spent otherwise.
    pub fence: &'a Fence,
    pub now: Timestamp,
    /// The Secret the operator's `/oauth/callback` keeps a consent's code in.
    pub consent_secret: Option<&'a str>,
}

impl Inputs<'_> {
    fn holder(&self) -> Holder<'_> {
        Holder {
            connection: self.connection,
            eldest: self.eldest,
        }
    }
}

fn secret_text(secret: &Secret, key: &str) -> Option<String> {
    secret
        .data
        .as_ref()?
        .get(key)
        .map(|b| String::from_utf8_lossy(&b.0).trim().to_owned())
        .filter(|s| !s.is_empty())
}

impl OAuthManager {
    fn lock(&self, namespace: &str, name: &str) -> Arc<tokio::sync::Mutex<Pending>> {
        let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        Arc::clone(
            locks
                .entry((namespace.to_owned(), name.to_owned()))
                .or_default(),
        )
    }

    /// Forgets a deleted connection.
    pub fn forget(&self, namespace: &str, name: &str) {
        let key = (namespace.to_owned(), name.to_owned());
        self.locks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&key);
        self.failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&key);
    }

    /// Consecutive failed attempts to renew the connection's credential.
    pub fn failed_attempts(&self, namespace: &str, name: &str) -> u32 {
        let key = (namespace.to_owned(), name.to_owned());
        self.failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
            .copied()
            .unwrap_or(0)
    }

    /// Brings the connection's OAuth credential to a usable state: bootstraps, refreshes when
    /// due, mints the location token for agency grants.
    pub async fn ensure(&self, input: &Inputs<'_>) -> Result<Usable, Problem> {
        let result = self.ensure_once(input).await;
        let key = (input.namespace.to_owned(), input.connection.to_owned());
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        match &result {
            // One failed renewal, however many reconciles serve on after it.
            Ok(usable) if usable.renewal_failed.is_some() => {
                let count = failures.entry(key).or_default();
                *count = (*count).max(1);
            }
            Ok(_) => {
                failures.remove(&key);
            }
            // Failed renewals count; a spec or Secret waiting to be fixed does not.
            Err(problem) if !problem.stalled || problem.refused => {
                let count = failures.entry(key).or_default();
                *count = count.saturating_add(1);
            }
            Err(_) => {}
        }
        result
    }

    /// One piece: the whole guarded sequence runs under the connection's lock, and each early
    /// return is a different, final answer; split, the order of the guards would be harder to see.
    async fn ensure_once(&self, input: &Inputs<'_>) -> Result<Usable, Problem> {
        let lock = self.lock(input.namespace, input.connection);
        let mut pending = lock.lock().await;
        let secrets: Api<Secret> = Api::namespaced(input.client.clone(), input.namespace);
        let token_name = &input.auth.token_secret_ref.name;

        // A grant GHL issued but we could not store yet comes first (unless the Secret
        // moved on to a newer one meanwhile).
        if let Some((grant, guard)) = pending.unpersisted.clone() {
            let current = read_secret(&secrets, token_name).await?;
            persist(
                &secrets,
                (token_name, input.connection),
                current,
                &grant,
                &guard,
            )
            .await?;
            pending.unpersisted = None;
        }

        let app = client_credentials(&secrets, input.auth).await?;
        let renewal = renewal_policy(input.auth)?;
        let current = read_secret(&secrets, token_name).await?;
        let current = take(&secrets, token_name, current, input.holder()).await?;
        let code = match &input.auth.authorization_code_secret_ref {
            Some(r) => refs::opted_in(&secrets, &r.name, SecretRole::OAuthCode)
                .await
                .map_err(|e| Problem::stalled(e.reason(), e.to_string()))?
                .and_then(|s| secret_text(&s, &r.key))
                .map(SecretString::from),
            None => None,
        };
        // A code a person's consent brought back through the operator's callback.
        let code = match (code, input.consent_secret) {
            (Some(code), _) => Some(code),
            (None, Some(name)) => refs::opted_in(&secrets, name, SecretRole::OAuthCode)
                .await
                .ok()
                .flatten()
                .and_then(|s| secret_text(&s, consent::CODE_KEY))
                .map(SecretString::from),
            (None, None) => None,
        };
        let grant = current.as_ref().and_then(token_secret::read);
        let claim = current.as_ref().and_then(token_secret::claim_of);

        // A new code (one that did not produce the stored grant) means (re)authorize.
        if let Some(code) = &code {
            let digest = fingerprint(code);
            let fresh = grant
                .as_ref()
                .is_none_or(|g| g.code_digest.as_deref() != Some(digest.as_str()));
            if fresh && !pending.rejected_codes.contains(&digest) {
                if let Some(claim) = &claim
                    && claim.what == "exchange"
                    && claim.digest == digest
                {
                    return Err(self.interrupted(
                        input,
                        claim,
                        "exchange of this authorization code",
                    ));
                }
                let usable = exchange(
                    input,
                    &secrets,
                    &app,
                    current,
                    grant.as_ref(),
                    code,
                    &digest,
                    &mut pending,
                )
                .await?;
                return finish(input, &secrets, &renewal, usable, &mut pending).await;
            }
        }

        let Some(grant) = grant else {
            return Err(match (&input.auth.authorization_code_secret_ref, code) {
                (None, _) => Problem::refused(
                    reason::CONSENT_REQUIRED,
                    format!(
                        "no grant yet (Secret {token_name} holds no tokens): open status.consent.url, or run kubectl ghl connect {}",
                        input.connection
                    ),
                ),
                (Some(r), None) => Problem::refused(
                    reason::REAUTHORIZATION_REQUIRED,
                    format!(
                        "waiting for an authorization code in Secret {} key {:?}",
                        r.name, r.key
                    ),
                ),
                (Some(r), Some(_)) => Problem::refused(
                    reason::AUTHORIZATION_CODE_INVALID,
                    format!(
                        "GHL refused the authorization code in Secret {}; put a new one from GHL's consent screen",
                        r.name
                    ),
                ),
            });
        };

        if let Some(claim) = &claim {
            let current_digest = grant.refresh_token.as_ref().map(fingerprint);
            if claim.what == "refresh" && Some(&claim.digest) == current_digest.as_ref() {
                if claim.holder != input.identity && claim_is_young(&mut pending, claim) {
                    return Err(Problem::retry(
                        reason::PROGRESSING,
                        format!(
                            "another operator process ({}) is refreshing the token",
                            claim.holder
                        ),
                        Duration::from_secs(5),
                    ));
                }
                // The refresh token may be spent and is never presented again; the access
                // token it came with still serves until it expires.
                if serves_until_expiry(&grant, input.now) {
                    let why = format!(
                        "a refresh by {} at {} got no answer that was stored, so the refresh token is given up",
                        claim.holder, claim.at
                    );
                    let Some(current) = current else {
                        return Err(spend::superseded(token_name));
                    };
                    let usable = spend::retire(
                        input,
                        &secrets,
                        current,
                        grant,
                        claim.clone(),
                        why,
                        &mut pending,
                    )
                    .await?;
                    return finish(input, &secrets, &renewal, usable, &mut pending).await;
                }
                return Err(self.interrupted(input, claim, "refresh"));
            }
        }

        let usable = Usable {
            token: grant.access_token.clone(),
            next_renewal: schedule::next_renewal(&renewal, grant.expires_at, grant.refreshed_at),
            grant,
            rotated: false,
            renewal_adjusted: None,
            renewal_failed: None,
        };
        let usable = if schedule::refresh_due(
            &renewal,
            usable.grant.expires_at,
            usable.grant.refreshed_at,
            input.now,
        ) {
            // The grant was read from `current`, so it is there.
            let Some(current) = current else {
                return Err(Problem::retry(
                    reason::PROGRESSING,
                    format!("Secret {token_name} disappeared while reading it"),
                    Duration::from_secs(5),
                ));
            };
            refresh(input, &secrets, &app, current, usable.grant, &mut pending).await?
        } else {
            usable
        };
        finish(input, &secrets, &renewal, usable, &mut pending).await
    }

    fn interrupted(&self, input: &Inputs<'_>, claim: &Claim, what: &str) -> Problem {
        let code_hint = match &input.auth.authorization_code_secret_ref {
            Some(r) => format!(
                "put a new authorization code in Secret {} key {:?}",
                r.name, r.key
            ),
            None => format!(
                "consent again: open status.consent.url (kubectl ghl connect {})",
                input.connection
            ),
        };
        Problem::refused(
            reason::REAUTHORIZATION_REQUIRED,
            format!(
                "a {what} by {} at {} was interrupted before its result was stored; GHL may have consumed the \
                 token, so it is not spent again. To reconnect, {code_hint}",
                claim.holder, claim.at
            ),
        )
    }
}

/// Whether another process' claim is recent enough to be a refresh in progress: measured from
/// when this process first saw it (its own monotonic clock), as leader election measures a
/// Lease — the `at` a claim carries comes from another node's clock and is only shown.
fn claim_is_young(pending: &mut Pending, claim: &Claim) -> bool {
    let first_seen = match &pending.claim_seen {
        Some((seen, at)) if seen == claim => *at,
        _ => {
            let now = Instant::now();
            pending.claim_seen = Some((claim.clone(), now));
            now
        }
    };
    first_seen.elapsed() < CLAIM_PATIENCE
}

fn renewal_policy(auth: &OAuthAuth) -> Result<RenewalPolicy, Problem> {
    let renew_before = crate::crd::common::duration_field(
        auth.renew_before.as_ref(),
        "spec.auth.oauth.renewBefore",
        schedule::DEFAULT_RENEW_BEFORE,
        Duration::ZERO,
        MAX_DURATION,
    )
    .map_err(|e| Problem::stalled(reason::INVALID_SPEC, e.to_string()))?;
    let schedule = match &auth.rotation_schedule {
        Some(text) => Some(text.parse::<Schedule>().map_err(|e| {
            Problem::stalled(
                reason::INVALID_SPEC,
                format!("spec.auth.oauth.rotationSchedule: {e}"),
            )
        })?),
        None => None,
    };
    Ok(RenewalPolicy {
        renew_before,
        schedule,
    })
}

/// The app's client credentials from the Secret `auth.clientSecretRef` names.
pub async fn client_credentials(
    secrets: &Api<Secret>,
    auth: &OAuthAuth,
) -> Result<ClientCredentials, Problem> {
    let name = &auth.client_secret_ref.name;
    let secret = refs::opted_in(secrets, name, SecretRole::OAuthClient)
        .await
        .map_err(|e| Problem::stalled(e.reason(), e.to_string()))?
        .ok_or_else(|| {
            Problem::stalled(
                reason::SECRET_NOT_FOUND,
                format!("Secret {name} does not exist"),
            )
        })?;
    let id = secret_text(&secret, "client_id");
    let key = secret_text(&secret, "client_secret");
    match (id, key) {
        (Some(client_id), Some(client_secret)) => Ok(ClientCredentials {
            client_id,
            client_secret: client_secret.into(),
        }),
        _ => Err(Problem::stalled(
            reason::SECRET_NOT_FOUND,
            format!("Secret {name} needs keys client_id and client_secret"),
        )),
    }
}

pub(super) fn user_type(auth: &OAuthAuth) -> UserTypeParam {
    match auth.user_type {
        UserType::Location => UserTypeParam::Location,
        UserType::Company => UserTypeParam::Company,
    }
}

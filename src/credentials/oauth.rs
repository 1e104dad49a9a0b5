//! The OAuth lifecycle of one GhlConnection: bootstrap from a one-time authorization code,
//! refresh on schedule, agency → location tokens — never losing or double-spending a
//! single-use token.
//!
//! Every spend (code exchange or refresh) follows the same fenced sequence:
//! 1. **claim**: annotate the token Secret with what is about to be spent, using
//!    compare-and-swap on its resourceVersion — a concurrent process gets a 409 and backs off;
//! 2. **spend**: one call to GHL (never retried after a lost answer);
//! 3. **persist**: write the new pair with compare-and-swap on the claimed version, clearing the
//!    claim; a failed write is retried from memory and the pair is never dropped;
//! 4. **install**: only now do clients use the new access token.
//!
//! A claim left behind by a crash means the token may already be spent: it is never spent
//! again (GHL would count a reuse); the connection reports `ReauthorizationRequired` and
//! recovers as soon as a new authorization code is supplied.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};
use secrecy::SecretString;

use super::failpoint::crash_point;
use super::schedule::{self, RenewalPolicy, Schedule};
use super::token_secret::{self, Claim, StoredGrant, fingerprint};
use crate::crd::connection::{GhlConnectionSpec, OAuthAuth, UserType};
use crate::crd::vocabulary::{label, reason};
use crate::ghl::models::UserTypeParam;
use crate::ghl::oauth::{ClientCredentials, OAuthClient};
use crate::ghl::{ErrorClass, GhlError};

/// A claim younger than this, held by another process, is a refresh in progress.
const CLAIM_PATIENCE: Duration = Duration::from_secs(60);

/// Why the credential cannot be used now.
#[derive(Clone, Debug)]
pub struct Problem {
    pub reason: &'static str,
    pub message: String,
    /// Nothing will change until something outside the operator does (a new code, a fixed
    /// Secret): stalled. Otherwise retried after `retry_in`.
    pub stalled: bool,
    pub retry_in: Duration,
    /// The credential itself was refused (Authenticated=False).
    pub refused: bool,
}

impl Problem {
    pub fn stalled(reason: &'static str, message: String) -> Self {
        Self {
            reason,
            message,
            stalled: true,
            retry_in: Duration::from_secs(300),
            refused: false,
        }
    }

    pub fn refused(reason: &'static str, message: String) -> Self {
        Self {
            reason,
            message,
            stalled: true,
            retry_in: Duration::from_secs(300),
            refused: true,
        }
    }

    pub fn retry(reason: &'static str, message: String, retry_in: Duration) -> Self {
        Self {
            reason,
            message,
            stalled: false,
            retry_in,
            refused: false,
        }
    }
}

/// A usable credential.
#[derive(Clone, Debug)]
pub struct Usable {
    /// What clients send: the access token, or for agency grants the location token.
    pub token: SecretString,
    pub grant: StoredGrant,
    pub next_renewal: Timestamp,
    /// A refresh or exchange happened in this call.
    pub rotated: bool,
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
struct Pending {
    /// A grant GHL issued that is not stored yet (write failed): retried before anything else.
    unpersisted: Option<StoredGrant>,
    /// Codes GHL refused (by digest), so a bad code is not tried on every reconcile.
    rejected_codes: HashSet<String>,
}

/// What a reconcile passes in.
pub struct Inputs<'a> {
    pub client: &'a Client,
    pub oauth: &'a OAuthClient,
    pub namespace: &'a str,
    pub connection: &'a str,
    pub spec: &'a GhlConnectionSpec,
    pub auth: &'a OAuthAuth,
    /// This process (written into claims).
    pub identity: &'a str,
    pub now: Timestamp,
}

fn secret_text(secret: &Secret, key: &str) -> Option<String> {
    secret
        .data
        .as_ref()?
        .get(key)
        .map(|b| String::from_utf8_lossy(&b.0).trim().to_owned())
        .filter(|s| !s.is_empty())
}

/// Whether an error means GHL certainly did not process the spend (safe to try again).
fn not_processed(error: &GhlError) -> bool {
    match error {
        GhlError::Api { status, .. } => *status == 429 || (500..=599).contains(status),
        GhlError::Connection { source, .. } => source.is_connect(),
        GhlError::Token { .. } | GhlError::InvalidRequest { .. } => true,
        GhlError::Timeout { .. } | GhlError::MalformedResponse { .. } => false,
    }
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
            Ok(_) => {
                failures.remove(&key);
            }
            // Failed renewals count; a spec or Secret waiting to be fixed does not.
            Err(problem) if !problem.stalled || problem.refused => {
                *failures.entry(key).or_default() += 1
            }
            Err(_) => {}
        }
        result
    }

    async fn ensure_once(&self, input: &Inputs<'_>) -> Result<Usable, Problem> {
        let lock = self.lock(input.namespace, input.connection);
        let mut pending = lock.lock().await;
        let secrets: Api<Secret> = Api::namespaced(input.client.clone(), input.namespace);
        let token_name = &input.auth.token_secret_ref.name;

        // A grant GHL issued but we could not store yet comes first.
        if let Some(grant) = pending.unpersisted.clone() {
            let current = read_secret(&secrets, token_name).await?;
            persist(&secrets, token_name, current, &grant).await?;
            pending.unpersisted = None;
        }

        let app = client_credentials(&secrets, input.auth).await?;
        let renewal = renewal_policy(input.auth)?;
        let current = read_secret(&secrets, token_name).await?;
        let code = match &input.auth.authorization_code_secret_ref {
            Some(r) => read_secret(&secrets, &r.name)
                .await?
                .and_then(|s| secret_text(&s, &r.key))
                .map(SecretString::from),
            None => None,
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
                    reason::REAUTHORIZATION_REQUIRED,
                    format!(
                        "Secret {token_name} holds no tokens; set authorizationCodeSecretRef to a code from GHL's consent screen"
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
                if claim.holder != input.identity && claim_is_young(claim, input.now) {
                    return Err(Problem::retry(
                        reason::PROGRESSING,
                        format!(
                            "another operator process ({}) is refreshing the token",
                            claim.holder
                        ),
                        Duration::from_secs(5),
                    ));
                }
                return Err(self.interrupted(input, claim, "refresh"));
            }
        }

        let usable = Usable {
            token: grant.access_token.clone(),
            next_renewal: schedule::next_renewal(&renewal, grant.expires_at, grant.refreshed_at),
            grant,
            rotated: false,
        };
        let usable = if schedule::refresh_due(
            &renewal,
            usable.grant.expires_at,
            usable.grant.refreshed_at,
            input.now,
        ) {
            refresh(
                input,
                &secrets,
                &app,
                current.expect("a grant comes from a Secret"),
                usable.grant,
                &mut pending,
            )
            .await?
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
            None => "set authorizationCodeSecretRef to a new authorization code".to_owned(),
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

fn claim_is_young(claim: &Claim, now: Timestamp) -> bool {
    claim
        .at
        .parse::<Timestamp>()
        .ok()
        .and_then(|at| Duration::try_from(now.duration_since(at)).ok())
        .is_some_and(|age| age < CLAIM_PATIENCE)
}

fn renewal_policy(auth: &OAuthAuth) -> Result<RenewalPolicy, Problem> {
    let renew_before = match &auth.renew_before {
        Some(d) => d
            .parse()
            .map_err(|e| Problem::stalled(reason::INVALID_SPEC, format!("renewBefore: {e}")))?,
        None => schedule::DEFAULT_RENEW_BEFORE,
    };
    let schedule = match &auth.rotation_schedule {
        Some(text) => Some(
            text.parse::<Schedule>()
                .map_err(|e| Problem::stalled(reason::INVALID_SPEC, e))?,
        ),
        None => None,
    };
    Ok(RenewalPolicy {
        renew_before,
        schedule,
    })
}

async fn read_secret(secrets: &Api<Secret>, name: &str) -> Result<Option<Secret>, Problem> {
    secrets.get_opt(name).await.map_err(|e| {
        Problem::retry(
            reason::PROGRESSING,
            format!("cannot read Secret {name}: {e}"),
            Duration::from_secs(5),
        )
    })
}

async fn client_credentials(
    secrets: &Api<Secret>,
    auth: &OAuthAuth,
) -> Result<ClientCredentials, Problem> {
    let name = &auth.client_secret_ref.name;
    let secret = read_secret(secrets, name).await?.ok_or_else(|| {
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

fn user_type(auth: &OAuthAuth) -> UserTypeParam {
    match auth.user_type {
        UserType::Location => UserTypeParam::Location,
        UserType::Company => UserTypeParam::Company,
    }
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
async fn claim(
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
async fn persist(
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
async fn release(secrets: &Api<Secret>, name: &str, claimed: Secret) {
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

fn grant_from(
    response: crate::ghl::models::TokenGrant,
    previous: Option<&StoredGrant>,
    code_digest: Option<String>,
    now: Timestamp,
) -> StoredGrant {
    StoredGrant {
        access_token: response.access_token,
        refresh_token: response
            .refresh_token
            .or_else(|| previous.and_then(|p| p.refresh_token.clone())),
        expires_at: schedule::expiry_of(now, response.expires_in),
        scope: response
            .scope
            .or_else(|| previous.and_then(|p| p.scope.clone())),
        user_type: response
            .user_type
            .or_else(|| previous.and_then(|p| p.user_type.clone())),
        revision: previous.map_or(0, |p| p.revision) + 1,
        refreshed_at: now,
        code_digest: code_digest.or_else(|| previous.and_then(|p| p.code_digest.clone())),
        previous_access_token: previous.map(|p| p.access_token.clone()),
        location_access_token: None,
        location_expires_at: None,
    }
}

#[allow(clippy::too_many_arguments)]
async fn exchange(
    input: &Inputs<'_>,
    secrets: &Api<Secret>,
    app: &ClientCredentials,
    current: Option<Secret>,
    previous: Option<&StoredGrant>,
    code: &SecretString,
    digest: &str,
    pending: &mut Pending,
) -> Result<Usable, Problem> {
    let name = &input.auth.token_secret_ref.name;
    let mark = Claim {
        what: "exchange".into(),
        digest: digest.to_owned(),
        holder: input.identity.to_owned(),
        at: input.now.to_string(),
    };
    let claimed = claim(secrets, name, current, &mark).await?;
    let answer = input
        .oauth
        .exchange_code(
            app,
            code,
            input.auth.redirect_uri.as_deref(),
            user_type(input.auth),
        )
        .await;
    let response = match answer {
        Ok(response) => response,
        Err(error) => {
            // A code is worth nothing once tried: clear the claim either way.
            release(secrets, name, claimed).await;
            if not_processed(&error) {
                return Err(Problem::retry(
                    reason::GHL_UNAVAILABLE,
                    format!("exchanging the authorization code: {error}"),
                    error.retry_after().unwrap_or(Duration::from_secs(10)),
                ));
            }
            pending.rejected_codes.insert(digest.to_owned());
            return Err(Problem::refused(
                reason::AUTHORIZATION_CODE_INVALID,
                format!(
                    "GHL refused the authorization code (used, expired or for another app): {error}"
                ),
            ));
        }
    };
    crash_point("after-spend");
    let grant = grant_from(response, previous, Some(digest.to_owned()), input.now);
    store_new(secrets, name, claimed, grant, pending, input.now).await
}

/// Stores a grant GHL just issued over our claim — kept in memory until stored — and hands it
/// out for use only then.
async fn store_new(
    secrets: &Api<Secret>,
    name: &str,
    claimed: Secret,
    grant: StoredGrant,
    pending: &mut Pending,
    now: Timestamp,
) -> Result<Usable, Problem> {
    pending.unpersisted = Some(grant.clone());
    persist(secrets, name, Some(claimed), &grant).await?;
    pending.unpersisted = None;
    crash_point("after-persist");
    Ok(Usable {
        token: grant.access_token.clone(),
        next_renewal: now,
        grant,
        rotated: true,
    })
}

async fn refresh(
    input: &Inputs<'_>,
    secrets: &Api<Secret>,
    app: &ClientCredentials,
    current: Secret,
    grant: StoredGrant,
    pending: &mut Pending,
) -> Result<Usable, Problem> {
    let name = &input.auth.token_secret_ref.name;
    let Some(refresh_token) = grant.refresh_token.clone() else {
        if grant.expires_at > input.now {
            return Ok(Usable {
                token: grant.access_token.clone(),
                next_renewal: grant.expires_at,
                grant,
                rotated: false,
            });
        }
        return Err(Problem::refused(
            reason::REAUTHORIZATION_REQUIRED,
            format!("the access token in Secret {name} expired and there is no refresh token"),
        ));
    };
    let mark = Claim {
        what: "refresh".into(),
        digest: fingerprint(&refresh_token),
        holder: input.identity.to_owned(),
        at: input.now.to_string(),
    };
    let claimed = claim(secrets, name, Some(current), &mark).await?;
    let answer = input
        .oauth
        .refresh(app, &refresh_token, user_type(input.auth))
        .await;
    let response = match answer {
        Ok(response) => response,
        Err(error) if not_processed(&error) => {
            release(secrets, name, claimed).await;
            let why = if error.class() == ErrorClass::RateLimited {
                reason::RATE_LIMITED
            } else {
                reason::GHL_UNAVAILABLE
            };
            return Err(Problem::retry(
                why,
                format!("refreshing the token: {error}"),
                error.retry_after().unwrap_or(Duration::from_secs(10)),
            ));
        }
        Err(error) => {
            // Refused, or the answer was lost: the refresh token is spent or dead. The claim
            // stays, so no process ever spends it again.
            return Err(Problem::refused(
                reason::REAUTHORIZATION_REQUIRED,
                format!(
                    "GHL did not renew the grant ({error}); a new authorization code is needed"
                ),
            ));
        }
    };
    crash_point("after-spend");
    let new = grant_from(response, Some(&grant), None, input.now);
    store_new(secrets, name, claimed, new, pending, input.now).await
}

/// Agency grants: mint (or reuse) the location token; then the next renewal time.
async fn finish(
    input: &Inputs<'_>,
    secrets: &Api<Secret>,
    renewal: &RenewalPolicy,
    mut usable: Usable,
    pending: &mut Pending,
) -> Result<Usable, Problem> {
    let name = &input.auth.token_secret_ref.name;
    let is_company = input.auth.user_type == UserType::Company;
    if is_company {
        let location_policy = RenewalPolicy {
            renew_before: renewal.renew_before,
            schedule: None,
        };
        let needs_location = usable.rotated
            || match (
                &usable.grant.location_access_token,
                usable.grant.location_expires_at,
            ) {
                (Some(_), Some(expires)) => schedule::refresh_due(
                    &location_policy,
                    expires,
                    usable.grant.refreshed_at,
                    input.now,
                ),
                _ => true,
            };
        if needs_location {
            let Some(company) = input.auth.company_id.clone() else {
                return Err(Problem::stalled(
                    reason::INVALID_SPEC,
                    "userType Company needs companyId".into(),
                ));
            };
            let minted = input
                .oauth
                .location_token(
                    &usable.grant.access_token,
                    &company,
                    &input.spec.location_id,
                )
                .await
                .map_err(|e| match e.class() {
                    ErrorClass::Auth | ErrorClass::Terminal => Problem::refused(
                        reason::CREDENTIALS_REJECTED,
                        format!(
                            "GHL refused a location token for {}: {e}",
                            input.spec.location_id
                        ),
                    ),
                    _ => Problem::retry(
                        reason::GHL_UNAVAILABLE,
                        format!("minting a location token: {e}"),
                        Duration::from_secs(10),
                    ),
                })?;
            let mut grant = usable.grant.clone();
            grant.location_access_token = Some(minted.access_token);
            grant.location_expires_at = Some(schedule::expiry_of(input.now, minted.expires_in));
            if !usable.rotated {
                grant.revision += 1;
            }
            pending.unpersisted = Some(grant.clone());
            let current = read_secret(secrets, name).await?;
            persist(secrets, name, current, &grant).await?;
            pending.unpersisted = None;
            usable.grant = grant;
            usable.rotated = true;
        }
    }
    crash_point("after-install");
    let mut next =
        schedule::next_renewal(renewal, usable.grant.expires_at, usable.grant.refreshed_at);
    if let (true, Some(expires)) = (is_company, usable.grant.location_expires_at) {
        let location_policy = RenewalPolicy {
            renew_before: renewal.renew_before,
            schedule: None,
        };
        next = next.min(schedule::next_renewal(
            &location_policy,
            expires,
            usable.grant.refreshed_at,
        ));
    }
    usable.next_renewal = next;
    usable.token = if is_company {
        usable
            .grant
            .location_access_token
            .clone()
            .unwrap_or_else(|| usable.grant.access_token.clone())
    } else {
        usable.grant.access_token.clone()
    };
    Ok(usable)
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

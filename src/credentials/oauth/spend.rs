//! Spending single-use credentials: the code exchange and the refresh, each a claim, one call
//! to GHL (never retried after a lost answer), and the new grant stored before it is used.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use secrecy::SecretString;

use super::fence::{claim, persist, release};
use super::{Inputs, Pending, Usable, user_type};
use crate::crd::vocabulary::reason;
use crate::credentials::Problem;
use crate::credentials::failpoint::crash_point;
use crate::credentials::schedule;
use crate::credentials::token_secret::{Claim, StoredGrant, fingerprint};
use crate::ghl::oauth::ClientCredentials;
use crate::ghl::{ErrorClass, GhlError};

/// Whether an error means GHL certainly did not process the spend (safe to try again).
fn not_processed(error: &GhlError) -> bool {
    match error {
        GhlError::Api { status, .. } => *status == 429 || (500..=599).contains(status),
        GhlError::Connection { source, .. } => source.is_connect(),
        GhlError::Token { .. } | GhlError::InvalidRequest { .. } => true,
        GhlError::Timeout { .. } | GhlError::MalformedResponse { .. } => false,
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
pub(super) async fn exchange(
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

pub(super) async fn refresh(
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

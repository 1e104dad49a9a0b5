//! Spending single-use credentials: the code exchange and the refresh, each a claim, one call
//! to GHL (never retried after a lost answer), and the new grant stored before it is used.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use secrecy::SecretString;

use super::leading;
use super::token_writes::{Guard, Stored, claim, persist, withdraw};
use super::{
    Inputs, Pending, Usable, serves_until_expiry, serving_after_failed_renewal, user_type,
};
use crate::crd::vocabulary::reason;
use crate::credentials::Problem;
use crate::credentials::failpoint::crash_point;
use crate::credentials::schedule;
use crate::credentials::token_secret::{Claim, StoredGrant, fingerprint};
use crate::ghl::oauth::ClientCredentials;
use crate::ghl::{ErrorClass, GhlError};

/// What a failed spend tells about the single-use token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Spent {
    /// GHL certainly did not process it (never sent, or refused before processing: 429):
    /// the same token may be tried again.
    No,
    /// No clear answer (5xx, timeout, a broken or garbled answer): a 502 or 504 can arrive
    /// after GHL already rotated the token, so it is treated as spent — like a crash.
    Maybe,
    /// GHL refused it (4xx): it is dead.
    Refused,
}

fn spent(error: &GhlError) -> Spent {
    match error {
        GhlError::Api { status: 429, .. } => Spent::No,
        GhlError::Api { status, .. } if (500..=599).contains(status) => Spent::Maybe,
        GhlError::Api { .. } => Spent::Refused,
        GhlError::Connection { source, .. } if source.is_connect() => Spent::No,
        GhlError::Token { .. } | GhlError::InvalidRequest { .. } => Spent::No,
        GhlError::Connection { .. } | GhlError::Timeout { .. } => Spent::Maybe,
        // The form reached whatever answered; where it went from there is unknown.
        GhlError::MalformedResponse { .. } | GhlError::Redirected { .. } => Spent::Maybe,
    }
}

fn grant_from(
    response: crate::ghl::models::TokenGrant,
    previous: Option<&StoredGrant>,
    code_digest: Option<String>,
    now: Timestamp,
) -> StoredGrant {
    StoredGrant {
        access_token: response.tokens.access_token,
        refresh_token: response
            .tokens
            .refresh_token
            .or_else(|| previous.and_then(|p| p.refresh_token.clone())),
        expires_at: schedule::expiry_of(now, response.tokens.expires_in),
        scope: response
            .tokens
            .scope
            .or_else(|| previous.and_then(|p| p.scope.clone())),
        user_type: response
            .user_type
            .or_else(|| previous.and_then(|p| p.user_type.clone())),
        revision: previous.map_or(0, |p| p.revision).saturating_add(1),
        refreshed_at: now,
        code_digest: code_digest.or_else(|| previous.and_then(|p| p.code_digest.clone())),
        previous_access_token: previous.map(|p| p.access_token.clone()),
        location_access_token: None,
        location_expires_at: None,
    }
}

/// Why a code's grant does not serve the connection: a Location grant must name the
/// declared `locationId`, a Company grant the declared `companyId`. Pure.
fn mismatch(input: &Inputs<'_>, response: &crate::ghl::models::TokenGrant) -> Option<String> {
    let company = input.auth.user_type == crate::crd::connection::UserType::Company;
    let (what, granted, declared) = if company {
        (
            "company",
            response.company_id.as_deref(),
            input.auth.company_id.as_deref(),
        )
    } else {
        (
            "location",
            response.location_id.as_deref(),
            Some(input.spec.location_id.as_str()),
        )
    };
    match (granted, declared) {
        (Some(granted), Some(declared)) if granted != declared => Some(format!(
            "the consent granted {what} {granted}, but the connection declares {declared}: nothing was stored; consent again choosing {declared}"
        )),
        _ => None,
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
    leading(input.fence, "spending tokens")?;
    let claimed = claim(secrets, (name, input.connection), current, &mark).await?;
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
            withdraw(secrets, name, claimed).await;
            let outcome = spent(&error);
            if outcome == Spent::No {
                return Err(Problem::retry(
                    reason::GHL_UNAVAILABLE,
                    format!("exchanging the authorization code: {error}"),
                    error.retry_after().unwrap_or(Duration::from_secs(10)),
                ));
            }
            pending.rejected_codes.insert(digest.to_owned());
            return Err(Problem::refused(
                reason::AUTHORIZATION_CODE_INVALID,
                if outcome == Spent::Maybe {
                    format!(
                        "GHL gave no clear answer to the code exchange ({error}); the code may be used up, so it is not tried again: put a new one"
                    )
                } else {
                    format!(
                        "GHL refused the authorization code (used, expired or for another app): {error}"
                    )
                },
            ));
        }
    };
    crash_point("after-spend");
    // A grant for another location or company than the connection declares is not kept.
    if let Some(mismatch) = mismatch(input, &response) {
        withdraw(secrets, name, claimed).await;
        pending.rejected_codes.insert(digest.to_owned());
        return Err(Problem::refused(reason::CONSENT_REFUSED, mismatch));
    }
    let grant = grant_from(response, previous, Some(digest.to_owned()), input.now);
    store_new(
        secrets,
        (name, input.connection),
        claimed,
        grant,
        mark,
        pending,
        input.now,
    )
    .await
}

/// Stores a grant GHL just issued over our claim — kept in memory until stored — and hands it
/// out for use only then.
async fn store_new(
    secrets: &Api<Secret>,
    secret: (&str, &str),
    claimed: Secret,
    grant: StoredGrant,
    mark: Claim,
    pending: &mut Pending,
    now: Timestamp,
) -> Result<Usable, Problem> {
    let guard = Guard::Claim(mark);
    pending.unpersisted = Some((grant.clone(), guard.clone()));
    let stored = persist(secrets, secret, Some(claimed), &grant, &guard).await?;
    pending.unpersisted = None;
    if let Stored::Superseded = stored {
        return Err(superseded(secret.0));
    }
    crash_point("after-persist");
    Ok(Usable {
        token: grant.access_token.clone(),
        next_renewal: now,
        grant,
        rotated: true,
        renewal_adjusted: None,
        renewal_failed: None,
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
        // Given up after a renewal failed (see [`retire`]): the access token serves on.
        if serves_until_expiry(&grant, input.now) {
            return Ok(serving_after_failed_renewal(
                grant,
                "the grant could not be renewed and its refresh token was given up".into(),
            ));
        }
        return Err(Problem::refused(
            reason::REAUTHORIZATION_REQUIRED,
            format!(
                "the access token in Secret {name} expired and there is no refresh token: consent again (status.consent.url, or kubectl ghl connect {})",
                input.connection
            ),
        ));
    };
    let mark = Claim {
        what: "refresh".into(),
        digest: fingerprint(&refresh_token),
        holder: input.identity.to_owned(),
        at: input.now.to_string(),
    };
    leading(input.fence, "spending tokens")?;
    let claimed = claim(secrets, (name, input.connection), Some(current), &mark).await?;
    let answer = input
        .oauth
        .refresh(app, &refresh_token, user_type(input.auth))
        .await;
    let response = match answer {
        Ok(response) => response,
        Err(error) if spent(&error) == Spent::No => {
            withdraw(secrets, name, claimed).await;
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
            // Refused, or no clear answer: the refresh token is dead or may be spent. The
            // claim stays, so no process ever presents it again.
            let why = match spent(&error) {
                Spent::Maybe => {
                    "GHL gave no clear answer to the refresh, and may have rotated the token"
                }
                _ => "GHL did not renew the grant",
            };
            // The refresh token is given up for good (stored without it, over our claim), so
            // no process ever presents it again; the access token still works until it
            // expires: serve it and ask for consent.
            if serves_until_expiry(&grant, input.now) {
                return retire(
                    input,
                    secrets,
                    claimed,
                    grant,
                    mark,
                    format!("{why} ({error})"),
                    pending,
                )
                .await;
            }
            return Err(Problem::refused(
                reason::REAUTHORIZATION_REQUIRED,
                format!("{why} ({error}); a new authorization code is needed"),
            ));
        }
    };
    crash_point("after-spend");
    let new = grant_from(response, Some(&grant), None, input.now);
    store_new(
        secrets,
        (name, input.connection),
        claimed,
        new,
        mark,
        pending,
        input.now,
    )
    .await
}

/// Gives up `grant`'s refresh token after a renewal failed (refused, or no clear answer, or
/// interrupted): the grant is stored without it over the claim `mark` that guarded the spend,
/// which is then cleared. From then on the Secret itself says the token is gone — a later claim
/// (a consent's code exchange) can no longer uncover it — and the access token is served until
/// it expires.
pub(super) async fn retire(
    input: &Inputs<'_>,
    secrets: &Api<Secret>,
    claimed: Secret,
    grant: StoredGrant,
    mark: Claim,
    why: String,
    pending: &mut Pending,
) -> Result<Usable, Problem> {
    let name = &input.auth.token_secret_ref.name;
    leading(input.fence, "giving up a refresh token")?;
    let mut retired = grant;
    retired.refresh_token = None;
    let guard = Guard::Claim(mark);
    pending.unpersisted = Some((retired.clone(), guard.clone()));
    let stored = persist(
        secrets,
        (name, input.connection),
        Some(claimed),
        &retired,
        &guard,
    )
    .await?;
    pending.unpersisted = None;
    if let Stored::Superseded = stored {
        return Err(superseded(name));
    }
    Ok(serving_after_failed_renewal(retired, why))
}

/// The Secret got a newer grant (or another claim) while ours was being stored.
pub(super) fn superseded(name: &str) -> Problem {
    Problem::retry(
        reason::PROGRESSING,
        format!("Secret {name} got a newer grant while this one was being stored; using that"),
        Duration::from_secs(1),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ghl::Operation;

    fn api(status: u16) -> GhlError {
        GhlError::Api {
            operation: Operation::OAuthToken,
            status,
            message: String::new(),
            retry_after: None,
            rate_limit: None,
        }
    }

    #[test]
    fn only_a_certain_non_spend_lets_a_token_be_presented_again() {
        let table = [
            (api(429), Spent::No),
            (api(500), Spent::Maybe),
            (api(502), Spent::Maybe),
            (api(504), Spent::Maybe),
            (api(400), Spent::Refused),
            (api(401), Spent::Refused),
            (
                GhlError::MalformedResponse {
                    operation: Operation::OAuthToken,
                    status: 200,
                    detail: String::new(),
                },
                Spent::Maybe,
            ),
            (
                GhlError::InvalidRequest {
                    operation: Operation::OAuthToken,
                    message: String::new(),
                },
                Spent::No,
            ),
        ];
        for (error, expected) in table {
            assert_eq!(spent(&error), expected, "{error}");
        }
    }
}

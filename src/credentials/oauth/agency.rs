//! Agency (`userType: Company`) grants: the location token minted from the agency token, kept
//! with the grant and renewed on its own expiry; and when the credential is next due.

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::Api;

use super::leading;
use super::spend::superseded;
use super::token_writes::{Guard, Stored, persist, read_secret};
use super::{Inputs, Pending, Usable};
use crate::crd::connection::UserType;
use crate::crd::vocabulary::reason;
use crate::credentials::Problem;
use crate::credentials::failpoint::crash_point;
use crate::credentials::schedule::{self, RenewalPolicy};
use crate::ghl::ErrorClass;
use crate::ghl::models::LocationTokenGrant;
use crate::ghl::oauth::OAuthClient;
use secrecy::SecretString;

/// Agency grants: mint (or reuse) the location token; then the next renewal time.
pub(super) async fn finish(
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
            leading(input.fence, "minting tokens")?;
            // Stored only over the grant it was minted from: a refresh by another process
            // meanwhile wins, and the location token is minted again from its grant.
            let guard = Guard::Revision(usable.grant.revision);
            let grant = mint_location_token(input, &usable, !usable.rotated).await?;
            pending.unpersisted = Some((grant.clone(), guard.clone()));
            let current = read_secret(secrets, name).await?;
            let stored =
                persist(secrets, (name, input.connection), current, &grant, &guard).await?;
            pending.unpersisted = None;
            if let Stored::Superseded = stored {
                return Err(superseded(name));
            }
            usable.grant = grant;
            usable.rotated = true;
        }
    }
    crash_point("after-install");
    // A grant whose renewal failed is looked at again when it stops being served.
    let mut next = if usable.renewal_failed.is_some() {
        super::serve_end(&usable.grant)
    } else {
        schedule::next_renewal(renewal, usable.grant.expires_at, usable.grant.refreshed_at)
    };
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
    usable.renewal_adjusted =
        schedule::renewal_adjusted(renewal, usable.grant.expires_at, usable.grant.refreshed_at);
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

/// The grant with a new location token minted from its agency token; `bump` counts it as a
/// new revision (when the agency token itself did not change).
async fn mint_location_token(
    input: &Inputs<'_>,
    usable: &Usable,
    bump: bool,
) -> Result<crate::credentials::token_secret::StoredGrant, Problem> {
    let Some(company) = input.auth.company_id.clone() else {
        return Err(Problem::stalled(
            reason::INVALID_SPEC,
            "userType Company needs companyId".into(),
        ));
    };
    let minted = mint(
        input.oauth,
        &usable.grant.access_token,
        &company,
        &input.spec.location_id,
    )
    .await?;
    let mut grant = usable.grant.clone();
    grant.location_access_token = Some(minted.tokens.access_token);
    grant.location_expires_at = Some(schedule::expiry_of(input.now, minted.tokens.expires_in));
    if bump {
        grant.revision = grant.revision.saturating_add(1);
    }
    Ok(grant)
}

/// A location token minted from `agency_token`: GHL's refusal stops the connection (its
/// credentials are wrong), anything else is tried again.
pub(super) async fn mint(
    oauth: &OAuthClient,
    agency_token: &SecretString,
    company: &str,
    location: &str,
) -> Result<LocationTokenGrant, Problem> {
    oauth
        .location_token(agency_token, company, location)
        .await
        .map_err(|e| match e.class() {
            ErrorClass::Auth | ErrorClass::Terminal => Problem::refused(
                reason::CREDENTIALS_REJECTED,
                format!("GHL refused a location token for {location}: {e}"),
            ),
            _ => Problem::retry(
                reason::GHL_UNAVAILABLE,
                format!("minting a location token: {e}"),
                Duration::from_secs(10),
            ),
        })
}

//! Location tokens minted from an agency grant another connection holds (`auth.agencyGrant`):
//! one consent serves every sub-account of the agency. Only the agency's own connection
//! refreshes the agency token (its single-use refresh token is spent in one place); a
//! borrowing connection reads the agency token from the Secret the operator wrote for it and
//! mints its own location token into its own Secret. Minting spends nothing single-use, so a
//! crash at any point loses at most a minted token that expires unused.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client};

use super::Usable;
use super::agency::mint;
use super::leading;
use super::token_writes::{Guard, Holder, Stored, persist, read_secret, take};
use crate::crd::common::MAX_DURATION;
use crate::crd::connection::{AgencyGrantAuth, GhlConnectionSpec, Grantee, OAuthAuth, UserType};
use crate::crd::vocabulary::reason;
use crate::credentials::Problem;
use crate::credentials::schedule::{self, RenewalPolicy};
use crate::credentials::token_secret::{self, StoredGrant};
use crate::engine::fence::Fence;
use crate::ghl::oauth::OAuthClient;

/// What borrowing an agency grant needs.
pub struct BorrowInputs<'a> {
    pub client: &'a Client,
    pub oauth: &'a OAuthClient,
    pub namespace: &'a str,
    /// The borrowing connection: its name and whether it is the eldest naming its token Secret.
    pub holder: Holder<'a>,
    /// The borrowing connection's spec and its `auth.agencyGrant`.
    pub spec: &'a GhlConnectionSpec,
    pub auth: &'a AgencyGrantAuth,
    /// The agency connection's namespace and spec (`None`: it does not exist).
    pub agency_namespace: &'a str,
    pub agency: Option<&'a GhlConnectionSpec>,
    pub fence: &'a Fence,
    pub now: Timestamp,
}

/// Whether an agency grant whose connection is in `agency_namespace` and lists `grantees`
/// (`None`: the default) may be borrowed by a connection in `namespace` for `location`. Pure.
pub fn may_borrow(
    grantees: Option<&[Grantee]>,
    agency_namespace: &str,
    namespace: &str,
    location: &str,
) -> bool {
    match grantees {
        None => namespace == agency_namespace,
        Some(grantees) => grantees.iter().any(|g| {
            g.namespace == namespace
                && g.location_ids
                    .as_ref()
                    .is_none_or(|ids| ids.iter().any(|id| id == location))
        }),
    }
}

/// The agency grant `agency` (GhlConnection `name`, in `agency_namespace`) holds, checked
/// against the borrower in `namespace`. Pure.
pub fn agency_of<'a>(
    borrower: &GhlConnectionSpec,
    namespace: &str,
    (agency_namespace, name): (&str, &str),
    agency: Option<&'a GhlConnectionSpec>,
) -> Result<(&'a OAuthAuth, String), Problem> {
    let agency = agency.ok_or_else(|| {
        Problem::retry(
            reason::PROGRESSING,
            format!("waiting for GhlConnection {name}, which holds the agency grant"),
            Duration::from_secs(30),
        )
    })?;
    let auth = agency
        .auth
        .oauth
        .as_ref()
        .filter(|a| a.user_type == UserType::Company)
        .ok_or_else(|| {
            Problem::stalled(
                reason::INVALID_SPEC,
                format!(
                    "spec.auth.agencyGrant.connectionRef: GhlConnection {name} holds no agency \
                     grant (auth.oauth with userType: Company)"
                ),
            )
        })?;
    let company = auth.company_id.clone().ok_or_else(|| {
        Problem::stalled(
            reason::INVALID_SPEC,
            format!("GhlConnection {name} has userType Company but no companyId"),
        )
    })?;
    if !may_borrow(
        auth.grantees.as_deref(),
        agency_namespace,
        namespace,
        &borrower.location_id,
    ) {
        return Err(Problem::stalled(
            reason::NOT_A_GRANTEE,
            format!(
                "GhlConnection {agency_namespace}/{name} does not list namespace {namespace} (for \
                 location {}) in spec.auth.oauth.grantees; its owner must add it",
                borrower.location_id
            ),
        ));
    }
    if agency.base_url() != borrower.base_url() {
        // The agency token goes only back to where it came from.
        return Err(Problem::stalled(
            reason::INVALID_SPEC,
            format!(
                "spec.baseUrl differs from GhlConnection {name}'s: its agency token is sent \
                 only to its own baseUrl"
            ),
        ));
    }
    Ok((auth, company))
}

/// The borrowing connection's location token: the stored one while it is not due, else a new
/// one minted from the agency token and stored first.
pub async fn ensure(input: &BorrowInputs<'_>) -> Result<Usable, Problem> {
    let agency_name = &input.auth.connection_ref.name;
    let (agency_auth, company) = agency_of(
        input.spec,
        input.namespace,
        (input.agency_namespace, agency_name),
        input.agency,
    )?;
    let renewal = RenewalPolicy {
        renew_before: crate::crd::common::duration_field(
            input.auth.renew_before.as_ref(),
            "spec.auth.agencyGrant.renewBefore",
            schedule::DEFAULT_RENEW_BEFORE,
            Duration::ZERO,
            MAX_DURATION,
        )
        .map_err(|e| Problem::stalled(reason::INVALID_SPEC, e.to_string()))?,
        schedule: None,
    };
    let secrets: Api<Secret> = Api::namespaced(input.client.clone(), input.namespace);
    let own = &input.auth.token_secret_ref.name;
    let current = read_secret(&secrets, own).await?;
    let current = take(&secrets, own, current, input.holder).await?;
    let stored = current.as_ref().and_then(token_secret::read);
    if let Some(grant) = &stored
        && !schedule::refresh_due(&renewal, grant.expires_at, grant.refreshed_at, input.now)
    {
        return Ok(usable(grant.clone(), &renewal, false));
    }
    leading(input.fence, "minting tokens")?;
    let agency_secrets: Api<Secret> = Api::namespaced(input.client.clone(), input.agency_namespace);
    let agency_token = agency_token(&agency_secrets, agency_name, agency_auth, input.now).await?;
    let minted = mint(
        input.oauth,
        &agency_token,
        &company,
        &input.spec.location_id,
    )
    .await?;
    let grant = StoredGrant {
        access_token: minted.tokens.access_token,
        refresh_token: None,
        expires_at: schedule::expiry_of(input.now, minted.tokens.expires_in),
        scope: minted.tokens.scope,
        user_type: Some("Location".into()),
        revision: stored.as_ref().map_or(1, |g| g.revision.saturating_add(1)),
        refreshed_at: input.now,
        code_digest: None,
        previous_access_token: None,
        location_access_token: None,
        location_expires_at: None,
    };
    // Written only over the token it replaces (revision 0 never exists: a create only).
    let guard = Guard::Revision(stored.as_ref().map_or(0, |g| g.revision));
    match persist(
        &secrets,
        (own, input.holder.connection),
        current,
        &grant,
        &guard,
    )
    .await?
    {
        Stored::Written => Ok(usable(grant, &renewal, true)),
        Stored::Superseded => Err(Problem::retry(
            reason::PROGRESSING,
            format!("Secret {own} got a newer location token meanwhile; using it next"),
            Duration::from_secs(1),
        )),
    }
}

/// The agency's current access token, from the Secret the operator wrote for it.
async fn agency_token(
    secrets: &Api<Secret>,
    agency_name: &str,
    agency_auth: &OAuthAuth,
    now: Timestamp,
) -> Result<secrecy::SecretString, Problem> {
    let waiting = |why: &str| {
        Problem::retry(
            reason::PROGRESSING,
            format!("waiting for the agency grant of GhlConnection {agency_name}: {why}"),
            Duration::from_secs(10),
        )
    };
    let name = &agency_auth.token_secret_ref.name;
    let secret = read_secret(secrets, name)
        .await?
        .ok_or_else(|| waiting("no tokens yet"))?;
    // Only the token Secret the operator wrote for the agency connection is read: a
    // reference cannot lift another Secret.
    let holder = token_secret::holder(&secret);
    if !token_secret::is_ours(&secret) || holder.is_some_and(|h| h != agency_name) {
        return Err(waiting(
            "its token Secret was not written by the operator for it",
        ));
    }
    let grant = token_secret::read(&secret).ok_or_else(|| waiting("no tokens yet"))?;
    if grant.expires_at <= now {
        return Err(waiting("the agency token expired and is being refreshed"));
    }
    Ok(grant.access_token)
}

fn usable(grant: StoredGrant, renewal: &RenewalPolicy, rotated: bool) -> Usable {
    Usable {
        token: grant.access_token.clone(),
        next_renewal: schedule::next_renewal(renewal, grant.expires_at, grant.refreshed_at),
        renewal_adjusted: schedule::renewal_adjusted(renewal, grant.expires_at, grant.refreshed_at),
        grant,
        rotated,
        renewal_failed: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: serde_json::Value) -> GhlConnectionSpec {
        serde_json::from_value(json).unwrap()
    }

    fn agency(base: &str, user_type: &str, company: Option<&str>) -> GhlConnectionSpec {
        let mut oauth = serde_json::json!({"clientSecretRef": {"name": "app"},
            "tokenSecretRef": {"name": "agency-tokens"}, "userType": user_type});
        if let Some(company) = company {
            oauth["companyId"] = company.into();
        }
        spec(serde_json::json!({"locationId": "locA", "baseUrl": base, "auth": {"oauth": oauth}}))
    }

    #[test]
    fn only_an_agency_grant_for_the_same_base_url_is_borrowed() {
        let borrower = spec(
            serde_json::json!({"locationId": "locB", "baseUrl": "https://ghl.example",
            "auth": {"agencyGrant": {"connectionRef": {"name": "agency"}, "tokenSecretRef": {"name": "b"}}}}),
        );
        let cases = [
            (None, Some("waiting")),
            (
                Some(agency("https://ghl.example", "Location", Some("co"))),
                Some("no agency grant"),
            ),
            (
                Some(agency("https://ghl.example", "Company", None)),
                Some("no companyId"),
            ),
            (
                Some(agency("https://elsewhere.example", "Company", Some("co"))),
                Some("baseUrl"),
            ),
            (
                Some(agency("https://ghl.example", "Company", Some("co"))),
                None,
            ),
        ];
        for (agency, refused) in cases {
            let result = agency_of(&borrower, "crm", ("crm", "agency"), agency.as_ref());
            match (result, refused) {
                (Ok((_, company)), None) => assert_eq!(company, "co"),
                (Err(problem), Some(why)) => {
                    assert!(problem.message.contains(why), "{}", problem.message)
                }
                (result, expected) => panic!("{:?} vs {expected:?}", result.map(|r| r.1)),
            }
        }
    }

    #[test]
    fn an_agency_grant_serves_the_grantees_it_lists() {
        let grantee = |namespace: &str, locations: Option<&[&str]>| Grantee {
            namespace: namespace.into(),
            location_ids: locations.map(|l| l.iter().map(|s| (*s).to_owned()).collect()),
        };
        let listed = [
            grantee("tenant-a", None),
            grantee("tenant-b", Some(&["locB"])),
        ];
        // (grantees, borrower namespace, location, may borrow)
        let table = [
            (None, "agency", "locX", true),
            (None, "tenant-a", "locX", false),
            (Some(&listed[..]), "tenant-a", "locX", true),
            (Some(&listed[..]), "tenant-b", "locB", true),
            (Some(&listed[..]), "tenant-b", "locX", false),
            (Some(&listed[..]), "agency", "locX", false),
            (Some(&[][..]), "agency", "locX", false),
        ];
        for (grantees, namespace, location, expected) in table {
            assert_eq!(
                may_borrow(grantees, "agency", namespace, location),
                expected,
                "{namespace} {location}"
            );
        }
        let mut owner = agency("https://ghl.example", "Company", Some("co"));
        owner.auth.oauth.as_mut().unwrap().grantees = Some(listed.to_vec());
        let borrower = spec(
            serde_json::json!({"locationId": "locX", "baseUrl": "https://ghl.example",
            "auth": {"agencyGrant": {"connectionRef": {"name": "agency", "namespace": "agency"},
            "tokenSecretRef": {"name": "b"}}}}),
        );
        let refused = agency_of(&borrower, "tenant-b", ("agency", "agency"), Some(&owner))
            .map(|_| ())
            .unwrap_err();
        assert_eq!(refused.reason, reason::NOT_A_GRANTEE);
        assert!(agency_of(&borrower, "tenant-a", ("agency", "agency"), Some(&owner)).is_ok());
    }
}

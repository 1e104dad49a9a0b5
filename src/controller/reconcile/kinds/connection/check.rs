//! Checking a connection (network): its settings, its credential (a PIT or the OAuth
//! lifecycle, see [`super::credential`]), and one cheap request to GHL with it. The live client
//! is created or updated on the way, so policies use the new token at once.

use jiff::Timestamp;

use super::credential::{self, Resolved};
use super::export::{CATCH_UP_BOUNDS, CATCH_UP_DEFAULT};
use super::verdict::{Check, Finding, scopes_missing};
use crate::controller::context::Context;
use crate::controller::registry::clients::ConnectionKey;
use crate::crd::GhlConnection;
use crate::crd::common::{InvalidField, duration_field};
use crate::crd::vocabulary::reason;
use crate::credentials::Problem;
use crate::ghl::budget::BudgetConfig;
use crate::ghl::models::ListContactsQuery;
use crate::ghl::{ErrorClass, GhlApi};

/// `spec.export.catchUpInterval`, checked.
fn catch_up_interval(obj: &GhlConnection) -> Result<(), InvalidField> {
    let Some(export) = &obj.spec.export else {
        return Ok(());
    };
    duration_field(
        export.catch_up_interval.as_ref(),
        "spec.export.catchUpInterval",
        CATCH_UP_DEFAULT,
        CATCH_UP_BOUNDS.0,
        CATCH_UP_BOUNDS.1,
    )
    .map(drop)
}

/// Checks `obj`; the credential's facts come along when it could be resolved.
pub async fn check(
    obj: &GhlConnection,
    ctx: &Context,
    key: &ConnectionKey,
    now: Timestamp,
) -> (Check, Option<Resolved>) {
    let plain = |finding| Check {
        finding,
        next_look: ctx.config.connection_check_interval,
        rotation_due: None,
        renewal_adjusted: None,
        renewal_failed: None,
        scopes_missing: None,
    };
    let budget = match BudgetConfig::from_spec(obj.spec.rate_limit.as_ref())
        .and_then(|budget| credential::min_interval(obj).map(|_| budget))
        .and_then(|budget| catch_up_interval(obj).map(|_| budget))
    {
        Ok(budget) => budget,
        Err(invalid) => return (plain(Finding::InvalidSpec(invalid.to_string())), None),
    };
    let company = obj
        .spec
        .auth
        .oauth
        .as_ref()
        .is_some_and(|o| o.user_type == crate::crd::connection::UserType::Company);
    if obj.spec.provision.is_some() && !company {
        return (
            plain(Finding::InvalidSpec(
                "spec.provision needs an agency grant of its own (spec.auth.oauth with userType: Company)".into(),
            )),
            None,
        );
    }
    // The token goes only where the installer allows: nothing is read or sent otherwise.
    if let Err(why) = ctx.config.allowed_base_urls.check(obj.spec.base_url()) {
        let problem = Problem::stalled(
            reason::BASE_URL_NOT_ALLOWED,
            format!("spec.baseUrl: {why} (--allowed-base-url); no credential is sent there"),
        );
        if let Some(handle) = ctx.registry.clients.get(key) {
            handle.token.mark_unusable(problem.message.clone());
        }
        ctx.registry.clients.remove(key);
        return (plain(Finding::Credential(problem)), None);
    }
    let resolved = match credential::resolve(ctx, obj, now).await {
        Ok(resolved) => resolved,
        Err(problem) => {
            if problem.refused || problem.stalled {
                // Stop using the credential: policies pause instead of failing in a loop.
                if let Some(handle) = ctx.registry.clients.get(key) {
                    handle.token.mark_unusable(problem.message.clone());
                }
            }
            return (plain(Finding::Credential(problem)), None);
        }
    };
    let handle = match ctx
        .registry
        .clients
        .upsert(key, &obj.spec, budget, resolved.token.clone())
    {
        Ok(handle) => handle,
        Err(e) => return (plain(Finding::InvalidSpec(e.to_string())), None),
    };
    let probe = ListContactsQuery {
        limit: Some(1),
        ..ListContactsQuery::default()
    };
    let finding = match handle.client.list_contacts(&probe).await {
        Ok(_) => Finding::Accepted {
            location: obj.spec.location_id.clone(),
        },
        Err(e) if e.class() == ErrorClass::Auth => Finding::Refused(e.to_string()),
        Err(e) => Finding::Unreachable {
            rate_limited: e.class() == ErrorClass::RateLimited,
            retry_after: e.retry_after(),
            message: e.to_string(),
        },
    };
    let check = Check {
        finding,
        next_look: resolved.outlook.requeue,
        rotation_due: resolved.outlook.rotation_due.clone(),
        renewal_adjusted: resolved.outlook.renewal_adjusted.clone(),
        renewal_failed: resolved.outlook.renewal_failed.clone(),
        scopes_missing: obj
            .spec
            .auth
            .oauth
            .as_ref()
            .and_then(|oauth| scopes_missing(&oauth.scopes, &resolved.facts.scopes)),
    };
    (check, Some(resolved))
}

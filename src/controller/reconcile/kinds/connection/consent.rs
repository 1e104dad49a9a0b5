//! The consent link a connection without a usable grant publishes (`status.consent`): kept
//! while it is good for more than [`consent::REISSUE_BEFORE`], reissued before it expires.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use rand::RngExt;

use super::credential;
use crate::controller::context::Context;
use crate::crd::conditions::Wanted;
use crate::crd::connection::{ConsentStatus, DEFAULT_AUTHORIZATION_URL, GhlConnection, UserType};
use crate::crd::vocabulary::{condition, reason};
use crate::credentials::oauth::consent;

/// The reasons after which a person must consent (again).
pub fn needed(reason: &str) -> bool {
    [
        reason::CONSENT_REQUIRED,
        reason::REAUTHORIZATION_REQUIRED,
        reason::CONSENT_REFUSED,
        reason::AUTHORIZATION_CODE_INVALID,
    ]
    .contains(&reason)
}

fn served(ctx: &Context) -> bool {
    ctx.intake
        .callback_served
        .load(std::sync::atomic::Ordering::Relaxed)
}

/// `RedirectUriServed` for a connection that consents through the operator (an OAuth grant of
/// its own, no `authorizationCodeSecretRef`): whether a consent could come back. `None` for
/// the others.
pub fn redirect_condition(ctx: &Context, obj: &GhlConnection) -> Option<Wanted> {
    let auth = obj.spec.auth.oauth.as_ref()?;
    if auth.authorization_code_secret_ref.is_some() {
        return None;
    }
    Some(
        match consent::redirect_served(auth.redirect_uri.as_deref(), served(ctx)) {
            Ok(()) => Wanted::new(
                condition::REDIRECT_URI_SERVED,
                true,
                reason::CALLBACK_SERVED,
                "spec.auth.oauth.redirectUri is the operator's /oauth/callback, which it serves",
            ),
            Err(why) => Wanted::new(
                condition::REDIRECT_URI_SERVED,
                false,
                reason::REDIRECT_URI_NOT_SERVED,
                format!("{why}; no consent link is published until then"),
            ),
        },
    )
}

/// The link to publish for `obj` (its own OAuth grant) now, or why there is none.
pub async fn link(
    ctx: &Context,
    obj: &GhlConnection,
    previous: Option<&ConsentStatus>,
    now: Timestamp,
) -> Result<ConsentStatus, String> {
    let auth = obj
        .spec
        .auth
        .oauth
        .as_ref()
        .ok_or("not an OAuth connection")?;
    consent::redirect_served(auth.redirect_uri.as_deref(), served(ctx))?;
    if let Some(previous) = previous
        && !consent::due(previous.expires_at.as_ref().map(|t| t.0), now)
        && !used(ctx, obj, &previous.url).await
    {
        return Ok(previous.clone());
    }
    let client_id = credential::client_id(ctx, obj, auth)
        .await
        .map_err(|p| p.message)?;
    let nonce: String = {
        let bytes: [u8; 12] = rand::rng().random();
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    };
    let (state, expires_at) = consent::issue(
        &ctx.credentials.keys,
        (
            &obj.namespace().unwrap_or_default(),
            &obj.name_any(),
            obj.metadata.uid.as_deref().unwrap_or_default(),
        ),
        &nonce,
        now,
    );
    let url = consent::url(&consent::Request {
        authorization_url: auth
            .authorization_url
            .as_deref()
            .unwrap_or(DEFAULT_AUTHORIZATION_URL),
        client_id: &client_id,
        redirect_uri: auth.redirect_uri.as_deref().unwrap_or_default(),
        scopes: &auth.scopes,
        state: &state,
        company: auth.user_type == UserType::Company,
    })
    .map_err(|e| format!("spec.auth.oauth.authorizationUrl: {e}"))?;
    Ok(ConsentStatus {
        url,
        expires_at: Some(Time(expires_at)),
    })
}

/// Whether the link's state already brought a code (a state is good once: the next consent
/// needs a new link).
async fn used(ctx: &Context, obj: &GhlConnection, link: &str) -> bool {
    let Some(state) = url::Url::parse(link).ok().and_then(|u| {
        u.query_pairs()
            .find(|(k, _)| k == "state")
            .map(|(_, v)| v.into_owned())
    }) else {
        return true;
    };
    let uid = obj.metadata.uid.as_deref().unwrap_or_default();
    let secrets: kube::Api<k8s_openapi::api::core::v1::Secret> =
        kube::Api::namespaced(ctx.client.clone(), &obj.namespace().unwrap_or_default());
    let name = consent::code_secret_name(&obj.name_any(), uid);
    let digest = crate::engine::ledger::key_digest(&state);
    match secrets.get_opt(&name).await {
        Ok(Some(secret)) => secret
            .data
            .as_ref()
            .and_then(|d| d.get(consent::STATE_KEY))
            .is_some_and(|b| b.0 == digest.as_bytes()),
        Ok(None) => false,
        // Unknown: a new link is never wrong.
        Err(_) => true,
    }
}

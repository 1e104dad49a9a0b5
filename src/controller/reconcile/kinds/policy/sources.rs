//! Reading a policy's `contactsFrom` (network: the Kubernetes API, and the allowed HTTP
//! sources). What could not be read is said without echoing any of the object's or the
//! document's content.

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client};

use crate::controller::context::Context;
use crate::controller::object::ObjectKey;
use crate::crd::common::DurationString;
use crate::crd::contact_sync_policy::{ContactSource, ContactSyncPolicySpec, HttpSource};
use crate::engine::desired::SourceText;
use crate::refs::{self, RefError, SecretRole};
use crate::sources::fetch::headers_from;
use crate::sources::{DEFAULT_REFRESH, HttpSources};

/// The shortest and longest `refreshInterval`.
pub const REFRESH_BOUNDS: (Duration, Duration) =
    (Duration::from_secs(10), Duration::from_secs(30 * 86_400));

/// The text of every `contactsFrom` entry, in order, or why it could not be read.
pub async fn read(ctx: &Context, key: &ObjectKey, spec: &ContactSyncPolicySpec) -> Vec<SourceText> {
    let mut out = Vec::with_capacity(spec.contacts_from.len());
    for (index, source) in spec.contacts_from.iter().enumerate() {
        let text = match &source.http {
            Some(http) => {
                let refresh = refresh_of(source);
                fetched(&ctx.client, &ctx.sources, key, index, http, refresh).await
            }
            None => text_of(&ctx.client, &key.namespace, source).await,
        };
        out.push(SourceText {
            key: crate::sources::format_key(source),
            text,
            // A document's values never reach status either.
            sensitive: source.secret_ref.is_some() || source.http.is_some(),
        });
    }
    // Sources removed from the spec are not asked any more.
    ctx.sources.forget(key, spec.contacts_from.len());
    out
}

/// The source's `refreshInterval`, within [`REFRESH_BOUNDS`] (a value the API server's
/// pattern let through but out of bounds is clamped; junk is the default).
pub fn refresh_of(source: &ContactSource) -> Duration {
    source
        .refresh_interval
        .as_ref()
        .and_then(|d| DurationString::parse(d).ok())
        .unwrap_or(DEFAULT_REFRESH)
        .clamp(REFRESH_BOUNDS.0, REFRESH_BOUNDS.1)
}

async fn fetched(
    client: &Client,
    sources: &HttpSources<ObjectKey>,
    key: &ObjectKey,
    index: usize,
    http: &HttpSource,
    refresh: Duration,
) -> Result<String, RefError> {
    // Refused before anything else is read for it.
    sources
        .check(&http.url)
        .map_err(crate::sources::fetch::SourceError::Refused)?;
    let headers = match &http.headers_secret_ref {
        None => Default::default(),
        Some(r) => {
            let secrets: Api<Secret> = Api::namespaced(client.clone(), &key.namespace);
            let secret = refs::opted_in(&secrets, &r.name, SecretRole::Source)
                .await?
                .ok_or_else(|| RefError::Missing {
                    kind: "Secret",
                    name: r.name.clone(),
                })?;
            let data = secret
                .data
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, v.0));
            headers_from(&r.name, data)?
        }
    };
    let document = sources
        .read(key, index, &http.url, headers, refresh)
        .await?;
    Ok(document.to_string())
}

async fn text_of(
    client: &Client,
    namespace: &str,
    source: &ContactSource,
) -> Result<String, RefError> {
    match (&source.config_map_ref, &source.secret_ref) {
        (Some(r), _) => refs::config_map_key(client, namespace, &r.name, &r.key).await,
        (None, Some(r)) => {
            refs::secret_key(client, namespace, (&r.name, &r.key), SecretRole::Contacts)
                .await
                .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        }
        (None, None) => Err(RefError::NoRef),
    }
}

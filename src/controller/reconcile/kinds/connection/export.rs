//! A connection's change feed as its spec asks for it (`spec.export`): each sink's URL checked
//! against `--allowed-sink-url`, its signing secret read, and the live client the feed reads
//! GHL with (while the connection is ready).

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::{Api, ResourceExt};

use crate::controller::context::Context;
use crate::controller::registry::clients::{Clients, ConnectionKey};
use crate::crd::GhlConnection;
use crate::crd::common::duration_field;
use crate::crd::vocabulary::annotation;
use crate::feed::signature::SigningKey;
use crate::feed::{FeedConfig, SinkConfig};
use crate::ghl::GhlApi;

/// `spec.export.catchUpInterval` when none is given, and its bounds.
pub const CATCH_UP_DEFAULT: Duration = Duration::from_secs(300);
pub const CATCH_UP_BOUNDS: (Duration, Duration) =
    (Duration::from_secs(10), Duration::from_secs(86_400));

/// The feed `obj` asks for, checked: each sink's URL against the allowed ones and its signing
/// secret read. `Err` names an unusable field.
pub async fn feed_config(ctx: &Context, obj: &GhlConnection) -> Result<Option<FeedConfig>, String> {
    let Some(export) = &obj.spec.export else {
        return Ok(None);
    };
    let catch_up = duration_field(
        export.catch_up_interval.as_ref(),
        "spec.export.catchUpInterval",
        CATCH_UP_DEFAULT,
        CATCH_UP_BOUNDS.0,
        CATCH_UP_BOUNDS.1,
    )?;
    let secrets: Api<Secret> =
        Api::namespaced(ctx.client.clone(), &obj.namespace().unwrap_or_default());
    let mut sinks = Vec::with_capacity(export.sinks.len());
    for sink in &export.sinks {
        let ready = match ctx.config.allowed_sinks.check(&sink.url) {
            Err(why) => Err(format!("sink URL not allowed: {why} (--allowed-sink-url)")),
            Ok(()) => signing_key(&secrets, &sink.signing_secret_ref).await,
        };
        sinks.push(SinkConfig {
            name: sink.name.clone(),
            url: sink.url.clone(),
            include: sink.include.iter().copied().collect(),
            ready,
        });
    }
    Ok(Some(FeedConfig {
        location_id: obj.spec.location_id.clone(),
        sinks,
        catch_up,
        snapshot: obj.annotations().get(annotation::EXPORT_SNAPSHOT).cloned(),
    }))
}

async fn signing_key(
    secrets: &Api<Secret>,
    reference: &crate::crd::SecretKeyRef,
) -> Result<SigningKey, String> {
    let secret = secrets
        .get_opt(&reference.name)
        .await
        .map_err(|e| format!("cannot read Secret {}: {e}", reference.name))?
        .ok_or_else(|| format!("Secret {} does not exist", reference.name))?;
    let value = secret
        .data
        .as_ref()
        .and_then(|d| d.get(&reference.key))
        .ok_or_else(|| format!("Secret {} has no key {:?}", reference.name, reference.key))?;
    SigningKey::from_secret(&value.0).map_err(|e| format!("Secret {}: {e}", reference.name))
}

/// How a feed reaches GHL: the connection's live client, while the connection is ready.
pub fn client_of(clients: &Arc<Clients>, key: &ConnectionKey) -> crate::feed::Client {
    let registry = Arc::clone(clients);
    let key = key.clone();
    Arc::new(move || {
        registry
            .get(&key)
            .filter(|h| h.readiness().ready)
            .map(|h| Arc::new(h.client.clone()) as Arc<dyn GhlApi>)
    })
}

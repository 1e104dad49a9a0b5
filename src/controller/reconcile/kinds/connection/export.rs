//! A connection's change feed as its spec asks for it (`spec.export`): each sink's URL checked
//! against `--allowed-sink-url`, its signing secret read, and the live client the feed reads
//! GHL with (while the connection is ready).

use std::sync::Arc;
use std::time::Duration;

use kube::{Client, ResourceExt};

use crate::controller::context::Context;
use crate::controller::registry::clients::{Clients, ConnectionKey};
use crate::crd::common::{InvalidField, duration_field};
use crate::crd::export::MAX_SINKS;
use crate::crd::vocabulary::annotation;
use crate::crd::{GhlConnection, SecretKeyRef};
use crate::feed::signature::SigningKey;
use crate::feed::{FeedConfig, SinkConfig, SinkUnusable};
use crate::ghl::GhlApi;
use crate::refs::{self, SecretRole};

/// `spec.export.catchUpInterval` when none is given, and its bounds.
pub const CATCH_UP_DEFAULT: Duration = Duration::from_secs(300);
pub const CATCH_UP_BOUNDS: (Duration, Duration) =
    (Duration::from_secs(10), Duration::from_secs(86_400));

/// The feed `obj` asks for, checked: each sink's URL against the allowed ones and its signing
/// secret read. `Err` names an unusable field.
pub async fn feed_config(
    ctx: &Context,
    obj: &GhlConnection,
) -> Result<Option<FeedConfig>, InvalidField> {
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
    let namespace = obj.namespace().unwrap_or_default();
    let mut sinks = Vec::with_capacity(export.sinks.len().min(MAX_SINKS));
    for sink in export.sinks.iter().take(MAX_SINKS) {
        let ready = match ctx.config.allowed_sinks.check(&sink.url) {
            Err(why) => Err(SinkUnusable::NotAllowed(why)),
            Ok(()) => signing_key(&ctx.client, &namespace, &sink.signing_secret_ref).await,
        };
        sinks.push(SinkConfig {
            name: sink.name.clone(),
            url: sink.url.clone(),
            include: sink.include.iter().copied().collect(),
            ready,
        });
    }
    Ok(Some(FeedConfig {
        namespace: namespace.clone(),
        connection: obj.name_any(),
        location_id: obj.spec.location_id.clone(),
        sinks,
        catch_up,
        snapshot: obj.annotations().get(annotation::EXPORT_SNAPSHOT).cloned(),
    }))
}

async fn signing_key(
    client: &Client,
    namespace: &str,
    reference: &SecretKeyRef,
) -> Result<SigningKey, SinkUnusable> {
    let at = (reference.name.as_str(), reference.key.as_str());
    let value = refs::secret_key(client, namespace, at, SecretRole::FeedSigning).await?;
    SigningKey::from_secret(&value).map_err(|source| SinkUnusable::Key {
        name: reference.name.clone(),
        source,
    })
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

//! What accepted webhooks cause, and the connections' change feeds:
//!
//! - [`Intake`], what the webhook receiver hands events to: counted per connection; fed to the
//!   change feed of every connection on the location; queued as targeted reconciles for the
//!   policies that declare or own the contact; waking the TagRules on the location. It refuses
//!   (the receiver answers 429, which GHL retries) when the backlog is full or this process is
//!   not the leader.
//! - the feeds' configuration (from the connection reconciler, see [`super::feeds`]), and the
//!   task that writes `status.webhooks` and `status.export` under their own field manager.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Patch, PatchParams};
use kube::{Api, Resource, ResourceExt};
use serde_json::json;

use super::connections::ConnectionKey;
use super::context::Context;
use super::object::{Kind, ObjectKey};
use crate::crd::GhlConnection;
use crate::crd::common::duration_field;
use crate::crd::connection::UserType;
use crate::crd::vocabulary::{FIELD_MANAGER_EVENTS, annotation};
use crate::feed::signature::SigningKey;
use crate::feed::{FeedConfig, SinkConfig};
use crate::ghl::GhlApi;
use crate::webhook::{Change, Event, Part};

/// `spec.export.catchUpInterval` when none is given, and its bounds.
pub const CATCH_UP_DEFAULT: Duration = Duration::from_secs(300);
pub const CATCH_UP_BOUNDS: (Duration, Duration) =
    (Duration::from_secs(10), Duration::from_secs(86_400));
/// How often changed statuses are written.
const STATUS_EVERY: Duration = Duration::from_millis(1000);

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
pub fn client_of(ctx: &Context, key: &ConnectionKey) -> crate::feed::Client {
    let registry = Arc::clone(&ctx.connections);
    let key = key.clone();
    Arc::new(move || {
        registry
            .get(&key)
            .filter(|h| h.readiness().ready)
            .map(|h| Arc::new(h.client.clone()) as Arc<dyn GhlApi>)
    })
}

/// Writes changed `status.webhooks` / `status.export`, until `stop`.
pub async fn write_statuses(ctx: Arc<Context>, stop: impl Future<Output = ()>) {
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(STATUS_EVERY) => {},
            _ = &mut stop => return,
        }
        for ((namespace, name), status) in ctx.events.changed_statuses() {
            let api: Api<GhlConnection> = Api::namespaced(ctx.client.clone(), &namespace);
            let patch = json!({
                "apiVersion": GhlConnection::api_version(&()),
                "kind": GhlConnection::kind(&()),
                "status": status,
            });
            if let Err(error) = api
                .patch_status(
                    &name,
                    &PatchParams::apply(FIELD_MANAGER_EVENTS).force(),
                    &Patch::Apply(patch),
                )
                .await
            {
                tracing::debug!(%error, connection = %name, "could not write the webhook and feed status");
            }
        }
    }
}

/// What the webhook receiver hands events to.
pub struct Intake(pub Arc<Context>);

impl crate::webhook::Intake for Intake {
    fn knows(&self, location: &str) -> bool {
        self.0
            .stores
            .connections
            .state()
            .iter()
            .any(|c| c.spec.location_id == location)
    }

    fn knows_company(&self, company: &str) -> bool {
        !agency_connections(&self.0, company).is_empty()
    }

    fn elsewhere(&self, event: &Event) -> Option<String> {
        let ctx = &self.0;
        if matches!(event.change, Change::Installation { .. })
            || event.location_id.is_empty()
            || ctx.holds_location(&event.location_id)
        {
            return None;
        }
        ctx.shards.route(ctx.shards.of(&event.location_id))
    }

    fn admit(&self, event: Event, received: Instant) -> bool {
        let ctx = &self.0;
        if let Change::Installation { company_id } = &event.change {
            return installation(ctx, company_id);
        }
        let location = event.location_id.as_str();
        // Another replica's shard whose address is unknown: 429, and GHL's retry may reach
        // the replica that holds it.
        if !ctx.events.admits() || !ctx.holds_location(location) {
            return false;
        }
        ctx.events.webhook(location, Timestamp::now());
        let (contact, part, email, phone, deleted) = match &event.change {
            Change::Contact {
                id,
                part,
                email,
                phone,
            } => (id, *part, email.as_deref(), phone.as_deref(), false),
            Change::ContactDeleted { id } => (id, Part::Contact, None, None, true),
            Change::Unattributed | Change::Other | Change::Installation { .. } => return true,
        };
        ctx.events.feed(location, contact, &event.kind, deleted);
        let mut queued = 0;
        for policy in ctx
            .ownership
            .concerned(location, contact, part, email, phone)
        {
            if ctx.targets.add(policy, contact, part, received) {
                queued += 1;
            }
        }
        ctx.events.backlog.fetch_add(queued, Ordering::SeqCst);
        if matches!(part, Part::Contact | Part::Notes) {
            ctx.wake_all(Kind::TagRule, location);
        }
        true
    }
}

/// The agency (`userType: Company`) connections of `company`.
fn agency_connections(ctx: &Context, company: &str) -> Vec<ObjectKey> {
    ctx.stores
        .connections
        .state()
        .iter()
        .filter(|c| {
            c.spec.auth.oauth.as_ref().is_some_and(|o| {
                o.user_type == UserType::Company && o.company_id.as_deref() == Some(company)
            })
        })
        .map(|c| ObjectKey::of(Kind::GhlConnection, c.as_ref()))
        .collect()
}

/// The app was installed or uninstalled somewhere in `company`: the agency connections this
/// process holds list their installed locations again (nothing else happens). False when
/// another replica holds them all (GHL retries; the retry may reach it).
fn installation(ctx: &Context, company: &str) -> bool {
    let mut taken = false;
    for key in agency_connections(ctx, company) {
        if ctx.shards.holds(ctx.shard_of(&key)) {
            ctx.installed
                .forget(&(key.namespace.clone(), key.name.clone()));
            wake(ctx, key);
            taken = true;
        }
    }
    taken
}

/// The wake-up for `key`'s controller.
pub fn wake(ctx: &Context, key: ObjectKey) {
    let _ = ctx.wakes.send(key);
}

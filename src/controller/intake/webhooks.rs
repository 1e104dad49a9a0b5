//! What the webhook receiver hands verified webhooks to ([`Handler`]): each is counted per
//! connection, fed to the change feed of every connection on its location, queued as a
//! targeted reconcile for the policies that declare or own the contact, and wakes the TagRules
//! on the location. The handler refuses (the receiver answers 429, which GHL retries) when the
//! backlog is full or this process does not hold the location's shard; an install or
//! uninstall makes the agency connections list their installed locations again.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use jiff::Timestamp;

use crate::controller::context::Context;
use crate::controller::object::ObjectKey;
use crate::crd::Kind;
use crate::crd::connection::UserType;
use crate::webhook::{Admission, Change, Part, Webhook};

/// What the webhook receiver hands verified webhooks to.
pub struct Handler(pub Arc<Context>);

impl crate::webhook::Intake for Handler {
    fn knows(&self, location: &str) -> bool {
        self.0
            .registry
            .stores
            .connections
            .state()
            .iter()
            .any(|c| c.spec.location_id == location)
    }

    fn knows_company(&self, company: &str) -> bool {
        !agency_connections(&self.0, company).is_empty()
    }

    fn elsewhere(&self, webhook: &Webhook) -> Option<String> {
        let ctx = &self.0;
        if matches!(webhook.change, Change::Installation { .. })
            || webhook.location_id.is_empty()
            || ctx.registry.holds_location(&webhook.location_id)
        {
            return None;
        }
        let shards = &ctx.registry.shards;
        shards.route(shards.of(&webhook.location_id))
    }

    fn admit(&self, webhook: Webhook, received: Instant) -> Admission {
        let ctx = &self.0;
        if let Change::Installation { company_id } = &webhook.change {
            return installation(ctx, company_id).into();
        }
        let location = webhook.location_id.as_str();
        // Another replica's shard whose address is unknown: 429, and GHL's retry may reach
        // the replica that holds it.
        if !ctx.intake.feeds.admits() || !ctx.registry.holds_location(location) {
            return Admission::Refused;
        }
        ctx.intake.feeds.webhook(location, Timestamp::now());
        let (contact, part, email, phone, snapshot, deleted) = match &webhook.change {
            Change::Contact {
                id,
                part,
                email,
                phone,
                snapshot,
            } => (
                id,
                *part,
                email.as_deref(),
                phone.as_deref(),
                snapshot.as_deref(),
                false,
            ),
            Change::ContactDeleted { id } => (id, Part::Contact, None, None, None, true),
            Change::Unattributed | Change::Other | Change::Installation { .. } => {
                return Admission::Accepted;
            }
        };
        // Stored in each feed's outbox before GHL gets its 2xx; the repairs below need no
        // storage (a missed one is found by the next resync).
        let stored =
            ctx.intake
                .feeds
                .feed(location, contact, &webhook.kind, deleted, webhook.timestamp);
        let mut queued = 0;
        let concerned = ctx
            .registry
            .declarations
            .concerned(location, contact, part, email, phone);
        for policy in concerned {
            if ctx
                .intake
                .batches
                .add(policy, contact, part, snapshot, received)
            {
                queued += 1;
            }
        }
        ctx.intake.feeds.backlog.fetch_add(queued, Ordering::SeqCst);
        if matches!(part, Part::Contact | Part::Notes) {
            ctx.registry.wake_rules(location);
        }
        if stored.is_empty() {
            return Admission::Accepted;
        }
        Admission::Storing(Box::pin(async move {
            futures::future::join_all(stored)
                .await
                .into_iter()
                .all(|answer| answer == Ok(true))
        }))
    }
}

/// The agency (`userType: Company`) connections of `company`.
fn agency_connections(ctx: &Context, company: &str) -> Vec<ObjectKey> {
    ctx.registry
        .stores
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
        let registry = &ctx.registry;
        if registry.shards.holds(registry.shard_of(&key)) {
            registry
                .listings
                .forget(&(key.namespace.clone(), key.name.clone()));
            registry.wake(key);
            taken = true;
        }
    }
    taken
}

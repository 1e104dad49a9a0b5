//! ContactSyncPolicy through the [pipeline](crate::controller::reconcile::pipeline): its
//! records (inline and `contactsFrom`) are read and validated, and its declaration published,
//! before any GHL call; records a senior policy declares too are yielded to it; the engine
//! syncs the rest — every record on a full reconcile, the contacts a webhook named on a
//! targeted one. The ledger lives in Secrets the policy owns.

mod sources;

use std::collections::BTreeSet;

use async_trait::async_trait;
use kube::runtime::reflector::Store;

use crate::controller::context::Context;
use crate::controller::object::ObjectKey;
use crate::controller::reconcile::pipeline::{Findings, Reach, Synced, ledger_of};
use crate::controller::reconcile::verdict::{Facts, Outcome};
use crate::controller::registry::Stores;
use crate::controller::registry::reference::Usable;
use crate::crd::Kind;
use crate::crd::common::Mode;
use crate::crd::contact_sync_policy::{
    ContactSyncPolicy, ContactSyncPolicyStatus, RecordFailure, SyncCounts,
};
use crate::crd::vocabulary::reason;
use crate::engine::desired::{Desired, build};
use crate::engine::ledger::KeyDigest;
use crate::engine::ownership::{
    PolicyDeclaration, Seniority, Yielded, hold_yielded, removals, yield_messages,
    yielded_to_seniors,
};
use crate::engine::plan::render::summary_line;
use crate::engine::plan::{Plan, PlanOptions};
use crate::engine::state::StateStore;
use crate::engine::targeted::sync_contacts;
use crate::engine::{SyncError, SyncOutcome, sync_policy, sync_policy_owning};

/// Contacts read and written at once by a targeted reconcile.
const TARGETED_CONCURRENCY: usize = 32;
/// Failures listed in status (the count is in `counts.failed`).
const MAX_FAILURES: usize = 20;

/// The validated records, and those yielded to senior policies.
pub struct Prepared {
    desired: Desired,
    yielded: Vec<Yielded>,
}

/// What a sync found, for the status.
#[derive(Debug)]
pub struct Detail {
    counts: SyncCounts,
    failures: Vec<RecordFailure>,
}

#[async_trait]
impl Synced for ContactSyncPolicy {
    const KIND: Kind = Kind::ContactSyncPolicy;
    type Prepared = Prepared;
    type Detail = Detail;

    fn cache(stores: &Stores) -> &Store<Self> {
        &stores.policies
    }

    fn stand_down(&self, ctx: &Context, key: &ObjectKey, location: Option<&str>) {
        if let Some(location) = location {
            let nothing = Desired {
                match_by: self.spec.match_by,
                ..Desired::default()
            };
            let declaration = PolicyDeclaration::new(key.owner(), Seniority::of(self), &nothing);
            ctx.registry
                .declarations
                .declare_policy(location, key, declaration);
        }
    }

    async fn prepare(
        &self,
        ctx: &Context,
        key: &ObjectKey,
        location: Option<&str>,
    ) -> Result<Prepared, Outcome> {
        let texts = sources::read(ctx, key, &self.spec).await;
        let mut desired = match build(&self.spec, &texts) {
            Ok(desired) => desired,
            Err(e) => {
                self.stand_down(ctx, key, location);
                return Err(Outcome::InvalidSpec(e.to_string()));
            }
        };
        let Some(location) = location else {
            return Ok(Prepared {
                desired,
                yielded: Vec::new(),
            });
        };
        let me = Seniority::of(self);
        let declaration = PolicyDeclaration::new(key.owner(), me.clone(), &desired);
        let registry = &ctx.registry;
        registry
            .declarations
            .declare_policy(location, key, declaration);
        let waiting =
            registry.undeclared_policies(location, key, |other| Seniority::of(other) < me);
        if !waiting.is_empty() {
            let names: Vec<String> = waiting.iter().map(ObjectKey::owner).collect();
            return Err(Outcome::WaitingForOwners(format!(
                "waiting for older policies on the location to declare their contacts: {}",
                names.join(", ")
            )));
        }
        let seniors = registry.policy_declarations(location, key);
        let yielded = yielded_to_seniors(&me, &desired, &seniors);
        hold_yielded(&mut desired, &yielded);
        Ok(Prepared { desired, yielded })
    }

    async fn sync(
        &self,
        ctx: &Context,
        key: &ObjectKey,
        prepared: Prepared,
        connection: &Usable,
        reach: &Reach,
        approved: Option<&str>,
    ) -> Result<Findings<Detail>, SyncError> {
        let store = ledger_of(ctx, self);
        let mut options = ctx.sync_options(self.spec.mode, key);
        let api = &connection.handle.client;
        let plan_options = PlanOptions::for_spec(&self.spec);
        let declarations = &ctx.registry.declarations;
        let outcome = match reach {
            Reach::Full => {
                options.approved = approved.map(str::to_owned);
                let deep = ctx.runtime.deep_resync(key);
                options.observe.deep = deep;
                let (outcome, owned) =
                    sync_policy_owning(api, &store, prepared.desired, plan_options, options)
                        .await?;
                declarations.set_owned(key, owned);
                declarations.set_removals(key, removals(outcome.plan()));
                log_plan(key, deep, outcome.plan());
                outcome
            }
            Reach::Contacts(scope) => {
                // A handful of contacts, each a few calls: read and write them all at once
                // (the connection's budget still paces them).
                options.observe.concurrency = TARGETED_CONCURRENCY;
                options.apply.concurrency = TARGETED_CONCURRENCY.max(options.apply.concurrency);
                let (outcome, owned) =
                    sync_contacts(api, &store, prepared.desired, scope, plan_options, options)
                        .await?;
                declarations.add_owned(key, &owned);
                outcome
            }
        };
        Ok(findings(outcome, &prepared.yielded))
    }

    async fn remove_owned(
        &self,
        ctx: &Context,
        key: &ObjectKey,
        connection: &Usable,
    ) -> Result<SyncOutcome<()>, SyncError> {
        let store = ledger_of(ctx, self);
        // Contacts another policy on the location declares stay (only forgotten with us).
        let others = ctx.registry.policy_declarations(&connection.location, key);
        let held: BTreeSet<KeyDigest> = store
            .load()
            .await?
            .contacts
            .values()
            .map(|owned| owned.key)
            .filter(|k| others.iter().any(|o| o.declares_ledger_key(k)))
            .collect();
        let nothing = Desired {
            match_by: self.spec.match_by,
            held,
            ..Desired::default()
        };
        // Deleting everything it created is still bounded by `safety`: a larger plan waits.
        let plan_options = PlanOptions {
            prune: true,
            ..PlanOptions::for_spec(&self.spec)
        };
        let outcome = sync_policy(
            &connection.handle.client,
            &store,
            nothing,
            plan_options,
            ctx.sync_options(Mode::Apply, key),
        )
        .await?;
        Ok(outcome.map(drop))
    }

    fn record(status: &mut ContactSyncPolicyStatus, detail: &Detail) {
        status.counts = Some(detail.counts.clone());
        status.failures.clone_from(&detail.failures);
    }
}

fn log_plan(key: &ObjectKey, deep: bool, plan: &Plan) {
    let summary = plan.summary();
    tracing::info!(
        object = %key,
        deep,
        create = summary.create,
        update = summary.update,
        delete = summary.delete,
        adopt = summary.adopt,
        drifted = plan.counts().drifted,
        "planned"
    );
}

/// What the verdict and the status need of a sync's outcome.
fn findings(outcome: SyncOutcome<Plan>, yielded: &[Yielded]) -> Findings<Detail> {
    let plan = outcome.plan();
    let counts = plan.counts();
    let mut failures = plan.failures.clone();
    failures.extend(
        outcome
            .report()
            .into_iter()
            .flat_map(|r| r.failures.clone()),
    );
    let failed = failures.len() as u32;
    failures.truncate(MAX_FAILURES);
    let facts = Facts {
        summary: summary_line(plan),
        standing: format!("{} contact(s) in sync", counts.desired),
        refused: plan.failures.len() as u32,
        sources_refused: plan
            .failures
            .iter()
            .filter(|f| f.reason == reason::SOURCE_NOT_ALLOWED)
            .map(|f| format!("{}: {}", f.record, f.message))
            .collect(),
        drifted: Some(counts.drifted),
        conflicts: yield_messages(yielded),
        conflict_reason: reason::RECORD_CONFLICT,
    };
    Findings {
        plan: plan.summary(),
        detail: Detail {
            counts: SyncCounts { failed, ..counts },
            failures,
        },
        outcome: outcome.map(|_| facts),
    }
}

//! Running a workspace: every policy (declared first, so each knows its seniors' records),
//! then every rule against what the policies and the other rules want — the ownership
//! decisions of [`crate::engine::ownership`], as the operator makes them.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde_json::json;

use super::report::{Report, plan_json, render_rule};
use super::{Refresh, Workspace, redact};
use crate::cli::manifests::ObjectKey;
use crate::crd::common::Mode;
use crate::crd::contact_sync_policy::RecordFailure;
use crate::crd::tag_rule::TagRule;
use crate::engine::desired::{Desired, build};
use crate::engine::ledger::Ledger;
use crate::engine::ownership::{
    PolicyDeclaration, RuleDeclaration, Seniority, TagDeclarations, hold_yielded, removals,
    yield_messages, yielded_to_seniors,
};
use crate::engine::plan::PlanOptions;
use crate::engine::plan::render::{RenderOptions, render};
use crate::engine::settle::Settle;
use crate::engine::state::StateStore;
use crate::engine::tag_rule::{
    RuleItems, RuleObservation, observe_rule, rule_declaration, settle_rule,
};
use crate::engine::{SyncOptions, SyncOutcome, sync_policy};
use crate::ghl::{GhlApi, GhlClient};

/// Progress callback: GHL writes so far.
type Progress = Option<Arc<dyn Fn(u64) + Send + Sync>>;

/// What one policy declares, on which location.
struct Declared {
    key: ObjectKey,
    location: Option<String>,
    declaration: Arc<PolicyDeclaration>,
    /// Taken when the policy runs.
    desired: Option<Desired>,
}

/// A rule after observing.
struct Observed<'a> {
    heading: String,
    location: Option<String>,
    declaration: Arc<RuleDeclaration>,
    client: &'a GhlClient,
    store: Arc<dyn StateStore>,
    ledger: Ledger,
    rule: &'a TagRule,
    seen: RuleObservation,
}

/// The declarations of the policies on the same location as `declared[i]`, but it.
fn neighbours(declared: &[Declared], i: usize) -> Vec<Arc<PolicyDeclaration>> {
    let location = &declared[i].location;
    declared
        .iter()
        .enumerate()
        .filter(|(j, d)| *j != i && d.location.is_some() && d.location == *location)
        .map(|(_, d)| Arc::clone(&d.declaration))
        .collect()
}

/// `mode`, unless the object itself says `Plan`.
fn effective(mode: Mode, own: Mode) -> Mode {
    if own == Mode::Plan { Mode::Plan } else { mode }
}

impl Workspace {
    /// Plans (and in `Apply` mode applies) every policy, then every rule.
    pub async fn run(&self, mode: Mode, progress: Progress) -> Vec<Report> {
        let (mut declared, mut reports) = self.declare_all().await;
        for heading in &self.outside {
            let namespace = heading
                .split_once(' ')
                .and_then(|(_, key)| key.split_once('/'))
                .map_or("", |(ns, _)| ns);
            reports.push(Report::new(heading.clone()).failed(format!(
                "not planned: namespace {namespace} was not named with --namespace (nothing of it was read from the cluster)"
            )));
        }
        let mut policy_contacts: BTreeMap<ObjectKey, BTreeSet<String>> = BTreeMap::new();
        for i in 0..declared.len() {
            let report = self
                .run_policy(&mut declared, i, mode, &progress, &mut policy_contacts)
                .await;
            reports.push(report);
        }
        reports.extend(self.run_rules(mode, &declared, &policy_contacts).await);
        reports
    }

    fn render_options(&self) -> RenderOptions {
        RenderOptions {
            show_sensitive: self.args.show_sensitive,
        }
    }

    /// Every policy's declaration (or why its spec is invalid).
    async fn declare_all(&self) -> (Vec<Declared>, Vec<Report>) {
        let mut declared = Vec::new();
        let mut reports = Vec::new();
        for (key, policy) in &self.manifests.policies {
            let (namespace, name) = key;
            let heading = format!("ContactSyncPolicy {namespace}/{name}");
            match build(&policy.spec, &self.sources(key, policy).await) {
                Ok(desired) => {
                    let declaration =
                        PolicyDeclaration::new(heading, Seniority::of(policy), &desired);
                    declared.push(Declared {
                        key: (namespace.clone(), name.clone()),
                        location: self.location(namespace, &policy.spec.connection_ref),
                        declaration: Arc::new(declaration),
                        desired: Some(desired),
                    });
                }
                Err(e) => reports.push(Report::new(heading).failed(format!("invalid spec: {e}"))),
            }
        }
        (declared, reports)
    }

    /// Runs `declared[i]`: its records less those its seniors declare, then notes what its
    /// plan removes (for the rules) and which contacts it manages (for `policyRef` rules).
    async fn run_policy(
        &self,
        declared: &mut [Declared],
        i: usize,
        mode: Mode,
        progress: &Progress,
        policy_contacts: &mut BTreeMap<ObjectKey, BTreeSet<String>>,
    ) -> Report {
        let key = declared[i].key.clone();
        let policy = &self.manifests.policies[&key];
        let heading = declared[i].declaration.owner.clone();
        let mut desired = declared[i].desired.take().unwrap_or_default();
        let yielded =
            yielded_to_seniors(&Seniority::of(policy), &desired, &neighbours(declared, i));
        hold_yielded(&mut desired, &yielded);
        let report = Report::new(heading.clone());
        let client = match self.client(&key.0, &policy.spec.connection_ref) {
            Ok(c) => c,
            Err(e) => return report.failed(e.to_string()),
        };
        let store = self.store(&format!("{}/ContactSyncPolicy/{}", key.0, key.1));
        let mut options =
            SyncOptions::new(effective(mode, policy.spec.mode), jiff::Timestamp::now());
        options.observe.deep = self.args.refresh == Refresh::Full;
        options.apply.concurrency = self.args.concurrency;
        options.apply.progress = progress.clone();
        let plan_options = PlanOptions::for_spec(&policy.spec);
        let outcome =
            match sync_policy(client, store.as_ref(), desired, plan_options, options).await {
                Ok(outcome) => outcome,
                Err(e) => return report.failed(e.to_string()),
            };
        let ledger = store.load().await.unwrap_or_default();
        policy_contacts.insert(
            key,
            ledger.contacts.keys().map(|id| id.to_string()).collect(),
        );
        let plan = outcome.plan();
        let mut declaration = PolicyDeclaration::clone(&declared[i].declaration);
        declaration.set_removing(removals(plan));
        declared[i].declaration = Arc::new(declaration);

        let mut failures: Vec<RecordFailure> = plan.failures.clone();
        let hidden;
        let (shown, summary) = if self.args.shows_ghl_values() {
            (plan, plan.summary())
        } else {
            hidden = redact::policy_plan(plan);
            (&hidden, redact::summary(plan))
        };
        let mut text = render(&heading, shown, self.render_options());
        for conflict in yield_messages(&yielded) {
            text.push_str(&format!("  ! conflict: {conflict}\n"));
        }
        let mut report = report;
        if let Some(applied) = outcome.report() {
            failures.extend(applied.failures.clone());
            report.writes = applied.writes;
            for f in &applied.failures {
                text.push_str(&format!("  ! {}: {} ({})\n", f.record, f.message, f.reason));
            }
        }
        if policy.spec.mode == Mode::Plan && mode == Mode::Apply {
            text.push_str("  (mode: Plan — not applied)\n");
        }
        report.text = text;
        report.json = plan_json(&heading, shown, &summary, &failures, self.render_options());
        report.changes = !Settle::is_empty(plan);
        report.failures = failures.len();
        report.blocked = matches!(outcome, SyncOutcome::Blocked { .. });
        report
    }

    /// Every rule: all observed first (each publishes its declaration), then each settled against
    /// the policies' declarations and the other rules' declared on its location.
    async fn run_rules(
        &self,
        mode: Mode,
        declared: &[Declared],
        policy_contacts: &BTreeMap<ObjectKey, BTreeSet<String>>,
    ) -> Vec<Report> {
        let (observed, mut reports) = self.observe_rules(policy_contacts).await;
        for rule in &observed {
            let declared = TagDeclarations {
                policies: declared
                    .iter()
                    .filter(|d| d.location == rule.location)
                    .map(|d| Arc::clone(&d.declaration))
                    .collect(),
                rules: observed
                    .iter()
                    .filter(|o| o.heading != rule.heading && o.location == rule.location)
                    .map(|o| Arc::clone(&o.declaration))
                    .collect(),
            };
            reports.push(self.settle(rule, &declared, mode).await);
        }
        reports
    }

    async fn observe_rules(
        &self,
        policy_contacts: &BTreeMap<ObjectKey, BTreeSet<String>>,
    ) -> (Vec<Observed<'_>>, Vec<Report>) {
        let mut observed = Vec::new();
        let mut reports = Vec::new();
        for ((namespace, name), rule) in &self.manifests.rules {
            let heading = format!("TagRule {namespace}/{name}");
            let client = match self.client(namespace, &rule.spec.connection_ref) {
                Ok(c) => c,
                Err(e) => {
                    reports.push(Report::new(heading).failed(e.to_string()));
                    continue;
                }
            };
            let store = self.store(&format!("{namespace}/TagRule/{name}"));
            let ledger = match store.load().await {
                Ok(l) => l,
                Err(e) => {
                    reports.push(Report::new(heading).failed(e.to_string()));
                    continue;
                }
            };
            let scope = rule.spec.selector.policy_ref.as_ref().map(|p| {
                policy_contacts
                    .get(&(namespace.clone(), p.name.clone()))
                    .cloned()
                    .unwrap_or_default()
            });
            let concurrency = self.args.concurrency;
            match observe_rule(client, &rule.spec, &ledger, scope.as_ref(), concurrency).await {
                Ok(seen) => observed.push(Observed {
                    declaration: Arc::new(rule_declaration(&heading, &rule.spec, &seen)),
                    location: self.location(namespace, &rule.spec.connection_ref),
                    heading,
                    client,
                    store,
                    ledger,
                    rule,
                    seen,
                }),
                Err(e) => reports.push(Report::new(heading).failed(e.to_string())),
            }
        }
        (observed, reports)
    }

    async fn settle(&self, rule: &Observed<'_>, declared: &TagDeclarations, mode: Mode) -> Report {
        let mut report = Report::new(rule.heading.clone());
        let items = match RuleItems::of(&rule.rule.spec) {
            Ok(items) => items,
            Err(e) => return report.failed(e),
        };
        let outcome = settle_rule(
            rule.client as &dyn GhlApi,
            rule.store.as_ref(),
            rule.ledger.clone(),
            &rule.rule.spec,
            &items,
            &rule.seen,
            declared,
            &SyncOptions::new(effective(mode, rule.rule.spec.mode), jiff::Timestamp::now()),
        )
        .await;
        let outcome = match outcome {
            Ok(outcome) => outcome,
            Err(e) => return report.failed(e.to_string()),
        };
        let hidden;
        let plan = if self.args.shows_ghl_values() {
            outcome.plan()
        } else {
            hidden = redact::rule_plan(outcome.plan());
            &hidden
        };
        report.text = render_rule(&rule.heading, plan);
        report.json = json!({"name": rule.heading, "matched": plan.matched, "compliant": plan.compliant,
                             "pending": plan.pending, "conflicted": plan.conflicted,
                             "conflicts": plan.conflicts, "keptAsCreated": plan.kept, "changes": plan.changes});
        report.changes = !Settle::is_empty(plan);
        if let Some(applied) = outcome.report() {
            report.writes = applied.writes;
            report.failures = applied.failures.len();
            for f in &applied.failures {
                report
                    .text
                    .push_str(&format!("  ! {}: {}\n", f.record, f.message));
            }
        }
        report
    }
}

//! What the two owner kinds (ContactSyncPolicy and TagRule) have in common: the spec fields
//! that say where and how they act, and the status fields every owner reports. The reconcile
//! pipeline and the triggers are written once against these traits.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use super::common::{ConnectionRef, DeletionPolicy, DurationString, Mode, PlanSummary};
use super::contact_sync_policy::{ContactSyncPolicy, ContactSyncPolicyStatus};
use super::tag_rule::{TagRule, TagRuleStatus};

/// A digest of a spec as the operator's types serialize it: what the admission webhook's
/// author stamp is bound to (the webhook reads specs through the same types).
pub fn spec_digest<S: serde::Serialize>(spec: &S) -> String {
    use sha2::Digest;
    let bytes = serde_json::to_vec(spec).unwrap_or_default();
    sha2::Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The spec fields every owner has.
#[derive(Clone, Copy, Debug)]
pub struct OwnerSpec<'a> {
    pub connection_ref: &'a ConnectionRef,
    pub mode: Mode,
    pub deletion_policy: DeletionPolicy,
    pub resync_interval: Option<&'a DurationString>,
}

/// A ContactSyncPolicy or a TagRule.
pub trait Owner: kube::Resource<DynamicType = ()> + Clone + 'static {
    type Status: OwnerStatus;

    fn owner_spec(&self) -> OwnerSpec<'_>;
    fn owner_status(&self) -> Option<&Self::Status>;
    /// [`spec_digest`] of the whole spec.
    fn spec_digest(&self) -> String;

    fn connection_ref(&self) -> &ConnectionRef {
        self.owner_spec().connection_ref
    }

    /// The conditions of the current status.
    fn conditions(&self) -> &[Condition] {
        self.owner_status().map_or(&[], OwnerStatus::conditions)
    }

    /// The plan the current status records.
    fn recorded_plan(&self) -> Option<&PlanSummary> {
        self.owner_status().and_then(OwnerStatus::plan)
    }
}

/// The status fields every owner reports.
pub trait OwnerStatus: Default + Clone + serde::Serialize + Send + Sync {
    fn conditions(&self) -> &[Condition];
    fn plan(&self) -> Option<&PlanSummary>;
    /// Records the generation observed and the conditions now.
    fn observed(&mut self, generation: Option<i64>, conditions: Vec<Condition>);
    /// Records a sync that ran at `at` and its plan (`succeeded`: it reached the desired state).
    fn synced(&mut self, plan: PlanSummary, at: Time, succeeded: bool);
}

impl Owner for ContactSyncPolicy {
    type Status = ContactSyncPolicyStatus;

    fn owner_spec(&self) -> OwnerSpec<'_> {
        let spec = &self.spec;
        OwnerSpec {
            connection_ref: &spec.connection_ref,
            mode: spec.mode,
            deletion_policy: spec.deletion_policy,
            resync_interval: spec.resync_interval.as_ref(),
        }
    }

    fn owner_status(&self) -> Option<&ContactSyncPolicyStatus> {
        self.status.as_ref()
    }

    fn spec_digest(&self) -> String {
        spec_digest(&self.spec)
    }
}

impl OwnerStatus for ContactSyncPolicyStatus {
    fn conditions(&self) -> &[Condition] {
        &self.conditions
    }

    fn plan(&self) -> Option<&PlanSummary> {
        self.plan.as_ref()
    }

    fn observed(&mut self, generation: Option<i64>, conditions: Vec<Condition>) {
        self.observed_generation = generation;
        self.conditions = conditions;
    }

    fn synced(&mut self, plan: PlanSummary, at: Time, succeeded: bool) {
        self.plan = Some(plan);
        if succeeded {
            self.last_successful_sync_time = Some(at.clone());
        }
        self.last_sync_time = Some(at);
    }
}

impl Owner for TagRule {
    type Status = TagRuleStatus;

    fn owner_spec(&self) -> OwnerSpec<'_> {
        let rule = &self.spec;
        OwnerSpec {
            mode: rule.mode,
            deletion_policy: rule.deletion_policy,
            connection_ref: &rule.connection_ref,
            resync_interval: rule.resync_interval.as_ref(),
        }
    }

    fn owner_status(&self) -> Option<&TagRuleStatus> {
        self.status.as_ref()
    }

    fn spec_digest(&self) -> String {
        spec_digest(&self.spec)
    }
}

impl OwnerStatus for TagRuleStatus {
    fn conditions(&self) -> &[Condition] {
        &self.conditions
    }

    fn plan(&self) -> Option<&PlanSummary> {
        self.plan.as_ref()
    }

    fn observed(&mut self, generation: Option<i64>, conditions: Vec<Condition>) {
        (self.observed_generation, self.conditions) = (generation, conditions);
    }

    fn synced(&mut self, plan: PlanSummary, at: Time, _succeeded: bool) {
        (self.plan, self.last_sync_time) = (Some(plan), Some(at));
    }
}

//! One sync of a ContactSyncPolicy: load the ledger, observe, plan, and — when the mode and
//! the safety limits allow — apply, then compact the state. The outcome says which of those
//! happened; [`decide`] is the one place that chooses.

use jiff::Timestamp;

use crate::engine::apply::{ApplyError, ApplyOptions, ApplyReport, apply};
use crate::engine::desired::Desired;
use crate::engine::observe::{ObserveOptions, observe};
use crate::engine::ownership::OwnedIds;
use crate::engine::plan::{Plan, PlanOptions, plan};
use crate::engine::state::{StateError, StateStore};
use crate::ghl::{GhlApi, GhlError};

pub use crate::crd::common::Mode;

/// How to run a sync.
#[derive(Clone)]
pub struct SyncOptions {
    pub mode: Mode,
    /// The hash of a plan approved to be applied once (`status.plan.hash`): a plan with this
    /// hash is applied whatever `mode` and the safety limits say.
    pub approved: Option<String>,
    pub observe: ObserveOptions,
    pub apply: ApplyOptions,
}

impl SyncOptions {
    pub fn new(mode: Mode, now: Timestamp) -> Self {
        Self {
            mode,
            approved: None,
            observe: ObserveOptions::new(now),
            apply: ApplyOptions::new(now),
        }
    }
}

/// What a sync did, with the plan it computed (a ContactSyncPolicy's [`Plan`], or a TagRule's
/// plan: both kinds share the outcome, and the controllers one verdict on it).
#[derive(Debug)]
pub enum SyncOutcome<P> {
    /// Nothing to change: GHL matches the declared state.
    InSync { plan: P },
    /// Changes are pending and `mode: Plan` holds them back.
    Planned { plan: P },
    /// A safety limit holds the plan back.
    Blocked { plan: P, reason: String },
    /// The plan was applied; records that failed are in the report.
    Applied { plan: P, report: ApplyReport },
}

impl<P> SyncOutcome<P> {
    pub fn plan(&self) -> &P {
        match self {
            Self::InSync { plan }
            | Self::Planned { plan }
            | Self::Blocked { plan, .. }
            | Self::Applied { plan, .. } => plan,
        }
    }

    pub fn into_plan(self) -> P {
        match self {
            Self::InSync { plan }
            | Self::Planned { plan }
            | Self::Blocked { plan, .. }
            | Self::Applied { plan, .. } => plan,
        }
    }

    pub fn report(&self) -> Option<&ApplyReport> {
        match self {
            Self::Applied { report, .. } => Some(report),
            _ => None,
        }
    }

    /// The same outcome over something derived from the plan.
    pub fn map<Q>(self, f: impl FnOnce(P) -> Q) -> SyncOutcome<Q> {
        match self {
            Self::InSync { plan } => SyncOutcome::InSync { plan: f(plan) },
            Self::Planned { plan } => SyncOutcome::Planned { plan: f(plan) },
            Self::Blocked { plan, reason } => SyncOutcome::Blocked {
                plan: f(plan),
                reason,
            },
            Self::Applied { plan, report } => SyncOutcome::Applied {
                plan: f(plan),
                report,
            },
        }
    }
}

/// What to do with a plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Nothing to do.
    InSync,
    /// Report it only (`mode: Plan`).
    Report,
    /// Hold it back: a safety limit.
    Block(String),
    Apply,
}

/// Decides what a sync does with its plan: an empty plan is in sync; an approved plan (its
/// hash approved) is applied; `mode: Plan` only reports (a plan over the limits too: it is
/// not going to be applied); a plan over a safety limit waits; anything else is applied.
pub fn decide(mode: Mode, empty: bool, blocked: Option<&str>, approved: bool) -> Decision {
    match (empty, mode, blocked) {
        (true, _, _) => Decision::InSync,
        (false, _, _) if approved => Decision::Apply,
        (false, Mode::Plan, _) => Decision::Report,
        (false, Mode::Apply, Some(reason)) => Decision::Block(reason.to_owned()),
        (false, Mode::Apply, None) => Decision::Apply,
    }
}

/// Why a sync could not complete.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// Reading GHL failed (classified by the error).
    #[error(transparent)]
    Ghl(#[from] GhlError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Apply(#[from] ApplyError),
}

impl SyncError {
    /// A write refused by the fence: this process no longer held the Lease behind it.
    pub fn is_fenced(&self) -> bool {
        match self {
            Self::State(e) => e.is_fenced(),
            Self::Apply(ApplyError::Fenced) => true,
            Self::Apply(ApplyError::State(e)) => e.is_fenced(),
            _ => false,
        }
    }
}

/// Runs one sync of a policy over its validated `desired` state.
pub async fn sync_policy(
    api: &dyn GhlApi,
    store: &dyn StateStore,
    desired: Desired,
    plan_options: PlanOptions,
    options: SyncOptions,
) -> Result<SyncOutcome<Plan>, SyncError> {
    sync_policy_owning(api, store, desired, plan_options, options)
        .await
        .map(|(outcome, _)| outcome)
}

/// [`sync_policy`], also telling which contacts the policy's ledger holds afterwards.
pub async fn sync_policy_owning(
    api: &dyn GhlApi,
    store: &dyn StateStore,
    mut desired: Desired,
    plan_options: PlanOptions,
    options: SyncOptions,
) -> Result<(SyncOutcome<Plan>, OwnedIds), SyncError> {
    crate::engine::custom_fields::resolve_keys(api, &mut desired).await?;
    let mut ledger = store.load().await?;
    let observed = observe(api, &desired, &ledger, options.observe).await?;
    let plan = plan(&desired, &observed, &ledger, plan_options);
    // The plan carries what applying needs; the declared records can go (memory at 100k).
    let match_by = desired.match_by;
    drop(desired);
    let approved = options
        .approved
        .as_deref()
        .is_some_and(|hash| hash == plan.hash());
    let outcome = match decide(
        options.mode,
        plan.is_empty(),
        plan.blocked.as_deref(),
        approved,
    ) {
        Decision::InSync => SyncOutcome::InSync { plan },
        Decision::Report => SyncOutcome::Planned { plan },
        Decision::Block(reason) => SyncOutcome::Blocked { plan, reason },
        Decision::Apply => {
            let report = apply(
                api,
                store,
                &mut ledger,
                &plan,
                &observed,
                match_by,
                options.apply,
            )
            .await?;
            store.compact(&ledger).await?;
            SyncOutcome::Applied { plan, report }
        }
    };
    Ok((outcome, OwnedIds::of(&ledger)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions() {
        let limit = "the plan deletes 11 objects, more than safety.maxDeletes (10)";
        let over = Some(limit);
        let cases = [
            (Mode::Apply, true, None, false, Decision::InSync),
            (Mode::Plan, true, None, false, Decision::InSync),
            (Mode::Apply, false, None, false, Decision::Apply),
            (Mode::Plan, false, None, false, Decision::Report),
            (Mode::Plan, false, over, false, Decision::Report),
            (
                Mode::Apply,
                false,
                over,
                false,
                Decision::Block(limit.into()),
            ),
            // Approved: applied once, limits and plan-only lifted.
            (Mode::Apply, false, over, true, Decision::Apply),
            (Mode::Plan, false, None, true, Decision::Apply),
            (Mode::Plan, false, over, true, Decision::Apply),
            (Mode::Apply, true, None, true, Decision::InSync),
        ];
        for (mode, empty, blocked, approved, expected) in cases {
            assert_eq!(
                decide(mode, empty, blocked, approved),
                expected,
                "{mode:?} {empty} {blocked:?} {approved}"
            );
        }
    }

    #[test]
    fn fence_refusals_are_told_apart_from_failures() {
        use crate::engine::state::StateError;
        assert!(SyncError::State(StateError::fenced()).is_fenced());
        assert!(SyncError::Apply(ApplyError::Fenced).is_fenced());
        assert!(SyncError::Apply(ApplyError::State(StateError::fenced())).is_fenced());
        assert!(!SyncError::State(StateError("the API server is down".into())).is_fenced());
    }
}

//! One sync of a ContactSyncPolicy: load the ledger, observe, plan, and — when the mode and
//! the safety limits allow — apply, then compact the state. The outcome says which of those
//! happened; [`settle`](crate::engine::settle) is the one place that chooses.

use jiff::Timestamp;

use crate::engine::apply::{ApplyError, ApplyOptions, ApplyReport, apply};
use crate::engine::desired::Desired;
use crate::engine::observe::{ObserveOptions, observe};
use crate::engine::ownership::OwnedIds;
use crate::engine::plan::{Plan, PlanOptions, plan};
use crate::engine::settle::{Terms, settle};
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
            Self::State(e) | Self::Apply(ApplyError::State(e)) => e.is_fenced(),
            Self::Apply(ApplyError::Fenced) => true,
            Self::Ghl(_) | Self::Apply(ApplyError::Auth(_) | ApplyError::Crashed(_)) => false,
        }
    }

    /// The GHL error behind this one, if GHL refused or failed (a read, or credentials
    /// refused mid-apply).
    pub fn ghl(&self) -> Option<&GhlError> {
        match self {
            Self::Ghl(e) | Self::Apply(ApplyError::Auth(e)) => Some(e),
            Self::State(_) | Self::Apply(_) => None,
        }
    }

    /// A bounded label for metrics and Event reasons.
    pub fn category(&self) -> &'static str {
        match self {
            Self::Ghl(e) | Self::Apply(ApplyError::Auth(e)) => e.category(),
            Self::State(_) | Self::Apply(ApplyError::State(_)) => "state",
            Self::Apply(_) => "apply",
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
    let blocked = plan.blocked.clone();
    let terms = Terms {
        mode: options.mode,
        blocked: blocked.as_deref(),
        approved: options.approved.as_deref(),
    };
    let outcome = settle(plan, terms, async |plan: &Plan| {
        let report = apply(
            api,
            store,
            &mut ledger,
            plan,
            &observed,
            match_by,
            options.apply,
        )
        .await?;
        store.compact(&ledger).await?;
        Ok(report)
    })
    .await?;
    Ok((outcome, OwnedIds::of(&ledger)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fence_refusals_are_told_apart_from_failures() {
        use crate::engine::state::StateError;
        assert!(SyncError::State(StateError::Fenced).is_fenced());
        assert!(SyncError::Apply(ApplyError::Fenced).is_fenced());
        assert!(SyncError::Apply(ApplyError::State(StateError::Fenced)).is_fenced());
        assert!(!SyncError::State(StateError::NotLoaded).is_fenced());
    }
}

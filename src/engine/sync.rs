//! One sync of a ContactSyncPolicy: load the ledger, observe, plan, and (in `Apply` mode,
//! unless a safety limit holds it back) apply; then compact the state.

use jiff::Timestamp;

use crate::crd::contact_sync_policy::ContactSyncPolicySpec;
use crate::engine::apply::{ApplyError, ApplyOptions, ApplyReport, apply};
use crate::engine::desired::{SourceText, SpecError, build};
use crate::engine::observe::{ObserveOptions, observe};
use crate::engine::plan::{Plan, PlanOptions, plan};
use crate::engine::state::{StateError, StateStore};
use crate::ghl::{GhlApi, GhlError};

pub use crate::crd::common::Mode;

/// How to run a sync.
#[derive(Clone)]
pub struct SyncOptions {
    pub mode: Mode,
    pub observe: ObserveOptions,
    pub apply: ApplyOptions,
}

impl SyncOptions {
    pub fn new(mode: Mode, now: Timestamp) -> Self {
        Self {
            mode,
            observe: ObserveOptions::new(now),
            apply: ApplyOptions::new(now),
        }
    }
}

/// What a sync found and did.
#[derive(Debug)]
pub struct SyncOutcome {
    pub plan: Plan,
    /// `None` in `Plan` mode or when a safety limit held the plan back.
    pub applied: Option<ApplyReport>,
}

/// Why a sync could not complete.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The spec is invalid as a whole: wait for it to change.
    #[error("invalid spec: {0}")]
    Spec(#[from] SpecError),
    /// Reading GHL failed (classified by the error).
    #[error(transparent)]
    Ghl(#[from] GhlError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Apply(#[from] ApplyError),
}

/// Runs one sync of a policy.
pub async fn sync_policy(
    api: &dyn GhlApi,
    store: &dyn StateStore,
    spec: &ContactSyncPolicySpec,
    sources: &[SourceText],
    options: SyncOptions,
) -> Result<SyncOutcome, SyncError> {
    let desired = build(spec, sources)?;
    let mut ledger = store.load().await?;
    let observed = observe(api, &desired, &ledger, options.observe).await?;
    let safety = spec.safety.clone().unwrap_or_default();
    let plan_options = PlanOptions {
        prune: spec.prune,
        max_deletes: safety
            .max_deletes
            .unwrap_or(crate::engine::plan::DEFAULT_MAX_DELETES),
        max_changes: safety.max_changes,
        omit_in_sync: true,
    };
    let plan = plan(&desired, &observed, &ledger, plan_options);
    // The plan carries what applying needs; the declared records can go (memory at 100k).
    let match_by = desired.match_by;
    drop(desired);
    let applied = if options.mode == Mode::Apply && plan.blocked.is_none() && !plan.is_empty() {
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
        Some(report)
    } else {
        None
    };
    Ok(SyncOutcome { plan, applied })
}

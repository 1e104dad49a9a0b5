//! The applier: executes a [`Plan`] through the GHL client, idempotently and crash-safely.
//!
//! Every write is bracketed by ledger commits: an intent before a non-idempotent create, the
//! result after. A create whose answer is lost (timeout, dropped connection, 5xx, or GHL's
//! "422 but created") is resolved at once — contacts through an upsert on the match key (which
//! never duplicates), tasks and notes by looking for them on the contact — and an intent left
//! by a crash is resolved the same way on the next run. Contacts are applied in parallel (the
//! request budget paces them); one contact's operations run in order. Per-record failures are
//! collected, not fatal; only a refused credential or a broken state store stops the run.

mod contact;
mod items;
mod release;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use futures::{StreamExt, stream};
use jiff::Timestamp;
use tokio::sync::Mutex;

use crate::crd::contact_sync_policy::{MatchBy, RecordFailure};
use crate::engine::fence::Fence;
use crate::engine::ledger::{Change, KeyDigest, Ledger};
use crate::engine::observed::Observed;
use crate::engine::state::{StateError, StateStore};
use crate::ghl::{ErrorClass, GhlApi, GhlError};

use super::plan::Plan;
use contact::apply_contact;
use release::apply_release;

/// How to apply.
#[derive(Clone)]
pub struct ApplyOptions {
    /// Contacts applied in parallel.
    pub concurrency: usize,
    pub now: Timestamp,
    /// Testing: stop as if killed right after this many GHL writes have returned, before
    /// their results are committed.
    pub crash_after_writes: Option<usize>,
    /// Called with the number of GHL writes made, after each contact.
    pub progress: Option<Arc<dyn Fn(u64) + Send + Sync>>,
    /// Checked before every GHL write: a closed fence (leadership lost) stops the run.
    pub fence: Fence,
}

impl ApplyOptions {
    pub fn new(now: Timestamp) -> Self {
        Self {
            concurrency: 4,
            now,
            crash_after_writes: None,
            progress: None,
            fence: Fence::open(),
        }
    }
}

/// What an apply did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ApplyReport {
    /// GHL write calls made (including recovery lookups that write).
    pub writes: u64,
    /// Records that could not be applied this time.
    pub failures: Vec<RecordFailure>,
}

/// Why an apply stopped early.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(transparent)]
    State(#[from] StateError),
    /// GHL refused the credential: nothing else will work until it changes.
    #[error("GHL refused the credentials: {0}")]
    Auth(#[source] GhlError),
    /// Injected crash (tests).
    #[error("stopped by the injected crash after {0} writes")]
    Crashed(usize),
    /// This process lost its leadership: another one may be writing now.
    #[error("stopped: this process no longer holds the leader Lease")]
    Fenced,
}

/// Shared state of one apply.
pub(super) struct Run<'a> {
    api: &'a dyn GhlApi,
    store: &'a dyn StateStore,
    ledger: Mutex<&'a mut Ledger>,
    match_by: MatchBy,
    now: Timestamp,
    writes: AtomicUsize,
    crash_after: Option<usize>,
    stopped: AtomicBool,
    fence: Fence,
}

/// A failed step: a per-record failure, or a reason to stop the whole run.
pub(super) enum StepError {
    Record(GhlError),
    Fatal(ApplyError),
}

impl From<StateError> for StepError {
    fn from(e: StateError) -> Self {
        StepError::Fatal(ApplyError::State(e))
    }
}

pub(super) type Step<T> = Result<T, StepError>;

impl Run<'_> {
    pub(super) async fn commit(&self, changes: Vec<Change>) -> Step<()> {
        if changes.is_empty() {
            return Ok(());
        }
        let mut ledger = self.ledger.lock().await;
        self.store.commit(&changes).await?;
        for change in &changes {
            ledger.apply(change);
        }
        Ok(())
    }

    /// When the earliest unresolved create intent for `key` was recorded, if there is one.
    pub(super) async fn pending_since(&self, key: &KeyDigest) -> Option<Timestamp> {
        self.ledger.lock().await.pending.get(key).copied()
    }

    pub(super) fn check_stopped(&self) -> Step<()> {
        if self.stopped.load(Ordering::SeqCst) {
            Err(StepError::Fatal(ApplyError::Crashed(
                self.writes.load(Ordering::SeqCst),
            )))
        } else {
            Ok(())
        }
    }

    /// Runs one GHL write, counting it and honouring the injected crash.
    pub(super) async fn write<T>(
        &self,
        call: impl std::future::Future<Output = Result<T, GhlError>>,
    ) -> Step<Result<T, GhlError>> {
        self.check_stopped()?;
        if !self.fence.is_open() {
            return Err(StepError::Fatal(ApplyError::Fenced));
        }
        let result = call.await;
        let n = self.writes.fetch_add(1, Ordering::SeqCst) + 1;
        if self.crash_after == Some(n) {
            self.stopped.store(true, Ordering::SeqCst);
            return Err(StepError::Fatal(ApplyError::Crashed(n)));
        }
        if let Err(e) = &result
            && e.class() == ErrorClass::Auth
        {
            return Err(StepError::Fatal(ApplyError::Auth(clone_error(e))));
        }
        Ok(result)
    }
}

/// Keeps what matters of an error for reporting (GhlError holds non-clonable sources).
fn clone_error(e: &GhlError) -> GhlError {
    GhlError::Api {
        operation: e.operation(),
        status: e.status().unwrap_or(0),
        message: e.to_string(),
        retry_after: None,
        rate_limit: None,
    }
}

/// Whether a failed create may nevertheless have happened.
pub(super) fn ambiguous(e: &GhlError) -> bool {
    e.class() == ErrorClass::Retryable || e.status() == Some(422)
}

pub(super) fn is_duplicate(e: &GhlError) -> bool {
    e.status() == Some(400) && e.to_string().to_lowercase().contains("duplicate")
}

/// A per-record failure for status, classified by the error.
pub(crate) fn record_failure(source: &str, e: &GhlError) -> RecordFailure {
    let reason = match e.class() {
        ErrorClass::Terminal => "GhlRejected",
        ErrorClass::NotFound => "NotFound",
        ErrorClass::RateLimited => "RateLimited",
        ErrorClass::Retryable => "GhlUnavailable",
        ErrorClass::Auth => "CredentialsRejected",
    };
    RecordFailure {
        record: source.to_owned(),
        field: None,
        reason: reason.into(),
        message: e.to_string(),
    }
}

/// Applies `plan`, committing ledger changes to `store` as it goes. `ledger` is updated in
/// place.
///
/// One piece: contacts in parallel, then releases, then baselines — the run's three phases
/// share one ledger and one failure list.
pub async fn apply(
    api: &dyn GhlApi,
    store: &dyn StateStore,
    ledger: &mut Ledger,
    plan: &Plan,
    observed: &Observed,
    match_by: MatchBy,
    options: ApplyOptions,
) -> Result<ApplyReport, ApplyError> {
    let run = Run {
        api,
        store,
        ledger: Mutex::new(ledger),
        match_by,
        now: options.now,
        writes: AtomicUsize::new(0),
        crash_after: options.crash_after_writes,
        stopped: AtomicBool::new(false),
        fence: options.fence.clone(),
    };
    let progress = options.progress.clone();
    let run_ref = &run;
    // Indices, not references, into the plan: a closure over `&ContactPlan` arguments is not
    // general enough for the future to be `Send` (rust-lang/rust#64552) when run by a controller.
    let outcomes: Vec<Step<()>> = stream::iter(0..plan.contacts.len())
        .map(|i| {
            let progress = progress.clone();
            async move {
                let result = apply_contact(run_ref, &plan.contacts[i], observed).await;
                if let Some(report) = &progress {
                    report(run_ref.writes.load(Ordering::SeqCst) as u64);
                }
                result
            }
        })
        .buffer_unordered(options.concurrency.max(1))
        .collect()
        .await;
    let mut failures = Vec::new();
    let mut fatal = None;
    for (outcome, contact) in outcomes.into_iter().zip(&plan.contacts) {
        match outcome {
            Ok(()) => {}
            Err(StepError::Record(e)) => failures.push(record_failure(&contact.source, &e)),
            Err(StepError::Fatal(e)) => fatal = fatal.or(Some(e)),
        }
    }
    if let Some(e) = fatal {
        return Err(e);
    }
    for release in &plan.releases {
        match apply_release(&run, release).await {
            Ok(()) => {}
            Err(StepError::Record(e)) => {
                failures.push(record_failure(&format!("contact/{}", release.id), &e))
            }
            Err(StepError::Fatal(e)) => return Err(e),
        }
    }
    // Baselines for contacts nothing was written to: what we saw is what we manage.
    let mut baselines = Vec::new();
    {
        let ledger = run.ledger.lock().await;
        for contact in &plan.contacts {
            let Some(id) = contact.id() else { continue };
            if contact.writes() > 0 {
                continue;
            }
            if let (Some(view), Some(owned)) = (observed.contacts.get(id), ledger.contacts.get(id))
                && let Some(change) = crate::engine::observed::baseline_change(id, view, owned)
            {
                baselines.push(change);
            }
        }
    }
    if let Err(StepError::Fatal(e)) = run.commit(baselines).await {
        return Err(e);
    }
    Ok(ApplyReport {
        writes: run.writes.load(Ordering::SeqCst) as u64,
        failures,
    })
}

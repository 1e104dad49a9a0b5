//! The applier: executes a [`Plan`] through the GHL client, idempotently and crash-safely.
//!
//! Every write is bracketed by ledger commits: an intent before a non-idempotent create, the
//! result after. Only intents (and records that must precede a write) are committed before
//! going on; results are recorded in memory and committed with the next commit, every
//! [`RESULTS_PER_COMMIT`] results, and at the end — losing them to a crash costs a lookup on
//! the next run, never a duplicate, because their intents are durable. Create intents are
//! committed [`INTENTS_PER_COMMIT`] at a time, ahead of the creates in plan order, so a
//! cold converge writes its journal a few dozen times, not three times per contact.
//!
//! A create whose answer is lost (timeout, dropped connection, 5xx, or GHL's "422 but
//! created") is resolved at once — contacts through an upsert on the match key (which
//! never duplicates), tasks and notes by looking for them on the contact — and an intent left
//! by a crash is resolved the same way on the next run. Contacts are applied in parallel (the
//! request budget paces them); one contact's operations run in order. Per-record failures are
//! collected, not fatal; only a refused credential or a broken state store stops the run.

mod contact;
mod items;
mod release;

use std::collections::{HashSet, VecDeque};
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
    #[error(
        "stopped: this process no longer holds the leader Lease (or the shard Lease of this object)"
    )]
    Fenced,
}

/// Results recorded in memory before they are committed at the latest.
pub const RESULTS_PER_COMMIT: usize = 128;
/// Create intents committed together, ahead of their creates.
pub const INTENTS_PER_COMMIT: usize = 32;

/// Create intents committed ahead: the creates still to announce, in plan order, and those
/// announced and not yet started.
#[derive(Default)]
struct Intents {
    ahead: VecDeque<KeyDigest>,
    announced: HashSet<KeyDigest>,
}

/// Shared state of one apply.
pub(super) struct Run<'a> {
    api: &'a dyn GhlApi,
    store: &'a dyn StateStore,
    ledger: Mutex<&'a mut Ledger>,
    /// Results applied to `ledger` and not committed yet.
    results: std::sync::Mutex<Vec<Change>>,
    intents: Mutex<Intents>,
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
    fn pending_results(&self) -> std::sync::MutexGuard<'_, Vec<Change>> {
        self.results.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Commits `changes` (with the results recorded so far) before going on: what must be
    /// durable before a write.
    pub(super) async fn commit(&self, changes: Vec<Change>) -> Step<()> {
        let mut ledger = self.ledger.lock().await;
        let mut batch = std::mem::take(&mut *self.pending_results());
        if batch.is_empty() && changes.is_empty() {
            return Ok(());
        }
        batch.extend(changes.iter().cloned());
        self.store.commit(&batch).await?;
        for change in &changes {
            ledger.apply(change);
        }
        Ok(())
    }

    /// Records what a write did: in the ledger at once, committed with the next commit (or
    /// once [`RESULTS_PER_COMMIT`] are waiting).
    pub(super) async fn record(&self, changes: Vec<Change>) -> Step<()> {
        let full = {
            let mut ledger = self.ledger.lock().await;
            for change in &changes {
                ledger.apply(change);
            }
            let mut results = self.pending_results();
            results.extend(changes);
            results.len() >= RESULTS_PER_COMMIT
        };
        if full {
            self.commit(Vec::new()).await?;
        }
        Ok(())
    }

    /// Makes sure the intent to create `key` is durable: committed with the next creates'
    /// intents, [`INTENTS_PER_COMMIT`] at a time.
    pub(super) async fn intend(&self, key: KeyDigest) -> Step<()> {
        let mut intents = self.intents.lock().await;
        if intents.announced.remove(&key) {
            return Ok(());
        }
        let mut chunk = vec![key];
        while chunk.len() < INTENTS_PER_COMMIT {
            let Some(next) = intents.ahead.pop_front() else {
                break;
            };
            if next != key && intents.announced.insert(next) {
                chunk.push(next);
            }
        }
        let at = self.now;
        let changes = chunk
            .into_iter()
            .map(|key| Change::CreateStarted { key, at })
            .collect();
        self.commit(changes).await
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

/// A run stopped by `e`: results recorded so far are committed if the store and the fence
/// still allow it (an injected crash keeps them out, as a real one would).
async fn stopped(run: &Run<'_>, e: ApplyError) -> ApplyError {
    if matches!(e, ApplyError::Auth(_)) && run.fence.is_open() {
        let _ = run.commit(Vec::new()).await;
    }
    e
}

/// Applies the task and note operations of one contact in order, outside a policy's plan (a
/// TagRule's items), with the same crash-safe creates as a policy's: an intent before each
/// create, a lost answer resolved by looking for the item. Returns the GHL writes made and the
/// error that stopped the contact, if one did; only a refused credential, a broken state
/// store or a closed fence is an `Err`.
pub async fn apply_items(
    api: &dyn GhlApi,
    store: &dyn StateStore,
    ledger: &mut Ledger,
    fence: &Fence,
    contact: &str,
    ops: &[super::plan::ItemOp],
) -> Result<(u64, Option<GhlError>), ApplyError> {
    let run = Run {
        api,
        store,
        ledger: Mutex::new(ledger),
        results: std::sync::Mutex::new(Vec::new()),
        intents: Mutex::new(Intents::default()),
        match_by: MatchBy::Email,
        now: Timestamp::now(),
        writes: AtomicUsize::new(0),
        crash_after: None,
        stopped: AtomicBool::new(false),
        fence: fence.clone(),
    };
    let mut failed = None;
    for op in ops {
        match items::apply_item(&run, contact, op).await {
            Ok(()) => {}
            Err(StepError::Record(e)) => {
                failed = Some(e);
                break;
            }
            Err(StepError::Fatal(e)) => return Err(stopped(&run, e).await),
        }
    }
    if let Err(StepError::Fatal(e)) = run.commit(Vec::new()).await {
        return Err(e);
    }
    Ok((run.writes.load(Ordering::SeqCst) as u64, failed))
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
    let creates = plan
        .contacts
        .iter()
        .filter(|c| matches!(c.target, super::plan::Target::Create { .. }))
        .map(|c| c.ledger_key)
        .collect();
    let run = Run {
        api,
        store,
        ledger: Mutex::new(ledger),
        results: std::sync::Mutex::new(Vec::new()),
        intents: Mutex::new(Intents {
            ahead: creates,
            announced: HashSet::new(),
        }),
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
    let mut outcomes = stream::iter(0..plan.contacts.len())
        .map(|i| {
            let progress = progress.clone();
            async move {
                let result = apply_contact(run_ref, &plan.contacts[i], observed).await;
                if let Some(report) = &progress {
                    report(run_ref.writes.load(Ordering::SeqCst) as u64);
                }
                (i, result)
            }
        })
        .buffer_unordered(options.concurrency.max(1));
    // Outcomes are taken as they come (a first converge has 100,000; only failures are
    // kept), and failures reported in plan order.
    let mut failed = Vec::new();
    let mut fatal = None;
    while let Some((i, outcome)) = outcomes.next().await {
        match outcome {
            Ok(()) => {}
            Err(StepError::Record(e)) => {
                failed.push((i, record_failure(&plan.contacts[i].source, &e)))
            }
            Err(StepError::Fatal(e)) => fatal = fatal.or(Some(e)),
        }
    }
    drop(outcomes);
    failed.sort_by_key(|(i, _)| *i);
    let mut failures: Vec<RecordFailure> = failed.into_iter().map(|(_, f)| f).collect();
    if let Some(e) = fatal {
        return Err(stopped(&run, e).await);
    }
    for release in &plan.releases {
        match apply_release(&run, release).await {
            Ok(()) => {}
            Err(StepError::Record(e)) => {
                failures.push(record_failure(&format!("contact/{}", release.id), &e))
            }
            Err(StepError::Fatal(e)) => return Err(stopped(&run, e).await),
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

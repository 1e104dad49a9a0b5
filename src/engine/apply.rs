//! The applier: executes a [`Plan`] through the GHL client, idempotently and crash-safely.
//!
//! Every write is bracketed by ledger commits: an intent before a non-idempotent create, the
//! result after. A create whose answer is lost (timeout, dropped connection, 5xx, or GHL's
//! "422 but created") is resolved at once — contacts through an upsert on the match key (which
//! never duplicates), tasks and notes by looking for them on the contact — and an intent left
//! by a crash is resolved the same way on the next run. Contacts are applied in parallel (the
//! request budget paces them); one contact's operations run in order. Per-record failures are
//! collected, not fatal; only a refused credential or a broken state store stops the run.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use futures::{StreamExt, stream};
use jiff::Timestamp;
use tokio::sync::Mutex;

use crate::crd::contact_sync_policy::{MatchBy, RecordFailure};
use crate::engine::collections::TagSet;
use crate::engine::fields::Field;
use crate::engine::ledger::{Change, ItemKind, Ledger};
use crate::engine::observed::{ContactView, Observed};
use crate::engine::state::{StateError, StateStore};
use crate::ghl::models::{
    CreateContact, CreateNote, CreateTask, CustomFieldInput, Note, Task, UpdateContact,
    UpsertContact,
};
use crate::ghl::{ErrorClass, GhlApi, GhlError};

use super::plan::{ContactPlan, ItemBody, ItemOp, ItemUpdate, Plan, Release, Target};

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
}

impl ApplyOptions {
    pub fn new(now: Timestamp) -> Self {
        Self {
            concurrency: 4,
            now,
            crash_after_writes: None,
            progress: None,
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
}

/// Shared state of one apply.
struct Run<'a> {
    api: &'a dyn GhlApi,
    store: &'a dyn StateStore,
    ledger: Mutex<&'a mut Ledger>,
    match_by: MatchBy,
    now: Timestamp,
    writes: AtomicUsize,
    crash_after: Option<usize>,
    stopped: AtomicBool,
}

/// A failed step: a per-record failure, or a reason to stop the whole run.
enum StepError {
    Record(GhlError),
    Fatal(ApplyError),
}

impl From<StateError> for StepError {
    fn from(e: StateError) -> Self {
        StepError::Fatal(ApplyError::State(e))
    }
}

type Step<T> = Result<T, StepError>;

impl Run<'_> {
    async fn commit(&self, changes: Vec<Change>) -> Step<()> {
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

    fn check_stopped(&self) -> Step<()> {
        if self.stopped.load(Ordering::SeqCst) {
            Err(StepError::Fatal(ApplyError::Crashed(
                self.writes.load(Ordering::SeqCst),
            )))
        } else {
            Ok(())
        }
    }

    /// Runs one GHL write, counting it and honouring the injected crash.
    async fn write<T>(
        &self,
        call: impl std::future::Future<Output = Result<T, GhlError>>,
    ) -> Step<Result<T, GhlError>> {
        self.check_stopped()?;
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
fn ambiguous(e: &GhlError) -> bool {
    e.class() == ErrorClass::Retryable || e.status() == Some(422)
}

fn is_duplicate(e: &GhlError) -> bool {
    e.status() == Some(400) && e.to_string().to_lowercase().contains("duplicate")
}

fn failure(source: &str, e: &GhlError) -> RecordFailure {
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
            Err(StepError::Record(e)) => failures.push(failure(&contact.source, &e)),
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
                failures.push(failure(&format!("contact/{}", release.id), &e))
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

async fn apply_contact(run: &Run<'_>, plan: &ContactPlan, observed: &Observed) -> Step<()> {
    run.check_stopped()?;
    let mut wrote = false;
    let (id, mut view) = match &plan.target {
        Target::Create { body, resolve } => {
            if let Some(old) = &plan.replaces {
                run.commit(vec![Change::ContactForgotten { id: old.clone() }])
                    .await?;
            }
            wrote = true;
            create_contact(run, plan, body, *resolve).await?
        }
        Target::Existing { id, adopt } => {
            if *adopt {
                run.commit(vec![Change::ContactBound {
                    key: plan.ledger_key.clone(),
                    id: id.clone(),
                    created: false,
                }])
                .await?;
            }
            (
                id.clone(),
                observed.contacts.get(id).cloned().unwrap_or_default(),
            )
        }
    };

    if !plan.changes.is_empty() {
        let mut body = UpdateContact::default();
        for change in &plan.changes {
            match &change.attribute {
                super::plan::Attribute::Field(f) => {
                    f.write_update(&mut body, change.to.as_str().unwrap_or_default())
                }
                super::plan::Attribute::Custom(cf) => body.custom_fields.push(CustomFieldInput {
                    id: cf.clone(),
                    field_value: change.to.clone(),
                }),
            }
        }
        let updated = run
            .write(run.api.update_contact(&id, &body))
            .await?
            .map_err(StepError::Record)?;
        view = ContactView::from_contact(&updated, true);
        wrote = true;
    }
    if !plan.upsert_changes.is_empty() {
        let mut body = match_body(run.match_by, &plan.key);
        for change in &plan.upsert_changes {
            if let super::plan::Attribute::Field(f) = &change.attribute {
                f.write_create(&mut body, change.to.as_str().unwrap_or_default());
            }
        }
        let upsert = UpsertContact {
            contact: body,
            create_new_if_duplicate_allowed: Some(false),
        };
        let outcome = run
            .write(run.api.upsert_contact(&upsert))
            .await?
            .map_err(StepError::Record)?;
        view = ContactView::from_contact(&outcome.contact, true);
        wrote = true;
    }
    if !plan.remove_tags.is_empty() {
        let tags: Vec<String> = plan.remove_tags.iter().cloned().collect();
        let now = run
            .write(run.api.remove_tags(&id, &tags))
            .await?
            .map_err(StepError::Record)?;
        run.commit(vec![Change::TagsReleased {
            id: id.clone(),
            tags: plan.remove_tags.clone(),
        }])
        .await?;
        view.tags = now
            .iter()
            .map(|t| crate::engine::fields::normalize_tag(t))
            .collect();
        wrote = true;
    }
    if !plan.add_tags.is_empty() {
        view.tags = add_tags(run, &id, &plan.add_tags).await?;
        wrote = true;
    }
    for item in &plan.items {
        if item.is_write() {
            wrote = true;
        }
        apply_item(run, &id, item).await?;
    }
    let hidden = view.hidden_values();
    run.commit(vec![Change::ContactObserved {
        id,
        fingerprint: view.fingerprint(),
        written_at: wrote.then_some(run.now),
        hidden,
    }])
    .await
}

/// Records the tags as ours, then adds them; returns the contact's tags afterwards.
async fn add_tags(run: &Run<'_>, id: &str, tags: &BTreeSet<String>) -> Step<TagSet> {
    run.commit(vec![Change::TagsAdded {
        id: id.to_owned(),
        tags: tags.clone(),
    }])
    .await?;
    let list: Vec<String> = tags.iter().cloned().collect();
    let now = run
        .write(run.api.add_tags(id, &list))
        .await?
        .map_err(StepError::Record)?;
    Ok(now
        .iter()
        .map(|t| crate::engine::fields::normalize_tag(t))
        .collect())
}

/// A body carrying only the match key.
fn match_body(match_by: MatchBy, key: &str) -> CreateContact {
    let mut body = CreateContact::default();
    match match_by {
        MatchBy::Email => Field::Email.write_create(&mut body, key),
        MatchBy::Phone => Field::Phone.write_create(&mut body, key),
    }
    body
}

/// Creates the contact, or finds the one an earlier attempt created. Returns its id and view.
async fn create_contact(
    run: &Run<'_>,
    plan: &ContactPlan,
    body: &CreateContact,
    resolve: bool,
) -> Step<(String, ContactView)> {
    run.commit(vec![Change::CreateStarted {
        key: plan.ledger_key.clone(),
        at: run.now,
    }])
    .await?;
    if !resolve {
        match run.write(run.api.create_contact(body)).await? {
            Ok(contact) => {
                // The tags it was created with are ours (removed when no longer declared).
                let mut changes = vec![Change::ContactBound {
                    key: plan.ledger_key.clone(),
                    id: contact.id.clone(),
                    created: true,
                }];
                if !body.tags.is_empty() {
                    changes.push(Change::TagsAdded {
                        id: contact.id.clone(),
                        tags: body
                            .tags
                            .iter()
                            .map(|t| crate::engine::fields::normalize_tag(t))
                            .collect(),
                    });
                }
                run.commit(changes).await?;
                return Ok((
                    contact.id.clone(),
                    ContactView::from_contact(&contact, true),
                ));
            }
            Err(e) if ambiguous(&e) || is_duplicate(&e) => {
                tracing::info!(
                    category = e.category(),
                    "create answer lost or refused as duplicate; resolving by upsert"
                );
            }
            Err(e) => {
                if e.class() == ErrorClass::Terminal {
                    run.commit(vec![Change::CreateAbandoned {
                        key: plan.ledger_key.clone(),
                    }])
                    .await?;
                }
                return Err(StepError::Record(e));
            }
        }
    }
    // Upsert on the match key: creates it if the earlier attempt did not, finds it if it did.
    // Tags are added separately (an upsert would replace the whole list).
    let mut without_tags = body.clone();
    let tags: BTreeSet<String> = std::mem::take(&mut without_tags.tags).into_iter().collect();
    let upsert = UpsertContact {
        contact: without_tags,
        create_new_if_duplicate_allowed: Some(false),
    };
    let outcome = run
        .write(run.api.upsert_contact(&upsert))
        .await?
        .map_err(StepError::Record)?;
    let id = outcome.contact.id.clone();
    run.commit(vec![Change::ContactBound {
        key: plan.ledger_key.clone(),
        id: id.clone(),
        created: outcome.new,
    }])
    .await?;
    let mut view = ContactView::from_contact(&outcome.contact, true);
    // Only the tags added here are recorded as ours: a contact found (not created) by the
    // upsert may carry the declared tags from before, and releasing those later would remove
    // what someone else put there. (After a lost create answer this errs on keeping tags.)
    let missing: BTreeSet<String> = tags
        .iter()
        .filter(|t| !view.tags.contains(t))
        .cloned()
        .collect();
    if !missing.is_empty() {
        view.tags = add_tags(run, &id, &missing).await?;
    }
    Ok((id, view))
}

async fn apply_item(run: &Run<'_>, contact: &str, op: &ItemOp) -> Step<()> {
    match op {
        ItemOp::Forget { kind, key } => {
            run.commit(vec![Change::ItemForgotten {
                id: contact.to_owned(),
                kind: *kind,
                key: key.clone(),
            }])
            .await
        }
        ItemOp::Adopt {
            kind,
            key,
            id,
            fingerprint: fp,
        } => {
            run.commit(vec![Change::ItemBound {
                id: contact.to_owned(),
                kind: *kind,
                key: key.clone(),
                item_id: id.clone(),
                fingerprint: *fp,
            }])
            .await
        }
        ItemOp::Create {
            kind,
            key,
            body,
            fingerprint: fp,
            resolve,
            replaces,
        } => {
            create_item(
                run,
                contact,
                *kind,
                key,
                body,
                *fp,
                *resolve,
                replaces.as_deref(),
            )
            .await
        }
        ItemOp::Update {
            kind,
            key,
            id,
            body,
            fingerprint: fp,
            ..
        } => {
            let result = match body {
                ItemUpdate::Task(t) => run
                    .write(run.api.update_task(contact, id, t))
                    .await?
                    .map(drop),
                ItemUpdate::Note(n) => run
                    .write(run.api.update_note(contact, id, n))
                    .await?
                    .map(drop),
            };
            match result {
                Ok(()) => bind(run, contact, *kind, key, id, *fp).await,
                // Gone meanwhile: the next plan re-creates it.
                Err(e) if e.class() == ErrorClass::NotFound => {
                    forget(run, contact, *kind, key).await
                }
                Err(e) => Err(StepError::Record(e)),
            }
        }
        ItemOp::Complete {
            key,
            id,
            completed,
            fingerprint: fp,
        } => {
            match run
                .write(run.api.complete_task(contact, id, *completed))
                .await?
            {
                Ok(_) => bind(run, contact, ItemKind::Task, key, id, *fp).await,
                Err(e) if e.class() == ErrorClass::NotFound => {
                    forget(run, contact, ItemKind::Task, key).await
                }
                Err(e) => Err(StepError::Record(e)),
            }
        }
        ItemOp::Delete { kind, key, id } => {
            let result = match kind {
                ItemKind::Task => run.write(run.api.delete_task(contact, id)).await?,
                ItemKind::Note => run.write(run.api.delete_note(contact, id)).await?,
            };
            match result {
                Ok(()) => forget(run, contact, *kind, key).await,
                Err(e) if e.class() == ErrorClass::NotFound => {
                    forget(run, contact, *kind, key).await
                }
                Err(e) => Err(StepError::Record(e)),
            }
        }
    }
}

async fn bind(
    run: &Run<'_>,
    contact: &str,
    kind: ItemKind,
    key: &str,
    item_id: &str,
    fp: u64,
) -> Step<()> {
    run.commit(vec![Change::ItemBound {
        id: contact.to_owned(),
        kind,
        key: key.to_owned(),
        item_id: item_id.to_owned(),
        fingerprint: fp,
    }])
    .await
}

async fn forget(run: &Run<'_>, contact: &str, kind: ItemKind, key: &str) -> Step<()> {
    run.commit(vec![Change::ItemForgotten {
        id: contact.to_owned(),
        kind,
        key: key.to_owned(),
    }])
    .await
}

/// An existing task or note that is the one `body` describes (same title / same body).
async fn find_item(run: &Run<'_>, contact: &str, body: &ItemBody) -> Step<Option<String>> {
    run.check_stopped()?;
    let found = match body {
        ItemBody::Task(task) => {
            let tasks: Vec<Task> = run
                .api
                .list_tasks(contact)
                .await
                .map_err(StepError::Record)?;
            tasks
                .into_iter()
                .find(|t| t.title.as_deref().map(str::trim) == Some(task.title.as_str()))
                .map(|t| t.id)
        }
        ItemBody::Note(note) => {
            let notes: Vec<Note> = run
                .api
                .list_notes(contact)
                .await
                .map_err(StepError::Record)?;
            notes
                .into_iter()
                .find(|n| n.body.trim() == note.body.trim())
                .map(|n| n.id)
        }
    };
    Ok(found)
}

#[allow(clippy::too_many_arguments)]
async fn create_item(
    run: &Run<'_>,
    contact: &str,
    kind: ItemKind,
    key: &str,
    body: &ItemBody,
    fp: u64,
    resolve: bool,
    replaces: Option<&str>,
) -> Step<()> {
    if resolve && let Some(existing) = find_item(run, contact, body).await? {
        return bind(run, contact, kind, key, &existing, fp).await;
    }
    if let Some(old) = replaces {
        // Observation did not see it; make sure before creating a second one.
        let still_there = match kind {
            ItemKind::Task => run.api.get_task(contact, old).await.map(drop),
            ItemKind::Note => run.api.get_note(contact, old).await.map(drop),
        };
        match still_there {
            // Found after all: keep it with an unknown fingerprint, so the next plan diffs it.
            Ok(()) => {
                return run
                    .commit(vec![Change::ItemBound {
                        id: contact.to_owned(),
                        kind,
                        key: key.to_owned(),
                        item_id: old.to_owned(),
                        fingerprint: 0,
                    }])
                    .await;
            }
            Err(e) if e.class() == ErrorClass::NotFound => {}
            Err(e) => return Err(StepError::Record(e)),
        }
    }
    run.commit(vec![Change::ItemStarted {
        id: contact.to_owned(),
        kind,
        key: key.to_owned(),
    }])
    .await?;
    let created = match body {
        ItemBody::Task(task) => run.write(create_task(run, contact, task)).await?,
        ItemBody::Note(note) => run.write(create_note(run, contact, note)).await?,
    };
    match created {
        Ok(item_id) => bind(run, contact, kind, key, &item_id, fp).await,
        Err(e) if ambiguous(&e) => match find_item(run, contact, body).await? {
            Some(existing) => bind(run, contact, kind, key, &existing, fp).await,
            None => Err(StepError::Record(e)),
        },
        Err(e) => Err(StepError::Record(e)),
    }
}

async fn create_task(run: &Run<'_>, contact: &str, task: &CreateTask) -> Result<String, GhlError> {
    run.api.create_task(contact, task).await.map(|t| t.id)
}

async fn create_note(run: &Run<'_>, contact: &str, note: &CreateNote) -> Result<String, GhlError> {
    run.api.create_note(contact, note).await.map(|n| n.id)
}

async fn apply_release(run: &Run<'_>, release: &Release) -> Step<()> {
    run.check_stopped()?;
    let id = &release.id;
    if !release.gone {
        if release.delete_contact {
            match run.write(run.api.delete_contact(id)).await? {
                Ok(()) => {}
                Err(e) if e.class() == ErrorClass::NotFound => {}
                Err(e) => return Err(StepError::Record(e)),
            }
        } else {
            if !release.remove_tags.is_empty() {
                let tags: Vec<String> = release.remove_tags.iter().cloned().collect();
                match run.write(run.api.remove_tags(id, &tags)).await? {
                    Ok(_) => {}
                    Err(e) if e.class() == ErrorClass::NotFound => {}
                    Err(e) => return Err(StepError::Record(e)),
                }
                run.commit(vec![Change::TagsReleased {
                    id: id.clone(),
                    tags: release.remove_tags.clone(),
                }])
                .await?;
            }
            for (kind, key, item) in &release.delete_items {
                apply_item(
                    run,
                    id,
                    &ItemOp::Delete {
                        kind: *kind,
                        key: key.clone(),
                        id: item.clone(),
                    },
                )
                .await?;
            }
        }
    }
    run.commit(vec![Change::ContactForgotten { id: id.clone() }])
        .await
}

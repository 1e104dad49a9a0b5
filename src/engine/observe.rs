//! Observation: reads what the planner needs from GHL, spending the request budget well.
//!
//! - Contacts: one paginated search over the location (500 per page, `searchAfter` past
//!   10,000), keeping only contacts a record or the ledger refers to.
//! - Search lags writes, so a managed contact missing from the results, or whose search view
//!   differs from what we last wrote less than `lag_tolerance` ago, is re-read with GET.
//! - Tasks: the location task search in batches of contact ids; per-contact lists only when the
//!   token lacks `locations/tasks.readonly`.
//! - Notes (no location-wide read exists): per contact, only where a note has no known id yet,
//!   or on a deep resync.
//! - Hidden fields (not in search results): GET on a deep resync only; otherwise the ledger's
//!   last written values stand in.

use std::collections::BTreeSet;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt, stream};
use jiff::Timestamp;

use crate::engine::desired::{Desired, DesiredContact};
use crate::engine::ledger::{ItemKind, Ledger};
use crate::engine::observed::{ContactView, HIDDEN_FROM_SEARCH, Observed};
use crate::ghl::models::{ContactSearch, TaskSearch};
use crate::ghl::paginate::{location_tasks_all, search_all};
use crate::ghl::{ErrorClass, GhlApi, GhlError};

/// Contacts per task-search request.
const TASK_SEARCH_BATCH: usize = 250;
/// Tasks per task-search page.
const TASK_SEARCH_PAGE: u32 = 100;

/// How thoroughly to look.
#[derive(Clone, Copy, Debug)]
pub struct ObserveOptions {
    /// Also read every declared contact's notes and hidden fields (catches edits that search
    /// cannot see).
    pub deep: bool,
    /// How long after our own write a differing search result is re-read instead of trusted.
    pub lag_tolerance: Duration,
    /// Parallel per-contact reads.
    pub concurrency: usize,
    pub now: Timestamp,
}

impl ObserveOptions {
    pub fn new(now: Timestamp) -> Self {
        Self {
            deep: false,
            lag_tolerance: Duration::from_secs(60),
            concurrency: 8,
            now,
        }
    }
}

/// Reads the observed state for `desired` and `ledger`.
///
/// One piece: the four steps (search, GETs, tasks, notes) fill the same views in order,
/// each step deciding from what the previous ones found.
pub async fn observe(
    api: &dyn GhlApi,
    desired: &Desired,
    ledger: &Ledger,
    options: ObserveOptions,
) -> Result<Observed, GhlError> {
    let match_by = desired.match_by;
    let mut observed = Observed::default();

    // 1. One pass over the location's contacts.
    let search = ContactSearch {
        page_limit: 500,
        ..ContactSearch::default()
    };
    let keeper = Keeper::new(desired, ledger, !options.deep);
    let mut pages = search_all(api, search);
    while let Some(contact) = pages.try_next().await? {
        keeper.keep(&mut observed, ContactView::from_contact(&contact, false));
    }
    drop(keeper);

    // 2. GET what search cannot be trusted for.
    let lag = jiff::SignedDuration::try_from(options.lag_tolerance).unwrap_or_default();
    let mut to_get: BTreeSet<String> = BTreeSet::new();
    for (id, owned) in &ledger.contacts {
        if observed.settled.contains(id.as_str()) {
            continue;
        }
        match observed.contacts.get(id.as_str()) {
            None => {
                to_get.insert(id.to_string());
            }
            Some(view) => {
                let recently_written = owned
                    .written_at()
                    .is_some_and(|at| options.now.duration_since(at) < lag);
                if recently_written && owned.fingerprint != Some(view.fingerprint()) {
                    to_get.insert(id.to_string());
                }
            }
        }
    }
    if options.deep {
        for contact in &desired.contacts {
            let declares_hidden = HIDDEN_FROM_SEARCH
                .iter()
                .any(|f| contact.fields.contains_key(f));
            if declares_hidden {
                to_get.extend(contact_ids(&observed, ledger, contact));
            }
        }
    }
    let fetched = get_contacts(api, to_get, options.concurrency, |contact| {
        ContactView::from_contact(contact, true)
    })
    .await?;
    for (id, view) in fetched {
        match view {
            Some(view) => observed.insert(view, match_by),
            None => {
                observed.contacts.remove(id.as_str());
                observed.gone.insert(id);
            }
        }
    }

    // 3. Tasks of every contact that has declared or owned tasks.
    let mut task_contacts: BTreeSet<String> = BTreeSet::new();
    let mut note_contacts: BTreeSet<String> = BTreeSet::new();
    for contact in &desired.contacts {
        let ids = contact_ids(&observed, ledger, contact);
        if !contact.tasks.is_empty() {
            task_contacts.extend(ids.iter().cloned());
        }
        if !contact.notes.is_empty() {
            for id in &ids {
                let owned = ledger.contacts.get(id.as_str());
                let all_bound = contact.notes.iter().all(|n| {
                    owned
                        .and_then(|o| o.items(ItemKind::Note).get(&n.key))
                        .is_some_and(|item| item.id.is_some())
                });
                if options.deep || !all_bound {
                    note_contacts.insert(id.clone());
                }
            }
        }
    }
    for (id, owned) in &ledger.contacts {
        if !owned.items(ItemKind::Task).is_empty() {
            task_contacts.insert(id.to_string());
        }
        if owned.items(ItemKind::Note).values().any(|n| n.id.is_none()) {
            note_contacts.insert(id.to_string());
        }
    }
    task_contacts.retain(|id| observed.contacts.contains_key(id.as_str()));
    note_contacts.retain(|id| observed.contacts.contains_key(id.as_str()));
    read_tasks(api, &task_contacts, &mut observed, options.concurrency).await?;
    read_notes(api, &note_contacts, &mut observed, options.concurrency).await?;
    Ok(observed)
}

/// What observation keeps of each search result: nothing for contacts no record or ledger
/// entry refers to; only the fact of being in sync for contacts bound to their record with
/// nothing to change (their views are dropped at once, so a resync of 100,000 contacts holds
/// almost nothing); the view otherwise.
pub struct Keeper<'a> {
    desired: &'a Desired,
    ledger: &'a Ledger,
    /// Declared records by match key.
    records: std::collections::HashMap<&'a str, &'a DesiredContact>,
    /// Whether in-sync contacts may be settled (not on a deep resync, which reads more).
    settle: bool,
}

impl<'a> Keeper<'a> {
    pub fn new(desired: &'a Desired, ledger: &'a Ledger, settle: bool) -> Self {
        let records = desired
            .contacts
            .iter()
            .map(|c| (c.key.as_str(), c))
            .collect();
        Self {
            desired,
            ledger,
            records,
            settle,
        }
    }

    /// Takes one search result into `observed`.
    pub fn keep(&self, observed: &mut Observed, view: ContactView) {
        let match_by = self.desired.match_by;
        let record = view
            .key(match_by)
            .and_then(|k| self.records.get(k.as_str()).copied());
        let owned = self.ledger.contacts.get(view.id.as_str());
        if record.is_none() && owned.is_none() {
            return;
        }
        let id = view.id.clone();
        observed.insert(view, match_by);
        // Settled only when the record is bound to this very contact.
        let bound = record.and_then(|r| self.ledger.by_key(&r.ledger_key));
        if let (true, Some(record), Some(_)) = (self.settle, record, owned)
            && bound.is_some_and(|(bound, _)| *bound == id)
            && crate::engine::plan::settles(record, self.desired, observed, self.ledger)
        {
            observed.settle(&id, match_by);
        }
    }
}

/// Ids a declared contact may be: its ledger binding and any contact with its key.
fn contact_ids(observed: &Observed, ledger: &Ledger, contact: &DesiredContact) -> Vec<String> {
    let key = contact.key.as_str();
    let mut ids: Vec<String> = ledger
        .by_key(&contact.ledger_key)
        .map(|(id, _)| id.to_string())
        .into_iter()
        .collect();
    for id in observed.by_key.get(key).into_iter().flatten() {
        if !ids.iter().any(|known| known == id) {
            ids.push(id.to_string());
        }
    }
    ids.retain(|id| !observed.gone.contains(id));
    ids
}

pub(crate) async fn read_tasks(
    api: &dyn GhlApi,
    contacts: &BTreeSet<String>,
    observed: &mut Observed,
    concurrency: usize,
) -> Result<(), GhlError> {
    for id in contacts {
        observed.tasks.insert(id.clone(), Vec::new());
    }
    let ids: Vec<&String> = contacts.iter().collect();
    let mut fallback = false;
    'batches: for batch in ids.chunks(TASK_SEARCH_BATCH) {
        let search = TaskSearch {
            contact_ids: batch.iter().map(|s| (*s).clone()).collect(),
            limit: TASK_SEARCH_PAGE,
            ..TaskSearch::default()
        };
        let mut tasks = location_tasks_all(api, search);
        loop {
            match tasks.try_next().await {
                Ok(Some(task)) => match task.contact_id.clone() {
                    Some(contact) if observed.tasks.contains_key(&contact) => {
                        observed.tasks.entry(contact).or_default().push(task);
                    }
                    Some(_) => {}
                    // Without the contact id the results cannot be grouped.
                    None => {
                        fallback = true;
                        break 'batches;
                    }
                },
                Ok(None) => break,
                // A token without `locations/tasks.readonly` reads per contact instead.
                Err(e) if e.class() == ErrorClass::Auth => {
                    fallback = true;
                    break 'batches;
                }
                Err(e) => return Err(e),
            }
        }
    }
    if fallback {
        let lists = per_contact(contacts, concurrency, |id| async move {
            api.list_tasks(&id).await
        })
        .await?;
        observed.tasks.extend(lists);
    }
    Ok(())
}

/// Reads contacts by id (GET), `concurrency` at once, each as `view` makes of it; `None` for
/// those GHL no longer has.
pub(crate) async fn get_contacts<V>(
    api: &dyn GhlApi,
    ids: impl IntoIterator<Item = String>,
    concurrency: usize,
    view: impl Fn(&crate::ghl::models::Contact) -> V,
) -> Result<Vec<(String, Option<V>)>, GhlError> {
    let view = &view;
    let fetched: Vec<(String, Result<Option<V>, GhlError>)> = stream::iter(ids)
        .map(|id| async move {
            let result = match api.get_contact(&id).await {
                Ok(contact) => Ok(Some(view(&contact))),
                Err(e) if e.class() == ErrorClass::NotFound => Ok(None),
                Err(e) => Err(e),
            };
            (id, result)
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    fetched
        .into_iter()
        .map(|(id, result)| result.map(|view| (id, view)))
        .collect()
}

/// Reads a list per contact, `concurrency` at once; a contact GHL no longer has lists
/// nothing.
pub(crate) async fn per_contact<T, F, Fut>(
    contacts: &BTreeSet<String>,
    concurrency: usize,
    read: F,
) -> Result<Vec<(String, Vec<T>)>, GhlError>
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = Result<Vec<T>, GhlError>>,
{
    let read = &read;
    let lists: Vec<(String, Result<Vec<T>, GhlError>)> = stream::iter(contacts.iter().cloned())
        .map(|id| async move { (id.clone(), read(id).await) })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    lists
        .into_iter()
        .map(|(id, result)| match result {
            Ok(items) => Ok((id, items)),
            Err(e) if e.class() == ErrorClass::NotFound => Ok((id, Vec::new())),
            Err(e) => Err(e),
        })
        .collect()
}

pub(crate) async fn read_notes(
    api: &dyn GhlApi,
    contacts: &BTreeSet<String>,
    observed: &mut Observed,
    concurrency: usize,
) -> Result<(), GhlError> {
    let lists = per_contact(contacts, concurrency, |id| async move {
        api.list_notes(&id).await
    })
    .await?;
    observed.notes.extend(lists);
    Ok(())
}

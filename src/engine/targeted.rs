//! A targeted sync: one policy's sync of the few contacts GHL just reported changed (by
//! webhook). The contacts are read by GET instead of a location-wide search, planned with the
//! same planner over only the records and ledger entries they concern, and applied through the
//! ledger's journal — never compacted from this partial view, so nothing else the policy owns
//! can be forgotten or released by it. The periodic full sync remains the safety net.

use std::collections::BTreeSet;

use crate::engine::apply::apply;
use crate::engine::desired::Desired;
use crate::engine::ledger::{KeyDigest, Ledger};
use crate::engine::observe::{get_contacts, read_notes, read_tasks};
use crate::engine::observed::{ContactView, HIDDEN_FROM_SEARCH, Observed};
use crate::engine::ownership::OwnedIds;
use crate::engine::plan::{Plan, PlanOptions, plan};
use crate::engine::settle::{Terms, settle};
use crate::engine::state::StateStore;
use crate::engine::sync::{SyncError, SyncOptions, SyncOutcome};
use crate::ghl::models::Contact;
use crate::ghl::{GhlApi, GhlError};

/// Which contacts changed, and which of their parts are worth reading.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Scope {
    pub ids: BTreeSet<String>,
    /// The contacts as their latest webhooks carried them (`ContactCreate`, `ContactUpdate`, `ContactTagUpdate`, `ContactDndUpdate`):
    /// planned from without a GET. An event about a contact that carried none (a tag or DND
    /// event) takes its entry out: that contact is read.
    pub snapshots: std::collections::BTreeMap<String, Contact>,
    /// A task of theirs changed: read their tasks.
    pub tasks: bool,
    /// A note of theirs changed: read their notes.
    pub notes: bool,
}

/// Reads `ids` by GET into `observed` (404 → gone).
async fn get_views(
    api: &dyn GhlApi,
    ids: &BTreeSet<String>,
    observed: &mut Observed,
    desired: &Desired,
    concurrency: usize,
) -> Result<(), GhlError> {
    let fetched = get_contacts(api, ids.iter().cloned(), concurrency, |contact| {
        ContactView::from_contact(contact, true)
    })
    .await?;
    for (id, view) in fetched {
        match view {
            Some(view) => observed.insert(view, desired.match_by),
            None => {
                observed.gone.insert(id);
            }
        }
    }
    Ok(())
}

/// Syncs the contacts of `scope` against `desired` (the policy's whole validated records).
///
/// One piece: reading, scoping and planning share the contacts read and the ledger subset,
/// each step narrowing what the next may touch.
pub async fn sync_contacts(
    api: &dyn GhlApi,
    store: &dyn StateStore,
    mut desired: Desired,
    scope: &Scope,
    plan_options: PlanOptions,
    options: SyncOptions,
) -> Result<(SyncOutcome<Plan>, OwnedIds), SyncError> {
    crate::engine::custom_fields::resolve_keys(api, &mut desired).await?;
    let concurrency = options.observe.concurrency;
    let ledger = store.load().await?;
    let mut observed = Observed::default();
    // The contacts their webhooks carried need no GET — unless a record manages a field
    // webhooks, like search, may not carry (`timezone`): then the contact is read whole.
    let snapshots_serve = !desired.contacts.iter().any(|c| {
        c.fields
            .iter()
            .any(|(field, _)| HIDDEN_FROM_SEARCH.contains(field))
    });
    let mut to_read = BTreeSet::new();
    for id in &scope.ids {
        match scope.snapshots.get(id).filter(|_| snapshots_serve) {
            Some(contact) => {
                observed.insert(ContactView::from_contact(contact, false), desired.match_by)
            }
            None => {
                to_read.insert(id.clone());
            }
        }
    }
    get_views(api, &to_read, &mut observed, &desired, concurrency).await?;

    // A record can be bound to another contact than the one that changed (a duplicate made
    // in GHL): read the contacts our ledger binds to the same keys too.
    let keys: BTreeSet<KeyDigest> = observed.by_key.keys().map(|k| KeyDigest::of(k)).collect();
    let bound: BTreeSet<String> = keys
        .iter()
        .filter_map(|k| ledger.by_key(k).map(|(id, _)| id.to_string()))
        .filter(|id| !scope.ids.contains(id))
        .collect();
    get_views(api, &bound, &mut observed, &desired, concurrency).await?;
    let ids: BTreeSet<String> = scope.ids.union(&bound).cloned().collect();

    // The records these contacts concern: by key, or by the ledger's binding.
    let bound_keys: BTreeSet<KeyDigest> = ids
        .iter()
        .filter_map(|id| ledger.contacts.get(id.as_str()).map(|c| c.key))
        .collect();
    let Desired {
        match_by,
        contacts,
        failures,
        field_policy,
        held,
        empty_sources,
    } = desired;
    let scoped = Desired {
        match_by,
        contacts: contacts
            .into_iter()
            .filter(|c| keys.contains(&c.ledger_key) || bound_keys.contains(&c.ledger_key))
            .collect(),
        failures,
        field_policy,
        held,
        empty_sources,
    };
    let record_keys: BTreeSet<KeyDigest> = scoped.contacts.iter().map(|c| c.ledger_key).collect();
    let mut scoped_ledger: Ledger = ledger.subset(&ids, &record_keys);
    drop(ledger);

    // Tasks and notes: when a change concerns them, or when a declared one is not bound yet
    // (planning it without reading could duplicate it).
    let mut task_contacts = BTreeSet::new();
    let mut note_contacts = BTreeSet::new();
    for contact in &scoped.contacts {
        let id = scoped_ledger
            .by_key(&contact.ledger_key)
            .map(|(id, _)| id.to_string())
            .or_else(|| {
                observed
                    .by_key
                    .get(contact.key.as_str())
                    .and_then(|ids| ids.first().map(|id| id.to_string()))
            });
        let Some(id) = id else { continue };
        let owned = scoped_ledger.contacts.get(id.as_str());
        let unbound = |kind, keys: Vec<&String>| {
            keys.iter().any(|key| {
                owned
                    .and_then(|o| o.items(kind).get(key.as_str()))
                    .is_none_or(|item| item.id.is_none())
            })
        };
        use crate::engine::ledger::ItemKind;
        if scope.tasks
            || unbound(
                ItemKind::Task,
                contact.tasks.iter().map(|t| &t.key).collect(),
            )
        {
            task_contacts.insert(id.clone());
        }
        if scope.notes
            || unbound(
                ItemKind::Note,
                contact.notes.iter().map(|n| &n.key).collect(),
            )
        {
            note_contacts.insert(id);
        }
    }
    task_contacts.retain(|id| observed.contacts.contains_key(id.as_str()));
    note_contacts.retain(|id| observed.contacts.contains_key(id.as_str()));
    read_tasks(api, &task_contacts, &mut observed, concurrency).await?;
    read_notes(api, &note_contacts, &mut observed, concurrency).await?;

    let plan = plan(&scoped, &observed, &scoped_ledger, plan_options);
    drop(scoped);
    let blocked = plan.blocked.clone();
    // Approvals are for full plans: a targeted sync never uses one.
    let terms = Terms {
        mode: options.mode,
        blocked: blocked.as_deref(),
        approved: None,
    };
    let outcome = settle(plan, terms, async |plan: &Plan| {
        // Committed through the journal; the next full sync compacts it.
        Ok(apply(
            api,
            store,
            &mut scoped_ledger,
            plan,
            &observed,
            match_by,
            options.apply,
        )
        .await?)
    })
    .await?;
    Ok((outcome, OwnedIds::of(&scoped_ledger)))
}

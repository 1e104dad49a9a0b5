//! Applying a rule plan: tag writes bracketed by ledger commits, like the contact applier. A
//! tag is recorded as ours before it is added (so a crash never loses ownership of a tag we
//! added), and released only after its removal succeeded. Tasks and notes go through the
//! policy applier's item steps (an intent before each create, a lost answer resolved by
//! looking), so a crash never creates one twice; a task completed as its contact leaves is
//! closed in the ledger, never to be written again.

use super::RulePlan;
use crate::engine::apply::{ApplyError, ApplyReport, apply_items, record_failure};
use crate::engine::fence::Fence;
use crate::engine::ledger::ItemKind;
use crate::engine::ledger::{Change, KeyDigest, Ledger};
use crate::engine::plan::ItemOp;
use crate::engine::state::StateStore;
use crate::ghl::{ErrorClass, GhlApi, GhlError};

/// Applies a rule plan; per-contact failures are reported, a refused credential, a broken
/// state store or a closed fence stops the run.
pub async fn apply_rule(
    api: &dyn GhlApi,
    store: &dyn StateStore,
    ledger: &mut Ledger,
    plan: &RulePlan,
    fence: &Fence,
) -> Result<ApplyReport, ApplyError> {
    let mut report = ApplyReport::default();
    let fail = |report: &mut ApplyReport, id: &str, e: GhlError| -> Result<(), ApplyError> {
        if e.class() == ErrorClass::Auth {
            return Err(ApplyError::Auth(e));
        }
        report
            .failures
            .push(record_failure(&format!("contact/{id}"), &e));
        Ok(())
    };
    for change in &plan.changes {
        if !fence.is_open() {
            return Err(ApplyError::Fenced);
        }
        let mut intents = Vec::new();
        let creates = change
            .items
            .iter()
            .any(|op| matches!(op, ItemOp::Create { .. }));
        if !ledger.contacts.contains_key(change.id.as_str()) && (!change.add.is_empty() || creates)
        {
            intents.push(Change::ContactBound {
                // A rule's contacts are its by id: the key is the id's digest.
                key: KeyDigest::of(&change.id),
                id: change.id.clone(),
                created: false,
            });
        }
        if !change.add.is_empty() {
            intents.push(Change::TagsAdded {
                id: change.id.clone(),
                tags: change.add.clone(),
            });
        }
        commit(store, ledger, intents).await?;
        if !change.remove.is_empty() {
            report.writes += 1;
            let tags: Vec<String> = change.remove.iter().cloned().collect();
            match api.remove_tags(&change.id, &tags).await {
                Ok(_) => {}
                Err(e) if e.class() == ErrorClass::NotFound => {}
                Err(e) => {
                    fail(&mut report, &change.id, e)?;
                    continue;
                }
            }
        }
        if !change.add.is_empty() {
            report.writes += 1;
            let tags: Vec<String> = change.add.iter().cloned().collect();
            if let Err(e) = api.add_tags(&change.id, &tags).await {
                fail(&mut report, &change.id, e)?;
                continue;
            }
        }
        if let Some(e) = apply_rule_items(api, store, ledger, fence, change, &mut report).await? {
            fail(&mut report, &change.id, e)?;
            continue;
        }
        let mut results = Vec::new();
        if !change.release.is_empty() {
            results.push(Change::TagsReleased {
                id: change.id.clone(),
                tags: change.release.clone(),
            });
        }
        if change.forget {
            results.push(Change::ContactForgotten {
                id: change.id.clone(),
            });
        }
        commit(store, ledger, results).await?;
    }
    Ok(report)
}

/// The items of one contact: creates and deletes through the shared item steps, completions
/// on leaving here. Returns the error that stopped the contact, if any.
async fn apply_rule_items(
    api: &dyn GhlApi,
    store: &dyn StateStore,
    ledger: &mut Ledger,
    fence: &Fence,
    change: &super::TagChange,
    report: &mut ApplyReport,
) -> Result<Option<GhlError>, ApplyError> {
    let (completions, others): (Vec<&ItemOp>, Vec<&ItemOp>) = change
        .items
        .iter()
        .partition(|op| matches!(op, ItemOp::Complete { .. }));
    let others: Vec<ItemOp> = others.into_iter().cloned().collect();
    let (writes, failed) = apply_items(api, store, ledger, fence, &change.id, &others).await?;
    report.writes += writes;
    if failed.is_some() {
        return Ok(failed);
    }
    for op in completions {
        let ItemOp::Complete { key, id, .. } = op else {
            continue;
        };
        if !fence.is_open() {
            return Err(ApplyError::Fenced);
        }
        report.writes += 1;
        match api.complete_task(&change.id, id, true).await {
            // Completed, or deleted by a person: either way the rule is done with it.
            Ok(_) => {}
            Err(e) if e.class() == ErrorClass::NotFound => {}
            Err(e) => return Ok(Some(e)),
        }
        let closed = Change::ItemClosed {
            id: change.id.clone(),
            kind: ItemKind::Task,
            key: key.clone(),
        };
        commit(store, ledger, vec![closed]).await?;
    }
    Ok(None)
}

/// Persists `changes`, then applies them to the ledger in memory.
async fn commit(
    store: &dyn StateStore,
    ledger: &mut Ledger,
    changes: Vec<Change>,
) -> Result<(), ApplyError> {
    if changes.is_empty() {
        return Ok(());
    }
    store.commit(&changes).await?;
    changes.iter().for_each(|c| ledger.apply(c));
    Ok(())
}

//! One declared contact: create (or resolve a lost create through an upsert on the match
//! key), adopt, update its fields, tags, tasks and notes, and record what GHL now holds.

use std::collections::BTreeSet;

use super::items::apply_item;
use super::{Run, Step, StepError, ambiguous};
use crate::crd::contact_sync_policy::MatchBy;
use crate::engine::collections::TagSet;
use crate::engine::fields::{Field, normalize_tag};
use crate::engine::ledger::Change;
use crate::engine::observed::{ContactView, Observed};
use crate::engine::plan::{Attribute, ContactPlan, Target};
use crate::ghl::ErrorClass;
use crate::ghl::models::{CreateContact, CustomFieldInput, UpdateContact, UpsertContact};

/// One piece: one contact's writes in the order GHL needs them (create or adopt, fields,
/// upsert-only fields, tags, tasks and notes), then the baseline they leave.
pub(super) async fn apply_contact(
    run: &Run<'_>,
    plan: &ContactPlan,
    observed: &Observed,
) -> Step<()> {
    run.check_stopped()?;
    let mut wrote = false;
    let (id, mut view) = match &plan.target {
        Target::Create { body, resolve } => {
            if let Some(old) = &plan.replaces {
                run.commit(vec![Change::ContactForgotten { id: old.clone() }])
                    .await?;
            }
            wrote = true;
            create_contact(run, plan, &body.request(), *resolve).await?
        }
        Target::Existing { id, adopt } => {
            if *adopt {
                run.commit(vec![Change::ContactBound {
                    key: plan.ledger_key,
                    id: id.clone(),
                    created: plan.recovered,
                }])
                .await?;
            }
            (
                id.clone(),
                observed
                    .contacts
                    .get(id.as_str())
                    .cloned()
                    .unwrap_or_default(),
            )
        }
    };

    if !plan.changes.is_empty() {
        let mut body = UpdateContact::default();
        for change in &plan.changes {
            match &change.attribute {
                Attribute::Field(f) => {
                    f.write_update(&mut body, change.to.as_str().unwrap_or_default())
                }
                Attribute::Custom(cf) => body.custom_fields.push(CustomFieldInput {
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
            if let Attribute::Field(f) = &change.attribute {
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
        run.record(vec![Change::TagsReleased {
            id: id.clone(),
            tags: plan.remove_tags.clone(),
        }])
        .await?;
        view.tags = now.iter().map(|t| normalize_tag(t)).collect();
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
    run.record(vec![Change::ContactObserved {
        id,
        fingerprint: view.fingerprint(),
        written_at: wrote.then_some(run.now),
        hidden,
    }])
    .await
}

/// Records the tags as ours, then adds them; returns the contact's tags afterwards.
pub(super) async fn add_tags(run: &Run<'_>, id: &str, tags: &BTreeSet<String>) -> Step<TagSet> {
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
    Ok(now.iter().map(|t| normalize_tag(t)).collect())
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
///
/// One piece: intent, create, and the resolution of a lost answer must stay in this order.
async fn create_contact(
    run: &Run<'_>,
    plan: &ContactPlan,
    body: &CreateContact,
    resolve: bool,
) -> Step<(String, ContactView)> {
    // A create of an earlier run (crash, lost answer) may have made the contact since then.
    let mut since = run.pending_since(&plan.ledger_key).await;
    run.intend(plan.ledger_key).await?;
    if !resolve {
        match run.write(run.api.create_contact(body)).await? {
            Ok(contact) => {
                // The tags it was created with are ours (removed when no longer declared).
                let mut changes = vec![Change::ContactBound {
                    key: plan.ledger_key,
                    id: contact.id.clone(),
                    created: true,
                }];
                if !body.tags.is_empty() {
                    changes.push(Change::TagsAdded {
                        id: contact.id.clone(),
                        tags: body.tags.iter().map(|t| normalize_tag(t)).collect(),
                    });
                }
                run.record(changes).await?;
                return Ok((
                    contact.id.clone(),
                    ContactView::from_contact(&contact, true),
                ));
            }
            Err(e) if ambiguous(&e) || e.is_duplicate_contact() => {
                tracing::info!(
                    category = e.category(),
                    "create answer lost or refused as duplicate; resolving by upsert"
                );
                if ambiguous(&e) {
                    // This attempt may have made it.
                    since = Some(since.map_or(run.now, |earlier| earlier.min(run.now)));
                }
            }
            Err(e) => {
                if e.class() == ErrorClass::Terminal {
                    run.commit(vec![Change::CreateAbandoned {
                        key: plan.ledger_key,
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
    let mut view = ContactView::from_contact(&outcome.contact, true);
    // Created by the upsert, or by one of our creates whose answer was lost: GHL added it
    // after the intent. (Refused as a duplicate, with no earlier intent: someone else's.)
    let created = outcome.new || since.is_some_and(|at| view.added_since(at));
    run.record(vec![Change::ContactBound {
        key: plan.ledger_key,
        id: id.clone(),
        created,
    }])
    .await?;
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

//! Planning one declared contact: match it (ledger binding, then adoption by key), diff its
//! fields per `fieldPolicy`, its tags against the ledger, and its tasks and notes.

use std::collections::BTreeSet;

use crate::crd::contact_sync_policy::FieldPolicy;
use crate::engine::collections::TagSet;
use crate::engine::desired::{Desired, DesiredContact};
use crate::engine::fields::normalize_custom_value;
use crate::engine::ledger::{KeyDigest, Ledger, OwnedContact, key_digest};
use crate::engine::observed::{ContactView, Observed};

use super::items::plan_items;
use super::{Attribute, ContactPlan, CreateBody, FieldChange, Target};

/// Plans `contact`. `claimed` holds ids already matched to earlier records (a GHL contact
/// serves one record).
pub fn plan_contact(
    contact: &DesiredContact,
    desired: &Desired,
    observed: &Observed,
    ledger: &Ledger,
    claimed: &BTreeSet<String>,
    prune: bool,
) -> ContactPlan {
    let binding = ledger.by_key(&contact.ledger_key);
    let bound_id = binding
        .map(|(id, _)| id.as_str())
        .filter(|id| observed.contacts.contains_key(*id));
    let replaces = binding
        .map(|(id, _)| id.to_string())
        .filter(|id| observed.gone.contains(id) || !observed.contacts.contains_key(id.as_str()));
    let candidate = bound_id.map(str::to_owned).or_else(|| {
        let mut ids: Vec<&str> = observed
            .by_key
            .get(contact.key.as_str())
            .into_iter()
            .flatten()
            .map(|id| id.as_str())
            .filter(|id| !claimed.contains(*id) && !observed.gone.contains(*id))
            .collect();
        // Prefer a contact this owner already manages, then the lowest id (stable choice
        // when the location holds duplicates).
        ids.sort_by_key(|id| (!ledger.contacts.contains_key(*id), *id));
        ids.first().map(|id| (*id).to_owned())
    });

    let mut plan = ContactPlan::empty(
        contact,
        Target::Existing {
            id: String::new(),
            adopt: false,
        },
    );

    let Some(id) = candidate else {
        plan.target = Target::Create {
            body: Box::new(create_body(contact, desired)),
            resolve: ledger.pending.contains_key(&contact.ledger_key),
        };
        // Re-creating a managed contact someone deleted is drift being repaired.
        plan.drifted = replaces.is_some();
        plan.replaces = replaces;
        plan.items = plan_items(contact, None, None, observed, prune);
        return plan;
    };

    let view = &observed.contacts[id.as_str()];
    let owned = ledger.contacts.get(id.as_str());
    plan.target = Target::Existing {
        id: id.clone(),
        adopt: owned.is_none(),
    };
    plan.recovered = owned.is_none() && made_by_lost_create(ledger, &contact.ledger_key, view);
    plan.drifted = owned
        .and_then(|o| o.fingerprint)
        .is_some_and(|fp| fp != view.fingerprint());
    diff_fields(contact, desired, view, owned, &mut plan);
    diff_tags(contact, desired, view, owned, &mut plan);
    plan.items = plan_items(contact, Some(&id), owned, observed, prune);
    plan
}

/// The create body: every declared value except `Observe`d ones.
fn create_body(contact: &DesiredContact, desired: &Desired) -> CreateBody {
    let policies = &desired.field_policy;
    CreateBody {
        fields: contact
            .fields
            .iter()
            .filter(|(field, _)| policies.field(**field) != FieldPolicy::Observe)
            .map(|(field, value)| (*field, value.clone()))
            .collect(),
        custom_fields: contact
            .custom_fields
            .iter()
            .filter(|(id, _)| policies.custom(id) != FieldPolicy::Observe)
            .map(|(id, value)| (id.clone(), value.clone()))
            .collect(),
        tags: if policies.tags() != FieldPolicy::Observe {
            contact.tags.clone()
        } else {
            TagSet::new()
        },
    }
}

fn diff_fields(
    contact: &DesiredContact,
    desired: &Desired,
    view: &ContactView,
    owned: Option<&OwnedContact>,
    plan: &mut ContactPlan,
) {
    let policies = &desired.field_policy;
    for (field, wanted) in &contact.fields {
        let wanted_norm = field.normalize(wanted);
        // Known value from GHL, or (for fields search does not return) the ledger's digest of
        // what GHL last held; unknown and unrecorded counts as different.
        let differs = match view.known(*field) {
            Some(value) => {
                value.map(|v| field.normalize(v)).as_deref() != Some(wanted_norm.as_str())
            }
            None => owned
                .and_then(|o| o.hidden(*field))
                .is_none_or(|digest| digest != key_digest(&wanted_norm)),
        };
        if !differs {
            continue;
        }
        match policies.field(*field) {
            FieldPolicy::InitOnly => {}
            FieldPolicy::Observe => plan.observed_drift.push(field.name().to_owned()),
            FieldPolicy::Enforce => {
                let change = FieldChange {
                    attribute: Attribute::Field(*field),
                    from: view.known(*field).flatten().map(str::to_owned),
                    to: serde_json::Value::String(wanted.to_string()),
                };
                if field.updatable_by_put() {
                    plan.changes.push(change);
                } else {
                    plan.upsert_changes.push(change);
                }
            }
        }
    }
    for (id, wanted) in &contact.custom_fields {
        let current = view.custom.get(id).map(normalize_custom_value);
        if current.as_deref() == Some(normalize_custom_value(wanted).as_str()) {
            continue;
        }
        match policies.custom(id) {
            FieldPolicy::InitOnly => {}
            FieldPolicy::Observe => plan.observed_drift.push(format!("customFields.{id}")),
            FieldPolicy::Enforce => plan.changes.push(FieldChange {
                attribute: Attribute::Custom(id.clone()),
                from: current,
                to: wanted.clone(),
            }),
        }
    }
}

fn diff_tags(
    contact: &DesiredContact,
    desired: &Desired,
    view: &ContactView,
    owned: Option<&OwnedContact>,
    plan: &mut ContactPlan,
) {
    let missing: BTreeSet<String> = contact
        .tags
        .difference(&view.tags)
        .map(str::to_owned)
        .collect();
    let ours_undeclared: BTreeSet<String> = owned
        .map(|o| {
            o.tags
                .iter()
                .filter(|t| !contact.tags.contains(t) && view.tags.contains(t))
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    match desired.field_policy.tags() {
        FieldPolicy::Observe => {
            if !missing.is_empty() {
                plan.observed_drift.push("tags".into());
            }
        }
        // InitOnly tags: only on create.
        FieldPolicy::InitOnly => {}
        FieldPolicy::Enforce => {
            plan.add_tags = missing;
            plan.remove_tags = ours_undeclared;
        }
    }
}

/// Whether a create of ours whose answer was lost (crash, timeout) made this contact: there
/// is an intent for its key, and GHL added it after the intent.
fn made_by_lost_create(ledger: &Ledger, key: &KeyDigest, view: &ContactView) -> bool {
    ledger
        .pending
        .get(key)
        .is_some_and(|intent| view.added_since(*intent))
}

//! The planner: a pure function of (desired, observed, ledger, options) to a [`Plan`] listing
//! every write the applier will make, Terraform-style. No I/O, no clock (time comes in as
//! data), so every decision is unit-tested.
//!
//! Semantics (see PRODUCT.md): declared contacts are matched by `matchBy` and adopted rather
//! than duplicated; only declared fields are managed, per `fieldPolicy`; tags are a set — added
//! when declared, removed only when this owner added them and no longer declares them; tasks
//! and notes are identified by their `key`; `prune` deletes what this owner created and no
//! longer declares; `safety` limits stop a large plan.

mod contact;
pub mod digest;
pub(crate) mod items;
mod model;
pub mod render;

use std::collections::BTreeSet;

use crate::crd::contact_sync_policy::{ContactSyncPolicySpec, RecordFailure};
use crate::engine::collections::Text;
use crate::engine::desired::{Desired, DesiredContact};
use crate::engine::ledger::{ItemKind, KeyDigest, Ledger};
use crate::engine::observed::Observed;

pub use contact::plan_contact;
pub use model::{
    Attribute, ContactPlan, CreateBody, FieldChange, ItemBody, ItemOp, ItemUpdate, Plan, Release,
    Target,
};

/// Default `safety.maxDeletes`.
pub const DEFAULT_MAX_DELETES: u32 = 10;
/// Default `safety.maxChanges` (policies and TagRules).
pub const DEFAULT_MAX_CHANGES: u32 = 1000;

/// Planner options from the spec.
#[derive(Clone, Copy, Debug)]
pub struct PlanOptions {
    pub prune: bool,
    pub max_deletes: u32,
    pub max_changes: u32,
    /// Count contacts that are fully in sync (nothing to write, nothing to record) instead of
    /// listing them: a resync of 100,000 contacts then holds a plan of what changed only.
    pub omit_in_sync: bool,
}

impl PlanOptions {
    /// The options a policy's spec asks for (`prune`, `safety`).
    pub fn for_spec(spec: &ContactSyncPolicySpec) -> Self {
        let safety = spec.safety.clone().unwrap_or_default();
        Self {
            prune: spec.prune,
            max_deletes: safety.max_deletes.unwrap_or(DEFAULT_MAX_DELETES),
            max_changes: safety.max_changes.unwrap_or(DEFAULT_MAX_CHANGES),
            omit_in_sync: true,
        }
    }
}

impl Default for PlanOptions {
    fn default() -> Self {
        Self {
            prune: false,
            max_deletes: DEFAULT_MAX_DELETES,
            max_changes: DEFAULT_MAX_CHANGES,
            omit_in_sync: false,
        }
    }
}

/// Plans one ContactSyncPolicy.
pub fn plan(desired: &Desired, observed: &Observed, ledger: &Ledger, options: PlanOptions) -> Plan {
    let mut plan = Plan {
        // Room for every contact that can be listed (contacts settled in sync during
        // observation are not, when omitted): a first plan lists every record, and growing
        // by doubling would hold two copies of the list for a moment.
        contacts: Vec::with_capacity(if options.omit_in_sync {
            desired
                .contacts
                .len()
                .saturating_sub(observed.settled.len())
        } else {
            desired.contacts.len()
        }),
        failures: desired.failures.clone(),
        ..Plan::default()
    };
    let mut claimed: BTreeSet<String> = BTreeSet::new();
    for contact in &desired.contacts {
        // Settled during observation: in sync, nothing kept to plan from.
        if let Some((id, _)) = ledger.by_key(&contact.ledger_key)
            && observed.settled.contains(id.as_str())
        {
            claimed.insert(id.to_string());
            if options.omit_in_sync {
                plan.in_sync_omitted += 1;
            } else {
                plan.contacts.push(ContactPlan::unchanged(contact, id));
            }
            continue;
        }
        let contact_plan =
            plan_contact(contact, desired, observed, ledger, &claimed, options.prune);
        if let Some(id) = contact_plan.id() {
            claimed.insert(id.to_owned());
        }
        if options.omit_in_sync && in_sync(&contact_plan, observed, ledger) {
            plan.in_sync_omitted += 1;
            continue;
        }
        plan.contacts.push(contact_plan);
    }
    let declared: BTreeSet<KeyDigest> = desired.contacts.iter().map(|c| c.ledger_key).collect();
    let undeclared: Vec<(&Text, &crate::engine::ledger::OwnedContact)> = ledger
        .contacts
        .iter()
        .filter(|(id, owned)| {
            !declared.contains(&owned.key)
                && !desired.held.contains(&owned.key)
                && !claimed.contains(id.as_str())
        })
        .collect();
    if !desired.empty_sources.is_empty() && !undeclared.is_empty() {
        for source in &desired.empty_sources {
            plan.failures.push(RecordFailure {
                record: source.clone(),
                field: None,
                reason: "EmptySource".into(),
                message: format!(
                    "holds no records while {} managed contact(s) are no longer declared; \
                     they are not released: fill the source again, or remove it from \
                     contactsFrom (or delete the policy) to release them on purpose",
                    undeclared.len()
                ),
            });
        }
        plan.releases_deferred = Some(format!(
            "{} holds no records; releasing waits (see status.failures)",
            desired.empty_sources.join(", ")
        ));
    } else if !desired.failures.is_empty() && !undeclared.is_empty() {
        plan.releases_deferred = Some(format!(
            "{} managed contact(s) are no longer declared, but {} record(s) failed validation; \
             releasing or pruning waits until every record is valid",
            undeclared.len(),
            desired.failures.len()
        ));
    } else {
        for (id, owned) in undeclared {
            plan.releases
                .push(release(id, owned, observed, options.prune));
        }
    }
    plan.blocked = safety_block(&plan, options);
    plan
}

/// Why `plan` exceeds the safety limits, if it does (deletes first: they cannot be undone).
fn safety_block(plan: &Plan, options: PlanOptions) -> Option<String> {
    let deletes = plan.deletes();
    let changes = plan.changes();
    if deletes > options.max_deletes as usize {
        Some(format!(
            "the plan deletes {deletes} objects, more than safety.maxDeletes ({})",
            options.max_deletes
        ))
    } else if changes > options.max_changes as usize {
        Some(format!(
            "the plan makes {changes} changes, more than safety.maxChanges ({})",
            options.max_changes
        ))
    } else {
        None
    }
}

/// Whether the contact `view` (just observed, bound in the ledger to `contact`) is fully in
/// sync: planning it would change nothing, report nothing and record nothing. Observation
/// keeps only that fact for such contacts.
pub fn settles(
    contact: &DesiredContact,
    desired: &Desired,
    observed: &Observed,
    ledger: &Ledger,
) -> bool {
    let plan = plan_contact(contact, desired, observed, ledger, &BTreeSet::new(), false);
    in_sync(&plan, observed, ledger)
}

/// Nothing to write, no drift to report, and the ledger's baseline is current.
fn in_sync(contact: &ContactPlan, observed: &Observed, ledger: &Ledger) -> bool {
    if !contact.is_noop() || contact.drifted || !contact.observed_drift.is_empty() {
        return false;
    }
    let Target::Existing { id, adopt: false } = &contact.target else {
        return false;
    };
    match (
        observed.contacts.get(id.as_str()),
        ledger.contacts.get(id.as_str()),
    ) {
        (Some(view), Some(owned)) => {
            crate::engine::observed::baseline_change(id, view, owned).is_none()
        }
        _ => false,
    }
}

fn release(
    id: &str,
    owned: &crate::engine::ledger::OwnedContact,
    observed: &Observed,
    prune: bool,
) -> Release {
    let gone = observed.gone.contains(id) || !observed.contacts.contains_key(id);
    let current_tags = observed.contacts.get(id).map(|v| &v.tags);
    let remove_tags = match current_tags {
        Some(tags) => owned.tags.intersection(tags).map(str::to_owned).collect(),
        None => BTreeSet::new(),
    };
    let mut delete_items = Vec::new();
    if prune {
        for (kind, items) in [
            (ItemKind::Task, owned.items(ItemKind::Task)),
            (ItemKind::Note, owned.items(ItemKind::Note)),
        ] {
            for (key, item) in items {
                if let Some(item_id) = &item.id {
                    delete_items.push((kind, key.clone(), item_id.clone()));
                }
            }
        }
    }
    Release {
        id: id.to_owned(),
        delete_contact: prune && owned.created && !gone,
        remove_tags,
        delete_items,
        gone,
    }
}

#[cfg(test)]
mod tests;

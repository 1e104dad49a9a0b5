//! Table-driven tests of the planner, by stage: each case states the declared records, what
//! GHL holds, what the ledger says, and what the plan must contain.
//!
//! - [`contacts`]: matching, adoption and the fields and tags written;
//! - [`items`]: tasks and notes;
//! - [`releases`]: what is no longer declared — released, pruned — and the safety limits.

mod contacts;
mod items;
mod releases;

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::crd::contact_sync_policy::ContactSyncPolicySpec;
use crate::engine::desired::{SourceText, build};
use crate::engine::ledger::{Change, ItemKind, KeyDigest, Ledger, key_digest};
use crate::engine::observed::{ContactView, Observed};
use crate::engine::plan::{ItemOp, Plan, PlanOptions, Target, plan};
use crate::ghl::models::{Contact, Note, Task};

/// A test scenario, built up fluently.
pub(super) struct Case {
    spec: Value,
    /// What each `contactsFrom` entry yielded.
    sources: Vec<SourceText>,
    observed: Observed,
    ledger: Ledger,
    options: PlanOptions,
}

impl Case {
    pub(super) fn declaring(contacts: Value) -> Self {
        Self {
            spec: json!({"connectionRef": {"name": "acme"}, "contacts": contacts}),
            sources: Vec::new(),
            observed: Observed::default(),
            ledger: Ledger::default(),
            options: PlanOptions::default(),
        }
    }

    pub(super) fn with_spec(mut self, extra: Value) -> Self {
        self.spec
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        self
    }

    /// GHL holds this contact (a search result unless `complete`).
    pub(super) fn ghl(mut self, contact: Value, complete: bool) -> Self {
        let c: Contact = serde_json::from_value(contact).unwrap();
        self.observed.insert(
            ContactView::from_contact(&c, complete),
            crate::crd::contact_sync_policy::MatchBy::Email,
        );
        self
    }

    pub(super) fn tasks(mut self, id: &str, tasks: Value) -> Self {
        let tasks: Vec<Task> = serde_json::from_value(tasks).unwrap();
        self.observed.tasks.insert(id.into(), tasks);
        self
    }

    pub(super) fn notes(mut self, id: &str, notes: Value) -> Self {
        let notes: Vec<Note> = serde_json::from_value(notes).unwrap();
        self.observed.notes.insert(id.into(), notes);
        self
    }

    pub(super) fn gone(mut self, id: &str) -> Self {
        self.observed.gone.insert(id.into());
        self
    }

    /// Adds a `contactsFrom` ConfigMap key holding `text`.
    pub(super) fn source(mut self, key: &str, text: &str) -> Self {
        let entry = json!({"configMapRef": {"name": "list", "key": key}});
        let spec = self.spec.as_object_mut().unwrap();
        let from = spec.entry("contactsFrom").or_insert_with(|| json!([]));
        from.as_array_mut().unwrap().push(entry);
        self.sources.push(SourceText {
            key: key.to_owned(),
            text: Ok(text.to_owned()),
            sensitive: false,
        });
        self
    }

    pub(super) fn ledger(mut self, changes: Vec<Change>) -> Self {
        for change in &changes {
            self.ledger.apply(change);
        }
        self
    }

    /// Sets the ledger's fingerprint of `id` to what GHL currently shows (in sync).
    pub(super) fn in_sync(mut self, id: &str) -> Self {
        let fp = self.observed.contacts[id].fingerprint();
        self.ledger.apply(&Change::ContactObserved {
            id: id.into(),
            fingerprint: fp,
            written_at: None,
            hidden: Default::default(),
        });
        self
    }

    pub(super) fn options(mut self, options: PlanOptions) -> Self {
        self.options = options;
        self
    }

    pub(super) fn plan(&self) -> Plan {
        let spec: ContactSyncPolicySpec = serde_json::from_value(self.spec.clone()).unwrap();
        let desired = build(&spec, &self.sources).unwrap();
        plan(&desired, &self.observed, &self.ledger, self.options)
    }
}

/// A ledger binding of the declared record with match key `key` (stored as its digest).
pub(super) fn bound(key: &str, id: &str, created: bool) -> Change {
    Change::ContactBound {
        key: KeyDigest::of(key),
        id: id.into(),
        created,
    }
}

pub(super) fn tags(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|t| (*t).to_owned()).collect()
}

//! What a rule gives the contacts it matches (pure): tasks and notes, each created once per
//! contact and key, and owned by the rule in its ledger from then on.
//!
//! What the rule created is never written again: a task a person completes or deletes stays
//! so (it is not reopened or recreated), and edits a person makes are left alone — as are
//! edits to the rule's own text, which reach only contacts entering later (the plan says
//! so). The two exceptions are the rule's own decisions: `onLeave: CompleteTasks` completes
//! the open tasks of a contact that leaves, and `deletionPolicy: Delete` deletes what the
//! rule created when the rule is deleted.

use std::collections::BTreeMap;

use jiff::{SignedDuration, Timestamp};

use crate::crd::common::DurationString;
use crate::crd::tag_rule::{OnLeave, TagRuleSpec};
use crate::engine::ledger::{ItemKind, OwnedContact, fingerprint};
use crate::engine::ownership::{SeenContact, TagDeclarations};
use crate::engine::plan::items::due_text;
use crate::engine::plan::{ItemBody, ItemOp};
use crate::ghl::models::{CreateNote, CreateTask};

/// `dueIn` when a task omits it.
pub const DEFAULT_DUE_IN: &str = "24h";

/// A task of the rule, checked.
#[derive(Clone, Debug, PartialEq)]
pub struct WantedTask {
    pub key: String,
    pub title: String,
    pub body: Option<String>,
    /// `dueIn` as written (what the plan's digest names: the due time moves with the clock).
    pub due_in_text: String,
    pub due_in: SignedDuration,
    pub assigned_to: Option<String>,
}

impl WantedTask {
    /// What the ledger remembers of the task's text: a later change to it is reported, not
    /// written.
    pub fn fingerprint(&self) -> u64 {
        fingerprint([
            self.title.as_str(),
            self.body.as_deref().unwrap_or(""),
            self.due_in_text.as_str(),
            self.assigned_to.as_deref().unwrap_or(""),
        ])
    }

    /// The create body for a contact entering at `now`.
    pub fn create(&self, now: Timestamp) -> ItemBody {
        let due = now.checked_add(self.due_in).unwrap_or(now);
        ItemBody::Task(CreateTask {
            title: self.title.clone(),
            body: self.body.clone(),
            due_date: due_text(due),
            completed: false,
            assigned_to: self.assigned_to.clone(),
        })
    }
}

/// A note of the rule.
#[derive(Clone, Debug, PartialEq)]
pub struct WantedNote {
    pub key: String,
    pub body: String,
}

impl WantedNote {
    pub fn fingerprint(&self) -> u64 {
        fingerprint([self.body.trim()])
    }

    fn create(&self) -> ItemBody {
        ItemBody::Note(CreateNote {
            body: self.body.clone(),
            ..CreateNote::default()
        })
    }
}

/// The tasks and notes a rule gives its contacts.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RuleItems {
    pub tasks: Vec<WantedTask>,
    pub notes: Vec<WantedNote>,
    pub on_leave: OnLeave,
}

impl RuleItems {
    /// The rule's tasks and notes, or what is wrong with them (a `dueIn` the API server's
    /// pattern let through but no clock can use), naming the field.
    pub fn of(spec: &TagRuleSpec) -> Result<Self, String> {
        let tasks = spec
            .tasks
            .iter()
            .enumerate()
            .map(|(i, task)| {
                let text = task
                    .due_in
                    .clone()
                    .unwrap_or_else(|| DurationString::new(DEFAULT_DUE_IN));
                let due_in = text
                    .parse()
                    .map_err(|e| format!("spec.tasks[{i}].dueIn: {e}"))?;
                let due_in = SignedDuration::try_from(due_in)
                    .map_err(|e| format!("spec.tasks[{i}].dueIn: {e}"))?;
                Ok(WantedTask {
                    key: task.key.clone(),
                    title: task.title.trim().to_owned(),
                    body: task.body.clone(),
                    due_in_text: text.0,
                    due_in,
                    assigned_to: task.assigned_to.clone(),
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        let notes = spec
            .notes
            .iter()
            .map(|n| WantedNote {
                key: n.key.clone(),
                body: n.body.clone(),
            })
            .collect();
        Ok(Self {
            tasks,
            notes,
            on_leave: spec.on_leave,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty() && self.notes.is_empty()
    }
}

/// What planning one contact's items found besides the writes.
#[derive(Debug, Default)]
pub struct ItemFindings {
    /// `(owner, "declares task \"call\"")` for each key left to a policy.
    pub conflicts: Vec<(String, String)>,
    /// `task call` / `note intro` whose text in the rule changed since it was created here:
    /// kept as created.
    pub kept: Vec<String>,
}

/// The items a matched contact still needs: each key it never had is created (unless a
/// policy declares that key on the contact: then it is left to the policy), a create that may
/// have happened before a crash is resolved first, and nothing already created is touched.
pub fn entering(
    items: &RuleItems,
    contact: &SeenContact,
    owned: Option<&OwnedContact>,
    declared: &TagDeclarations,
    now: Timestamp,
    findings: &mut ItemFindings,
) -> Vec<ItemOp> {
    let mut ops = Vec::new();
    let wanted = (items.tasks.iter())
        .map(|t| {
            (
                ItemKind::Task,
                t.key.as_str(),
                t.fingerprint(),
                t.create(now),
            )
        })
        .chain(
            (items.notes.iter())
                .map(|n| (ItemKind::Note, n.key.as_str(), n.fingerprint(), n.create())),
        );
    for (kind, key, fp, body) in wanted {
        let create = |resolve: bool| ItemOp::Create {
            kind,
            key: key.to_owned(),
            body: body.clone(),
            fingerprint: fp,
            resolve,
            replaces: None,
        };
        match owned.and_then(|o| o.items(kind).get(key)) {
            // Started before a crash: find it before creating it.
            Some(item) if item.id.is_none() => ops.push(create(true)),
            Some(item) => {
                if item.fingerprint != Some(fp) && !item.closed {
                    findings.kept.push(format!("{} {key}", kind_name(kind)));
                }
            }
            None => match declared.item_owner(contact, kind, key) {
                Some(owner) => findings.conflicts.push((
                    owner.to_owned(),
                    format!("declares {} {key:?}", kind_name(kind)),
                )),
                None => ops.push(create(false)),
            },
        }
    }
    ops
}

/// What happens to the items of a contact that left the rule (`deleting`: the rule itself is
/// being deleted with `deletionPolicy: Delete`): deleted with the rule; else its open tasks
/// completed with `onLeave: CompleteTasks`; else nothing.
pub fn leaving(on_leave: OnLeave, owned: &OwnedContact, deleting: bool) -> Vec<ItemOp> {
    let mut ops = Vec::new();
    for kind in [ItemKind::Task, ItemKind::Note] {
        for (key, item) in owned.items(kind).iter() {
            let Some(id) = &item.id else { continue };
            if deleting {
                ops.push(ItemOp::Delete {
                    kind,
                    key: key.clone(),
                    id: id.clone(),
                });
            } else if kind == ItemKind::Task && on_leave == OnLeave::CompleteTasks && !item.closed {
                ops.push(ItemOp::Complete {
                    key: key.clone(),
                    id: id.clone(),
                    completed: true,
                    fingerprint: item.fingerprint.unwrap_or_default(),
                });
            }
        }
    }
    ops
}

/// Whether a contact that left the rule needs reading: to release tags the rule added, to
/// complete its open tasks, or to be forgotten (it owns nothing that must be remembered).
/// A contact that owns only items the rule is done with is remembered without a read, so
/// its tasks are never created twice.
pub fn needs_leaving(on_leave: OnLeave, owned: &OwnedContact) -> bool {
    let tasks = owned.items(ItemKind::Task);
    let notes = owned.items(ItemKind::Note);
    !owned.tags.is_empty()
        || (tasks.is_empty() && notes.is_empty())
        || (on_leave == OnLeave::CompleteTasks
            && tasks.iter().any(|(_, t)| t.id.is_some() && !t.closed))
}

/// Whether the contact holds items the rule must remember.
pub fn owns_items(owned: &OwnedContact) -> bool {
    !owned.items(ItemKind::Task).is_empty() || !owned.items(ItemKind::Note).is_empty()
}

pub fn kind_name(kind: ItemKind) -> &'static str {
    match kind {
        ItemKind::Task => "task",
        ItemKind::Note => "note",
    }
}

/// Counts `kept` items by name, for the plan.
pub fn count_kept(kept: Vec<String>, into: &mut BTreeMap<String, u32>) {
    for name in kept {
        *into.entry(name).or_default() += 1;
    }
}

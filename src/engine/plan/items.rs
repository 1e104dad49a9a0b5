//! Planning a contact's tasks and notes by key: update what we own, adopt an identical unowned
//! one, create what is missing, and delete (prune) or forget what is no longer declared.

use std::collections::BTreeSet;

use jiff::Timestamp;

use crate::engine::desired::{DesiredContact, DesiredNote, DesiredTask};
use crate::engine::ledger::{ItemKind, OwnedContact, fingerprint};
use crate::engine::observed::Observed;
use crate::ghl::models::{CreateNote, CreateTask, Note, Task, UpdateNote, UpdateTask};

use super::{ItemBody, ItemOp, ItemUpdate};

/// GHL's due date format for what we send (RFC 3339 UTC, seconds).
pub fn due_text(due: Timestamp) -> String {
    due.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Fingerprint of a declared task's content.
pub fn task_fingerprint(task: &DesiredTask) -> u64 {
    let due = due_text(task.due);
    let completed = task.completed.to_string();
    fingerprint([
        task.title.as_str(),
        task.body.as_deref().unwrap_or(""),
        due.as_str(),
        task.assigned_to.as_deref().unwrap_or(""),
        completed.as_str(),
    ])
}

/// Fingerprint of a declared note's content.
pub fn note_fingerprint(note: &DesiredNote) -> u64 {
    fingerprint([note.body.trim()])
}

/// What the planner needs of a declared task or note, and of the one GHL holds.
trait Declared {
    /// The item as GHL holds it.
    type Current;
    const KIND: ItemKind;
    fn key(&self) -> &str;
    fn fingerprint(&self) -> u64;
    fn create(&self) -> ItemBody;
    /// The update of every field, when the item was not read (the ledger's fingerprint says
    /// the declaration changed).
    fn full_update(&self) -> (ItemUpdate, Vec<String>);
    /// What turns `current` into this item, if anything.
    fn update_from(&self, current: &Self::Current, fingerprint: u64) -> Option<ItemOp>;
    /// Whether `current` is this item made by someone else (adopted rather than duplicated).
    fn same_as(&self, current: &Self::Current) -> bool;
    fn id_of(current: &Self::Current) -> &str;
}

impl Declared for DesiredTask {
    type Current = Task;
    const KIND: ItemKind = ItemKind::Task;

    fn key(&self) -> &str {
        &self.key
    }

    fn fingerprint(&self) -> u64 {
        task_fingerprint(self)
    }

    fn create(&self) -> ItemBody {
        ItemBody::Task(CreateTask {
            title: self.title.clone(),
            body: self.body.clone(),
            due_date: due_text(self.due),
            completed: self.completed,
            assigned_to: self.assigned_to.clone(),
        })
    }

    fn full_update(&self) -> (ItemUpdate, Vec<String>) {
        let update = UpdateTask {
            title: Some(self.title.clone()),
            body: self.body.clone(),
            due_date: Some(due_text(self.due)),
            completed: Some(self.completed),
            assigned_to: self.assigned_to.clone(),
        };
        let fields = ["title", "body", "dueDate", "assignedTo", "completed"];
        (ItemUpdate::Task(update), fields.map(str::to_owned).to_vec())
    }

    fn update_from(&self, current: &Task, fp: u64) -> Option<ItemOp> {
        task_update(self, current, fp)
    }

    fn same_as(&self, current: &Task) -> bool {
        current.title.as_deref().map(str::trim) == Some(self.title.as_str())
    }

    fn id_of(current: &Task) -> &str {
        &current.id
    }
}

impl Declared for DesiredNote {
    type Current = Note;
    const KIND: ItemKind = ItemKind::Note;

    fn key(&self) -> &str {
        &self.key
    }

    fn fingerprint(&self) -> u64 {
        note_fingerprint(self)
    }

    fn create(&self) -> ItemBody {
        ItemBody::Note(CreateNote {
            body: self.body.clone(),
            ..CreateNote::default()
        })
    }

    fn full_update(&self) -> (ItemUpdate, Vec<String>) {
        let update = UpdateNote {
            body: Some(self.body.clone()),
            ..UpdateNote::default()
        };
        (ItemUpdate::Note(update), vec!["body".into()])
    }

    fn update_from(&self, current: &Note, fp: u64) -> Option<ItemOp> {
        let (body, fields) = self.full_update();
        (!self.same_as(current)).then(|| ItemOp::Update {
            kind: ItemKind::Note,
            key: self.key.clone(),
            id: current.id.clone(),
            body,
            fields,
            fingerprint: fp,
        })
    }

    fn same_as(&self, current: &Note) -> bool {
        current.body.trim() == self.body.trim()
    }

    fn id_of(current: &Note) -> &str {
        &current.id
    }
}

/// Plans the items of a contact (`id` is `None` for a contact still to be created).
pub fn plan_items(
    contact: &DesiredContact,
    id: Option<&str>,
    owned: Option<&OwnedContact>,
    observed: &Observed,
    prune: bool,
) -> Vec<ItemOp> {
    let mut ops = Vec::new();
    let tasks = id.and_then(|id| observed.tasks.get(id));
    let notes = id.and_then(|id| observed.notes.get(id));
    plan_kind(&contact.tasks, owned, tasks, prune, &mut ops);
    plan_kind(&contact.notes, owned, notes, prune, &mut ops);
    ops
}

/// Plans one kind of item: each declared one updated, recreated, adopted or created, then the
/// owned ones no longer declared.
///
/// One piece: one decision per owned or declared item, in the order the table tests read.
fn plan_kind<D: Declared>(
    declared: &[D],
    owned: Option<&OwnedContact>,
    observed: Option<&Vec<D::Current>>,
    prune: bool,
    ops: &mut Vec<ItemOp>,
) {
    let owned_items = owned.map(|o| o.items(D::KIND));
    let owned_ids: BTreeSet<&str> = owned_items
        .into_iter()
        .flatten()
        .filter_map(|(_, item)| item.id.as_deref())
        .collect();
    let mut adopted: BTreeSet<&str> = BTreeSet::new();
    for wanted in declared {
        let fp = wanted.fingerprint();
        let create = |resolve: bool, replaces: Option<&str>| ItemOp::Create {
            kind: D::KIND,
            key: wanted.key().to_owned(),
            body: wanted.create(),
            fingerprint: fp,
            resolve,
            replaces: replaces.map(str::to_owned),
        };
        let item = owned_items.and_then(|items| items.get(wanted.key()));
        match item.map(|i| i.id.as_deref()) {
            Some(Some(id)) => match observed {
                Some(list) => match list.iter().find(|c| D::id_of(c) == id) {
                    Some(current) => ops.extend(wanted.update_from(current, fp)),
                    None => ops.push(create(false, Some(id))),
                },
                // Not read this time: trust the ledger, write only if the declaration changed.
                None if item.and_then(|i| i.fingerprint) != Some(fp) => {
                    let (body, fields) = wanted.full_update();
                    ops.push(ItemOp::Update {
                        kind: D::KIND,
                        key: wanted.key().to_owned(),
                        id: id.to_owned(),
                        body,
                        fields,
                        fingerprint: fp,
                    });
                }
                None => {}
            },
            Some(None) => ops.push(create(true, None)),
            None => {
                let same = observed.and_then(|list| {
                    list.iter().find(|c| {
                        !owned_ids.contains(D::id_of(c))
                            && !adopted.contains(D::id_of(c))
                            && wanted.same_as(c)
                    })
                });
                match same {
                    Some(existing) => {
                        adopted.insert(D::id_of(existing));
                        ops.push(ItemOp::Adopt {
                            kind: D::KIND,
                            key: wanted.key().to_owned(),
                            id: D::id_of(existing).to_owned(),
                            fingerprint: fp,
                        });
                        ops.extend(wanted.update_from(existing, fp));
                    }
                    None => ops.push(create(false, None)),
                }
            }
        }
    }
    undeclared(
        declared.iter().map(Declared::key),
        owned,
        D::KIND,
        observed.map(|l| l.iter().map(D::id_of).collect()),
        prune,
        ops,
    );
}

/// The update (or completion) that turns `current` into `task`.
fn task_update(task: &DesiredTask, current: &Task, fp: u64) -> Option<ItemOp> {
    let mut update = UpdateTask::default();
    let mut fields = Vec::new();
    if current.title.as_deref().map(str::trim) != Some(task.title.as_str()) {
        update.title = Some(task.title.clone());
        fields.push("title".to_owned());
    }
    let body = current.body.as_deref().filter(|b| !b.is_empty());
    if body != task.body.as_deref() {
        update.body = Some(task.body.clone().unwrap_or_default());
        fields.push("body".to_owned());
    }
    let due = current
        .due_date
        .as_deref()
        .and_then(|d| d.parse::<Timestamp>().ok());
    if due != Some(task.due) {
        update.due_date = Some(due_text(task.due));
        fields.push("dueDate".to_owned());
    }
    if task.assigned_to.is_some() && current.assigned_to != task.assigned_to {
        update.assigned_to = task.assigned_to.clone();
        fields.push("assignedTo".to_owned());
    }
    let completion_differs = current.completed != task.completed;
    if fields.is_empty() {
        return completion_differs.then(|| ItemOp::Complete {
            key: task.key.clone(),
            id: current.id.clone(),
            completed: task.completed,
            fingerprint: fp,
        });
    }
    if completion_differs {
        update.completed = Some(task.completed);
        fields.push("completed".to_owned());
    }
    Some(ItemOp::Update {
        kind: ItemKind::Task,
        key: task.key.clone(),
        id: current.id.clone(),
        body: ItemUpdate::Task(update),
        fields,
        fingerprint: fp,
    })
}

/// Owned items no longer declared: deleted with `prune` (when still there), else forgotten.
fn undeclared<'a>(
    declared: impl Iterator<Item = &'a str>,
    owned: Option<&OwnedContact>,
    kind: ItemKind,
    present: Option<BTreeSet<&str>>,
    prune: bool,
    ops: &mut Vec<ItemOp>,
) {
    let declared: BTreeSet<&str> = declared.collect();
    let Some(owned) = owned else {
        return;
    };
    for (key, item) in owned.items(kind) {
        if declared.contains(key.as_str()) {
            continue;
        }
        let still_there = match (&item.id, &present) {
            (Some(id), Some(present)) => present.contains(id.as_str()),
            (Some(_), None) => true,
            (None, _) => false,
        };
        match &item.id {
            Some(id) if prune && still_there => ops.push(ItemOp::Delete {
                kind,
                key: key.clone(),
                id: id.clone(),
            }),
            _ => ops.push(ItemOp::Forget {
                kind,
                key: key.clone(),
            }),
        }
    }
}

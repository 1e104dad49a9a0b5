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

fn create_task(task: &DesiredTask) -> CreateTask {
    CreateTask {
        title: task.title.clone(),
        body: task.body.clone(),
        due_date: due_text(task.due),
        completed: task.completed,
        assigned_to: task.assigned_to.clone(),
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
    plan_tasks(contact, owned, tasks, &mut ops);
    undeclared(
        contact.tasks.iter().map(|t| t.key.as_str()),
        owned,
        ItemKind::Task,
        tasks.map(|l| l.iter().map(|t| t.id.as_str()).collect()),
        prune,
        &mut ops,
    );
    plan_notes(contact, owned, notes, &mut ops);
    undeclared(
        contact.notes.iter().map(|n| n.key.as_str()),
        owned,
        ItemKind::Note,
        notes.map(|l| l.iter().map(|n| n.id.as_str()).collect()),
        prune,
        &mut ops,
    );
    ops
}

/// One piece: one decision per owned or declared task, in the order the table tests read.
fn plan_tasks(
    contact: &DesiredContact,
    owned: Option<&OwnedContact>,
    observed: Option<&Vec<Task>>,
    ops: &mut Vec<ItemOp>,
) {
    let owned_items = owned.map(|o| o.items(ItemKind::Task));
    let owned_ids: BTreeSet<&str> = owned_items
        .into_iter()
        .flatten()
        .filter_map(|(_, item)| item.id.as_deref())
        .collect();
    let mut adopted: BTreeSet<String> = BTreeSet::new();
    for task in &contact.tasks {
        let fp = task_fingerprint(task);
        let item = owned_items.and_then(|items| items.get(&task.key));
        match item.map(|i| i.id.as_deref()) {
            Some(Some(task_id)) => match observed {
                Some(list) => match list.iter().find(|t| t.id == task_id) {
                    Some(current) => ops.extend(task_update(task, current, fp)),
                    None => ops.push(ItemOp::Create {
                        kind: ItemKind::Task,
                        key: task.key.clone(),
                        body: ItemBody::Task(create_task(task)),
                        fingerprint: fp,
                        resolve: false,
                        replaces: Some(task_id.to_owned()),
                    }),
                },
                // Not read this time: trust the ledger, write only if the declaration changed.
                None => {
                    if item.and_then(|i| i.fingerprint) != Some(fp) {
                        ops.push(ItemOp::Update {
                            kind: ItemKind::Task,
                            key: task.key.clone(),
                            id: task_id.to_owned(),
                            body: ItemUpdate::Task(full_task_update(task)),
                            fields: vec![
                                "title".into(),
                                "body".into(),
                                "dueDate".into(),
                                "assignedTo".into(),
                                "completed".into(),
                            ],
                            fingerprint: fp,
                        });
                    }
                }
            },
            Some(None) => ops.push(ItemOp::Create {
                kind: ItemKind::Task,
                key: task.key.clone(),
                body: ItemBody::Task(create_task(task)),
                fingerprint: fp,
                resolve: true,
                replaces: None,
            }),
            None => {
                let same = observed.and_then(|list| {
                    list.iter().find(|t| {
                        !owned_ids.contains(t.id.as_str())
                            && !adopted.contains(&t.id)
                            && t.title.as_deref().map(str::trim) == Some(task.title.as_str())
                    })
                });
                match same {
                    Some(existing) => {
                        adopted.insert(existing.id.clone());
                        ops.push(ItemOp::Adopt {
                            kind: ItemKind::Task,
                            key: task.key.clone(),
                            id: existing.id.clone(),
                            fingerprint: fp,
                        });
                        ops.extend(task_update(task, existing, fp));
                    }
                    None => ops.push(ItemOp::Create {
                        kind: ItemKind::Task,
                        key: task.key.clone(),
                        body: ItemBody::Task(create_task(task)),
                        fingerprint: fp,
                        resolve: false,
                        replaces: None,
                    }),
                }
            }
        }
    }
}

fn full_task_update(task: &DesiredTask) -> UpdateTask {
    UpdateTask {
        title: Some(task.title.clone()),
        body: task.body.clone(),
        due_date: Some(due_text(task.due)),
        completed: Some(task.completed),
        assigned_to: task.assigned_to.clone(),
    }
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

fn plan_notes(
    contact: &DesiredContact,
    owned: Option<&OwnedContact>,
    observed: Option<&Vec<Note>>,
    ops: &mut Vec<ItemOp>,
) {
    let owned_items = owned.map(|o| o.items(ItemKind::Note));
    let owned_ids: BTreeSet<&str> = owned_items
        .into_iter()
        .flatten()
        .filter_map(|(_, item)| item.id.as_deref())
        .collect();
    let mut adopted: BTreeSet<String> = BTreeSet::new();
    for note in &contact.notes {
        let fp = note_fingerprint(note);
        let create = |resolve: bool, replaces: Option<String>| ItemOp::Create {
            kind: ItemKind::Note,
            key: note.key.clone(),
            body: ItemBody::Note(CreateNote {
                body: note.body.clone(),
                ..CreateNote::default()
            }),
            fingerprint: fp,
            resolve,
            replaces,
        };
        let update = |id: &str| ItemOp::Update {
            kind: ItemKind::Note,
            key: note.key.clone(),
            id: id.to_owned(),
            body: ItemUpdate::Note(UpdateNote {
                body: Some(note.body.clone()),
                ..UpdateNote::default()
            }),
            fields: vec!["body".into()],
            fingerprint: fp,
        };
        let item = owned_items.and_then(|items| items.get(&note.key));
        match item.map(|i| i.id.as_deref()) {
            Some(Some(note_id)) => match observed {
                Some(list) => match list.iter().find(|n| n.id == note_id) {
                    Some(current) if current.body.trim() == note.body.trim() => {}
                    Some(_) => ops.push(update(note_id)),
                    None => ops.push(create(false, Some(note_id.to_owned()))),
                },
                None => {
                    if item.and_then(|i| i.fingerprint) != Some(fp) {
                        ops.push(update(note_id));
                    }
                }
            },
            Some(None) => ops.push(create(true, None)),
            None => {
                let same = observed.and_then(|list| {
                    list.iter().find(|n| {
                        !owned_ids.contains(n.id.as_str())
                            && !adopted.contains(&n.id)
                            && n.body.trim() == note.body.trim()
                    })
                });
                match same {
                    Some(existing) => {
                        adopted.insert(existing.id.clone());
                        ops.push(ItemOp::Adopt {
                            kind: ItemKind::Note,
                            key: note.key.clone(),
                            id: existing.id.clone(),
                            fingerprint: fp,
                        });
                    }
                    None => ops.push(create(false, None)),
                }
            }
        }
    }
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

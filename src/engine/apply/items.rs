//! Tasks and notes of one contact: create (finding the one an earlier, lost create made),
//! adopt, update, complete, delete and forget — each bracketed by ledger commits.

use super::{Run, Step, StepError, ambiguous};
use crate::engine::ledger::{Change, ItemKind};
use crate::engine::plan::{ItemBody, ItemOp, ItemUpdate};
use crate::ghl::models::{CreateNote, CreateTask, Note, Task};
use crate::ghl::{ErrorClass, GhlError};

/// One piece: one arm per operation, each a write bracketed by its ledger commits.
pub(super) async fn apply_item(run: &Run<'_>, contact: &str, op: &ItemOp) -> Step<()> {
    match op {
        ItemOp::Forget { kind, key } => {
            run.commit(vec![Change::ItemForgotten {
                id: contact.to_owned(),
                kind: *kind,
                key: key.clone(),
            }])
            .await
        }
        ItemOp::Adopt {
            kind,
            key,
            id,
            fingerprint: fp,
        } => {
            run.commit(vec![Change::ItemBound {
                id: contact.to_owned(),
                kind: *kind,
                key: key.clone(),
                item_id: id.clone(),
                fingerprint: *fp,
            }])
            .await
        }
        ItemOp::Create {
            kind,
            key,
            body,
            fingerprint: fp,
            resolve,
            replaces,
        } => {
            create_item(
                run,
                contact,
                *kind,
                key,
                body,
                *fp,
                *resolve,
                replaces.as_deref(),
            )
            .await
        }
        ItemOp::Update {
            kind,
            key,
            id,
            body,
            fingerprint: fp,
            ..
        } => {
            let result = match body {
                ItemUpdate::Task(t) => run
                    .write(run.api.update_task(contact, id, t))
                    .await?
                    .map(drop),
                ItemUpdate::Note(n) => run
                    .write(run.api.update_note(contact, id, n))
                    .await?
                    .map(drop),
            };
            match result {
                Ok(()) => bind(run, contact, *kind, key, id, *fp).await,
                // Gone meanwhile: the next plan re-creates it.
                Err(e) if e.class() == ErrorClass::NotFound => {
                    forget(run, contact, *kind, key).await
                }
                Err(e) => Err(StepError::Record(e)),
            }
        }
        ItemOp::Complete {
            key,
            id,
            completed,
            fingerprint: fp,
        } => {
            match run
                .write(run.api.complete_task(contact, id, *completed))
                .await?
            {
                Ok(_) => bind(run, contact, ItemKind::Task, key, id, *fp).await,
                Err(e) if e.class() == ErrorClass::NotFound => {
                    forget(run, contact, ItemKind::Task, key).await
                }
                Err(e) => Err(StepError::Record(e)),
            }
        }
        ItemOp::Delete { kind, key, id } => {
            let result = match kind {
                ItemKind::Task => run.write(run.api.delete_task(contact, id)).await?,
                ItemKind::Note => run.write(run.api.delete_note(contact, id)).await?,
            };
            match result {
                Ok(()) => forget(run, contact, *kind, key).await,
                Err(e) if e.class() == ErrorClass::NotFound => {
                    forget(run, contact, *kind, key).await
                }
                Err(e) => Err(StepError::Record(e)),
            }
        }
    }
}

async fn bind(
    run: &Run<'_>,
    contact: &str,
    kind: ItemKind,
    key: &str,
    item_id: &str,
    fp: u64,
) -> Step<()> {
    run.record(vec![Change::ItemBound {
        id: contact.to_owned(),
        kind,
        key: key.to_owned(),
        item_id: item_id.to_owned(),
        fingerprint: fp,
    }])
    .await
}

async fn forget(run: &Run<'_>, contact: &str, kind: ItemKind, key: &str) -> Step<()> {
    run.record(vec![Change::ItemForgotten {
        id: contact.to_owned(),
        kind,
        key: key.to_owned(),
    }])
    .await
}

/// An existing task or note that is the one `body` describes (same title / same body).
async fn find_item(run: &Run<'_>, contact: &str, body: &ItemBody) -> Step<Option<String>> {
    run.check_stopped()?;
    let found = match body {
        ItemBody::Task(task) => {
            let tasks: Vec<Task> = run
                .api
                .list_tasks(contact)
                .await
                .map_err(StepError::Record)?;
            tasks
                .into_iter()
                .find(|t| t.title.as_deref().map(str::trim) == Some(task.title.as_str()))
                .map(|t| t.id)
        }
        ItemBody::Note(note) => {
            let notes: Vec<Note> = run
                .api
                .list_notes(contact)
                .await
                .map_err(StepError::Record)?;
            notes
                .into_iter()
                .find(|n| n.body.trim() == note.body.trim())
                .map(|n| n.id)
        }
    };
    Ok(found)
}

#[allow(clippy::too_many_arguments)]
async fn create_item(
    run: &Run<'_>,
    contact: &str,
    kind: ItemKind,
    key: &str,
    body: &ItemBody,
    fp: u64,
    resolve: bool,
    replaces: Option<&str>,
) -> Step<()> {
    if resolve && let Some(existing) = find_item(run, contact, body).await? {
        return bind(run, contact, kind, key, &existing, fp).await;
    }
    if let Some(old) = replaces {
        // Observation did not see it; make sure before creating a second one.
        let still_there = match kind {
            ItemKind::Task => run.api.get_task(contact, old).await.map(drop),
            ItemKind::Note => run.api.get_note(contact, old).await.map(drop),
        };
        match still_there {
            // Found after all: keep it with an unknown fingerprint, so the next plan diffs it.
            Ok(()) => {
                return run
                    .commit(vec![Change::ItemBound {
                        id: contact.to_owned(),
                        kind,
                        key: key.to_owned(),
                        item_id: old.to_owned(),
                        fingerprint: 0,
                    }])
                    .await;
            }
            Err(e) if e.class() == ErrorClass::NotFound => {}
            Err(e) => return Err(StepError::Record(e)),
        }
    }
    run.commit(vec![Change::ItemStarted {
        id: contact.to_owned(),
        kind,
        key: key.to_owned(),
    }])
    .await?;
    let created = match body {
        ItemBody::Task(task) => run.write(create_task(run, contact, task)).await?,
        ItemBody::Note(note) => run.write(create_note(run, contact, note)).await?,
    };
    match created {
        Ok(item_id) => bind(run, contact, kind, key, &item_id, fp).await,
        Err(e) if ambiguous(&e) => match find_item(run, contact, body).await? {
            Some(existing) => bind(run, contact, kind, key, &existing, fp).await,
            None => Err(StepError::Record(e)),
        },
        Err(e) => Err(StepError::Record(e)),
    }
}

async fn create_task(run: &Run<'_>, contact: &str, task: &CreateTask) -> Result<String, GhlError> {
    run.api.create_task(contact, task).await.map(|t| t.id)
}

async fn create_note(run: &Run<'_>, contact: &str, note: &CreateNote) -> Result<String, GhlError> {
    run.api.create_note(contact, note).await.map(|n| n.id)
}

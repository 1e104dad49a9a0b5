//! A managed contact no longer declared: delete it (`prune`, and we created it), or remove the
//! tags we added and delete the tasks and notes we created (`prune`); then forget it.

use super::items::apply_item;
use super::{Run, Step, StepError};
use crate::engine::ledger::Change;
use crate::engine::plan::{ItemOp, Release};
use crate::ghl::ErrorClass;

pub(super) async fn apply_release(run: &Run<'_>, release: &Release) -> Step<()> {
    run.check_stopped()?;
    let id = &release.id;
    if !release.gone {
        if release.delete_contact {
            match run.write(run.api.delete_contact(id)).await? {
                Ok(()) => {}
                Err(e) if e.class() == ErrorClass::NotFound => {}
                Err(e) => return Err(StepError::Record(e)),
            }
        } else {
            if !release.remove_tags.is_empty() {
                let tags: Vec<String> = release.remove_tags.iter().cloned().collect();
                match run.write(run.api.remove_tags(id, &tags)).await? {
                    Ok(_) => {}
                    Err(e) if e.class() == ErrorClass::NotFound => {}
                    Err(e) => return Err(StepError::Record(e)),
                }
                run.commit(vec![Change::TagsReleased {
                    id: id.clone(),
                    tags: release.remove_tags.clone(),
                }])
                .await?;
            }
            for (kind, key, item) in &release.delete_items {
                apply_item(
                    run,
                    id,
                    &ItemOp::Delete {
                        kind: *kind,
                        key: key.clone(),
                        id: item.clone(),
                    },
                )
                .await?;
            }
        }
    }
    run.commit(vec![Change::ContactForgotten { id: id.clone() }])
        .await
}

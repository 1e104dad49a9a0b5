//! Approving a plan (policies and tag rules alike): a plan that is not applied (over a `safety`
//! limit, or `mode: Plan`) is recorded in status with its hash (`status.plan.hash`) and why it
//! waits (`status.plan.blocked`); annotating the object `ghl.servis.ai/approve-plan=<hash>` applies
//! exactly that plan once. A plan that changed since has another hash and is not applied; an
//! approval that was used (`status.plan.approved`) is not used again. Pure; [`review`] is the
//! pipeline's one approval step after every sync.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::controller::reconcile::verdict::Notice;
use crate::crd::common::PlanSummary;
use crate::crd::vocabulary::{action, annotation, reason};
use crate::engine::SyncOutcome;

/// The approval an object carries and has not used yet (a plan hash: hex, at most 64), from
/// its metadata and the plan its status last recorded.
pub fn pending(meta: &ObjectMeta, plan: Option<&PlanSummary>) -> Option<String> {
    let value = meta
        .annotations
        .as_ref()?
        .get(annotation::APPROVE_PLAN)?
        .trim();
    let plausible = (1..=64).contains(&value.len()) && value.chars().all(|c| c.is_ascii_hexdigit());
    let used = plan.and_then(|p| p.approved.as_deref());
    (plausible && used != Some(value)).then(|| value.to_owned())
}

/// Who set the approval and when, as the API server's managed fields tell it (the field
/// manager, e.g. `kubectl-annotate`, and the time of that write).
pub fn approver(meta: &ObjectMeta) -> Option<(String, Option<String>)> {
    let key = format!("f:{}", annotation::APPROVE_PLAN);
    meta.managed_fields.iter().flatten().find_map(|entry| {
        let fields = entry.fields_v1.as_ref()?;
        fields
            .0
            .get("f:metadata")?
            .get("f:annotations")?
            .get(&key)?;
        Some((
            entry.manager.clone().unwrap_or_else(|| "unknown".into()),
            entry.time.as_ref().map(|t| t.0.to_string()),
        ))
    })
}

/// The approval step after a sync: records in `plan` why it waits (`blocked`) and the
/// approval it used (`approved`), and says what to tell about `approval`, if anything.
pub fn review<P>(
    approval: Option<&str>,
    plan: &mut PlanSummary,
    outcome: &SyncOutcome<P>,
    meta: &ObjectMeta,
) -> Option<Notice> {
    plan.blocked = blocked(outcome, plan.hash.as_deref());
    let notice = notice(approval, plan, outcome, approver(meta))?;
    if notice.reason == reason::PLAN_APPROVED {
        plan.approved = approval.map(str::to_owned);
    }
    Some(notice)
}

/// Why a plan waits, for `status.plan.blocked` (`None`: it does not).
pub fn blocked<P>(outcome: &SyncOutcome<P>, hash: Option<&str>) -> Option<String> {
    let why = match outcome {
        SyncOutcome::Blocked { reason, .. } => reason.clone(),
        SyncOutcome::Planned { .. } => "mode Plan".to_owned(),
        _ => return None,
    };
    Some(match hash {
        Some(hash) => format!("{why}; annotate ghl.servis.ai/approve-plan={hash} to apply it once"),
        None => why,
    })
}

/// What to tell about an approval after a sync: applied (with who approved it, when the API
/// server says), or naming a plan that is no longer the current one.
pub fn notice<P>(
    approval: Option<&str>,
    summary: &PlanSummary,
    outcome: &SyncOutcome<P>,
    who: Option<(String, Option<String>)>,
) -> Option<Notice> {
    let approval = approval?;
    let by = match who {
        Some((manager, Some(at))) => format!(", approved by {manager} at {at}"),
        Some((manager, None)) => format!(", approved by {manager}"),
        None => String::new(),
    };
    match outcome {
        SyncOutcome::Applied { .. } if summary.hash.as_deref() == Some(approval) => Some(Notice {
            warning: false,
            reason: reason::PLAN_APPROVED,
            action: action::APPLY,
            note: format!("applied plan {approval}{by}"),
        }),
        SyncOutcome::Blocked { .. } | SyncOutcome::Planned { .. } => Some(Notice {
            warning: true,
            reason: reason::APPROVAL_OUTDATED,
            action: action::APPLY,
            note: format!(
                "approval {approval} does not match the current plan {}{by}; approve the current one to apply it",
                summary.hash.as_deref().unwrap_or("(none)")
            ),
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{FieldsV1, ManagedFieldsEntry, Time};
    use serde_json::json;

    use super::*;
    use crate::engine::apply::ApplyReport;

    fn pending_of(annotation: Option<&str>, used: Option<&str>) -> Option<String> {
        let meta = ObjectMeta {
            annotations: annotation
                .map(|a| BTreeMap::from([(annotation::APPROVE_PLAN.to_owned(), a.to_owned())])),
            ..ObjectMeta::default()
        };
        let plan = PlanSummary {
            approved: used.map(str::to_owned),
            ..PlanSummary::default()
        };
        pending(&meta, Some(&plan))
    }

    #[test]
    fn an_approval_is_used_once_and_must_look_like_a_hash() {
        let cases = [
            (None, None, None),
            (Some("0a1b2c3d4e5f6a7b"), None, Some("0a1b2c3d4e5f6a7b")),
            (Some(" 0a1b2c3d4e5f6a7b "), None, Some("0a1b2c3d4e5f6a7b")),
            (Some("0a1b2c3d4e5f6a7b"), Some("0a1b2c3d4e5f6a7b"), None),
            (
                Some("0a1b2c3d4e5f6a7b"),
                Some("ffff"),
                Some("0a1b2c3d4e5f6a7b"),
            ),
            (Some("yes please"), None, None),
            (Some(""), None, None),
        ];
        for (annotation, used, expected) in cases {
            assert_eq!(
                pending_of(annotation, used).as_deref(),
                expected,
                "{annotation:?} used {used:?}"
            );
        }
        let long = "a".repeat(65);
        assert_eq!(pending_of(Some(&long), None), None);
    }

    #[test]
    fn the_approver_is_the_manager_that_wrote_the_annotation() {
        let entry = |manager: &str, fields: serde_json::Value| ManagedFieldsEntry {
            manager: Some(manager.into()),
            time: Some(Time("2026-12-02T10:00:00Z".parse().unwrap())),
            fields_v1: Some(FieldsV1(fields)),
            ..ManagedFieldsEntry::default()
        };
        let meta = ObjectMeta {
            managed_fields: Some(vec![
                entry("kubectl-client-side-apply", json!({"f:spec": {}})),
                entry(
                    "kubectl-annotate",
                    json!({"f:metadata": {"f:annotations": {"f:ghl.servis.ai/approve-plan": {}}}}),
                ),
            ]),
            ..ObjectMeta::default()
        };
        assert_eq!(
            approver(&meta),
            Some((
                "kubectl-annotate".into(),
                Some("2026-12-02T10:00:00Z".into())
            ))
        );
        assert_eq!(approver(&ObjectMeta::default()), None);
    }

    /// An applied and a blocked outcome.
    fn outcomes() -> (SyncOutcome<()>, SyncOutcome<()>) {
        let applied = SyncOutcome::Applied {
            plan: (),
            report: ApplyReport::default(),
        };
        let blocked = SyncOutcome::Blocked {
            plan: (),
            reason: "over".into(),
        };
        (applied, blocked)
    }

    #[test]
    fn notices_say_applied_or_outdated() {
        let summary = PlanSummary {
            hash: Some("aaaa".into()),
            ..PlanSummary::default()
        };
        let (applied, blocked) = outcomes();
        let who = Some(("kubectl-annotate".to_owned(), None));
        let notice_of = |approval, outcome| notice(approval, &summary, outcome, who.clone());
        let applied_notice = notice_of(Some("aaaa"), &applied).unwrap();
        assert_eq!(applied_notice.reason, reason::PLAN_APPROVED);
        assert!(applied_notice.note.contains("kubectl-annotate"));
        let outdated = notice_of(Some("bbbb"), &blocked).unwrap();
        assert!(outdated.warning && outdated.note.contains("current plan aaaa"));
        assert_eq!(notice_of(None, &blocked), None);
        assert_eq!(
            blocked_reason_of(&blocked),
            Some("over; annotate ghl.servis.ai/approve-plan=aaaa to apply it once".into())
        );
        assert_eq!(blocked_reason_of(&applied), None);
    }

    #[test]
    fn the_review_records_what_waits_and_what_was_used() {
        let (applied, blocked) = outcomes();
        let plan = || PlanSummary {
            hash: Some("aaaa".into()),
            ..PlanSummary::default()
        };
        let meta = ObjectMeta::default();

        let mut waiting = plan();
        assert_eq!(review(None, &mut waiting, &blocked, &meta), None);
        assert!(waiting.blocked.is_some() && waiting.approved.is_none());

        let mut used = plan();
        let notice = review(Some("aaaa"), &mut used, &applied, &meta).unwrap();
        assert_eq!(notice.reason, reason::PLAN_APPROVED);
        assert_eq!(
            (used.blocked, used.approved.as_deref()),
            (None, Some("aaaa"))
        );

        let mut outdated = plan();
        let notice = review(Some("bbbb"), &mut outdated, &blocked, &meta).unwrap();
        assert_eq!(notice.reason, reason::APPROVAL_OUTDATED);
        assert_eq!(
            outdated.approved, None,
            "an outdated approval is not recorded as used"
        );
    }

    fn blocked_reason_of(outcome: &SyncOutcome<()>) -> Option<String> {
        blocked(outcome, Some("aaaa"))
    }
}

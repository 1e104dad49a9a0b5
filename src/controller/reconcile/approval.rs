//! Approving a plan (policies and tag rules alike): a plan that is not applied (over a `safety`
//! limit, or `mode: Plan`) is recorded in status with its hash (`status.plan.hash`) and why it
//! waits (`status.plan.blocked`); annotating the object `ghl.servis.ai/approve-plan=<hash>` applies
//! exactly that plan once. A plan that changed since has another hash and is not applied; an
//! approval that was used (`status.plan.approved`) is not used again.
//!
//! With the admission webhook ([`crate::admission`]), an approval is honoured only when the
//! webhook stamped it (the approver was allowed the RBAC verb `approve`) and the approver is
//! not the author of the spec: [`authorize`]. Without it, any approval is honoured and
//! recorded as approved by `unverified`. Pure; [`review`] is the pipeline's one approval step
//! after every sync.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::admission::stamps::{self, Subject, Unauthorized};
use crate::controller::context::Approvals;
use crate::controller::reconcile::verdict::Notice;
use crate::crd::common::PlanSummary;
use crate::crd::vocabulary::{action, annotation, reason};
use crate::credentials::keys::OperatorKeys;
use crate::engine::SyncOutcome;

/// Who approves when no admission webhook runs.
pub const UNVERIFIED: &str = "unverified";

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

/// An approval not used yet, and whether it is honoured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Approval {
    /// The plan hash approved.
    pub hash: String,
    /// Who approved it (`unverified` without the webhook), or why it is not honoured.
    pub by: Result<String, Unauthorized>,
}

impl Approval {
    /// The hash, when the approval is honoured.
    pub fn authorized(&self) -> Option<&str> {
        self.by.is_ok().then_some(self.hash.as_str())
    }
}

/// Whether the approval of `hash` on the object (`subject`, `meta`, its spec's `digest`) is
/// honoured under `approvals`.
pub fn authorize(
    approvals: Approvals,
    keys: &OperatorKeys,
    (subject, meta, digest): (&Subject<'_>, &ObjectMeta, &str),
    hash: String,
) -> Approval {
    let by = match approvals {
        Approvals::Unverified => Ok(UNVERIFIED.to_owned()),
        Approvals::Sealed => {
            let empty = Default::default();
            let annotations = meta.annotations.as_ref().unwrap_or(&empty);
            let uid = meta.uid.as_deref().unwrap_or_default();
            stamps::authorize(keys, annotations, (subject, uid), &hash, digest)
        }
    };
    Approval { hash, by }
}

/// The approval step after a sync: records in `plan` why it waits (`blocked`) and the
/// approval it used (`approved`, `approvedBy`), and says what to tell about `approval`.
pub fn review<P>(
    approval: Option<&Approval>,
    plan: &mut PlanSummary,
    outcome: &SyncOutcome<P>,
) -> Option<Notice> {
    plan.blocked = blocked(outcome, plan.hash.as_deref());
    let notice = notice(approval, plan, outcome)?;
    if notice.reason == reason::PLAN_APPROVED
        && let Some(approval) = approval
    {
        plan.approved = Some(approval.hash.clone());
        plan.approved_by = approval.by.clone().ok();
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

/// What to tell about an approval after a sync: applied (naming who approved it), refused
/// (why), or naming a plan that is no longer the current one.
pub fn notice<P>(
    approval: Option<&Approval>,
    summary: &PlanSummary,
    outcome: &SyncOutcome<P>,
) -> Option<Notice> {
    let approval = approval?;
    let hash = approval.hash.as_str();
    let current = summary.hash.as_deref() == Some(hash);
    match (outcome, &approval.by) {
        (SyncOutcome::Applied { .. }, Ok(by)) if current => Some(Notice {
            warning: false,
            reason: reason::PLAN_APPROVED,
            action: action::APPLY,
            note: if by == UNVERIFIED {
                format!(
                    "applied plan {hash}, approved by an unverified user (the operator runs without its admission webhook)"
                )
            } else {
                format!("applied plan {hash}, approved by {by}")
            },
        }),
        (SyncOutcome::Blocked { .. } | SyncOutcome::Planned { .. }, _) if !current => {
            Some(Notice {
                warning: true,
                reason: reason::APPROVAL_OUTDATED,
                action: action::APPLY,
                note: format!(
                    "approval {hash} does not match the current plan {}; approve the current one to apply it",
                    summary.hash.as_deref().unwrap_or("(none)")
                ),
            })
        }
        (SyncOutcome::Blocked { .. } | SyncOutcome::Planned { .. }, Err(why)) => Some(Notice {
            warning: true,
            reason: reason::APPROVAL_REFUSED,
            action: action::APPLY,
            note: format!("approval {hash} is not honoured: {why}"),
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::crd::Kind;
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
    fn with_the_webhook_only_sealed_approvals_by_another_person_are_honoured() {
        let keys = OperatorKeys::ephemeral();
        let subject = Subject {
            kind: Kind::ContactSyncPolicy,
            namespace: "crm",
            name: "vip",
        };
        let mut annotations: BTreeMap<String, String> = BTreeMap::new();
        annotations.extend(
            stamps::author_stamp(&keys, &subject, "d1", "alice").map(|(k, v)| (k.to_owned(), v)),
        );
        annotations.extend(
            stamps::approval_stamp(&keys, "uid-1", "aaaa", "bob").map(|(k, v)| (k.to_owned(), v)),
        );
        let meta = ObjectMeta {
            uid: Some("uid-1".into()),
            annotations: Some(annotations),
            ..ObjectMeta::default()
        };
        let bare = ObjectMeta::default();
        let table = [
            (Approvals::Sealed, &meta, "d1", Ok("bob".to_owned())),
            (
                Approvals::Sealed,
                &meta,
                "d2",
                Err(Unauthorized::AuthorUnknown),
            ),
            (Approvals::Sealed, &bare, "d1", Err(Unauthorized::NotSealed)),
            (
                Approvals::Unverified,
                &bare,
                "d1",
                Ok(UNVERIFIED.to_owned()),
            ),
        ];
        for (approvals, meta, digest, expected) in table {
            let approval = authorize(approvals, &keys, (&subject, meta, digest), "aaaa".into());
            assert_eq!(approval.by, expected, "{approvals:?} {digest}");
            assert_eq!(approval.authorized().is_some(), expected.is_ok());
        }
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

    fn approval(hash: &str, by: Result<&str, Unauthorized>) -> Approval {
        Approval {
            hash: hash.into(),
            by: by.map(str::to_owned),
        }
    }

    #[test]
    fn notices_say_applied_refused_or_outdated() {
        let summary = PlanSummary {
            hash: Some("aaaa".into()),
            ..PlanSummary::default()
        };
        let (applied, blocked) = outcomes();
        let notice_of = |approval: Approval, outcome| notice(Some(&approval), &summary, outcome);
        let applied_notice = notice_of(approval("aaaa", Ok("bob")), &applied).unwrap();
        assert_eq!(applied_notice.reason, reason::PLAN_APPROVED);
        assert!(applied_notice.note.ends_with("approved by bob"));
        let unverified = notice_of(approval("aaaa", Ok(UNVERIFIED)), &applied).unwrap();
        assert!(unverified.note.contains("unverified"));
        let outdated = notice_of(approval("bbbb", Ok("bob")), &blocked).unwrap();
        assert_eq!(outdated.reason, reason::APPROVAL_OUTDATED);
        assert!(outdated.warning && outdated.note.contains("current plan aaaa"));
        let refused = notice_of(
            approval("aaaa", Err(Unauthorized::OwnChange("bob".into()))),
            &blocked,
        )
        .unwrap();
        assert_eq!(refused.reason, reason::APPROVAL_REFUSED);
        assert!(refused.note.contains("bob made the last spec change"));
        assert_eq!(notice(None, &summary, &blocked), None);
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

        let mut waiting = plan();
        assert_eq!(review(None, &mut waiting, &blocked), None);
        assert!(waiting.blocked.is_some() && waiting.approved.is_none());

        let mut used = plan();
        let notice = review(Some(&approval("aaaa", Ok("bob"))), &mut used, &applied).unwrap();
        assert_eq!(notice.reason, reason::PLAN_APPROVED);
        assert_eq!(
            (
                used.blocked,
                used.approved.as_deref(),
                used.approved_by.as_deref()
            ),
            (None, Some("aaaa"), Some("bob"))
        );

        let mut outdated = plan();
        let notice = review(Some(&approval("bbbb", Ok("bob"))), &mut outdated, &blocked).unwrap();
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

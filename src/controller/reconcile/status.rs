//! The one status builder of policies and rules, pure: the conditions of the verdict merged
//! into the previous ones (transition times kept), the generation observed, and — when a sync
//! ran — its plan and time. When none ran, the facts of the last sync stay as they were. The
//! last approval used stays recorded until another is used. Each kind then adds its own facts
//! ([`Synced::record`](super::pipeline::Synced::record)).

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::verdict::Verdict;
use crate::crd::common::PlanSummary;
use crate::crd::conditions::{self, Phase};
use crate::crd::owner::OwnerStatus;

/// The status after `verdict`, with `plan` when a sync ran.
pub fn next<S: OwnerStatus>(
    previous: &S,
    generation: Option<i64>,
    verdict: &Verdict,
    plan: Option<&PlanSummary>,
    now: Timestamp,
) -> S {
    let mut status = previous.clone();
    let merged = conditions::merge(previous.conditions(), &verdict.conditions, generation, now);
    status.observed(generation, merged);
    if let Some(plan) = plan {
        // The last approval used (and its approver) stays until another is used.
        let (approved, approved_by) = match &plan.approved {
            Some(_) => (plan.approved.clone(), plan.approved_by.clone()),
            None => previous.plan().map_or((None, None), |p| {
                (p.approved.clone(), p.approved_by.clone())
            }),
        };
        let plan = PlanSummary {
            approved,
            approved_by,
            ..plan.clone()
        };
        status.synced(plan, Time(now), verdict.phase == Phase::Ready);
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::reconcile::verdict::{Facts, Outcome, Requeue, verdict};
    use crate::crd::common::Mode;
    use crate::crd::contact_sync_policy::ContactSyncPolicyStatus;
    use crate::crd::tag_rule::TagRuleStatus;
    use crate::crd::vocabulary::condition;
    use crate::engine::SyncOutcome;

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn in_sync() -> Outcome {
        Outcome::Synced(SyncOutcome::InSync {
            plan: Facts {
                standing: "3 contact(s) in sync".into(),
                drifted: Some(0),
                ..Facts::default()
            },
        })
    }

    fn plan(approved: Option<&str>) -> PlanSummary {
        PlanSummary {
            create: 1,
            approved: approved.map(str::to_owned),
            ..PlanSummary::default()
        }
    }

    #[test]
    fn a_sync_records_its_facts_and_a_wait_keeps_the_previous_ones() {
        let v = verdict(&in_sync(), Mode::Apply, &[]);
        assert_eq!(v.requeue, Requeue::Resync);
        let first: ContactSyncPolicyStatus = next(
            &ContactSyncPolicyStatus::default(),
            Some(4),
            &v,
            Some(&plan(None)),
            at("2030-01-01T00:00:00Z"),
        );
        assert_eq!(first.observed_generation, Some(4));
        assert_eq!(first.plan.as_ref().map(|p| p.create), Some(1));
        assert!(first.last_successful_sync_time.is_some());
        assert!(conditions::is_true(&first.conditions, condition::SYNCED));

        let waiting = verdict(
            &Outcome::WaitingForOwners("ContactSyncPolicy crm/old".into()),
            Mode::Apply,
            &first.conditions,
        );
        let second = next(&first, Some(5), &waiting, None, at("2030-01-01T01:00:00Z"));
        assert_eq!(second.observed_generation, Some(5));
        assert_eq!(second.plan, first.plan, "the last plan's facts stay");
        assert_eq!(second.last_sync_time, first.last_sync_time);
        assert!(!conditions::is_true(&second.conditions, condition::SYNCED));
        assert!(
            second
                .conditions
                .iter()
                .any(|c| c.type_ == condition::DRIFTED),
            "Drifted from the last sync stays"
        );
    }

    #[test]
    fn the_last_approval_used_stays_until_another_is_used() {
        let v = verdict(&in_sync(), Mode::Apply, &[]);
        let now = at("2030-01-01T00:00:00Z");
        for previous in [None, Some("aaaa")] {
            for used in [None, Some("bbbb")] {
                let before = TagRuleStatus {
                    plan: Some(plan(previous)),
                    ..TagRuleStatus::default()
                };
                let after = next(&before, Some(1), &v, Some(&plan(used)), now);
                let expected = used.or(previous);
                assert_eq!(
                    after.plan.and_then(|p| p.approved).as_deref(),
                    expected,
                    "previous {previous:?}, used {used:?}"
                );
                assert_eq!(after.last_sync_time, Some(Time(now)));
            }
        }
    }
}

//! The verdict table: one row per branch.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::*;
use crate::crd::contact_sync_policy::RecordFailure;
use crate::engine::apply::ApplyReport;

fn facts() -> Facts {
    Facts {
        summary: "1 to create".into(),
        standing: "3 contact(s) in sync".into(),
        refused: 0,
        sources_refused: Vec::new(),
        drifted: Some(0),
        conflicts: Vec::new(),
        conflict_reason: reason::RECORD_CONFLICT,
    }
}

fn applied(writes: u64, failed: usize, facts: Facts) -> Outcome {
    Outcome::Synced(SyncOutcome::Applied {
        plan: facts,
        report: ApplyReport {
            writes,
            failures: vec![
                RecordFailure {
                    record: "contacts[0]".into(),
                    field: None,
                    reason: "GhlUnavailable".into(),
                    message: "503".into(),
                };
                failed
            ],
        },
    })
}

fn synced(outcome: SyncOutcome<Facts>) -> Outcome {
    Outcome::Synced(outcome)
}

fn condition(type_: &str, status: bool, why: &str) -> Condition {
    Condition {
        type_: type_.into(),
        status: if status { "True" } else { "False" }.into(),
        reason: why.into(),
        message: String::new(),
        observed_generation: Some(1),
        last_transition_time: Time("2030-01-01T00:00:00Z".parse().unwrap()),
    }
}

fn ready_before() -> Vec<Condition> {
    vec![
        condition("Ready", true, "Reconciled"),
        condition("Stalled", false, "Reconciled"),
    ]
}

fn stalled_before(why: &str) -> Vec<Condition> {
    vec![
        condition("Ready", false, why),
        condition("Stalled", true, why),
    ]
}

fn status_of(v: &Verdict, type_: &str) -> Option<(bool, &'static str)> {
    v.conditions
        .iter()
        .find(|d| d.type_ == type_)
        .map(|d| (d.status, d.reason))
}

fn event_reasons(v: &Verdict) -> Vec<&'static str> {
    v.events.iter().map(|e| e.reason).collect()
}

/// One row per branch: outcome, mode, previous conditions → phase, reason, Synced,
/// requeue, Events.
#[test]
// One table, read row by row.
fn every_branch() {
    struct Row {
        name: &'static str,
        outcome: Outcome,
        mode: Mode,
        previous: Vec<Condition>,
        phase: Phase,
        reason: &'static str,
        synced: bool,
        requeue: Requeue,
        events: Vec<&'static str>,
    }
    let drifted = Facts {
        drifted: Some(2),
        ..facts()
    };
    let refused = Facts {
        refused: 2,
        ..facts()
    };
    let source_refused = Facts {
        refused: 1,
        sources_refused: vec!["contactsFrom[0]: the source URL is refused: …".into()],
        ..facts()
    };
    let rows = vec![
        Row {
            name: "invalid spec",
            outcome: Outcome::InvalidSpec("spec.resyncInterval: invalid".into()),
            mode: Mode::Apply,
            previous: ready_before(),
            phase: Phase::Stalled,
            reason: reason::INVALID_SPEC,
            synced: false,
            requeue: Requeue::AwaitChange,
            events: vec![reason::INVALID_SPEC],
        },
        Row {
            name: "invalid spec, already stalled for it: no second Event",
            outcome: Outcome::InvalidSpec("spec.resyncInterval: invalid".into()),
            mode: Mode::Apply,
            previous: stalled_before(reason::INVALID_SPEC),
            phase: Phase::Stalled,
            reason: reason::INVALID_SPEC,
            synced: false,
            requeue: Requeue::AwaitChange,
            events: vec![],
        },
        Row {
            name: "credentials refused",
            outcome: Outcome::CredentialsRefused {
                connection: "crm/acme".into(),
            },
            mode: Mode::Apply,
            previous: ready_before(),
            phase: Phase::Stalled,
            reason: reason::CONNECTION_NOT_READY,
            synced: false,
            requeue: Requeue::After(CONNECTION_WAIT),
            events: vec![],
        },
        Row {
            name: "rate limited, with Retry-After",
            outcome: Outcome::RateLimited {
                retry_after: Some(Duration::from_secs(7)),
                message: "429".into(),
            },
            mode: Mode::Apply,
            previous: ready_before(),
            phase: Phase::Progressing,
            reason: reason::RATE_LIMITED,
            synced: false,
            requeue: Requeue::After(Duration::from_secs(7)),
            events: vec![],
        },
        Row {
            name: "rate limited, without Retry-After",
            outcome: Outcome::RateLimited {
                retry_after: None,
                message: "429".into(),
            },
            mode: Mode::Apply,
            previous: vec![],
            phase: Phase::Progressing,
            reason: reason::RATE_LIMITED,
            synced: false,
            requeue: Requeue::After(RATE_LIMIT_WAIT),
            events: vec![],
        },
        Row {
            name: "GHL unavailable",
            outcome: Outcome::Unavailable {
                category: "server_error",
                message: "503".into(),
            },
            mode: Mode::Apply,
            previous: ready_before(),
            phase: Phase::Progressing,
            reason: reason::GHL_UNAVAILABLE,
            synced: false,
            requeue: Requeue::Backoff,
            events: vec![],
        },
        Row {
            name: "connection gone",
            outcome: Outcome::ConnectionUnusable {
                phase: Phase::Progressing,
                reason: reason::CONNECTION_NOT_FOUND,
                message: "waiting for GhlConnection crm/acme to exist".into(),
            },
            mode: Mode::Apply,
            previous: ready_before(),
            phase: Phase::Progressing,
            reason: reason::CONNECTION_NOT_FOUND,
            synced: false,
            requeue: Requeue::After(CONNECTION_WAIT),
            events: vec![],
        },
        Row {
            name: "waiting for other owners",
            outcome: Outcome::WaitingForOwners("ContactSyncPolicy crm/a".into()),
            mode: Mode::Apply,
            previous: vec![],
            phase: Phase::Progressing,
            reason: reason::WAITING_FOR_OWNERS,
            synced: false,
            requeue: Requeue::After(OWNERS_WAIT),
            events: vec![],
        },
        Row {
            name: "blocked by safety",
            outcome: synced(SyncOutcome::Blocked {
                plan: facts(),
                reason: "the plan deletes 11 objects".into(),
            }),
            mode: Mode::Apply,
            previous: ready_before(),
            phase: Phase::Stalled,
            reason: reason::SAFETY_LIMIT_EXCEEDED,
            synced: false,
            requeue: Requeue::Resync,
            events: vec![reason::SAFETY_LIMIT_EXCEEDED],
        },
        Row {
            name: "plan only, changes pending",
            outcome: synced(SyncOutcome::Planned { plan: facts() }),
            mode: Mode::Plan,
            previous: ready_before(),
            phase: Phase::Ready,
            reason: reason::PLAN_ONLY,
            synced: false,
            requeue: Requeue::Resync,
            events: vec![],
        },
        Row {
            name: "plan only, nothing pending",
            outcome: synced(SyncOutcome::InSync { plan: facts() }),
            mode: Mode::Plan,
            previous: ready_before(),
            phase: Phase::Ready,
            reason: reason::RECONCILED,
            synced: true,
            requeue: Requeue::Resync,
            events: vec![],
        },
        Row {
            name: "drift repaired",
            outcome: applied(2, 0, drifted.clone()),
            mode: Mode::Apply,
            previous: ready_before(),
            phase: Phase::Ready,
            reason: reason::RECONCILED,
            synced: true,
            requeue: Requeue::Resync,
            events: vec![reason::PLAN_APPLIED],
        },
        Row {
            name: "applied after a stall: recovered",
            outcome: applied(3, 0, facts()),
            mode: Mode::Apply,
            previous: stalled_before(reason::SAFETY_LIMIT_EXCEEDED),
            phase: Phase::Ready,
            reason: reason::RECONCILED,
            synced: true,
            requeue: Requeue::Resync,
            events: vec![reason::PLAN_APPLIED, reason::RECOVERED],
        },
        Row {
            name: "first sync ever: no Recovered",
            outcome: synced(SyncOutcome::InSync { plan: facts() }),
            mode: Mode::Apply,
            previous: vec![],
            phase: Phase::Ready,
            reason: reason::RECONCILED,
            synced: true,
            requeue: Requeue::Resync,
            events: vec![],
        },
        Row {
            name: "partial failure",
            outcome: applied(4, 1, facts()),
            mode: Mode::Apply,
            previous: ready_before(),
            phase: Phase::Progressing,
            reason: reason::PARTIAL_FAILURE,
            synced: false,
            requeue: Requeue::Backoff,
            events: vec![reason::PLAN_APPLIED],
        },
        Row {
            name: "records refused, the rest in sync",
            outcome: synced(SyncOutcome::InSync { plan: refused }),
            mode: Mode::Apply,
            previous: ready_before(),
            phase: Phase::Stalled,
            reason: reason::INVALID_SPEC,
            synced: true,
            requeue: Requeue::Resync,
            events: vec![reason::INVALID_SPEC],
        },
        Row {
            name: "a source URL outside the allowlist",
            outcome: synced(SyncOutcome::InSync {
                plan: source_refused,
            }),
            mode: Mode::Apply,
            previous: ready_before(),
            phase: Phase::Stalled,
            reason: reason::SOURCE_NOT_ALLOWED,
            synced: true,
            requeue: Requeue::Resync,
            events: vec![reason::SOURCE_NOT_ALLOWED],
        },
    ];
    for row in rows {
        let v = verdict(&row.outcome, row.mode, &row.previous);
        assert_eq!(v.phase, row.phase, "{}", row.name);
        assert_eq!(v.reason, row.reason, "{}", row.name);
        assert_eq!(
            status_of(&v, condition::SYNCED).map(|s| s.0),
            Some(row.synced),
            "{}",
            row.name
        );
        assert_eq!(v.requeue, row.requeue, "{}", row.name);
        assert_eq!(event_reasons(&v), row.events, "{}", row.name);
        let kstatus_true = [condition::READY, condition::RECONCILING, condition::STALLED]
            .iter()
            .filter(|t| status_of(&v, t).is_some_and(|s| s.0))
            .count();
        assert_eq!(
            kstatus_true, 1,
            "{}: exactly one kstatus condition",
            row.name
        );
    }
}

#[test]
fn drift_is_reported_and_said_to_be_repaired_only_when_applied() {
    let drifted = Facts {
        drifted: Some(2),
        ..facts()
    };
    let repaired = verdict(&applied(2, 0, drifted.clone()), Mode::Apply, &[]);
    let (status, why) = status_of(&repaired, condition::DRIFTED).unwrap();
    assert!(status && why == reason::DRIFT_DETECTED);
    assert!(
        repaired
            .conditions
            .iter()
            .any(|d| d.message.ends_with("; repaired"))
    );
    let reported = verdict(
        &synced(SyncOutcome::Planned { plan: drifted }),
        Mode::Plan,
        &[],
    );
    assert!(
        !reported
            .conditions
            .iter()
            .any(|d| d.message.ends_with("; repaired"))
    );
    let calm = verdict(
        &synced(SyncOutcome::InSync { plan: facts() }),
        Mode::Apply,
        &[],
    );
    assert_eq!(
        status_of(&calm, condition::DRIFTED),
        Some((false, reason::NO_DRIFT))
    );
    let rule = Facts {
        drifted: None,
        ..facts()
    };
    let rule_verdict = verdict(
        &synced(SyncOutcome::InSync { plan: rule }),
        Mode::Apply,
        &[],
    );
    assert_eq!(
        status_of(&rule_verdict, condition::DRIFTED),
        None,
        "rules have no Drifted"
    );
}

#[test]
fn conflicts_are_a_condition_and_one_event_per_transition() {
    let conflicting = Facts {
        conflicts: vec![
            "ContactSyncPolicy crm/vip wants the opposite for tag \"vip\" on 1 contact(s)".into(),
        ],
        conflict_reason: reason::TAG_CONFLICT,
        ..facts()
    };
    let first = verdict(
        &synced(SyncOutcome::InSync {
            plan: conflicting.clone(),
        }),
        Mode::Apply,
        &ready_before(),
    );
    assert_eq!(
        status_of(&first, condition::CONFLICT),
        Some((true, reason::TAG_CONFLICT))
    );
    assert_eq!(
        first.phase,
        Phase::Ready,
        "a conflict does not stop the rest"
    );
    assert_eq!(event_reasons(&first), [reason::TAG_CONFLICT]);
    let mut already = ready_before();
    already.push(condition("Conflict", true, reason::TAG_CONFLICT));
    let again = verdict(
        &synced(SyncOutcome::InSync { plan: conflicting }),
        Mode::Apply,
        &already,
    );
    assert!(again.events.is_empty());
    let gone = verdict(
        &synced(SyncOutcome::InSync { plan: facts() }),
        Mode::Apply,
        &already,
    );
    assert_eq!(
        status_of(&gone, condition::CONFLICT),
        Some((false, reason::NO_CONFLICT))
    );
}

#[test]
fn without_a_sync_only_kstatus_and_synced_change() {
    let v = verdict(
        &Outcome::Unavailable {
            category: "timeout",
            message: "timed out".into(),
        },
        Mode::Apply,
        &ready_before(),
    );
    let types: Vec<&str> = v.conditions.iter().map(|d| d.type_).collect();
    assert_eq!(
        types,
        [
            condition::READY,
            condition::RECONCILING,
            condition::STALLED,
            condition::SYNCED
        ]
    );
    assert_eq!(v.result, "error");
}

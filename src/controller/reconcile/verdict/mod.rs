//! The verdict of a ContactSyncPolicy or TagRule reconcile: from what happened (the
//! [`Outcome`]), the mode and the previous conditions follow the status conditions, the Events a
//! human should see, and when to look again. Pure and table-tested; [`crate::controller::reconcile::pipeline`] only
//! carries it out. Both kinds go through here, so they report the same trouble the same way.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

use crate::crd::common::Mode;
use crate::crd::conditions::{Phase, Wanted, is_true, kstatus};
use crate::crd::vocabulary::{action, condition, reason};
use crate::engine::SyncOutcome;

/// How long an object waits for its connection before looking again (a readiness change
/// wakes it sooner).
pub const CONNECTION_WAIT: Duration = Duration::from_secs(60);
/// How long to wait after a 429 that named no `Retry-After`.
pub const RATE_LIMIT_WAIT: Duration = Duration::from_secs(30);
/// How long to wait for other owners to declare (their declaration wakes it sooner).
pub const OWNERS_WAIT: Duration = Duration::from_secs(5);

/// What a sync found, in the terms the verdict needs (both kinds fill it from their plan).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Facts {
    /// The plan in a line: `1 to create, 2 to update`.
    pub summary: String,
    /// Where things stand after the sync: `3 contact(s) in sync`, `5 matched, 5 compliant`.
    pub standing: String,
    /// Records refused by validation (policies).
    pub refused: u32,
    /// Sources the operator may not read, and why (`contactsFrom[0]: …`), one per source.
    pub sources_refused: Vec<String>,
    /// Contacts changed outside the operator (policies; `None` for kinds without `Drifted`).
    pub drifted: Option<u32>,
    /// Conflicts with other owners, one message each.
    pub conflicts: Vec<String>,
    /// The reason conflicts are reported with.
    pub conflict_reason: &'static str,
}

/// What a reconcile ran into.
#[derive(Debug)]
pub enum Outcome {
    /// The spec cannot be used as it is (the message names the field).
    InvalidSpec(String),
    /// The connection cannot be used: missing, not ready, or not allowed.
    ConnectionUnusable {
        phase: Phase,
        reason: &'static str,
        message: String,
    },
    /// GHL refused the credentials of the named connection.
    CredentialsRefused { connection: String },
    /// GHL's rate limit: wait for the budget.
    RateLimited {
        retry_after: Option<Duration>,
        message: String,
    },
    /// Passing trouble (GHL 5xx or timeouts, the ledger store): retried with backoff.
    Unavailable {
        category: &'static str,
        message: String,
    },
    /// Other owners on the location have not declared what they want yet.
    WaitingForOwners(String),
    /// The sync ran.
    Synced(SyncOutcome<Facts>),
}

/// When to reconcile again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Requeue {
    /// At the next periodic resync (jittered); past failures are forgotten.
    Resync,
    /// After the object's next exponential backoff delay.
    Backoff,
    After(Duration),
    /// Only when something changes (the spec, a source, the connection).
    AwaitChange,
}

/// An Event to record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notice {
    pub warning: bool,
    pub reason: &'static str,
    pub action: &'static str,
    pub note: String,
}

/// Everything a reconcile concluded.
#[derive(Clone, Debug, PartialEq)]
pub struct Verdict {
    pub phase: Phase,
    pub reason: &'static str,
    pub message: String,
    pub conditions: Vec<Wanted>,
    pub events: Vec<Notice>,
    pub requeue: Requeue,
    /// The `result` label of the reconcile metric: `ok`, `requeue`, `stalled` or `error`.
    pub result: &'static str,
}

/// The verdict on `outcome`, for an object in `mode` whose status held `previous`.
pub fn verdict(outcome: &Outcome, mode: Mode, previous: &[Condition]) -> Verdict {
    match outcome {
        Outcome::Synced(synced) => synced_verdict(synced, mode, previous),
        Outcome::InvalidSpec(message) => {
            let mut v = unsynced(
                Phase::Stalled,
                reason::INVALID_SPEC,
                message,
                Requeue::AwaitChange,
                "stalled",
            );
            v.events = stalled_event(&v, previous, action::PLAN);
            v
        }
        Outcome::ConnectionUnusable {
            phase,
            reason,
            message,
        } => unsynced(
            *phase,
            reason,
            message,
            Requeue::After(CONNECTION_WAIT),
            "requeue",
        ),
        Outcome::CredentialsRefused { connection } => unsynced(
            Phase::Stalled,
            reason::CONNECTION_NOT_READY,
            &format!("GhlConnection {connection} is not ready: GHL refused the credentials"),
            Requeue::After(CONNECTION_WAIT),
            "requeue",
        ),
        Outcome::RateLimited {
            retry_after,
            message,
        } => unsynced(
            Phase::Progressing,
            reason::RATE_LIMITED,
            message,
            Requeue::After(retry_after.unwrap_or(RATE_LIMIT_WAIT)),
            "requeue",
        ),
        Outcome::Unavailable { message, .. } => unsynced(
            Phase::Progressing,
            reason::GHL_UNAVAILABLE,
            message,
            Requeue::Backoff,
            "error",
        ),
        Outcome::WaitingForOwners(message) => unsynced(
            Phase::Progressing,
            reason::WAITING_FOR_OWNERS,
            message,
            Requeue::After(OWNERS_WAIT),
            "requeue",
        ),
    }
}

/// A verdict without a sync: the kstatus trio and `Synced=False`; other conditions stay.
fn unsynced(
    phase: Phase,
    why: &'static str,
    message: &str,
    requeue: Requeue,
    result: &'static str,
) -> Verdict {
    let mut conditions = kstatus(phase, why, message);
    conditions.push(Wanted::new(condition::SYNCED, false, why, message));
    Verdict {
        phase,
        reason: why,
        message: message.to_owned(),
        conditions,
        events: Vec::new(),
        requeue,
        result,
    }
}

/// A Warning when the object newly stalls (or stalls for another reason).
fn stalled_event(v: &Verdict, previous: &[Condition], action: &'static str) -> Vec<Notice> {
    let was = previous
        .iter()
        .find(|c| c.type_ == condition::STALLED && c.status == "True");
    if v.phase == Phase::Stalled && was.is_none_or(|c| c.reason != v.reason) {
        vec![Notice {
            warning: true,
            reason: v.reason,
            action,
            note: v.message.clone(),
        }]
    } else {
        Vec::new()
    }
}

fn synced_verdict(synced: &SyncOutcome<Facts>, mode: Mode, previous: &[Condition]) -> Verdict {
    let facts = synced.plan();
    let (phase, why, message) = standing(synced, mode);
    let mut conditions = kstatus(phase, why, &message);
    conditions.extend(domain_conditions(synced, why, &message));
    let mut v = Verdict {
        phase,
        reason: why,
        message: message.clone(),
        conditions,
        events: Vec::new(),
        requeue: if phase == Phase::Progressing {
            Requeue::Backoff
        } else {
            Requeue::Resync
        },
        result: "ok",
    };
    if let Some(report) = synced.report()
        && report.writes > 0
    {
        v.events.push(Notice {
            warning: false,
            reason: reason::PLAN_APPLIED,
            action: action::APPLY,
            note: format!("{}. {} GHL writes.", facts.summary, report.writes),
        });
    }
    v.events.extend(stalled_event(&v, previous, action::PLAN));
    if phase == Phase::Ready && !is_true(previous, condition::READY) && !previous.is_empty() {
        v.events.push(Notice {
            warning: false,
            reason: reason::RECOVERED,
            action: action::RECONCILE,
            note: message,
        });
    }
    if !facts.conflicts.is_empty() && !is_true(previous, condition::CONFLICT) {
        v.events.push(Notice {
            warning: true,
            reason: facts.conflict_reason,
            action: action::PLAN,
            note: facts.conflicts.join("; "),
        });
    }
    v
}

/// Phase, reason and message after a sync.
fn standing(synced: &SyncOutcome<Facts>, mode: Mode) -> (Phase, &'static str, String) {
    let facts = synced.plan();
    let apply_failures = synced.report().map_or(0, |r| r.failures.len());
    match synced {
        SyncOutcome::Blocked { reason: limit, .. } => (
            Phase::Stalled,
            reason::SAFETY_LIMIT_EXCEEDED,
            format!("not applied: {limit}"),
        ),
        SyncOutcome::Planned { .. } => (
            Phase::Ready,
            reason::PLAN_ONLY,
            format!("mode Plan: {}", facts.summary),
        ),
        SyncOutcome::Applied { .. } if apply_failures > 0 => (
            Phase::Progressing,
            reason::PARTIAL_FAILURE,
            format!("{apply_failures} record(s) could not be applied; retrying"),
        ),
        _ if !facts.sources_refused.is_empty() => (
            Phase::Stalled,
            reason::SOURCE_NOT_ALLOWED,
            format!(
                "{}; add the URL with --allowed-source-url to read it (nothing is released meanwhile)",
                facts.sources_refused.join("; ")
            ),
        ),
        _ if facts.refused > 0 => (
            Phase::Stalled,
            reason::INVALID_SPEC,
            format!(
                "{} record(s) refused (see status.failures); the others are in sync",
                facts.refused
            ),
        ),
        SyncOutcome::InSync { .. } if mode == Mode::Plan => (
            Phase::Ready,
            reason::RECONCILED,
            format!("mode Plan: {}; nothing to change", facts.standing),
        ),
        _ => (Phase::Ready, reason::RECONCILED, facts.standing.clone()),
    }
}

/// `Synced`, `Drifted` (kinds that report drift) and `Conflict` after a sync.
fn domain_conditions(synced: &SyncOutcome<Facts>, why: &'static str, message: &str) -> Vec<Wanted> {
    let facts = synced.plan();
    let in_sync = match synced {
        SyncOutcome::InSync { .. } => true,
        SyncOutcome::Applied { report, .. } => report.failures.is_empty(),
        SyncOutcome::Planned { .. } | SyncOutcome::Blocked { .. } => false,
    };
    let mut conditions = vec![if in_sync {
        Wanted::new(
            condition::SYNCED,
            true,
            reason::IN_SYNC,
            "GHL matches the declared state",
        )
    } else {
        Wanted::new(condition::SYNCED, false, why, message)
    }];
    if let Some(drifted) = facts.drifted {
        conditions.push(if drifted > 0 {
            let repaired = if matches!(synced, SyncOutcome::Applied { .. }) {
                "; repaired"
            } else {
                ""
            };
            Wanted::new(
                condition::DRIFTED,
                true,
                reason::DRIFT_DETECTED,
                format!("{drifted} contact(s) had changed in GHL{repaired}"),
            )
        } else {
            Wanted::new(
                condition::DRIFTED,
                false,
                reason::NO_DRIFT,
                "no changes made outside the operator",
            )
        });
    }
    conditions.push(if facts.conflicts.is_empty() {
        Wanted::new(
            condition::CONFLICT,
            false,
            reason::NO_CONFLICT,
            "no other owner wants the opposite",
        )
    } else {
        Wanted::new(
            condition::CONFLICT,
            true,
            facts.conflict_reason,
            facts.conflicts.join("; "),
        )
    });
    conditions
}

#[cfg(test)]
mod tests;

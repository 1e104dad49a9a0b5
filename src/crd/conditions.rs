//! Conditions the Kubernetes way: one per type, `lastTransitionTime` changed only when the
//! status flips, `observedGeneration` on each; plus the kstatus trio (`Ready`,
//! `Reconciling`, `Stalled`) that Argo CD and Flux read.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::crd::vocabulary::condition;

/// A condition to set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Wanted {
    pub type_: &'static str,
    pub status: bool,
    pub reason: &'static str,
    pub message: String,
}

impl Wanted {
    pub fn new(
        type_: &'static str,
        status: bool,
        reason: &'static str,
        message: impl Into<String>,
    ) -> Self {
        Self {
            type_,
            status,
            reason,
            message: crate::privacy::redact(&message.into()),
        }
    }
}

/// Builds the condition list from `wanted`, keeping each `lastTransitionTime` from `current`
/// when the status did not change. Conditions not in `wanted` stay as they were (a reconcile
/// that learned nothing about them does not rewrite them).
pub fn merge(
    current: &[Condition],
    wanted: &[Wanted],
    generation: Option<i64>,
    now: Timestamp,
) -> Vec<Condition> {
    let kept = current
        .iter()
        .filter(|c| !wanted.iter().any(|w| w.type_ == c.type_))
        .cloned();
    wanted
        .iter()
        .map(|w| {
            let status = if w.status { "True" } else { "False" };
            let since = current
                .iter()
                .find(|c| c.type_ == w.type_ && c.status == status)
                .map(|c| c.last_transition_time.clone())
                .unwrap_or(Time(now));
            Condition {
                type_: w.type_.to_owned(),
                status: status.to_owned(),
                reason: w.reason.to_owned(),
                message: w.message.clone(),
                observed_generation: generation,
                last_transition_time: since,
            }
        })
        .chain(kept)
        .collect()
}

/// The kstatus conditions for an outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Wanted state reached.
    Ready,
    /// Working on it (will retry or continue by itself).
    Progressing,
    /// Cannot progress until something outside changes (spec, credentials, limits).
    Stalled,
}

/// `Ready`, `Reconciling` and `Stalled` for `phase`, all explained by `reason` / `message`.
pub fn kstatus(phase: Phase, reason: &'static str, message: &str) -> Vec<Wanted> {
    vec![
        Wanted::new(condition::READY, phase == Phase::Ready, reason, message),
        Wanted::new(
            condition::RECONCILING,
            phase == Phase::Progressing,
            reason,
            message,
        ),
        Wanted::new(condition::STALLED, phase == Phase::Stalled, reason, message),
    ]
}

/// Whether the condition of `type_` is currently True.
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    conditions
        .iter()
        .any(|c| c.type_ == type_ && c.status == "True")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn transition_times_change_only_with_the_status() {
        let first = merge(
            &[],
            &[Wanted::new("Ready", false, "Progressing", "working")],
            Some(1),
            at("2030-01-01T00:00:00Z"),
        );
        let same = merge(
            &first,
            &[Wanted::new("Ready", false, "Progressing", "still working")],
            Some(2),
            at("2030-01-01T01:00:00Z"),
        );
        assert_eq!(same[0].last_transition_time, first[0].last_transition_time);
        assert_eq!(same[0].observed_generation, Some(2));
        assert_eq!(same[0].message, "still working");
        let flipped = merge(
            &same,
            &[Wanted::new("Ready", true, "Reconciled", "done")],
            Some(2),
            at("2030-01-01T02:00:00Z"),
        );
        assert_eq!(
            flipped[0].last_transition_time,
            Time(at("2030-01-01T02:00:00Z"))
        );
        assert!(is_true(&flipped, "Ready"));
    }

    #[test]
    fn conditions_not_mentioned_stay_as_they_were() {
        let first = merge(
            &[],
            &[
                Wanted::new("Ready", true, "Reconciled", "done"),
                Wanted::new("Drifted", true, "DriftDetected", "1 contact"),
            ],
            Some(1),
            at("2030-01-01T00:00:00Z"),
        );
        let next = merge(
            &first,
            &[Wanted::new("Ready", false, "ConnectionNotReady", "waiting")],
            Some(2),
            at("2030-01-01T01:00:00Z"),
        );
        let drifted = next.iter().find(|c| c.type_ == "Drifted").unwrap();
        assert_eq!(
            drifted,
            first.iter().find(|c| c.type_ == "Drifted").unwrap()
        );
        assert!(!is_true(&next, "Ready"));
    }

    #[test]
    fn kstatus_sets_exactly_one_of_the_three() {
        for phase in [Phase::Ready, Phase::Progressing, Phase::Stalled] {
            let set = kstatus(phase, "R", "m");
            assert_eq!(set.iter().filter(|d| d.status).count(), 1, "{phase:?}");
        }
    }

    #[test]
    fn messages_are_redacted() {
        let d = Wanted::new(
            "Ready",
            false,
            "GhlRejected",
            "contact ada@example.com refused",
        );
        assert!(!d.message.contains("ada@example.com"));
    }
}

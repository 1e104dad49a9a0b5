//! Settling a plan: the one step every sync ends with — a policy's full or targeted sync, a
//! TagRule's sync, and an owner's removal on deletion. [`decide`] (pure) chooses what happens
//! to the plan; [`settle`] carries it out, calling the caller's apply only when it is chosen.

use crate::crd::common::Mode;
use crate::engine::apply::ApplyReport;
use crate::engine::sync::{SyncError, SyncOutcome};

/// A plan the settle step can decide on.
pub trait Settle {
    /// True when applying would change nothing in GHL or in the ledger.
    fn is_empty(&self) -> bool;
    /// A digest of exactly what applying would write: what an approval names.
    fn hash(&self) -> String;
}

/// What to do with a plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Nothing to do.
    InSync,
    /// Report it only (`mode: Plan`).
    Report,
    /// Hold it back: a safety limit.
    Block(String),
    Apply,
}

/// Decides what a sync does with its plan: an empty plan is in sync; an approved plan (its
/// hash approved) is applied; `mode: Plan` only reports (a plan over the limits too: it is
/// not going to be applied); a plan over a safety limit waits; anything else is applied.
pub fn decide(mode: Mode, empty: bool, blocked: Option<&str>, approved: bool) -> Decision {
    match (empty, mode, blocked) {
        (true, _, _) => Decision::InSync,
        (false, _, _) if approved => Decision::Apply,
        (false, Mode::Plan, _) => Decision::Report,
        (false, Mode::Apply, Some(reason)) => Decision::Block(reason.to_owned()),
        (false, Mode::Apply, None) => Decision::Apply,
    }
}

/// How a plan may be settled: the owner's `mode`, why the plan is over a safety limit (if it
/// is), and the hash of a plan approved to be applied once (`status.plan.hash`), which lifts
/// both for that plan alone.
#[derive(Clone, Copy, Debug)]
pub struct Terms<'a> {
    pub mode: Mode,
    pub blocked: Option<&'a str>,
    pub approved: Option<&'a str>,
}

/// Settles `plan` on `terms`; `apply` runs only when the plan is to be applied.
pub async fn settle<P: Settle>(
    plan: P,
    terms: Terms<'_>,
    apply: impl AsyncFnOnce(&P) -> Result<ApplyReport, SyncError>,
) -> Result<SyncOutcome<P>, SyncError> {
    let approved = terms.approved.is_some_and(|hash| hash == plan.hash());
    Ok(
        match decide(terms.mode, plan.is_empty(), terms.blocked, approved) {
            Decision::InSync => SyncOutcome::InSync { plan },
            Decision::Report => SyncOutcome::Planned { plan },
            Decision::Block(reason) => SyncOutcome::Blocked { plan, reason },
            Decision::Apply => {
                let report = apply(&plan).await?;
                SyncOutcome::Applied { plan, report }
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions() {
        let limit = "the plan deletes 11 objects, more than safety.maxDeletes (10)";
        let over = Some(limit);
        let cases = [
            (Mode::Apply, true, None, false, Decision::InSync),
            (Mode::Plan, true, None, false, Decision::InSync),
            (Mode::Apply, false, None, false, Decision::Apply),
            (Mode::Plan, false, None, false, Decision::Report),
            (Mode::Plan, false, over, false, Decision::Report),
            (
                Mode::Apply,
                false,
                over,
                false,
                Decision::Block(limit.into()),
            ),
            // Approved: applied once, limits and plan-only lifted.
            (Mode::Apply, false, over, true, Decision::Apply),
            (Mode::Plan, false, None, true, Decision::Apply),
            (Mode::Plan, false, over, true, Decision::Apply),
            (Mode::Apply, true, None, true, Decision::InSync),
        ];
        for (mode, empty, blocked, approved, expected) in cases {
            assert_eq!(
                decide(mode, empty, blocked, approved),
                expected,
                "{mode:?} {empty} {blocked:?} {approved}"
            );
        }
    }

    /// A plan of `n` writes, hashed by its size.
    struct Writes(usize);

    impl Settle for Writes {
        fn is_empty(&self) -> bool {
            self.0 == 0
        }

        fn hash(&self) -> String {
            format!("h{}", self.0)
        }
    }

    #[tokio::test]
    async fn apply_runs_only_when_the_plan_is_applied_and_only_an_exact_approval_counts() {
        let cases = [
            (Mode::Apply, 2, None, None, "applied"),
            (Mode::Apply, 0, None, None, "in sync"),
            (Mode::Plan, 2, None, None, "planned"),
            (Mode::Apply, 2, Some("over"), None, "blocked"),
            (Mode::Apply, 2, Some("over"), Some("h2"), "applied"),
            (Mode::Plan, 2, None, Some("h2"), "applied"),
            (Mode::Apply, 2, Some("over"), Some("h3"), "blocked"),
        ];
        for (mode, n, blocked, approved, expected) in cases {
            let mut applied = 0;
            let terms = Terms {
                mode,
                blocked,
                approved,
            };
            let outcome = settle(Writes(n), terms, async |plan: &Writes| {
                applied += plan.0;
                Ok(ApplyReport::default())
            })
            .await
            .unwrap();
            let got = match outcome {
                SyncOutcome::InSync { .. } => "in sync",
                SyncOutcome::Planned { .. } => "planned",
                SyncOutcome::Blocked { .. } => "blocked",
                SyncOutcome::Applied { .. } => "applied",
            };
            assert_eq!(got, expected, "{mode:?} {n} {blocked:?} {approved:?}");
            assert_eq!(applied, if got == "applied" { n } else { 0 });
        }
    }
}

//! The change feed's health as state: the connection's `Exporting` condition, and which sinks
//! started failing or recovered since the last look (the Events). Pure.

use std::collections::BTreeSet;

use crate::crd::conditions::Wanted;
use crate::crd::export::SinkStatus;
use crate::crd::vocabulary::{condition, reason};

/// The `Exporting` condition for the sinks as they stand: True while every sink delivers;
/// False with `SinkFailing` naming the failing sinks (the first with its last error).
pub fn exporting(sinks: &[SinkStatus]) -> Wanted {
    let failing: Vec<&SinkStatus> = sinks.iter().filter(|s| s.failing).collect();
    let Some(first) = failing.first() else {
        let message = match sinks.len() {
            1 => "the sink accepts what it is sent".to_owned(),
            n => format!("all {n} sinks accept what they are sent"),
        };
        return Wanted::new(condition::EXPORTING, true, reason::DELIVERING, message);
    };
    let why = first
        .last_error
        .as_deref()
        .unwrap_or("its last delivery failed");
    let mut message = format!("sink {}: {why}", first.name);
    if failing.len() > 1 {
        let others: Vec<&str> = failing[1..].iter().map(|s| s.name.as_str()).collect();
        message.push_str(&format!("; also failing: {}", others.join(", ")));
    }
    let pending: u64 = failing.iter().map(|s| s.pending).sum();
    if pending > 0 {
        message.push_str(&format!(" ({pending} contacts waiting)"));
    }
    Wanted::new(condition::EXPORTING, false, reason::SINK_FAILING, message)
}

/// A sink that started failing, or recovered, since the last look.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Transition {
    Failing { sink: String, error: String },
    Recovered { sink: String },
}

/// What changed from `before` (the sinks failing at the last look) to `sinks`, and the sinks
/// failing now. A sink that is gone is neither.
pub fn transitions(
    before: &BTreeSet<String>,
    sinks: &[SinkStatus],
) -> (Vec<Transition>, BTreeSet<String>) {
    let mut out = Vec::new();
    let mut now = BTreeSet::new();
    for sink in sinks {
        match (sink.failing, before.contains(&sink.name)) {
            (true, false) => out.push(Transition::Failing {
                sink: sink.name.clone(),
                error: sink
                    .last_error
                    .clone()
                    .unwrap_or_else(|| "its last delivery failed".into()),
            }),
            (false, true) => out.push(Transition::Recovered {
                sink: sink.name.clone(),
            }),
            _ => {}
        }
        if sink.failing {
            now.insert(sink.name.clone());
        }
    }
    (out, now)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sink(name: &str, failing: bool, error: Option<&str>, pending: u64) -> SinkStatus {
        SinkStatus {
            name: name.into(),
            failing,
            last_error: error.map(Into::into),
            pending,
            ..SinkStatus::default()
        }
    }

    #[test]
    fn exporting_is_true_only_while_every_sink_delivers() {
        let cases = [
            (
                vec![sink("crm", false, None, 3)],
                true,
                "Delivering",
                "the sink accepts what it is sent",
            ),
            (
                vec![sink("crm", false, None, 0), sink("bi", false, None, 0)],
                true,
                "Delivering",
                "all 2 sinks accept what they are sent",
            ),
            (
                vec![
                    sink("crm", true, Some("the sink answered 500"), 4),
                    sink("bi", false, None, 0),
                ],
                false,
                "SinkFailing",
                "sink crm: the sink answered 500 (4 contacts waiting)",
            ),
            (
                vec![
                    sink("crm", true, Some("sink URL not allowed"), 0),
                    sink("bi", true, None, 0),
                ],
                false,
                "SinkFailing",
                "sink crm: sink URL not allowed; also failing: bi",
            ),
        ];
        for (sinks, status, why, message) in cases {
            let wanted = exporting(&sinks);
            assert_eq!(wanted.type_, "Exporting");
            assert_eq!(
                (wanted.status, wanted.reason, wanted.message.as_str()),
                (status, why, message)
            );
        }
    }

    #[test]
    fn failures_and_recoveries_are_told_once() {
        let none = BTreeSet::new();
        let (told, failing) = transitions(
            &none,
            &[sink("crm", true, Some("the sink answered 503"), 1)],
        );
        assert_eq!(
            told,
            [Transition::Failing {
                sink: "crm".into(),
                error: "the sink answered 503".into()
            }]
        );
        // Still failing: nothing new to tell.
        let (told, failing) = transitions(
            &failing,
            &[sink("crm", true, Some("the sink answered 500"), 2)],
        );
        assert!(told.is_empty());
        let (told, failing) = transitions(&failing, &[sink("crm", false, None, 0)]);
        assert_eq!(told, [Transition::Recovered { sink: "crm".into() }]);
        assert!(failing.is_empty());
        // A failing sink removed from the spec is neither.
        let before: BTreeSet<String> = ["old".to_owned()].into();
        let (told, failing) = transitions(&before, &[]);
        assert!(told.is_empty() && failing.is_empty());
    }
}

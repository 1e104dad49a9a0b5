//! The verdict of a GhlConnection check: from what the check found and the previous
//! conditions follow the kstatus trio, `Authenticated`, `RotationDue`, the Events a human
//! should see and when to look again. Pure and table-tested.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

use crate::controller::reconcile::verdict::{Notice, Requeue, Verdict};
use crate::crd::conditions::{Phase, Wanted, is_true, kstatus};
use crate::crd::vocabulary::{action, condition, reason};
use crate::credentials::Problem;

/// How soon to probe again after GHL could not answer and named no `Retry-After`.
pub const PROBE_RETRY: Duration = Duration::from_secs(10);

/// What checking the connection found.
#[derive(Clone, Debug)]
pub enum Finding {
    /// The spec cannot be used as it is (the message names the field).
    InvalidSpec(String),
    /// The credential could not be resolved (a missing Secret, a refused refresh, ...).
    Credential(Problem),
    /// GHL answered the probe with the credential.
    Accepted { location: String },
    /// GHL refused the credential.
    Refused(String),
    /// GHL could not answer (rate limit, outage).
    Unreachable {
        rate_limited: bool,
        retry_after: Option<Duration>,
        message: String,
    },
}

/// The finding, with what the credential says about time.
#[derive(Clone, Debug)]
pub struct Check {
    pub finding: Finding,
    /// When the credential needs another look at the latest (renewal, `maxAge`), or the
    /// check interval.
    pub next_look: Duration,
    /// PIT with `maxAge`: whether rotation is due, and why.
    pub rotation_due: Option<(bool, String)>,
    /// OAuth: whether renewal departs from `renewBefore` (it would refresh in a loop), and why.
    pub renewal_adjusted: Option<(bool, String)>,
    /// OAuth: the grant could not be renewed; its access token serves until it expires.
    pub renewal_failed: Option<String>,
    /// OAuth, when GHL reported what it granted: the declared scopes it did not grant.
    pub scopes_missing: Option<Vec<String>>,
}

/// The declared scopes `granted` lacks; `None` when there is nothing to compare (no scopes
/// declared, or GHL reported none). Pure.
pub fn scopes_missing(declared: &[String], granted: &[String]) -> Option<Vec<String>> {
    if declared.is_empty() || granted.is_empty() {
        return None;
    }
    Some(
        declared
            .iter()
            .filter(|scope| !granted.contains(scope))
            .cloned()
            .collect(),
    )
}

/// What the connection check concluded: the verdict, and the longest wait whatever the
/// backoff says.
#[derive(Clone, Debug, PartialEq)]
pub struct ConnectionVerdict {
    pub verdict: Verdict,
    pub at_most: Duration,
}

impl ConnectionVerdict {
    /// Whether policies may use the connection.
    pub fn ready(&self) -> bool {
        self.verdict.phase == Phase::Ready
    }
}

/// The verdict on `check`, for a connection whose status held `previous`; `interval` is the
/// operator's connection check interval.
pub fn verdict(check: &Check, previous: &[Condition], interval: Duration) -> ConnectionVerdict {
    let Standing {
        phase,
        reason: why,
        message,
        authenticated,
        requeue,
    } = standing(check, interval);
    let mut conditions = kstatus(phase, why, &message);
    let mut events = Vec::new();
    match (authenticated, &check.renewal_failed) {
        (Some(true), None) => conditions.push(Wanted::new(
            condition::AUTHENTICATED,
            true,
            reason::CREDENTIALS_ACCEPTED,
            "GHL accepted the credentials",
        )),
        // Still serving, on borrowed time: said once as a Warning, shown until it is over.
        (Some(true), Some(failed)) => {
            let turned = !previous
                .iter()
                .any(|c| c.type_ == condition::AUTHENTICATED && c.reason == reason::RENEWAL_FAILED);
            if turned {
                events.push(Notice {
                    warning: true,
                    reason: reason::RENEWAL_FAILED,
                    action: action::CHECK_CREDENTIALS,
                    note: failed.clone(),
                });
            }
            conditions.push(Wanted::new(
                condition::AUTHENTICATED,
                true,
                reason::RENEWAL_FAILED,
                failed,
            ));
        }
        (Some(false), _) => {
            conditions.push(Wanted::new(condition::AUTHENTICATED, false, why, &message))
        }
        (None, _) => {}
    }
    if let Some((due, why_due)) = &check.rotation_due {
        let r = if *due {
            reason::MAX_AGE_EXCEEDED
        } else {
            reason::WITHIN_MAX_AGE
        };
        conditions.push(Wanted::new(condition::ROTATION_DUE, *due, r, why_due));
    }
    if let Some((adjusted, why)) = &check.renewal_adjusted {
        let (condition, warning) = renewal_adjusted(*adjusted, why, previous);
        conditions.push(condition);
        events.extend(warning);
    }
    if let Some(missing) = &check.scopes_missing {
        let (condition, warning) = scopes_granted(missing, previous);
        conditions.push(condition);
        events.extend(warning);
    }
    let was_authenticated = is_true(previous, condition::AUTHENTICATED);
    // A refused consent is news even to a connection that never worked.
    let newly_refused_consent = why == reason::CONSENT_REFUSED
        && !previous
            .iter()
            .any(|c| c.type_ == condition::AUTHENTICATED && c.reason == reason::CONSENT_REFUSED);
    match authenticated {
        Some(false) if was_authenticated || previous.is_empty() || newly_refused_consent => events
            .push(Notice {
                warning: true,
                reason: why,
                action: action::CHECK_CREDENTIALS,
                note: message.clone(),
            }),
        Some(true) if !was_authenticated && !previous.is_empty() => events.push(Notice {
            warning: false,
            reason: reason::RECOVERED,
            action: action::CHECK_CREDENTIALS,
            note: "GHL accepts the credentials again".into(),
        }),
        _ => {}
    }
    let verdict = Verdict {
        phase,
        reason: why,
        message,
        conditions,
        events,
        // Passing trouble backs off (never longer than the wait computed above).
        requeue: if phase == Phase::Progressing {
            Requeue::Backoff
        } else {
            requeue
        },
        result: "ok",
    };
    ConnectionVerdict {
        verdict,
        at_most: match requeue {
            Requeue::After(d) => d,
            _ => interval,
        },
    }
}

/// `RenewalAdjusted`, and the Warning Event when it turns true.
fn renewal_adjusted(adjusted: bool, why: &str, previous: &[Condition]) -> (Wanted, Option<Notice>) {
    let r = if adjusted {
        reason::RENEW_BEFORE_TOO_LONG
    } else {
        reason::AS_DECLARED
    };
    let warning = (adjusted && !is_true(previous, condition::RENEWAL_ADJUSTED)).then(|| Notice {
        warning: true,
        reason: r,
        action: action::ROTATE,
        note: why.to_owned(),
    });
    (
        Wanted::new(condition::RENEWAL_ADJUSTED, adjusted, r, why),
        warning,
    )
}

/// `ScopesGranted`, and a Warning Event when it turns false. A missing scope does not stop
/// the connection: what each object needs is checked where it is used (`MissingScope`).
fn scopes_granted(missing: &[String], previous: &[Condition]) -> (Wanted, Option<Notice>) {
    if missing.is_empty() {
        return (
            Wanted::new(
                condition::SCOPES_GRANTED,
                true,
                reason::ALL_SCOPES_GRANTED,
                "GHL granted every scope spec.auth.oauth.scopes declares",
            ),
            None,
        );
    }
    let note = format!(
        "GHL did not grant {} (declared in spec.auth.oauth.scopes); objects that need them \
         report MissingScope; re-authorize with them to fix it",
        missing.join(", ")
    );
    let turned = !previous
        .iter()
        .any(|c| c.type_ == condition::SCOPES_GRANTED && c.status == "False");
    let warning = turned.then(|| Notice {
        warning: true,
        reason: reason::SCOPES_NOT_GRANTED,
        action: action::CHECK_CREDENTIALS,
        note: note.clone(),
    });
    (
        Wanted::new(
            condition::SCOPES_GRANTED,
            false,
            reason::SCOPES_NOT_GRANTED,
            note,
        ),
        warning,
    )
}

/// Where the connection stands after a check.
struct Standing {
    phase: Phase,
    reason: &'static str,
    message: String,
    /// `Some` when the check learned whether GHL accepts the credential.
    authenticated: Option<bool>,
    requeue: Requeue,
}

fn standing(check: &Check, interval: Duration) -> Standing {
    let (phase, reason, message, authenticated, requeue) = match &check.finding {
        Finding::InvalidSpec(message) => (
            Phase::Stalled,
            reason::INVALID_SPEC,
            message.clone(),
            None,
            Requeue::After(interval),
        ),
        Finding::Credential(problem) => (
            if problem.stalled {
                Phase::Stalled
            } else {
                Phase::Progressing
            },
            problem.reason,
            problem.message.clone(),
            problem.refused.then_some(false),
            Requeue::After(problem.retry_in.min(interval)),
        ),
        Finding::Accepted { location } => (
            Phase::Ready,
            reason::CREDENTIALS_ACCEPTED,
            match &check.renewal_failed {
                None => format!("location {location} reachable"),
                Some(_) => format!(
                    "location {location} reachable until the access token expires: its grant could not be renewed (see Authenticated)"
                ),
            },
            Some(true),
            Requeue::After(check.next_look),
        ),
        Finding::Refused(message) => (
            Phase::Stalled,
            reason::CREDENTIALS_REJECTED,
            format!("GHL refused the credentials: {message}"),
            Some(false),
            Requeue::After(interval),
        ),
        Finding::Unreachable {
            rate_limited,
            retry_after,
            message,
        } => (
            Phase::Progressing,
            if *rate_limited {
                reason::RATE_LIMITED
            } else {
                reason::GHL_UNAVAILABLE
            },
            format!("cannot check the credentials yet: {message}"),
            None,
            Requeue::After(retry_after.unwrap_or(PROBE_RETRY).min(check.next_look)),
        ),
    };
    Standing {
        phase,
        reason,
        message,
        authenticated,
        requeue,
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    use super::*;
    use crate::crd::conditions;

    const INTERVAL: Duration = Duration::from_secs(300);

    fn check(finding: Finding) -> Check {
        Check {
            finding,
            next_look: Duration::from_secs(120),
            rotation_due: None,
            renewal_adjusted: None,
            renewal_failed: None,
            scopes_missing: None,
        }
    }

    fn authenticated(status: bool) -> Vec<Condition> {
        vec![Condition {
            type_: condition::AUTHENTICATED.into(),
            status: if status { "True" } else { "False" }.into(),
            reason: "x".into(),
            message: String::new(),
            observed_generation: Some(1),
            last_transition_time: Time("2030-01-01T00:00:00Z".parse().unwrap()),
        }]
    }

    fn of<'a>(v: &'a ConnectionVerdict, type_: &str) -> Option<&'a Wanted> {
        v.verdict.conditions.iter().find(|d| d.type_ == type_)
    }

    #[test]
    fn every_finding() {
        struct Row {
            name: &'static str,
            finding: Finding,
            previous: Vec<Condition>,
            phase: Phase,
            reason: &'static str,
            authenticated: Option<bool>,
            requeue: Requeue,
            events: Vec<&'static str>,
        }
        let rows = vec![
            Row {
                name: "accepted",
                finding: Finding::Accepted {
                    location: "loc".into(),
                },
                previous: authenticated(true),
                phase: Phase::Ready,
                reason: reason::CREDENTIALS_ACCEPTED,
                authenticated: Some(true),
                requeue: Requeue::After(Duration::from_secs(120)),
                events: vec![],
            },
            Row {
                name: "accepted again",
                finding: Finding::Accepted {
                    location: "loc".into(),
                },
                previous: authenticated(false),
                phase: Phase::Ready,
                reason: reason::CREDENTIALS_ACCEPTED,
                authenticated: Some(true),
                requeue: Requeue::After(Duration::from_secs(120)),
                events: vec![reason::RECOVERED],
            },
            Row {
                name: "refused after working",
                finding: Finding::Refused("401".into()),
                previous: authenticated(true),
                phase: Phase::Stalled,
                reason: reason::CREDENTIALS_REJECTED,
                authenticated: Some(false),
                requeue: Requeue::After(INTERVAL),
                events: vec![reason::CREDENTIALS_REJECTED],
            },
            Row {
                name: "still refused: no second Event",
                finding: Finding::Refused("401".into()),
                previous: authenticated(false),
                phase: Phase::Stalled,
                reason: reason::CREDENTIALS_REJECTED,
                authenticated: Some(false),
                requeue: Requeue::After(INTERVAL),
                events: vec![],
            },
            Row {
                name: "invalid spec",
                finding: Finding::InvalidSpec("spec.rateLimit.window: invalid".into()),
                previous: vec![],
                phase: Phase::Stalled,
                reason: reason::INVALID_SPEC,
                authenticated: None,
                requeue: Requeue::After(INTERVAL),
                events: vec![],
            },
            Row {
                name: "missing Secret",
                finding: Finding::Credential(Problem::stalled(
                    reason::SECRET_NOT_FOUND,
                    "Secret acme-pit does not exist".into(),
                )),
                previous: vec![],
                phase: Phase::Stalled,
                reason: reason::SECRET_NOT_FOUND,
                authenticated: None,
                requeue: Requeue::After(INTERVAL),
                events: vec![],
            },
            Row {
                name: "rate limited",
                finding: Finding::Unreachable {
                    rate_limited: true,
                    retry_after: Some(Duration::from_secs(3)),
                    message: "429".into(),
                },
                previous: authenticated(true),
                phase: Phase::Progressing,
                reason: reason::RATE_LIMITED,
                authenticated: None,
                requeue: Requeue::Backoff,
                events: vec![],
            },
        ];
        for row in rows {
            let v = verdict(&check(row.finding), &row.previous, INTERVAL);
            assert_eq!(
                (v.verdict.phase, v.verdict.reason),
                (row.phase, row.reason),
                "{}",
                row.name
            );
            assert_eq!(
                of(&v, condition::AUTHENTICATED).map(|d| d.status),
                row.authenticated,
                "{}",
                row.name
            );
            assert_eq!(v.verdict.requeue, row.requeue, "{}", row.name);
            let events: Vec<&str> = v.verdict.events.iter().map(|e| e.reason).collect();
            assert_eq!(events, row.events, "{}", row.name);
        }
    }

    #[test]
    fn a_refused_consent_warns_once_even_on_a_connection_that_never_worked() {
        let refused = check(Finding::Credential(Problem::refused(
            reason::CONSENT_REFUSED,
            "the consent granted location B".to_string(),
        )));
        // Waiting for consent (Authenticated False, another reason): one Warning.
        let first = verdict(&refused, &authenticated(false), INTERVAL);
        let warnings: Vec<&str> = first.verdict.events.iter().map(|e| e.reason).collect();
        assert_eq!(warnings, [reason::CONSENT_REFUSED]);
        let previous =
            conditions::merge(&[], &first.verdict.conditions, None, jiff::Timestamp::now());
        let again = verdict(&refused, &previous, INTERVAL);
        assert!(again.verdict.events.is_empty(), "said once");
    }

    #[test]
    fn passing_trouble_waits_no_longer_than_the_credential_allows() {
        let v = verdict(
            &check(Finding::Unreachable {
                rate_limited: false,
                retry_after: None,
                message: "503".into(),
            }),
            &[],
            INTERVAL,
        );
        assert_eq!(v.at_most, PROBE_RETRY);
        let mut due = check(Finding::Accepted {
            location: "loc".into(),
        });
        due.rotation_due = Some((true, "first seen 91 days ago".into()));
        let v = verdict(&due, &[], INTERVAL);
        let rotation = of(&v, condition::ROTATION_DUE).unwrap();
        assert!(rotation.status && rotation.reason == reason::MAX_AGE_EXCEEDED);
        assert!(v.ready(), "a due rotation does not stop the connection");
    }

    #[test]
    fn declared_scopes_the_grant_lacks_warn_once_and_keep_the_connection_ready() {
        let list = |items: &[&str]| items.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(scopes_missing(&[], &list(&["a"])), None, "nothing declared");
        assert_eq!(scopes_missing(&list(&["a"]), &[]), None, "GHL said nothing");
        assert_eq!(
            scopes_missing(&list(&["a", "b"]), &list(&["b", "c"])),
            Some(list(&["a"]))
        );
        assert_eq!(scopes_missing(&list(&["a"]), &list(&["a"])), Some(vec![]));

        let mut short = check(Finding::Accepted {
            location: "loc".into(),
        });
        short.scopes_missing = Some(list(&["contacts.write"]));
        let first = verdict(&short, &[], INTERVAL);
        let granted = of(&first, condition::SCOPES_GRANTED).unwrap();
        assert!(!granted.status && granted.message.contains("contacts.write"));
        assert!(
            first.ready(),
            "objects that need the scope report it, not the connection"
        );
        let warned = |v: &ConnectionVerdict| {
            v.verdict
                .events
                .iter()
                .any(|e| e.warning && e.reason == reason::SCOPES_NOT_GRANTED)
        };
        assert!(warned(&first));
        let previous =
            conditions::merge(&[], &first.verdict.conditions, None, jiff::Timestamp::now());
        assert!(!warned(&verdict(&short, &previous, INTERVAL)), "once");
        short.scopes_missing = Some(vec![]);
        let fixed = verdict(&short, &previous, INTERVAL);
        assert!(of(&fixed, condition::SCOPES_GRANTED).unwrap().status);
    }

    #[test]
    fn an_adjusted_renewal_warns_once_and_keeps_the_connection_ready() {
        let mut adjusted = check(Finding::Accepted {
            location: "loc".into(),
        });
        adjusted.renewal_adjusted = Some((true, "renewBefore (86400s) ...".into()));
        let first = verdict(&adjusted, &[], INTERVAL);
        let condition = of(&first, condition::RENEWAL_ADJUSTED).unwrap();
        assert!(condition.status && condition.reason == reason::RENEW_BEFORE_TOO_LONG);
        assert!(first.ready());
        let warnings: Vec<&str> = first
            .verdict
            .events
            .iter()
            .filter(|e| e.warning)
            .map(|e| e.reason)
            .collect();
        assert_eq!(warnings, [reason::RENEW_BEFORE_TOO_LONG]);
        // Still adjusted at the next check: no second Event.
        let previous =
            conditions::merge(&[], &first.verdict.conditions, None, jiff::Timestamp::now());
        let again = verdict(&adjusted, &previous, INTERVAL);
        assert!(
            again
                .verdict
                .events
                .iter()
                .all(|e| e.reason != reason::RENEW_BEFORE_TOO_LONG)
        );
        // Fixed spec: the condition turns False.
        adjusted.renewal_adjusted = Some((false, "as declared".into()));
        let fixed = verdict(&adjusted, &previous, INTERVAL);
        assert!(!of(&fixed, condition::RENEWAL_ADJUSTED).unwrap().status);
    }

    #[test]
    fn a_failed_renewal_serves_on_says_so_once_and_asks_for_consent_at_expiry() {
        let mut serving = check(Finding::Accepted {
            location: "loc".into(),
        });
        serving.renewal_failed = Some("GHL gave no clear answer; serves until T".into());
        let first = verdict(&serving, &authenticated(true), INTERVAL);
        assert!(first.ready(), "policies keep using the connection");
        let auth = of(&first, condition::AUTHENTICATED).unwrap();
        assert!(auth.status && auth.reason == reason::RENEWAL_FAILED);
        let warnings: Vec<&str> = first
            .verdict
            .events
            .iter()
            .filter(|e| e.warning)
            .map(|e| e.reason)
            .collect();
        assert_eq!(warnings, [reason::RENEWAL_FAILED]);
        let previous =
            conditions::merge(&[], &first.verdict.conditions, None, jiff::Timestamp::now());
        let again = verdict(&serving, &previous, INTERVAL);
        assert!(again.verdict.events.is_empty(), "said once");
        // At expiry the credential is refused: the ordinary reauthorization path.
        let expired = check(Finding::Credential(Problem::refused(
            reason::REAUTHORIZATION_REQUIRED,
            "expired".to_string(),
        )));
        let over = verdict(&expired, &previous, INTERVAL);
        assert!(!over.ready());
        assert_eq!(
            of(&over, condition::AUTHENTICATED).unwrap().reason,
            reason::REAUTHORIZATION_REQUIRED
        );
    }
}

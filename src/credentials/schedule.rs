//! When credentials are renewed: pure functions of (policy, last rotation, expiry, now), so
//! every rule here is a unit test and the controller only asks "when next?" and "due now?".
//!
//! - OAuth: `renewBefore` the access token's expiry, and at every `rotationSchedule` (cron,
//!   UTC) occurrence after the last rotation. A schedule missed while the operator was down
//!   rotates once on start, not once per missed occurrence.
//! - Clock skew: expiries come from GHL's `expires_in`, measured on our clock when the grant
//!   arrived; a margin covers skew and the time the refresh itself takes.
//! - PIT: due for rotation (by a person) once older than `maxAge`.

use std::str::FromStr;
use std::time::Duration;

use croner::Cron;
use jiff::Timestamp;
use jiff::tz::TimeZone;

/// Taken off every expiry: clock skew and the refresh's own latency.
pub const SKEW_MARGIN: Duration = Duration::from_secs(30);
/// `renewBefore` when the spec names none.
pub const DEFAULT_RENEW_BEFORE: Duration = Duration::from_secs(3600);
/// Two refreshes are never closer together than this, whatever the policy says.
pub const MIN_REFRESH_GAP: Duration = Duration::from_secs(5);

/// A rotation schedule (five-field cron, UTC).
#[derive(Clone, Debug)]
pub struct Schedule(Cron);

/// A `rotationSchedule` that is not a five-field cron.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidSchedule {
    #[error("rotationSchedule {0:?}: expected five cron fields (minute hour day month weekday)")]
    Fields(String),
    #[error("rotationSchedule {text:?}: {reason}")]
    Cron { text: String, reason: String },
}

impl FromStr for Schedule {
    type Err = InvalidSchedule;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.split_whitespace().count() != 5 {
            return Err(InvalidSchedule::Fields(text.to_owned()));
        }
        Cron::from_str(text)
            .map(Schedule)
            .map_err(|e| InvalidSchedule::Cron {
                text: text.to_owned(),
                reason: e.to_string(),
            })
    }
}

impl Schedule {
    /// The first occurrence strictly after `after`.
    pub fn next_after(&self, after: Timestamp) -> Option<Timestamp> {
        let zoned = after.to_zoned(TimeZone::UTC);
        self.0
            .find_next_occurrence(&zoned, false)
            .ok()
            .map(|z| z.timestamp())
    }
}

/// What renewal needs to know about one OAuth credential.
#[derive(Clone, Debug)]
pub struct RenewalPolicy {
    pub renew_before: Duration,
    pub schedule: Option<Schedule>,
}

/// How long before expiry to refresh a token that lives `lifetime`: `renewBefore` plus the
/// skew margin — unless that is not shorter than the lifetime (which would refresh in a
/// loop), then half the lifetime. The flag says the policy was overridden.
pub fn lead(policy: &RenewalPolicy, lifetime: Duration) -> (Duration, bool) {
    let wanted = policy.renew_before.saturating_add(SKEW_MARGIN);
    if wanted >= lifetime {
        (lifetime / 2, true)
    } else {
        (wanted, false)
    }
}

/// The lifetime of a grant rotated at `last_rotated` that expires at `expires_at`.
fn lifetime(expires_at: Timestamp, last_rotated: Timestamp) -> Duration {
    Duration::try_from(expires_at.duration_since(last_rotated)).unwrap_or(Duration::ZERO)
}

fn plus(at: Timestamp, d: Duration) -> Timestamp {
    at.checked_add(jiff::SignedDuration::try_from(d).unwrap_or(jiff::SignedDuration::MAX))
        .unwrap_or(Timestamp::MAX)
}

fn minus(at: Timestamp, d: Duration) -> Timestamp {
    at.checked_sub(jiff::SignedDuration::try_from(d).unwrap_or(jiff::SignedDuration::MAX))
        .unwrap_or(Timestamp::MIN)
}

/// When the credential should next be refreshed: the earlier of "the [`lead`] before expiry"
/// and the first schedule occurrence after the last rotation — never sooner than
/// [`MIN_REFRESH_GAP`] after the last rotation.
pub fn next_renewal(
    policy: &RenewalPolicy,
    expires_at: Timestamp,
    last_rotated: Timestamp,
) -> Timestamp {
    let (lead, _) = lead(policy, lifetime(expires_at, last_rotated));
    let before_expiry = minus(expires_at, lead);
    let scheduled = policy
        .schedule
        .as_ref()
        .and_then(|s| s.next_after(last_rotated));
    let next = match scheduled {
        Some(at) if at < before_expiry => at,
        _ => before_expiry,
    };
    next.max(plus(last_rotated, MIN_REFRESH_GAP))
}

/// Why the renewal does not follow `renewBefore` as written, if it does not (for a warning
/// condition). Pure.
pub fn renewal_adjusted(
    policy: &RenewalPolicy,
    expires_at: Timestamp,
    last_rotated: Timestamp,
) -> Option<String> {
    let life = lifetime(expires_at, last_rotated);
    let (lead, adjusted) = lead(policy, life);
    adjusted.then(|| {
        format!(
            "renewBefore ({}s) plus the {}s skew margin is not shorter than the token's lifetime \
             ({}s): refreshing {}s before expiry (half the lifetime) instead",
            policy.renew_before.as_secs(),
            SKEW_MARGIN.as_secs(),
            life.as_secs(),
            lead.as_secs()
        )
    })
}

/// Whether a refresh is due at `now` (also when everything expired while the operator was down).
pub fn refresh_due(
    policy: &RenewalPolicy,
    expires_at: Timestamp,
    last_rotated: Timestamp,
    now: Timestamp,
) -> bool {
    next_renewal(policy, expires_at, last_rotated) <= now
}

/// How long to wait before looking again: until the next renewal, at most `cap` (the
/// connection's regular check), at least one second.
pub fn requeue_in(next: Timestamp, now: Timestamp, cap: Duration) -> Duration {
    let until = next.duration_since(now);
    let until = Duration::try_from(until).unwrap_or(Duration::ZERO);
    until.clamp(Duration::from_secs(1), cap.max(Duration::from_secs(1)))
}

/// The expiry of a grant that says it lives `expires_in` seconds, received at `received`.
pub fn expiry_of(received: Timestamp, expires_in: Option<u64>) -> Timestamp {
    // GHL documents a day; assume that when the answer omits it.
    let seconds = expires_in.unwrap_or(86_399).min(10 * 365 * 86_400) as i64;
    received
        .checked_add(jiff::SignedDuration::from_secs(seconds))
        .unwrap_or(Timestamp::MAX)
}

/// Whether a Private Integration Token first seen at `observed_at` is past `max_age`.
pub fn pit_rotation_due(observed_at: Timestamp, max_age: Duration, now: Timestamp) -> bool {
    let age = Duration::try_from(now.duration_since(observed_at)).unwrap_or(Duration::ZERO);
    age > max_age
}

/// When a PIT first seen at `observed_at` becomes due.
pub fn pit_due_at(observed_at: Timestamp, max_age: Duration) -> Timestamp {
    plus(observed_at, max_age)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn policy(renew_before_s: u64, schedule: Option<&Schedule>) -> RenewalPolicy {
        RenewalPolicy {
            renew_before: Duration::from_secs(renew_before_s),
            schedule: schedule.cloned(),
        }
    }

    #[test]
    fn renews_renew_before_the_expiry_with_a_skew_margin() {
        let p = policy(3600, None);
        let expires = at("2030-01-02T00:00:00Z");
        let last = at("2030-01-01T00:00:00Z");
        assert_eq!(next_renewal(&p, expires, last), at("2030-01-01T22:59:30Z"));
        assert!(!refresh_due(&p, expires, last, at("2030-01-01T22:59:29Z")));
        assert!(refresh_due(&p, expires, last, at("2030-01-01T22:59:30Z")));
    }

    #[test]
    fn a_schedule_rotates_earlier_than_the_expiry_requires() {
        let every_12h: Schedule = "0 */12 * * *".parse().unwrap();
        let p = policy(3600, Some(&every_12h));
        let last = at("2030-01-01T03:00:00Z");
        let expires = at("2030-01-02T03:00:00Z");
        assert_eq!(next_renewal(&p, expires, last), at("2030-01-01T12:00:00Z"));
        // Rotated at noon: the next occurrence is midnight, still before the expiry lead.
        let last = at("2030-01-01T12:00:05Z");
        let expires = at("2030-01-02T12:00:05Z");
        assert_eq!(next_renewal(&p, expires, last), at("2030-01-02T00:00:00Z"));
    }

    #[test]
    fn the_expiry_wins_when_the_schedule_is_rarer_than_the_token_lifetime() {
        let weekly: Schedule = "0 0 * * 1".parse().unwrap();
        let p = policy(600, Some(&weekly));
        let last = at("2030-01-01T00:00:00Z");
        let expires = at("2030-01-02T00:00:00Z");
        assert_eq!(next_renewal(&p, expires, last), at("2030-01-01T23:49:30Z"));
    }

    #[test]
    fn missed_while_down_is_due_at_once_and_only_once() {
        let hourly: Schedule = "0 * * * *".parse().unwrap();
        let p = policy(3600, Some(&hourly));
        let last = at("2030-01-01T00:00:00Z");
        let expires = at("2030-01-01T12:00:00Z");
        // Down for two days: everything is overdue — one refresh now.
        let now = at("2030-01-03T00:00:00Z");
        assert!(refresh_due(&p, expires, last, now));
        // After that refresh the next one is the next hour, not a backlog of 48.
        let last = now;
        let expires = at("2030-01-04T00:00:00Z");
        assert_eq!(next_renewal(&p, expires, last), at("2030-01-03T01:00:00Z"));
        assert!(!refresh_due(&p, expires, last, at("2030-01-03T00:00:01Z")));
    }

    #[test]
    fn clock_skew_is_covered_by_the_margin_even_with_no_renew_before() {
        let p = policy(0, None);
        let expires = at("2030-01-01T00:01:00Z");
        let last = at("2030-01-01T00:00:00Z");
        // Our clock 20 s behind GHL's: still renewed before GHL considers it expired.
        assert!(refresh_due(&p, expires, last, at("2030-01-01T00:00:31Z")));
    }

    #[test]
    fn a_renew_before_at_or_past_the_lifetime_refreshes_at_half_the_lifetime() {
        let last = at("2030-01-01T00:00:00Z");
        // (renewBefore, token lifetime, next refresh after the rotation, adjusted)
        let table = [
            (3600, 86_400, 86_400 - 3630, false),
            (86_400, 86_400, 43_200, true),
            (10 * 86_400, 86_400, 43_200, true),
            (0, 20, 10, true),
            (1, 40, 9, false),
            (60, 20, 10, true),
            // Never sooner than the floor, even for a token that lives no time at all.
            (0, 0, 5, true),
        ];
        for (renew_before, life, after, adjusted) in table {
            let p = policy(renew_before, None);
            let expires = last + jiff::SignedDuration::from_secs(life);
            let next = next_renewal(&p, expires, last);
            assert_eq!(
                next.duration_since(last).as_secs(),
                after,
                "renewBefore {renew_before}s, lifetime {life}s"
            );
            let warning = renewal_adjusted(&p, expires, last);
            assert_eq!(warning.is_some(), adjusted, "renewBefore {renew_before}s");
        }
    }

    #[test]
    fn a_schedule_never_rotates_faster_than_the_floor() {
        let every_minute: Schedule = "* * * * *".parse().unwrap();
        let p = policy(0, Some(&every_minute));
        let last = at("2030-01-01T00:00:58Z");
        let expires = at("2030-01-02T00:00:00Z");
        assert_eq!(next_renewal(&p, expires, last), at("2030-01-01T00:01:03Z"));
    }

    #[test]
    fn bad_schedules_are_refused_with_the_reason() {
        assert!(
            "0 */12 * *"
                .parse::<Schedule>()
                .unwrap_err()
                .to_string()
                .contains("five cron fields")
        );
        assert!("99 * * * *".parse::<Schedule>().is_err());
        assert!(
            "@hourly".parse::<Schedule>().is_err(),
            "five fields, as documented"
        );
    }

    #[test]
    fn requeue_waits_until_the_renewal_within_bounds() {
        let now = at("2030-01-01T00:00:00Z");
        let cap = Duration::from_secs(300);
        assert_eq!(
            requeue_in(at("2030-01-01T00:01:00Z"), now, cap),
            Duration::from_secs(60)
        );
        assert_eq!(requeue_in(at("2030-01-01T05:00:00Z"), now, cap), cap);
        assert_eq!(
            requeue_in(at("2029-12-31T00:00:00Z"), now, cap),
            Duration::from_secs(1)
        );
    }

    #[test]
    fn pit_age_against_max_age() {
        let seen = at("2030-01-01T00:00:00Z");
        let ninety_days = Duration::from_secs(90 * 86_400);
        assert!(!pit_rotation_due(
            seen,
            ninety_days,
            at("2030-03-31T00:00:00Z")
        ));
        assert!(pit_rotation_due(
            seen,
            ninety_days,
            at("2030-04-02T00:00:00Z")
        ));
        assert_eq!(pit_due_at(seen, ninety_days), at("2030-04-01T00:00:00Z"));
    }

    #[test]
    fn expiry_comes_from_expires_in() {
        let received = at("2030-01-01T00:00:00Z");
        assert_eq!(expiry_of(received, Some(60)), at("2030-01-01T00:01:00Z"));
        assert_eq!(expiry_of(received, None), at("2030-01-01T23:59:59Z"));
    }
}

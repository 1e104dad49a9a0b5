//! One sink's pending deliveries, by contact: a new change to a contact already pending merges
//! into it (the delivery fetches the latest state, so the newest wins and nothing stale follows
//! it); failed deliveries wait with exponential backoff (honouring `Retry-After`) for up to 24
//! hours; a refusal (4xx other than 429) is final. Pure: time comes in as arguments.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

/// The first retry delay.
pub const RETRY_BASE: Duration = Duration::from_secs(1);
/// The longest retry delay.
pub const RETRY_MAX: Duration = Duration::from_secs(300);
/// How long a change is retried before it is given up.
pub const GIVE_UP_AFTER: Duration = Duration::from_secs(24 * 3600);
/// Content ids remembered per sink, to skip re-sending what the sink already has.
const REMEMBERED: usize = 100_000;

/// A contact with a change to deliver.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Pending {
    triggers: BTreeSet<String>,
    deleted: bool,
    /// When the oldest undelivered change arrived.
    since: Instant,
    /// When the newest one arrived.
    latest: Instant,
    /// When GHL says the newest change it announced happened (its webhook's `timestamp`).
    announced: Option<jiff::Timestamp>,
    /// Bumped by every change; a delivery covers the generation it started with.
    generation: u64,
    attempts: u32,
    next_at: Instant,
    failing_since: Option<Instant>,
    in_flight: bool,
}

/// A delivery to make now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Due {
    pub contact: String,
    pub generation: u64,
    pub triggers: BTreeSet<String>,
    pub deleted: bool,
}

/// How one attempt went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Attempt {
    /// The sink accepted it (`content` is the event id it got).
    Delivered { content: String },
    /// Worth another try (5xx, 429, timeout, GHL unavailable), after `after` if the sink said.
    Retry {
        after: Option<Duration>,
        error: String,
    },
    /// The sink refused it for good.
    Refused { error: String },
}

impl Attempt {
    /// How it went, for the log.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Delivered { .. } => "delivered",
            Self::Retry { .. } => "retry",
            Self::Refused { .. } => "refused",
        }
    }
}

/// What finishing an attempt did to the contact's entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Finished {
    /// Delivered; `latency` since the oldest change it covers. Nothing newer waits.
    Delivered {
        latency: Duration,
    },
    /// Delivered, but a newer change arrived meanwhile: it goes out next.
    Superseded {
        latency: Duration,
    },
    Retrying,
    /// Given up (refused, or failing for 24 hours).
    Dropped,
}

/// Counts and last facts for status.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub delivered: u64,
    pub failed: u64,
    pub last_delivered_at: Option<jiff::Timestamp>,
    pub last_error: Option<String>,
    /// Changes the sink refused (a 4xx answer): given up, and counted in `failed` too.
    pub rejected: u64,
    /// The sink's last answer was a failure (an error, a refusal, none in time); cleared by
    /// the next one it accepts. Failures reading GHL are not the sink's and leave it as is.
    pub failing: bool,
}

/// How long a change waits for others to the same contact before it is delivered.
pub const COALESCE: Duration = Duration::from_millis(250);

/// One sink's queue.
#[derive(Debug, Default)]
pub struct Queue {
    pending: BTreeMap<String, Pending>,
    /// Contact → the id of the event the sink last accepted for it, and the contact's
    /// `dateUpdated` in it (when known).
    delivered: HashMap<String, (String, Option<jiff::Timestamp>)>,
    pub counts: Counts,
}

/// `RETRY_BASE × 2^(attempts-1)`, capped, times `jitter` (0.5–1: full jitter).
pub fn backoff(attempts: u32, jitter: f64) -> Duration {
    let exponent = attempts.saturating_sub(1).min(16);
    RETRY_BASE
        .saturating_mul(1u32 << exponent)
        .min(RETRY_MAX)
        .mul_f64(jitter.clamp(0.5, 1.0))
}

impl Queue {
    /// Notes a change to `contact`; true when the contact was not pending yet. It is due
    /// [`COALESCE`] after the first change not yet delivered, so that changes in quick
    /// succession (a person's edit and the operator's repair of it, a workflow's several
    /// writes) make one delivery, read once.
    pub fn change(&mut self, contact: &str, trigger: &str, deleted: bool, now: Instant) -> bool {
        let within = now + COALESCE;
        match self.pending.get_mut(contact) {
            Some(entry) => {
                entry.triggers.insert(trigger.to_owned());
                entry.deleted = deleted;
                entry.generation += 1;
                entry.latest = now;
                if !entry.in_flight {
                    // Newer news: try within the window, whatever the backoff said.
                    entry.next_at = entry.next_at.min(within);
                }
                false
            }
            None => {
                self.pending.insert(
                    contact.to_owned(),
                    Pending {
                        triggers: [trigger.to_owned()].into(),
                        deleted,
                        since: now,
                        latest: now,
                        announced: None,
                        generation: 0,
                        attempts: 0,
                        next_at: within,
                        failing_since: None,
                        in_flight: false,
                    },
                );
                true
            }
        }
    }

    /// The deliveries due at `now` (at most `max`), marked in flight; updates of contacts
    /// `held` says are held (a burst's, read by search pages instead: see
    /// [`Queue::settled`]) wait. Deletions are never held.
    pub fn due(&mut self, now: Instant, max: usize, held: impl Fn(&str) -> bool) -> Vec<Due> {
        let mut out = Vec::new();
        for (contact, entry) in self.pending.iter_mut() {
            if out.len() >= max {
                break;
            }
            if entry.in_flight || entry.next_at > now || (!entry.deleted && held(contact)) {
                continue;
            }
            entry.in_flight = true;
            out.push(Due {
                contact: contact.clone(),
                generation: entry.generation,
                triggers: entry.triggers.clone(),
                deleted: entry.deleted,
            });
        }
        out
    }

    /// Held updates due at `now` whose newest change arrived by `settled_by`, marked in
    /// flight: what a search by `dateUpdated` can read in pages once GHL's search shows them.
    /// With each, when its oldest change arrived and when GHL said its newest happened.
    pub fn settled(
        &mut self,
        now: Instant,
        settled_by: Instant,
        held: impl Fn(&str) -> bool,
    ) -> Vec<(Due, Instant, Option<jiff::Timestamp>)> {
        let mut out = Vec::new();
        for (contact, entry) in self.pending.iter_mut() {
            if entry.in_flight
                || entry.deleted
                || entry.next_at > now
                || entry.latest > settled_by
                || !held(contact)
            {
                continue;
            }
            entry.in_flight = true;
            out.push((
                Due {
                    contact: contact.clone(),
                    generation: entry.generation,
                    triggers: entry.triggers.clone(),
                    deleted: false,
                },
                entry.since,
                entry.announced,
            ));
        }
        out
    }

    /// Held updates waiting, not in flight: how many arrived by `settled_by`, and how many
    /// after.
    pub fn updates_waiting(
        &self,
        settled_by: Instant,
        held: impl Fn(&str) -> bool,
    ) -> (usize, usize) {
        self.pending
            .iter()
            .filter(|(c, e)| !e.in_flight && !e.deleted && held(c))
            .fold((0, 0), |(settled, later), (_, e)| {
                if e.latest <= settled_by {
                    (settled + 1, later)
                } else {
                    (settled, later + 1)
                }
            })
    }

    /// Notes when GHL says a change to a pending `contact` happened (a webhook's
    /// `timestamp`); the newest stays.
    pub fn announced(&mut self, contact: &str, at: jiff::Timestamp) {
        if let Some(entry) = self.pending.get_mut(contact) {
            entry.announced = entry.announced.max(Some(at));
        }
    }

    /// When the next delivery is due, if any is waiting.
    pub fn next_due(&self) -> Option<Instant> {
        self.pending
            .values()
            .filter(|e| !e.in_flight)
            .map(|e| e.next_at)
            .min()
    }

    /// Whether the sink already has exactly this content for `contact`.
    pub fn has(&self, contact: &str, content: &str) -> bool {
        self.delivered
            .get(contact)
            .is_some_and(|(c, _)| c == content)
    }

    /// Whether the sink already has `contact` as of `updated` (its `dateUpdated`) or later.
    pub fn has_as_of(&self, contact: &str, updated: jiff::Timestamp) -> bool {
        self.delivered
            .get(contact)
            .and_then(|(_, at)| *at)
            .is_some_and(|at| at >= updated)
    }

    /// Notes the `dateUpdated` of what the sink last accepted for `contact` (the newest
    /// stays).
    pub fn delivered_as_of(&mut self, contact: &str, updated: Option<jiff::Timestamp>) {
        if let Some(entry) = self.delivered.get_mut(contact) {
            entry.1 = entry.1.max(updated);
        }
    }

    /// Records how the delivery of `due` went.
    pub fn finish(
        &mut self,
        due: &Due,
        attempt: Attempt,
        now: Instant,
        wall: jiff::Timestamp,
        jitter: f64,
    ) -> Finished {
        let Some(entry) = self.pending.get_mut(&due.contact) else {
            return Finished::Dropped;
        };
        entry.in_flight = false;
        match attempt {
            Attempt::Delivered { content } => {
                let latency = now.saturating_duration_since(entry.since);
                self.counts.delivered += 1;
                self.counts.last_delivered_at = Some(wall);
                self.counts.last_error = None;
                if self.delivered.len() >= REMEMBERED {
                    self.delivered.clear();
                }
                let as_of = self.delivered.get(&due.contact).and_then(|(_, at)| *at);
                self.delivered.insert(due.contact.clone(), (content, as_of));
                if entry.generation > due.generation {
                    entry.triggers.retain(|t| !due.triggers.contains(t));
                    entry.since = now;
                    entry.attempts = 0;
                    entry.failing_since = None;
                    entry.next_at = now;
                    Finished::Superseded { latency }
                } else {
                    self.pending.remove(&due.contact);
                    Finished::Delivered { latency }
                }
            }
            Attempt::Retry { after, error } => {
                let failing_since = *entry.failing_since.get_or_insert(now);
                self.counts.last_error = Some(error);
                if now.saturating_duration_since(failing_since) >= GIVE_UP_AFTER {
                    self.pending.remove(&due.contact);
                    self.counts.failed += 1;
                    return Finished::Dropped;
                }
                entry.attempts = entry.attempts.saturating_add(1);
                let wait = after
                    .map(|a| a.min(RETRY_MAX))
                    .unwrap_or_else(|| backoff(entry.attempts, jitter));
                entry.next_at = now + wait;
                Finished::Retrying
            }
            Attempt::Refused { error } => {
                self.counts.last_error = Some(error);
                self.counts.failed += 1;
                self.counts.rejected += 1;
                self.pending.remove(&due.contact);
                Finished::Dropped
            }
        }
    }

    /// Notes how the sink itself answered (not what a delivery made of a failed GHL read, nor a
    /// skip of content the sink has): whether it is failing. A refusal (4xx) leaves that as it
    /// was: the sink is up and said no to one change, which `rejected` counts (a single 4xx on a
    /// quiet location would otherwise show the sink failing until its next delivery).
    pub fn answered(&mut self, attempt: &Attempt) {
        match attempt {
            Attempt::Delivered { .. } => self.counts.failing = false,
            Attempt::Retry { .. } => self.counts.failing = true,
            Attempt::Refused { .. } => {}
        }
    }

    /// Whether a change to `contact` waits (or is in flight).
    pub fn contains(&self, contact: &str) -> bool {
        self.pending.contains_key(contact)
    }

    /// When the oldest undelivered change arrived.
    pub fn oldest(&self) -> Option<Instant> {
        self.pending.values().map(|p| p.since).min()
    }

    pub fn len(&self) -> usize {
        self.pending.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Whether a change that arrived at or before `mark` is still waiting.
    pub fn waits_since(&self, mark: Instant) -> bool {
        self.pending.values().any(|e| e.since <= mark)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wall() -> jiff::Timestamp {
        "2030-01-01T00:00:00Z".parse().unwrap()
    }

    /// Nothing held (no burst).
    fn none(_: &str) -> bool {
        false
    }

    fn delivered(id: &str) -> Attempt {
        Attempt::Delivered { content: id.into() }
    }

    #[test]
    fn changes_to_one_contact_merge_and_the_newest_goes_out_last() {
        let t0 = Instant::now();
        let mut q = Queue::default();
        assert!(q.change("c1", "ContactUpdate", false, t0));
        assert!(!q.change("c1", "NoteCreate", false, t0), "merged");
        assert!(q.due(t0, 10, none).is_empty(), "waiting for more changes");
        let t0 = t0 + COALESCE;
        let due = q.due(t0, 10, none);
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].triggers.len(), 2);
        assert!(q.due(t0, 10, none).is_empty(), "in flight");
        // A newer change while the delivery is in flight: it goes out once more.
        q.change("c1", "TaskCreate", false, t0 + Duration::from_millis(5));
        let finished = q.finish(
            &due[0],
            delivered("e1"),
            t0 + Duration::from_millis(10),
            wall(),
            1.0,
        );
        assert!(matches!(finished, Finished::Superseded { .. }));
        let again = q.due(t0 + Duration::from_millis(10), 10, none);
        assert_eq!(again[0].triggers, ["TaskCreate".to_owned()].into());
        let finished = q.finish(
            &again[0],
            delivered("e2"),
            t0 + Duration::from_millis(20),
            wall(),
            1.0,
        );
        assert_eq!(
            finished,
            Finished::Delivered {
                latency: Duration::from_millis(10)
            }
        );
        assert!(q.is_empty());
        assert!(q.has("c1", "e2") && !q.has("c1", "e1"));
        assert_eq!(q.counts.delivered, 2);
    }

    #[test]
    fn failures_back_off_honour_retry_after_and_give_up_after_a_day() {
        let t0 = Instant::now();
        let mut q = Queue::default();
        q.change("c1", "ContactUpdate", false, t0);
        let t0 = t0 + COALESCE;
        let due = q.due(t0, 1, none);
        let retry = |after| Attempt::Retry {
            after,
            error: "503".into(),
        };
        assert_eq!(
            q.finish(&due[0], retry(None), t0, wall(), 1.0),
            Finished::Retrying
        );
        assert_eq!(q.next_due(), Some(t0 + RETRY_BASE));
        assert!(q.due(t0, 1, none).is_empty(), "not before the backoff");
        let due = q.due(t0 + RETRY_BASE, 1, none);
        q.finish(
            &due[0],
            retry(Some(Duration::from_secs(42))),
            t0 + RETRY_BASE,
            wall(),
            1.0,
        );
        assert_eq!(
            q.next_due(),
            Some(t0 + RETRY_BASE + Duration::from_secs(42))
        );
        assert_eq!(q.counts.last_error.as_deref(), Some("503"));
        // A new change does not wait for the backoff, only for the window.
        q.change("c1", "ContactUpdate", false, t0 + Duration::from_secs(2));
        assert_eq!(q.next_due(), Some(t0 + Duration::from_secs(2) + COALESCE));
        let later = t0 + GIVE_UP_AFTER + Duration::from_secs(1);
        let due = q.due(later, 1, none);
        assert_eq!(
            q.finish(&due[0], retry(None), later, wall(), 1.0),
            Finished::Dropped
        );
        assert!(q.is_empty());
        assert_eq!(q.counts.failed, 1);
    }

    #[test]
    fn a_refusal_is_final_and_counted() {
        let t0 = Instant::now();
        let mut q = Queue::default();
        q.change("c1", "ContactDelete", true, t0);
        let t0 = t0 + COALESCE;
        let due = q.due(t0, 1, none);
        assert!(due[0].deleted);
        let refused = Attempt::Refused {
            error: "400".into(),
        };
        assert_eq!(
            q.finish(&due[0], refused, t0, wall(), 1.0),
            Finished::Dropped
        );
        assert_eq!((q.counts.failed, q.counts.rejected, q.len()), (1, 1, 0));
    }

    #[test]
    fn only_the_sinks_own_answers_make_it_failing_or_well() {
        let mut q = Queue::default();
        let retry = Attempt::Retry {
            after: None,
            error: "the sink answered 500".into(),
        };
        let refused = Attempt::Refused {
            error: "the sink refused the event: 400".into(),
        };
        let ok = delivered("e");
        let cases = [
            (vec![], false),
            (vec![&retry], true),
            (vec![&refused], false),
            (vec![&retry, &ok], false),
            (vec![&ok, &refused], false),
            (vec![&retry, &refused], true),
        ];
        for (answers, failing) in cases {
            q.counts.failing = false;
            for answer in &answers {
                q.answered(answer);
            }
            assert_eq!(q.counts.failing, failing, "{answers:?}");
        }
    }

    #[test]
    fn backoff_grows_to_its_cap_with_jitter() {
        assert_eq!(backoff(1, 1.0), RETRY_BASE);
        assert_eq!(backoff(3, 1.0), RETRY_BASE * 4);
        assert_eq!(backoff(40, 1.0), RETRY_MAX);
        assert_eq!(backoff(3, 0.5), RETRY_BASE * 2);
        assert_eq!(backoff(3, 7.0), RETRY_BASE * 4, "jitter is clamped");
    }

    #[test]
    fn waiting_changes_hold_a_mark() {
        let t0 = Instant::now();
        let mut q = Queue::default();
        q.change("c1", "CatchUp", false, t0);
        assert!(q.waits_since(t0));
        let due = q.due(t0 + COALESCE, 1, none);
        q.finish(&due[0], delivered("e"), t0, wall(), 1.0);
        assert!(!q.waits_since(t0));
    }

    #[test]
    fn the_sink_has_a_contact_as_of_the_newest_date_updated_it_accepted() {
        let t0 = Instant::now();
        let at = |s: i64| jiff::Timestamp::from_second(1_800_000_000 + s).unwrap();
        let mut q = Queue::default();
        assert!(!q.has_as_of("c1", at(0)), "nothing delivered");
        for (content, updated) in [("e1", Some(at(10))), ("e2", Some(at(5))), ("e3", None)] {
            q.change("c1", "ContactUpdate", false, t0);
            let due = q.due(t0 + COALESCE, 1, none);
            q.finish(&due[0], delivered(content), t0, wall(), 1.0);
            q.delivered_as_of("c1", updated);
        }
        assert!(q.has("c1", "e3"), "the last event");
        assert!(q.has_as_of("c1", at(10)), "the newest version stays");
        assert!(!q.has_as_of("c1", at(11)));
        assert!(!q.has_as_of("c2", at(0)));
    }

    #[test]
    fn a_burst_is_held_for_search_and_deletions_still_go_one_by_one() {
        let t0 = Instant::now();
        let mut q = Queue::default();
        q.change("c1", "ContactUpdate", false, t0);
        q.change("c2", "ContactUpdate", false, t0 + Duration::from_secs(1));
        q.change("c3", "ContactDelete", true, t0);
        q.change("c1", "NoteCreate", false, t0 + Duration::from_secs(3));
        let now = t0 + Duration::from_secs(4);
        q.change("c4", "CatchUp", false, t0);
        // Held for the search, but c4 (found by a catch-up, read already): only the deletion
        // and c4 go out one by one.
        let held = |c: &str| c != "c4";
        let one_by_one = q.due(now, 10, held);
        assert_eq!(
            one_by_one
                .iter()
                .map(|d| (d.contact.as_str(), d.deleted))
                .collect::<Vec<_>>(),
            [("c3", true), ("c4", false)]
        );
        assert_eq!(q.updates_waiting(now, held), (2, 0));
        // Settled by t0+2s: c2 (its only change at t0+1s), not c1 (changed again at t0+3s).
        let settled = q.settled(now, t0 + Duration::from_secs(2), held);
        assert_eq!(settled.len(), 1);
        assert_eq!(settled[0].0.contact, "c2");
        assert_eq!(settled[0].1, t0 + Duration::from_secs(1));
        assert_eq!(settled[0].2, None, "no webhook timestamp");
        assert_eq!(q.updates_waiting(now, held), (1, 0), "c1 waits");
        assert_eq!(
            q.updates_waiting(t0 + Duration::from_secs(2), held),
            (0, 1),
            "c1 changed later"
        );
        let at = |s: i64| jiff::Timestamp::from_second(1_800_000_000 + s).unwrap();
        q.announced("c1", at(3));
        q.announced("c1", at(1));
        let settled = q.settled(now, now, held);
        assert_eq!(settled.len(), 1);
        assert_eq!(
            (settled[0].0.contact.as_str(), settled[0].2),
            ("c1", Some(at(3)))
        );
    }
}

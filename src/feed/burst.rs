//! Bursts: a bulk import or a workflow touching thousands of contacts fires thousands of
//! webhooks. Read by one GET each, they would cost GHL's rate limit (100 calls per 10 s) a call
//! per contact; read by `dateUpdated` search, one call reads a page of up to
//! [`SEARCH_PAGE`](super::SEARCH_PAGE).
//!
//! When more updates wait than GETs could read while search catches up ([`BURST_AT`]), and no
//! sink needs a contact's parts (those are read per contact anyway), the feed holds updates
//! until search shows them — [`SEARCH_SHOWS_WITHIN`] after the last change to the contact
//! arrived — and reads them in windows of `dateUpdated`, each window starting where the last
//! one ended. A contact its window does not show (its webhook came late, or search lagged
//! longer) is read by GET, as outside a burst. Deletions go one by one as always: search
//! cannot show them.
//!
//! The decisions ([`Burst::update`], [`sweep_now`], [`window`]) are pure; [`Shared::sweep`]
//! reads and delivers.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use jiff::Timestamp;

use super::queue::Due;
use super::read::{Found, fetch, search_changed};
use super::{CONCURRENCY, ReadError, SEARCH_PAGE, Shared, State};

/// Updates waiting (in some sink's queue) from which a burst is read by search: what GETs at
/// GHL's rate (10 a second) could read in about [`SEARCH_SHOWS_WITHIN`].
pub const BURST_AT: usize = 50;
/// How long GHL's search takes to show a change ("a few seconds"): in a burst an update is
/// read by search once its newest change arrived this long ago.
pub const SEARCH_SHOWS_WITHIN: Duration = Duration::from_secs(5);
/// Settled updates a window waits for (unless nothing newer waits): a window ends in a part
/// filled page, so windows of at least a page keep the reads near one call a page.
const SWEEP_AT_LEAST: usize = SEARCH_PAGE as usize;

/// A feed's burst: whether updates are held for search, and where the next window starts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Burst {
    pub on: bool,
    /// A window is being read.
    pub sweeping: bool,
    /// Where the next window starts (`dateUpdated`): the last one's end.
    pub from: Option<Timestamp>,
}

impl Burst {
    /// Whether updates are held for search, given the most any queue holds and whether
    /// every sink wants the contact alone: on from [`BURST_AT`], off once the queues are empty
    /// (or a sink wants parts).
    pub fn update(&mut self, waiting: usize, contact_only: bool) -> bool {
        if !contact_only || waiting == 0 {
            self.on = false;
            self.from = None;
        } else if waiting >= BURST_AT {
            self.on = true;
        }
        self.on
    }
}

/// Whether to read a window now: `settled` updates search shows by now, `later` ones it may
/// not yet.
pub(super) fn sweep_now(settled: usize, later: usize) -> bool {
    settled >= SWEEP_AT_LEAST || (settled > 0 && later == 0)
}

/// The `dateUpdated` window a read covers: from where the last one ended (the first: the
/// oldest change's arrival, less the time search takes to show it), reaching back to the
/// earliest time GHL's webhooks gave for these changes (less [`ANNOUNCED_SLACK`]) when that
/// is earlier — webhooks come late in a burst, after later changes were read — to when the
/// newest change it reads arrived (a change is older than its webhook).
pub(super) fn window(
    last_end: Option<Timestamp>,
    oldest: Timestamp,
    announced: Option<Timestamp>,
    settled_by: Timestamp,
) -> (Timestamp, Timestamp) {
    let back = |t: Timestamp, by: Duration| t.checked_sub(by).unwrap_or(t);
    let from = last_end.unwrap_or_else(|| back(oldest, SEARCH_SHOWS_WITHIN));
    let from = match announced {
        Some(at) => from.min(back(at, ANNOUNCED_SLACK)),
        None => from,
    };
    (from.min(settled_by), settled_by)
}

/// How much earlier than its webhook's `timestamp` a change may carry as its `dateUpdated`.
const ANNOUNCED_SLACK: Duration = Duration::from_secs(1);

/// A window's read: the contacts it is for, with their due sinks.
pub(super) struct Sweep {
    contacts: BTreeMap<String, Vec<(String, Due)>>,
    from: Timestamp,
    to: Timestamp,
}

impl Shared {
    /// In a burst, with no window being read: the settled updates of every queue (marked in
    /// flight) and their window, when [`sweep_now`] says so.
    pub(super) fn take_sweep(state: &mut State, now: Instant, wall: Timestamp) -> Option<Sweep> {
        if !state.burst.on || state.burst.sweeping {
            return None;
        }
        let settled_by = now.checked_sub(SEARCH_SHOWS_WITHIN)?;
        let State { queues, found, .. } = &mut *state;
        let held = |c: &str| !found.contains_key(c);
        let ready = queues.values().any(|q| {
            let (settled, later) = q.updates_waiting(settled_by, held);
            sweep_now(settled, later)
        });
        if !ready {
            return None;
        }
        let mut contacts: BTreeMap<String, Vec<(String, Due)>> = BTreeMap::new();
        let mut oldest = now;
        let mut announced: Option<Timestamp> = None;
        for (sink, queue) in queues.iter_mut() {
            for (due, since, at) in queue.settled(now, settled_by, held) {
                oldest = oldest.min(since);
                announced = match (announced, at) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                contacts
                    .entry(due.contact.clone())
                    .or_default()
                    .push((sink.clone(), due));
            }
        }
        if contacts.is_empty() {
            return None;
        }
        let at = |instant: Instant| {
            wall.checked_sub(now.saturating_duration_since(instant))
                .unwrap_or(wall)
        };
        let (from, to) = window(state.burst.from, at(oldest), announced, at(settled_by));
        state.burst.from = Some(to);
        state.burst.sweeping = true;
        Some(Sweep { contacts, from, to })
    }

    /// Reads a window by search pages and delivers each contact it holds; one the pages do not
    /// show is read by GET. A failed search leaves the window to be read again.
    pub(super) async fn sweep(self: Arc<Self>, sweep: Sweep) {
        let Sweep { contacts, from, to } = sweep;
        let wanted: BTreeSet<String> = contacts.keys().cloned().collect();
        let api = (self.client)();
        let found = match &api {
            Some(api) => search_changed(api.as_ref(), from, to, &wanted).await,
            None => Err(ReadError::NotReady),
        };
        if found.is_err() {
            let mut state = self.lock_state();
            if state.burst.from == Some(to) {
                state.burst.from = Some(from);
            }
        }
        let misses = found.as_ref().map_or(0, |pages| wanted.len() - pages.len());
        tracing::debug!(
            contacts = wanted.len(),
            misses,
            "change feed: a burst's window read by search"
        );
        let (found, api) = (&found, &api);
        futures::stream::iter(contacts)
            .for_each_concurrent(CONCURRENCY, |(contact, dues)| {
                let shared = Arc::clone(&self);
                async move {
                    let fetched = match (found, api) {
                        (Ok(pages), _) if pages.contains_key(&contact) => {
                            Ok(Found::searched(&pages[&contact]))
                        }
                        (Ok(_), Some(api)) => fetch(api.as_ref(), &contact, &BTreeSet::new()).await,
                        (Ok(_), None) => Err(ReadError::NotReady),
                        (Err(e), _) => Err(e.clone()),
                    };
                    shared.deliver_found(&contact, dues, fetched).await;
                }
            })
            .await;
        self.lock_state().burst.sweeping = false;
        self.wake.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_starts_at_its_threshold_with_contact_only_sinks_and_ends_when_the_queues_empty() {
        // (waiting, contact_only) → on, in sequence.
        let steps = [
            ((BURST_AT - 1, true), false),
            ((BURST_AT, true), true),
            ((1, true), true),
            ((0, true), false),
            ((BURST_AT * 10, false), false),
        ];
        let mut burst = Burst {
            from: Some(Timestamp::UNIX_EPOCH),
            ..Burst::default()
        };
        for ((waiting, contact_only), on) in steps {
            assert_eq!(
                burst.update(waiting, contact_only),
                on,
                "{waiting} {contact_only}"
            );
        }
        assert_eq!(burst.from, None, "a new burst starts a new window");
    }

    #[test]
    fn a_window_is_read_once_a_page_has_settled_or_nothing_newer_waits() {
        for (settled, later, now) in [
            (0, 0, false),
            (0, 5_000, false),
            (SWEEP_AT_LEAST - 1, 1, false),
            (SWEEP_AT_LEAST - 1, 0, true),
            (SWEEP_AT_LEAST, 9_000, true),
            (1, 0, true),
        ] {
            assert_eq!(sweep_now(settled, later), now, "{settled} {later}");
        }
    }

    #[test]
    fn windows_follow_each_other_and_reach_back_for_late_webhooks() {
        let t = |s: i64| Timestamp::from_second(1_800_000_000 + s).unwrap();
        let lag = SEARCH_SHOWS_WITHIN.as_secs() as i64;
        assert_eq!(window(None, t(100), None, t(110)), (t(100 - lag), t(110)));
        assert_eq!(window(Some(t(110)), t(100), None, t(111)), (t(110), t(111)));
        // Webhooks that came late: back to the earliest change they announced.
        assert_eq!(
            window(Some(t(110)), t(109), Some(t(104)), t(111)),
            (t(103), t(111))
        );
        assert_eq!(
            window(Some(t(110)), t(109), Some(t(115)), t(111)),
            (t(110), t(111))
        );
        // A clock that went back never gives an empty window.
        assert_eq!(window(Some(t(120)), t(100), None, t(111)), (t(111), t(111)));
    }
}

//! Catch-ups: every `catchUpInterval` (or for a snapshot request) a search by `dateUpdated`
//! from the cursor turns what webhooks missed into changes; the cursor moves past a catch-up
//! only once every queue has delivered what it found. Sinks that want the contact alone get
//! it as the search found it (no second read; the search reads on as they are delivered).

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use jiff::Timestamp;
use serde_json::json;

use super::{DRAIN_FIRST, FOUND_AT_MOST, Mark, ReadError, SEARCH_LAG_MARGIN, SEARCH_PAGE, Shared};
use crate::ghl::models::{ContactSearch, FilterOperator, SearchFilter, SearchSort, SortDirection};
use crate::ghl::paginate::search_all;

impl Shared {
    /// Moves the cursor (and completes snapshots) past what every queue has delivered.
    pub(super) fn settle_marks(&self) {
        let mut state = self.lock_state();
        let marks = std::mem::take(&mut state.marks);
        let mut left = Vec::new();
        for (mark, snapshot) in marks {
            if state.queues.values().any(|q| q.waits_since(mark.enqueued)) {
                left.push((mark, snapshot));
                continue;
            }
            if state.cursor.is_none_or(|c| c < mark.cursor) {
                state.cursor = Some(mark.cursor);
            }
            if let Some(value) = snapshot {
                state.snapshot_done = Some(value);
                state.snapshot_running = None;
            }
            state.dirty = true;
        }
        state.marks = left;
    }

    /// Starts a catch-up (or the requested snapshot) when due.
    pub(super) fn maybe_catch_up(self: &Arc<Self>) {
        let config = self.config();
        let (from, snapshot) = {
            let mut state = self.lock_state();
            let wanted = config
                .snapshot
                .clone()
                .filter(|v| state.snapshot_done.as_ref() != Some(v))
                .filter(|v| state.snapshot_running.as_ref() != Some(v));
            let due = state
                .last_catch_up
                .is_none_or(|at| at.elapsed() >= config.catch_up);
            let draining = !state.draining.is_empty()
                && state
                    .drain_started
                    .is_some_and(|at| at.elapsed() < DRAIN_FIRST);
            if state.catching_up || state.replaying || draining || (!due && wanted.is_none()) {
                return;
            }
            state.catching_up = true;
            state.last_catch_up = Some(Instant::now());
            if let Some(value) = &wanted {
                state.snapshot_running = Some(value.clone());
            }
            (if wanted.is_some() { None } else { state.cursor }, wanted)
        };
        let shared = Arc::clone(self);
        tokio::spawn(async move {
            let started = Timestamp::now();
            let result = shared.catch_up(from, snapshot.is_some()).await;
            let mut state = shared.lock_state();
            state.catching_up = false;
            match result {
                Ok(()) => {
                    let cursor = started.checked_sub(SEARCH_LAG_MARGIN).unwrap_or(started);
                    state.marks.push((
                        Mark {
                            enqueued: Instant::now(),
                            cursor,
                        },
                        snapshot,
                    ));
                }
                Err(error) => {
                    tracing::warn!(%error, "change feed catch-up failed; retrying at the next interval");
                    state.snapshot_running = None;
                }
            }
            drop(state);
            shared.wake.notify_one();
        });
    }

    /// Every contact changed since `from` (every contact when `None`) becomes a change.
    async fn catch_up(&self, from: Option<Timestamp>, snapshot: bool) -> Result<(), ReadError> {
        let api = (self.client)().ok_or(ReadError::NotReady)?;
        let filters = from
            .map(|from| {
                vec![SearchFilter::condition(
                    "dateUpdated",
                    FilterOperator::Range,
                    Some(json!({"gte": from.to_string()})),
                )]
            })
            .unwrap_or_default();
        let search = ContactSearch {
            page_limit: SEARCH_PAGE,
            filters,
            sort: vec![SearchSort {
                field: "dateUpdated".into(),
                direction: SortDirection::Asc,
            }],
            ..ContactSearch::default()
        };
        let trigger = if snapshot { "Snapshot" } else { "CatchUp" };
        let contact_only = self.config().contact_only();
        let mut pages = search_all(api.as_ref(), search);
        while let Some(contact) = pages.try_next().await? {
            if !contact_only {
                self.change(&contact.id, trigger, false, None);
                continue;
            }
            // Delivered as found (no second read), a bounded number at a time.
            loop {
                let (stopped, full) = {
                    let state = self.lock_state();
                    (state.stopped, state.found.len() >= FOUND_AT_MOST)
                };
                if stopped {
                    return Err(ReadError::NotReady);
                }
                if !full {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let id = contact.id.clone();
            self.change(&id, trigger, false, None);
            let mut state = self.lock_state();
            if state.queues.values().any(|q| q.contains(&id)) {
                state.found.insert(id, contact);
            }
        }
        Ok(())
    }
}

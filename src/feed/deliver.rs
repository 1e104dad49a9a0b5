//! Deliveries: due changes taken from the queues (each contact read once for all its due
//! sinks, at most [`CONCURRENCY`](super::CONCURRENCY) at once), sent to each sink, and their outcome recorded in
//! the queue, the metrics and the outbox.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use jiff::Timestamp;
use rand::RngExt;

use super::queue::{Attempt, Due, Finished, Queue};
use super::read::{Found, fetch};
use super::{ReadError, Shared, SinkConfig, SinkLabels, State, sink};
use crate::crd::export::ExportPart;

impl Shared {
    /// Starts every due delivery there is a permit for, each contact fetched once for all
    /// its due sinks; a finished delivery wakes the feed for the next.
    pub(super) fn dispatch(self: &Arc<Self>) {
        let available = self.permits.available_permits();
        if available == 0 {
            return;
        }
        let now = Instant::now();
        let contact_only = self
            .config
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contact_only();
        let mut by_contact: BTreeMap<String, Vec<(String, Due)>> = BTreeMap::new();
        let sweep = {
            let mut state = self.lock_state();
            let waiting = state.queues.values().map(Queue::len).max().unwrap_or(0);
            // In a burst, updates wait for a window's read, but those a catch-up found.
            let bursting = state.burst.update(waiting, contact_only);
            let State { queues, found, .. } = &mut *state;
            let held = |c: &str| bursting && !found.contains_key(c);
            for (sink, queue) in queues.iter_mut() {
                for due in queue.due(now, available, held) {
                    by_contact
                        .entry(due.contact.clone())
                        .or_default()
                        .push((sink.clone(), due));
                }
            }
            Self::take_sweep(&mut state, now, Timestamp::now())
        };
        if let Some(sweep) = sweep {
            tokio::spawn(Arc::clone(self).sweep(sweep));
        }
        for (contact, dues) in by_contact {
            let shared = Arc::clone(self);
            let permits = Arc::clone(&self.permits);
            tokio::spawn(async move {
                // Entries taken above are in flight: a permit frees up for each in turn.
                let Ok(_permit) = permits.acquire_owned().await else {
                    return;
                };
                shared.deliver(&contact, dues).await;
                shared.wake.notify_one();
            });
        }
    }

    /// Fetches `contact` with the parts its due sinks include, and delivers to each.
    async fn deliver(&self, contact: &str, dues: Vec<(String, Due)>) {
        let parts: BTreeSet<ExportPart> = {
            let config = self.config.lock().unwrap_or_else(|p| p.into_inner());
            let sinks: BTreeMap<&str, &SinkConfig> =
                config.sinks.iter().map(|s| (s.name.as_str(), s)).collect();
            dues.iter()
                .filter_map(|(sink, _)| sinks.get(sink.as_str()))
                .flat_map(|s| s.include.iter().copied())
                .collect()
        };
        // What a catch-up found needs no second read, for sinks that want the contact alone.
        let found = parts
            .is_empty()
            .then(|| self.lock_state().found.get(contact).map(Found::searched))
            .flatten();
        let fetched = match (found, (self.client)()) {
            (Some(found), _) => Ok(found),
            (None, Some(api)) => fetch(api.as_ref(), contact, &parts).await,
            (None, None) => Err(ReadError::NotReady),
        };
        self.deliver_found(contact, dues, fetched).await;
    }

    /// Delivers `contact`, as `fetched` found it, to each of its due sinks.
    pub(super) async fn deliver_found(
        &self,
        contact: &str,
        dues: Vec<(String, Due)>,
        fetched: Result<Found, ReadError>,
    ) {
        let config = self.config();
        let sinks: BTreeMap<&str, &SinkConfig> =
            config.sinks.iter().map(|s| (s.name.as_str(), s)).collect();
        for (sink_name, due) in dues {
            // Whether the sink itself answered (its health follows only its own answers).
            let mut answered = false;
            let attempt = match (&fetched, sinks.get(sink_name.as_str())) {
                (Err(error), _) => Attempt::Retry {
                    after: None,
                    error: error.to_string(),
                },
                (Ok(_), None) => continue,
                (Ok(found), Some(sink)) => {
                    let snapshot = found.for_sink(&config.location_id, contact, sink, &due);
                    let envelope = snapshot.envelope();
                    // What the sink has: this very event, or (read by search, which may
                    // lack fields) the contact as of the same `dateUpdated` or later.
                    let unchanged = self.lock_state().queues.get(&sink_name).is_some_and(|q| {
                        q.has(contact, &envelope.id)
                            || (found.by_search
                                && found.updated.is_some_and(|at| q.has_as_of(contact, at)))
                    });
                    // A snapshot re-sends what the sink has; anything else skips it.
                    let resend = due.triggers.contains("Snapshot");
                    match &sink.ready {
                        Ok(_) if unchanged && !resend => {
                            self.metrics.count("unchanged");
                            let config = &config;
                            self.metrics.count_sink(
                                &SinkLabels::new(&config.namespace, &config.connection, &sink_name),
                                "unchanged",
                            );
                            Attempt::Delivered {
                                content: envelope.id,
                            }
                        }
                        Ok(key) => {
                            answered = true;
                            sink::send(&self.http, &sink.url, key, &envelope).await
                        }
                        Err(why) => Attempt::Retry {
                            after: None,
                            error: why.to_string(),
                        },
                    }
                }
            };
            // Ids only: the contact's data never reaches the log.
            if let Attempt::Refused { error } = &attempt {
                // A 4xx answer is final for this change: said, not dropped silently.
                tracing::warn!(sink = %sink_name, contact, %error, "change feed: the sink refused a change; it is not retried");
            } else {
                tracing::debug!(sink = %sink_name, contact, attempt = attempt.label(), "change feed delivery");
            }
            let updated = fetched.as_ref().ok().and_then(|f| f.updated);
            self.finish(&sink_name, &due, attempt, answered, updated);
        }
    }

    /// Records how delivering `due` went; `updated`: the delivered contact's `dateUpdated`.
    fn finish(
        &self,
        sink: &str,
        due: &Due,
        attempt: Attempt,
        answered: bool,
        updated: Option<Timestamp>,
    ) {
        let jitter = rand::rng().random_range(0.5..=1.0);
        let refused = matches!(attempt, Attempt::Refused { .. });
        let (finished, done) = {
            let mut state = self.lock_state();
            state.dirty = true;
            let finished = match state.queues.get_mut(sink) {
                Some(queue) => {
                    if answered {
                        queue.answered(&attempt);
                    }
                    let finished =
                        queue.finish(due, attempt, Instant::now(), Timestamp::now(), jitter);
                    if matches!(
                        finished,
                        Finished::Delivered { .. } | Finished::Superseded { .. }
                    ) {
                        queue.delivered_as_of(&due.contact, updated);
                    }
                    finished
                }
                None => return,
            };
            let left = state.queues.values().any(|q| q.contains(&due.contact));
            let done = if left {
                None
            } else {
                state.draining.remove(&due.contact);
                state.found.remove(&due.contact);
                state
                    .outboxed
                    .remove(&due.contact)
                    .map(|seq| (due.contact.clone(), seq))
            };
            (finished, done)
        };
        self.ack(done);
        let labels = {
            let config = self.config.lock().unwrap_or_else(|p| p.into_inner());
            SinkLabels::new(&config.namespace, &config.connection, sink)
        };
        let result = match finished {
            Finished::Delivered { .. } | Finished::Superseded { .. } => "delivered",
            Finished::Retrying => "retried",
            Finished::Dropped if refused => "rejected",
            Finished::Dropped => "failed",
        };
        self.metrics.count_sink(&labels, result);
        match finished {
            Finished::Delivered { latency } => {
                self.metrics.count("delivered");
                self.metrics.latency.observe(latency.as_secs_f64());
                self.backlog.fetch_sub(1, Ordering::SeqCst);
                self.metrics.pending.dec();
            }
            Finished::Superseded { latency } => {
                self.metrics.count("delivered");
                self.metrics.latency.observe(latency.as_secs_f64());
            }
            Finished::Retrying => self.metrics.count("retried"),
            Finished::Dropped => {
                self.metrics
                    .count(if refused { "rejected" } else { "failed" });
                self.backlog.fetch_sub(1, Ordering::SeqCst);
                self.metrics.pending.dec();
            }
        }
    }

    /// Acknowledges outbox entries of contacts no sink waits for any more.
    pub(super) fn ack(&self, done: impl IntoIterator<Item = (String, u64)>) {
        if let Some(outbox) = &self.outbox {
            for (contact, seq) in done {
                outbox.ack(&contact, seq);
            }
        }
    }
}

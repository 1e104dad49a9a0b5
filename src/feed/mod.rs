//! The change feed (operator → servis-ai or any downstream system): every change in a
//! connection's location, delivered to each sink as a signed CloudEvent, at least once.
//!
//! - [`cloudevent`]: a delivery's content and id (pure);
//! - [`signature`]: Standard Webhooks signing (pure);
//! - [`queue`]: one sink's pending contacts, backoff, give-up (pure);
//! - [`sink`]: the POST and what its answer means;
//! - `read`: a changed contact read from GHL with the parts the sinks include;
//! - [`outbox`]: what the receiver accepted, stored before GHL gets its 2xx, until every sink
//!   has it;
//! - `burst`: many updates at once (a bulk import) read by search pages, not one GET each;
//! - [`health`]: the `Exporting` condition and the sinks' failures and recoveries (pure);
//! - `deliver`: due changes read and sent to each sink, their outcome recorded;
//! - `catch_up`: what webhooks missed, found by search; the cursor it moves;
//! - `metrics`: `ghl_operator_feed_*`, overall and by connection and sink;
//! - this module: one connection's [`Feed`] — webhooks and the periodic catch-up feed its
//!   queues; a delivery fetches the contact's latest state (and the parts each sink includes),
//!   so the newest state always wins; the cursor (kept in the connection's status) moves only
//!   past changes every sink has, so a restart or a dropped webhook loses nothing.

mod burst;
mod catch_up;
pub mod cloudevent;
mod deliver;
pub mod health;
mod metrics;
pub mod outbox;
pub mod queue;
mod read;
pub mod signature;
pub mod sink;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use tokio::sync::{Notify, Semaphore};

pub use self::metrics::{FeedMetrics, SinkLabels};
use self::outbox::{Change, Loaded, Outbox};
use self::queue::Queue;
pub use self::read::ReadError;
use self::signature::{InvalidSigningKey, SigningKey};
use crate::crd::export::{ExportPart, ExportStatus, OutboxStatus, SinkStatus};
use crate::egress::UrlRefused;
use crate::ghl::GhlApi;
use crate::ghl::models::Contact;
use crate::refs::RefError;

/// Contacts per search page (catch-ups and bursts): GHL's largest, so that a page read costs
/// one call for up to this many changed contacts.
pub const SEARCH_PAGE: u32 = 500;

/// How far behind its start a catch-up moves the cursor: GHL's search lags writes by seconds.
pub const SEARCH_LAG_MARGIN: Duration = Duration::from_secs(30);
/// Where a new feed's first catch-up starts when it is started at `now`: changes from now on,
/// plus the search lag margin. The connection reports Ready before its feed starts, and GHL's
/// search shows a change seconds late, so a change made just before the start (a contact
/// created as soon as the connection was Ready, its webhook lost) would otherwise never be
/// caught up. A change it covers twice is the same event (ids follow the content).
pub fn fresh_cursor(now: Timestamp) -> Timestamp {
    now.checked_sub(SEARCH_LAG_MARGIN).unwrap_or(now)
}

/// How long catch-ups wait for what the outbox held at the start to be delivered.
const DRAIN_FIRST: Duration = Duration::from_secs(60);

/// Contacts delivered at once per feed.
const CONCURRENCY: usize = 32;

/// Contacts a catch-up's search found that wait for delivery at most: past it, the catch-up
/// reads on only as they are delivered.
const FOUND_AT_MOST: usize = 2_000;

/// Why a sink cannot send.
#[derive(Clone, Debug, thiserror::Error)]
pub enum SinkUnusable {
    #[error("sink URL not allowed: {0} (--allowed-sink-url)")]
    NotAllowed(#[source] UrlRefused),
    #[error(transparent)]
    Secret(#[from] RefError),
    #[error("Secret {name}: {source}")]
    Key {
        name: String,
        #[source]
        source: InvalidSigningKey,
    },
}

/// A sink, as configured and checked.
#[derive(Clone, Debug)]
pub struct SinkConfig {
    pub name: String,
    pub url: String,
    pub include: BTreeSet<ExportPart>,
    /// The signing key, or why the sink cannot send (URL not allowed, Secret unreadable).
    pub ready: Result<SigningKey, SinkUnusable>,
}

/// A feed's settings.
#[derive(Clone, Debug)]
pub struct FeedConfig {
    /// The connection's namespace and name (the per-sink metrics' labels).
    pub namespace: String,
    pub connection: String,
    pub location_id: String,
    pub sinks: Vec<SinkConfig>,
    pub catch_up: Duration,
    /// The `export-snapshot` annotation's value, if any.
    pub snapshot: Option<String>,
}

impl FeedConfig {
    /// Whether every sink wants the contact alone (no tasks, notes or appointments): then a
    /// contact read by search serves them, and bursts are read by the page.
    fn contact_only(&self) -> bool {
        self.sinks.iter().all(|s| s.include.is_empty())
    }
}

/// How the feed reaches GHL: the connection's current client, when it has a usable one.
pub type Client = Arc<dyn Fn() -> Option<Arc<dyn GhlApi>> + Send + Sync>;

/// A catch-up (or snapshot) that finished searching: once nothing older than `enqueued` waits
/// in any queue, every change before `cursor` is delivered.
#[derive(Clone, Copy, Debug)]
struct Mark {
    enqueued: Instant,
    cursor: Timestamp,
}

#[derive(Default)]
struct State {
    queues: BTreeMap<String, Queue>,
    cursor: Option<Timestamp>,
    /// The snapshot value last completed.
    snapshot_done: Option<String>,
    /// A snapshot being sent, by value.
    snapshot_running: Option<String>,
    last_catch_up: Option<Instant>,
    catching_up: bool,
    marks: Vec<(Mark, Option<String>)>,
    /// Contacts with outbox entries, and the highest entry's sequence number: acknowledged
    /// when the contact leaves every queue.
    outboxed: HashMap<String, u64>,
    /// Contacts the outbox held at the start, not delivered yet: no catch-up before them (for
    /// at most [`DRAIN_FIRST`]).
    draining: HashSet<String>,
    drain_started: Option<Instant>,
    /// The outbox is being read: no catch-up yet.
    replaying: bool,
    /// Many updates at once: held to be read by search pages.
    burst: burst::Burst,
    /// Contacts as a catch-up's search found them, not changed since: delivered to sinks that
    /// want the contact alone without another read (at most [`FOUND_AT_MOST`]).
    found: HashMap<String, Contact>,
    /// Something in the status changed since it was last taken.
    dirty: bool,
    /// The feed was dropped: tasks it started end.
    stopped: bool,
}

struct Shared {
    config: Mutex<FeedConfig>,
    state: Mutex<State>,
    wake: Notify,
    /// One per delivery in flight.
    permits: Arc<Semaphore>,
    client: Client,
    http: reqwest::Client,
    metrics: FeedMetrics,
    /// Contacts pending over every queue (also the webhook receiver's backlog).
    backlog: Arc<AtomicI64>,
    /// Where accepted webhooks are kept until delivered (`None`: in memory only).
    outbox: Option<Outbox>,
}

/// One connection's change feed; its task runs until the feed is dropped or stopped.
pub struct Feed {
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Feed {
    fn drop(&mut self) {
        self.task.abort();
        let pending: usize = {
            let mut state = self.shared.lock_state();
            state.stopped = true;
            state.queues.values().map(Queue::len).sum()
        };
        self.shared
            .backlog
            .fetch_sub(pending as i64, Ordering::SeqCst);
        self.shared.metrics.pending.dec_by(pending as i64);
    }
}

impl Feed {
    /// Starts a feed from its last status (the cursor), or with none from [`fresh_cursor`];
    /// with an outbox, what it holds is delivered first.
    pub fn start(
        config: FeedConfig,
        last: Option<&ExportStatus>,
        client: Client,
        http: reqwest::Client,
        metrics: FeedMetrics,
        backlog: Arc<AtomicI64>,
        outbox: Option<(Outbox, Loaded)>,
    ) -> Self {
        let (outbox, loaded) = outbox.unzip();
        let state = State {
            cursor: Some(
                last.and_then(|s| s.cursor.as_ref().map(|t| t.0))
                    .unwrap_or_else(|| fresh_cursor(Timestamp::now())),
            ),
            snapshot_done: last.and_then(|s| s.snapshot.clone()),
            replaying: loaded.is_some(),
            dirty: true,
            ..State::default()
        };
        let shared = Arc::new(Shared {
            config: Mutex::new(config),
            state: Mutex::new(state),
            wake: Notify::new(),
            permits: Arc::new(Semaphore::new(CONCURRENCY)),
            client,
            http,
            metrics,
            backlog,
            outbox,
        });
        shared.sync_queues();
        let task = tokio::spawn(run(Arc::clone(&shared), loaded));
        Self { shared, task }
    }

    /// New settings (sinks, interval, snapshot request).
    pub fn configure(&self, config: FeedConfig) {
        *self.shared.config.lock().unwrap_or_else(|p| p.into_inner()) = config;
        self.shared.sync_queues();
        self.shared.wake.notify_one();
    }

    /// A change to `contact` (a GHL event type, or `CatchUp` / `Snapshot`).
    pub fn change(&self, contact: &str, trigger: &str, deleted: bool) {
        self.shared.change(contact, trigger, deleted, None);
    }

    /// A change GHL announced: queued at once, and kept in the outbox until every sink has
    /// it. The answer says when it is stored (false: not stored, GHL should retry); `None`
    /// when nothing needs storing (no outbox, or no sink that can send).
    /// `announced`: when GHL says the change happened (the webhook's `timestamp`).
    pub fn accept(
        &self,
        contact: &str,
        trigger: &str,
        deleted: bool,
        announced: Timestamp,
    ) -> Option<tokio::sync::oneshot::Receiver<bool>> {
        let stored = self.accept_stored(contact, trigger, deleted);
        self.shared.announced(contact, announced);
        stored
    }

    fn accept_stored(
        &self,
        contact: &str,
        trigger: &str,
        deleted: bool,
    ) -> Option<tokio::sync::oneshot::Receiver<bool>> {
        let outbox = match &self.shared.outbox {
            Some(outbox) if !self.shared.lock_state().queues.is_empty() => outbox,
            _ => {
                self.shared.change(contact, trigger, deleted, None);
                return None;
            }
        };
        let change = if deleted {
            Change::Deleted
        } else {
            Change::Updated
        };
        let (seq, stored) = outbox.accept(contact, change, trigger);
        self.shared.change(contact, trigger, deleted, Some(seq));
        Some(stored)
    }

    /// The status to report, and whether it changed since the last call.
    pub fn status(&self) -> (ExportStatus, bool) {
        let config = self.shared.config.lock().unwrap_or_else(|p| p.into_inner());
        let mut state = self.shared.state.lock().unwrap_or_else(|p| p.into_inner());
        let dirty = std::mem::take(&mut state.dirty);
        let sinks = config
            .sinks
            .iter()
            .map(|sink| {
                let queue = state.queues.get(&sink.name);
                let counts = queue.map(|q| q.counts.clone()).unwrap_or_default();
                SinkStatus {
                    name: sink.name.clone(),
                    delivered: counts.delivered,
                    pending: queue.map_or(0, |q| q.len() as u64),
                    oldest_pending_at: queue
                        .and_then(Queue::oldest)
                        .and_then(|at| Timestamp::now().checked_sub(at.elapsed()).ok())
                        .map(Time),
                    failed: counts.failed,
                    last_delivered_at: counts.last_delivered_at.map(Time),
                    last_error: match &sink.ready {
                        Err(why) => Some(why.to_string()),
                        Ok(_) => counts.last_error,
                    },
                    rejected: counts.rejected,
                    failing: sink.ready.is_err() || counts.failing,
                }
            })
            .collect();
        let outbox = self.shared.outbox.as_ref().map(|o| {
            let stats = o.stats();
            OutboxStatus {
                entries: stats.entries as u64,
                bytes: stats.bytes as u64,
                oldest_at: stats
                    .oldest_ms
                    .and_then(|ms| Timestamp::from_millisecond(ms).ok())
                    .map(Time),
            }
        });
        let status = ExportStatus {
            cursor: state.cursor.map(Time),
            snapshot: state.snapshot_done.clone(),
            sinks,
            outbox,
        };
        (status, dirty)
    }

    /// Contacts waiting in any queue.
    pub fn pending(&self) -> usize {
        let state = self.shared.state.lock().unwrap_or_else(|p| p.into_inner());
        state.queues.values().map(Queue::len).sum()
    }

    /// Delivers what is due until nothing is due or in flight, or `within` passes (a
    /// graceful stop).
    pub async fn drain(&self, within: Duration) {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            self.shared.dispatch();
            let in_flight = self.shared.permits.available_permits() < CONCURRENCY
                || self.shared.lock_state().burst.on;
            if !in_flight && !self.shared.has_due() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if let Some(outbox) = &self.shared.outbox {
            outbox.flush().await;
        }
    }

    /// When the oldest entry of the outbox was accepted (Unix milliseconds).
    pub fn outbox_oldest_ms(&self) -> Option<i64> {
        self.shared
            .outbox
            .as_ref()
            .and_then(|o| o.stats().oldest_ms)
    }
}

impl Shared {
    fn lock_state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn config(&self) -> FeedConfig {
        self.config
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// One queue per sink that can send; queues of removed (or idle) sinks go.
    fn sync_queues(&self) {
        let sendable: BTreeSet<String> = self
            .config()
            .sinks
            .iter()
            .filter(|s| s.ready.is_ok())
            .map(|s| s.name.clone())
            .collect();
        let mut state = self.lock_state();
        let mut dropped = 0;
        state.queues.retain(|name, queue| {
            let keep = sendable.contains(name);
            if !keep {
                dropped += queue.len();
            }
            keep
        });
        for name in sendable {
            state.queues.entry(name).or_default();
        }
        state.dirty = true;
        let done = settle_outboxed(&mut state);
        drop(state);
        self.ack(done);
        self.backlog.fetch_sub(dropped as i64, Ordering::SeqCst);
        self.metrics.pending.dec_by(dropped as i64);
    }

    /// Queues a change; `seq`: its outbox entry (noted in the same step, so that a delivery
    /// finishing meanwhile cannot acknowledge it undelivered).
    fn change(&self, contact: &str, trigger: &str, deleted: bool, seq: Option<u64>) {
        let now = Instant::now();
        let mut added = 0;
        {
            let mut state = self.lock_state();
            if let Some(seq) = seq {
                let highest = state.outboxed.entry(contact.to_owned()).or_insert(seq);
                *highest = (*highest).max(seq);
            }
            for queue in state.queues.values_mut() {
                if queue.change(contact, trigger, deleted, now) {
                    added += 1;
                }
            }
            // Newer news than what a catch-up found: read it.
            state.found.remove(contact);
            state.dirty = true;
        }
        self.backlog.fetch_add(added, Ordering::SeqCst);
        self.metrics.pending.inc_by(added);
        self.wake.notify_one();
    }

    /// Notes when GHL says a change to `contact` happened, on every queue holding it.
    fn announced(&self, contact: &str, at: Timestamp) {
        for queue in self.lock_state().queues.values_mut() {
            queue.announced(contact, at);
        }
    }

    fn has_due(&self) -> bool {
        let now = Instant::now();
        self.lock_state()
            .queues
            .values()
            .any(|q| q.next_due().is_some_and(|at| at <= now))
    }

    /// When to look again without being woken.
    fn next_wake(&self) -> Instant {
        let config = self.config();
        let state = self.lock_state();
        let mut due = state.queues.values().filter_map(Queue::next_due).min();
        if state.burst.on {
            // Updates held for search are not due: look again soon.
            let soon = Instant::now() + Duration::from_millis(250);
            due = Some(due.map_or(soon, |d| d.min(soon)));
        }
        let catch_up = state
            .last_catch_up
            .map_or_else(Instant::now, |at| at + config.catch_up);
        due.map_or(catch_up, |d| d.min(catch_up))
    }

    /// Queues what the outbox held at the start, before anything else.
    fn replay(&self, entries: Vec<outbox::Entry>) {
        let count = entries.len();
        let queued = !self.lock_state().queues.is_empty();
        for entry in entries {
            let deleted = entry.change == Change::Deleted;
            if queued {
                self.lock_state().draining.insert(entry.contact.clone());
            }
            self.change(&entry.contact, &entry.trigger, deleted, Some(entry.seq));
        }
        let mut state = self.lock_state();
        state.replaying = false;
        state.drain_started = Some(Instant::now());
        let done = settle_outboxed(&mut state);
        drop(state);
        self.ack(done);
        if count > 0 {
            tracing::info!(
                entries = count,
                "change feed: delivering what the outbox held first"
            );
        }
    }
}

/// Outbox entries of contacts no queue holds (every sink delivered them or gave up): taken
/// out of `outboxed`, to acknowledge. With no sink that can send, nothing is: the entries wait
/// for one (the next holder delivers them).
fn settle_outboxed(state: &mut State) -> Vec<(String, u64)> {
    if state.queues.is_empty() {
        return Vec::new();
    }
    let done: Vec<String> = state
        .outboxed
        .keys()
        .filter(|c| !state.queues.values().any(|q| q.contains(c)))
        .cloned()
        .collect();
    done.into_iter()
        .filter_map(|contact| {
            state.draining.remove(&contact);
            state.found.remove(&contact);
            state.outboxed.remove(&contact).map(|seq| (contact, seq))
        })
        .collect()
}

/// The feed's task: what the outbox held first, then catch-ups when due, deliveries as they
/// fall due (each in its own task, at most [`CONCURRENCY`] at once).
async fn run(shared: Arc<Shared>, loaded: Option<Loaded>) {
    if let Some(loaded) = loaded {
        // The writer hands over what is stored once it could read it; until then deliveries
        // of new changes go on, and catch-ups wait.
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            let entries = loaded.await.unwrap_or_default();
            shared.replay(entries);
            shared.wake.notify_one();
        });
    }
    loop {
        shared.settle_marks();
        shared.maybe_catch_up();
        shared.dispatch();
        // With every permit taken, only a finished delivery (which wakes us) frees one.
        let wake = if shared.permits.available_permits() == 0 {
            Instant::now() + Duration::from_secs(3600)
        } else {
            shared
                .next_wake()
                .max(Instant::now() + Duration::from_millis(1))
        };
        tokio::select! {
            _ = shared.wake.notified() => {},
            _ = tokio::time::sleep_until(tokio::time::Instant::from_std(wake)) => {},
        }
    }
}

//! The connections' change feeds and webhook counts, the backlog of webhook work (what the
//! receiver's 429 is measured against), and the task that writes them to status: counts,
//! the feed's state, and its health as the `Exporting` condition (with an Event when a sink
//! starts failing or recovers).

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::api::{Patch, PatchParams};
use kube::{Api, Client, Resource};
use serde_json::json;

use crate::controller::registry::clients::ConnectionKey;
use crate::crd::GhlConnection;
use crate::crd::conditions;
use crate::crd::export::WebhookStatus;
use crate::crd::vocabulary::{FIELD_MANAGER_INTAKE, reason};
use crate::engine::fence::Fence;
use crate::feed::health::{self, Transition};
use crate::feed::outbox::{Limits, Outbox, OutboxOwner};
use crate::feed::{Feed, FeedConfig, FeedMetrics, SinkLabels};

/// How often changed statuses are written.
const STATUS_EVERY: Duration = Duration::from_millis(1000);

/// One connection's webhooks and feed.
struct Entry {
    uid: String,
    location: String,
    /// GHL accepted the connection's credentials for the location at its last check: only
    /// then do the location's webhooks count as the connection's.
    accepted: bool,
    feed: Option<Feed>,
    webhooks: WebhookStatus,
    dirty: bool,
    /// The `Exporting` condition as last written (its transition time is kept while its
    /// status holds).
    exporting: Option<Condition>,
    /// The sinks failing at the last look (for the Events of failure and recovery).
    failing: BTreeSet<String>,
    /// The sinks with series in the metrics.
    metered: BTreeSet<String>,
}

/// One connection's status to write, and the Events to tell with it.
pub struct StatusUpdate {
    pub key: ConnectionKey,
    pub uid: String,
    pub status: serde_json::Value,
    pub events: Vec<FeedEvent>,
}

/// An Event the change feed tells about its connection (its action is `Export`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FeedEvent {
    pub warning: bool,
    pub reason: &'static str,
    pub note: String,
}

/// Publishes a feed Event about the connection `reference` names.
pub type Publish<'a> = &'a (
        dyn Fn(ObjectReference, FeedEvent) -> futures::future::BoxFuture<'static, ()> + Send + Sync
    );

/// The feeds and webhook counts of every connection.
pub struct Feeds {
    entries: Mutex<HashMap<ConnectionKey, Entry>>,
    /// Work accepted and not done yet (pending feed deliveries, queued targeted syncs).
    pub backlog: Arc<AtomicI64>,
    capacity: i64,
    /// Whether this process leads (only the leader processes webhooks).
    leading: AtomicBool,
    metrics: FeedMetrics,
    http: reqwest::Client,
    /// Where outboxes are kept (`None`: in memory only, as in unit tests).
    kube: Option<Client>,
    /// Outbox entries per connection, at most.
    outbox_limits: Limits,
}

/// The connection a feed belongs to, as its check found it.
pub struct FeedTarget<'a> {
    pub key: &'a ConnectionKey,
    pub uid: &'a str,
    pub location: &'a str,
    /// GHL accepted the connection's credentials for the location.
    pub accepted: bool,
    /// The fence of the connection's shard: outbox writes stop when it closes.
    pub fence: Fence,
    /// The `Exporting` condition the connection's status holds (from an earlier process).
    pub exporting: Option<&'a Condition>,
}

impl Feeds {
    pub fn new(capacity: usize, metrics: FeedMetrics, kube: Option<Client>) -> Self {
        crate::tls::install_default_provider();
        Self {
            entries: Mutex::new(HashMap::new()),
            backlog: Arc::new(AtomicI64::new(0)),
            capacity: i64::try_from(capacity).unwrap_or(i64::MAX),
            leading: AtomicBool::new(false),
            metrics,
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap_or_default(),
            kube,
            outbox_limits: Limits::new(capacity),
        }
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<ConnectionKey, Entry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn set_leading(&self, leading: bool) {
        self.leading.store(leading, Ordering::SeqCst);
    }

    /// Work done: `n` fewer items in the backlog.
    pub fn done(&self, n: usize) {
        self.backlog
            .fetch_sub(i64::try_from(n).unwrap_or(0), Ordering::SeqCst);
    }

    pub fn admits(&self) -> bool {
        self.leading.load(Ordering::SeqCst) && self.backlog.load(Ordering::SeqCst) < self.capacity
    }

    /// Starts, reconfigures or stops the connection's feed (a new one opens the connection's
    /// outbox and delivers what it holds first).
    pub fn configure(
        &self,
        target: FeedTarget<'_>,
        config: Option<FeedConfig>,
        last: Option<&crate::crd::export::ExportStatus>,
        client: crate::feed::Client,
    ) {
        let FeedTarget {
            key,
            uid,
            location,
            accepted,
            fence,
            exporting,
        } = target;
        let mut entries = self.entries();
        let entry = entries.entry(key.clone()).or_insert_with(|| Entry {
            uid: uid.to_owned(),
            location: location.to_owned(),
            accepted,
            feed: None,
            webhooks: WebhookStatus::default(),
            dirty: false,
            exporting: exporting.cloned(),
            failing: BTreeSet::new(),
            metered: BTreeSet::new(),
        });
        entry.uid = uid.to_owned();
        entry.location = location.to_owned();
        entry.accepted = accepted;
        match (config, &entry.feed) {
            (None, _) => {
                entry.feed = None;
                // The condition goes with the feed (written once more, without it).
                entry.dirty |= entry.exporting.take().is_some();
            }
            (Some(config), Some(feed)) => feed.configure(config),
            (Some(config), None) => {
                let outbox = self.kube.clone().filter(|_| !uid.is_empty()).map(|kube| {
                    let owner = OutboxOwner {
                        namespace: key.0.clone(),
                        name: key.1.clone(),
                        uid: uid.to_owned(),
                    };
                    Outbox::open(kube, owner, self.outbox_limits, fence, self.metrics.clone())
                });
                entry.feed = Some(Feed::start(
                    config,
                    last,
                    client,
                    self.http.clone(),
                    self.metrics.clone(),
                    Arc::clone(&self.backlog),
                    outbox,
                ));
            }
        }
    }

    /// Writes the connection's status again at the next tick.
    pub fn mark_dirty(&self, key: &ConnectionKey) {
        if let Some(entry) = self.entries().get_mut(key) {
            entry.dirty = true;
        }
    }

    /// Forgets a deleted connection (its feed stops, its series go).
    pub fn remove(&self, key: &ConnectionKey) {
        if let Some(entry) = self.entries().remove(key) {
            for sink in &entry.metered {
                self.metrics
                    .forget_sink(&SinkLabels::new(&key.0, &key.1, sink));
            }
        }
    }

    /// Counts a webhook for `location` on the connections GHL accepted for it.
    pub fn webhook(&self, location: &str, now: Timestamp) {
        for entry in self.entries().values_mut() {
            if entry.location == location && entry.accepted {
                entry.webhooks.received += 1;
                entry.webhooks.last_received_at = Some(Time(now));
                entry.dirty = true;
            }
        }
    }

    /// Queues a change GHL announced on the feeds of `location`'s connections; the answers
    /// say when each outbox stored it (the webhook is answered 2xx only once all have).
    pub fn feed(
        &self,
        location: &str,
        contact: &str,
        trigger: &str,
        deleted: bool,
        announced: Timestamp,
    ) -> Vec<tokio::sync::oneshot::Receiver<bool>> {
        self.entries()
            .values()
            .filter(|entry| entry.location == location)
            .filter_map(|entry| entry.feed.as_ref())
            .filter_map(|feed| feed.accept(contact, trigger, deleted, announced))
            .collect()
    }

    /// The statuses that changed since they were last taken, with the Events they tell (and
    /// the outboxes' oldest age and each sink's state, for the metrics).
    pub fn changed_statuses(&self, now: Timestamp) -> Vec<StatusUpdate> {
        let oldest = self
            .entries()
            .values()
            .filter_map(|e| e.feed.as_ref().and_then(Feed::outbox_oldest_ms))
            .min();
        let age = oldest
            .map(|ms| now.as_millisecond().saturating_sub(ms))
            .map_or(Duration::ZERO, |ms| {
                Duration::from_millis(u64::try_from(ms).unwrap_or(0))
            });
        self.metrics.outbox_oldest(age);
        let mut out = Vec::new();
        for (key, entry) in self.entries().iter_mut() {
            let export = entry.feed.as_ref().map(Feed::status);
            let sinks = export.as_ref().map_or(&[][..], |(e, _)| &e.sinks[..]);
            self.meter(key, entry, sinks);
            let feed_dirty = export.as_ref().is_some_and(|(_, dirty)| *dirty);
            if !entry.dirty && !feed_dirty {
                continue;
            }
            entry.dirty = false;
            let mut status = json!({"webhooks": entry.webhooks});
            let mut events = Vec::new();
            match export {
                Some((export, _)) => {
                    let wanted = health::exporting(&export.sinks);
                    let merged = conditions::merge(
                        entry.exporting.as_slice(),
                        std::slice::from_ref(&wanted),
                        None,
                        now,
                    );
                    entry.exporting = merged.into_iter().next();
                    let (told, failing) = health::transitions(&entry.failing, &export.sinks);
                    entry.failing = failing;
                    events = told.into_iter().map(notice).collect();
                    status["export"] = json!(export);
                    status["conditions"] = json!(entry.exporting.as_slice());
                }
                // No feed: the condition (if this manager wrote one) is dropped.
                None => status["conditions"] = json!([]),
            }
            out.push(StatusUpdate {
                key: key.clone(),
                uid: entry.uid.clone(),
                status,
                events,
            });
        }
        out
    }

    /// Sets each sink's series from its status; drops those of sinks gone.
    fn meter(
        &self,
        key: &ConnectionKey,
        entry: &mut Entry,
        sinks: &[crate::crd::export::SinkStatus],
    ) {
        let now: BTreeSet<String> = sinks.iter().map(|s| s.name.clone()).collect();
        for gone in entry.metered.difference(&now) {
            self.metrics
                .forget_sink(&SinkLabels::new(&key.0, &key.1, gone));
        }
        for sink in sinks {
            self.metrics.sink_state(
                &SinkLabels::new(&key.0, &key.1, &sink.name),
                sink.failing,
                sink.pending,
            );
        }
        entry.metered = now;
    }

    /// Delivers what the feeds have due, for at most `within` (a graceful stop).
    pub async fn drain(&self, within: Duration) {
        let feeds: Vec<Feed> = {
            let mut entries = self.entries();
            entries.values_mut().filter_map(|e| e.feed.take()).collect()
        };
        for feed in &feeds {
            feed.drain(within).await;
        }
    }
}

/// The Event for a sink that started failing or recovered.
fn notice(transition: Transition) -> FeedEvent {
    match transition {
        Transition::Failing { sink, error } => FeedEvent {
            warning: true,
            reason: reason::SINK_FAILING,
            note: format!("change feed sink {sink} fails: {error}"),
        },
        Transition::Recovered { sink } => FeedEvent {
            warning: false,
            reason: reason::SINK_RECOVERED,
            note: format!("change feed sink {sink} accepts deliveries again"),
        },
    }
}

/// Writes changed `status.webhooks` / `status.export` / the `Exporting` condition (and
/// publishes the Events they tell), until `stop`.
pub async fn write_statuses(
    client: &Client,
    feeds: &Feeds,
    publish: Publish<'_>,
    stop: impl Future<Output = ()>,
) {
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(STATUS_EVERY) => {},
            _ = &mut stop => return,
        }
        for update in feeds.changed_statuses(Timestamp::now()) {
            let StatusUpdate {
                key: (namespace, name),
                uid,
                status,
                events,
            } = update;
            let api: Api<GhlConnection> = Api::namespaced(client.clone(), &namespace);
            let patch = json!({
                "apiVersion": GhlConnection::api_version(&()),
                "kind": GhlConnection::kind(&()),
                "status": status,
            });
            if let Err(error) = api
                .patch_status(
                    &name,
                    &PatchParams::apply(FIELD_MANAGER_INTAKE).force(),
                    &Patch::Apply(patch),
                )
                .await
            {
                tracing::debug!(%error, connection = %name, "could not write the webhook and feed status");
                // Written again at the next tick, not only at the next change.
                feeds.mark_dirty(&(namespace.clone(), name.clone()));
            }
            let reference = ObjectReference {
                api_version: Some(GhlConnection::api_version(&()).into_owned()),
                kind: Some(GhlConnection::kind(&()).into_owned()),
                namespace: Some(namespace.clone()),
                name: Some(name.clone()),
                uid: Some(uid).filter(|u| !u.is_empty()),
                ..ObjectReference::default()
            };
            for event in events {
                publish(reference.clone(), event).await;
            }
        }
    }
}

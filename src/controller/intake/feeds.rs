//! The connections' change feeds and webhook counts, the backlog of webhook work (what the
//! receiver's 429 is measured against), and the task that writes them to status.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client, Resource};
use serde_json::json;

use crate::controller::registry::clients::ConnectionKey;
use crate::crd::GhlConnection;
use crate::crd::export::WebhookStatus;
use crate::crd::vocabulary::FIELD_MANAGER_INTAKE;
use crate::engine::fence::Fence;
use crate::feed::outbox::{Limits, Outbox, OutboxOwner};
use crate::feed::{Feed, FeedConfig, FeedMetrics};

/// How often changed statuses are written.
const STATUS_EVERY: Duration = Duration::from_millis(1000);

/// One connection's webhooks and feed.
struct Entry {
    location: String,
    /// GHL accepted the connection's credentials for the location at its last check: only
    /// then do the location's webhooks count as the connection's.
    accepted: bool,
    feed: Option<Feed>,
    webhooks: WebhookStatus,
    dirty: bool,
}

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
        } = target;
        let mut entries = self.entries();
        let entry = entries.entry(key.clone()).or_insert_with(|| Entry {
            location: location.to_owned(),
            accepted,
            feed: None,
            webhooks: WebhookStatus::default(),
            dirty: false,
        });
        entry.location = location.to_owned();
        entry.accepted = accepted;
        match (config, &entry.feed) {
            (None, _) => entry.feed = None,
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

    /// Forgets a deleted connection (its feed stops).
    pub fn remove(&self, key: &ConnectionKey) {
        self.entries().remove(key);
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
    ) -> Vec<tokio::sync::oneshot::Receiver<bool>> {
        self.entries()
            .values()
            .filter(|entry| entry.location == location)
            .filter_map(|entry| entry.feed.as_ref())
            .filter_map(|feed| feed.accept(contact, trigger, deleted))
            .collect()
    }

    /// The statuses that changed since they were last taken (and the outboxes' oldest age,
    /// for the metric).
    pub fn changed_statuses(&self) -> Vec<(ConnectionKey, serde_json::Value)> {
        let oldest = self
            .entries()
            .values()
            .filter_map(|e| e.feed.as_ref().and_then(Feed::outbox_oldest_ms))
            .min();
        let age = oldest
            .map(|ms| Timestamp::now().as_millisecond().saturating_sub(ms))
            .map_or(Duration::ZERO, |ms| {
                Duration::from_millis(u64::try_from(ms).unwrap_or(0))
            });
        self.metrics.outbox_oldest(age);
        let mut out = Vec::new();
        for (key, entry) in self.entries().iter_mut() {
            let export = entry.feed.as_ref().map(Feed::status);
            let feed_dirty = export.as_ref().is_some_and(|(_, dirty)| *dirty);
            if !entry.dirty && !feed_dirty {
                continue;
            }
            entry.dirty = false;
            let mut status = json!({"webhooks": entry.webhooks});
            if let Some((export, _)) = export {
                status["export"] = json!(export);
            }
            out.push((key.clone(), status));
        }
        out
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

/// Writes changed `status.webhooks` / `status.export`, until `stop`.
pub async fn write_statuses(client: &Client, feeds: &Feeds, stop: impl Future<Output = ()>) {
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(STATUS_EVERY) => {},
            _ = &mut stop => return,
        }
        for ((namespace, name), status) in feeds.changed_statuses() {
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
            }
        }
    }
}

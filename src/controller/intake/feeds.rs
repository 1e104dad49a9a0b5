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
}

impl Feeds {
    pub fn new(capacity: usize, metrics: FeedMetrics) -> Self {
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

    /// Starts, reconfigures or stops `key`'s feed; `accepted`: GHL accepted the connection's
    /// credentials for `location`.
    pub fn configure(
        &self,
        key: &ConnectionKey,
        location: &str,
        accepted: bool,
        config: Option<FeedConfig>,
        last: Option<&crate::crd::export::ExportStatus>,
        client: crate::feed::Client,
    ) {
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
                entry.feed = Some(Feed::start(
                    config,
                    last,
                    client,
                    self.http.clone(),
                    self.metrics.clone(),
                    Arc::clone(&self.backlog),
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

    pub fn feed(&self, location: &str, contact: &str, trigger: &str, deleted: bool) {
        for entry in self.entries().values() {
            if entry.location == location
                && let Some(feed) = &entry.feed
            {
                feed.change(contact, trigger, deleted);
            }
        }
    }

    /// The statuses that changed since they were last taken.
    pub fn changed_statuses(&self) -> Vec<(ConnectionKey, serde_json::Value)> {
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

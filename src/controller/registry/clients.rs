//! One GHL client and request budget per GhlConnection, shared by every policy and rule that
//! uses it. The connection controller keeps them current: a changed spec rebuilds the client;
//! a changed token is swapped into the live client (no rebuild, no lost budget state).
//! Readiness changes are broadcast, so waiting policies and rules run as soon as their
//! connection becomes usable (and stop as soon as it is not).

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, RwLock};

use secrecy::SecretString;
use tokio::sync::broadcast;

use crate::crd::connection::GhlConnectionSpec;
use crate::ghl::budget::{BudgetConfig, RequestBudget};
use crate::ghl::transport::{BuildError, HttpTimeouts, http_client};
use crate::ghl::{ConnectionSettings, GhlClient, GhlMetrics, SharedToken};

/// `(namespace, name)` of a GhlConnection.
pub type ConnectionKey = (String, String);

/// Whether policies may use the connection now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Readiness {
    pub ready: bool,
    /// A vocabulary reason (e.g. `CredentialsRejected`).
    pub reason: &'static str,
    pub message: String,
}

/// A connection's live client.
#[derive(Debug)]
pub struct Handle {
    pub client: GhlClient,
    pub budget: Arc<RequestBudget>,
    pub token: SharedToken,
    /// Full syncs of the connection's users run through this gate, a few at a time: they
    /// share one location budget, so more at once would only wait there holding memory.
    /// Connections do not wait for each other.
    pub gate: Arc<tokio::sync::Semaphore>,
    /// Settings the client was built from (a change rebuilds it).
    settings_id: String,
    /// Whether it may be used now, and what its grant allows.
    state: RwLock<HandleState>,
    key: ConnectionKey,
    changes: broadcast::Sender<ConnectionKey>,
}

/// What a connection's handle knows of it now.
#[derive(Debug)]
struct HandleState {
    readiness: Readiness,
    /// The scopes GHL granted the credential, when it says (OAuth grants; a PIT's are not
    /// reported).
    scopes: Option<BTreeSet<String>>,
}

impl Handle {
    fn state(&self) -> std::sync::RwLockReadGuard<'_, HandleState> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    pub fn readiness(&self) -> Readiness {
        self.state().readiness.clone()
    }

    /// The scopes granted, when known.
    pub fn scopes(&self) -> Option<BTreeSet<String>> {
        self.state().scopes.clone()
    }

    /// Records the scopes GHL granted (`None`: not reported).
    pub fn set_scopes(&self, scopes: Option<BTreeSet<String>>) {
        self.state.write().unwrap_or_else(|p| p.into_inner()).scopes = scopes;
    }

    /// Sets the readiness; a change (of `ready` or of its reason) is announced to the
    /// connection's users, so they report it and resume without waiting for their requeue.
    pub fn set_readiness(&self, readiness: Readiness) {
        let changed = {
            let mut state = self.state.write().unwrap_or_else(|p| p.into_inner());
            let current = &state.readiness;
            let changed = current.ready != readiness.ready || current.reason != readiness.reason;
            state.readiness = readiness;
            changed
        };
        if changed {
            // No receiver just means no controller listens (CLI, tests).
            let _ = self.changes.send(self.key.clone());
        }
    }
}

/// Full syncs of one connection's users at once, unless configured.
pub const DEFAULT_SYNCS_PER_CONNECTION: usize = 2;

/// All connections' handles.
#[derive(Debug)]
pub struct Clients {
    handles: RwLock<HashMap<ConnectionKey, Arc<Handle>>>,
    metrics: Arc<GhlMetrics>,
    /// Full syncs of one connection's users at once.
    syncs_per_connection: usize,
    changes: broadcast::Sender<ConnectionKey>,
    /// One HTTP client for every connection (its TLS configuration and connection pool are
    /// ~100 KB each: 20 MB at 200 locations), built at the first connection.
    http: std::sync::Mutex<Option<reqwest::Client>>,
}

impl Clients {
    pub fn new(metrics: Arc<GhlMetrics>) -> Self {
        Self::with_syncs_per_connection(metrics, DEFAULT_SYNCS_PER_CONNECTION)
    }

    pub fn with_syncs_per_connection(metrics: Arc<GhlMetrics>, syncs: usize) -> Self {
        Self {
            handles: RwLock::new(HashMap::new()),
            metrics,
            syncs_per_connection: syncs.clamp(1, tokio::sync::Semaphore::MAX_PERMITS),
            changes: broadcast::channel(1024).0,
            http: std::sync::Mutex::new(None),
        }
    }

    /// Connections whose readiness changed (or that were removed), as they happen.
    pub fn subscribe(&self) -> broadcast::Receiver<ConnectionKey> {
        self.changes.subscribe()
    }

    pub fn get(&self, key: &ConnectionKey) -> Option<Arc<Handle>> {
        self.handles
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .cloned()
    }

    /// The handle for `spec`, rebuilt only if its settings changed; the token is set either
    /// way (a new value reaches the live client on its next request).
    pub fn upsert(
        &self,
        key: &ConnectionKey,
        spec: &GhlConnectionSpec,
        budget: BudgetConfig,
        token: SecretString,
    ) -> Result<Arc<Handle>, BuildError> {
        let settings_id = format!(
            "{}|{}|{}|{:?}",
            spec.base_url(),
            spec.api_version(),
            spec.location_id,
            budget
        );
        let existing = self.get(key);
        if let Some(existing) = &existing
            && existing.settings_id == settings_id
        {
            existing.token.set(token);
            return Ok(Arc::clone(existing));
        }
        // A rebuilt client keeps the gate: syncs running through the old one still count.
        let gate = existing.map_or_else(
            || Arc::new(tokio::sync::Semaphore::new(self.syncs_per_connection)),
            |existing| Arc::clone(&existing.gate),
        );
        let mut settings = ConnectionSettings::new(spec.base_url(), &spec.location_id);
        settings.api_version = spec.api_version().to_owned();
        settings.budget = budget;
        settings.http = Some(self.http(settings.timeouts)?);
        let shared = SharedToken::new(token);
        let (client, budget) =
            settings.connect(Arc::new(shared.clone()), Arc::clone(&self.metrics))?;
        let handle = Arc::new(Handle {
            client,
            budget,
            token: shared,
            gate,
            settings_id,
            key: key.clone(),
            changes: self.changes.clone(),
            state: RwLock::new(HandleState {
                readiness: Readiness {
                    ready: false,
                    reason: crate::crd::vocabulary::reason::PROGRESSING,
                    message: "credentials not checked yet".into(),
                },
                scopes: None,
            }),
        });
        self.handles
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key.clone(), Arc::clone(&handle));
        Ok(handle)
    }

    /// The HTTP client every connection shares.
    fn http(&self, timeouts: HttpTimeouts) -> Result<reqwest::Client, BuildError> {
        let mut http = self.http.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(client) = &*http {
            return Ok(client.clone());
        }
        let client = http_client(timeouts)?;
        *http = Some(client.clone());
        Ok(client)
    }

    /// Tells the connection's users that something about it changed (e.g. why it has no
    /// client), so they re-evaluate now.
    pub fn announce(&self, key: &ConnectionKey) {
        let _ = self.changes.send(key.clone());
    }

    pub fn remove(&self, key: &ConnectionKey) {
        let removed = self
            .handles
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
        if removed.is_some() {
            let _ = self.changes.send(key.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;
    use crate::ghl::TokenSource;

    fn spec(location: &str) -> GhlConnectionSpec {
        serde_json::from_value(serde_json::json!({
            "locationId": location, "baseUrl": "http://127.0.0.1:1",
            "auth": {"privateIntegrationToken": {"secretRef": {"name": "s", "key": "k"}}}
        }))
        .unwrap()
    }

    #[tokio::test]
    async fn a_new_token_reaches_the_same_client_while_new_settings_rebuild_it() {
        let registry = Clients::new(Arc::new(GhlMetrics::default()));
        let key = ("ns".to_owned(), "acme".to_owned());
        let first = registry
            .upsert(
                &key,
                &spec("loc1"),
                BudgetConfig::default(),
                "one".to_owned().into(),
            )
            .unwrap();
        let second = registry
            .upsert(
                &key,
                &spec("loc1"),
                BudgetConfig::default(),
                "two".to_owned().into(),
            )
            .unwrap();
        assert!(Arc::ptr_eq(&first, &second), "same client");
        assert_eq!(
            first.token.access_token().await.unwrap().expose_secret(),
            "two"
        );
        let third = registry
            .upsert(
                &key,
                &spec("loc2"),
                BudgetConfig::default(),
                "two".to_owned().into(),
            )
            .unwrap();
        assert!(!Arc::ptr_eq(&first, &third), "rebuilt for another location");
        registry.remove(&key);
        assert!(registry.get(&key).is_none());
    }

    #[tokio::test]
    async fn a_connections_syncs_take_turns_while_other_connections_do_not_wait() {
        let registry = Clients::with_syncs_per_connection(Arc::new(GhlMetrics::default()), 2);
        let upsert = |name: &str, location: &str| {
            registry
                .upsert(
                    &("ns".to_owned(), name.to_owned()),
                    &spec(location),
                    BudgetConfig::default(),
                    "t".to_owned().into(),
                )
                .unwrap()
        };
        let acme = upsert("acme", "loc1");
        let (_one, _two) = (
            acme.gate.try_acquire().unwrap(),
            acme.gate.try_acquire().unwrap(),
        );
        assert!(acme.gate.try_acquire().is_err(), "a third waits its turn");
        // A rebuilt client keeps the gate: the syncs running through the old one still count.
        let rebuilt = upsert("acme", "loc2");
        assert!(!Arc::ptr_eq(&acme, &rebuilt));
        assert!(rebuilt.gate.try_acquire().is_err());
        // Another connection has its own.
        let other = upsert("other", "loc3");
        assert!(other.gate.try_acquire().is_ok());
    }

    #[tokio::test]
    async fn readiness_changes_are_announced_once_per_change() {
        let registry = Clients::new(Arc::new(GhlMetrics::default()));
        let mut changes = registry.subscribe();
        let key = ("ns".to_owned(), "acme".to_owned());
        let handle = registry
            .upsert(
                &key,
                &spec("loc1"),
                BudgetConfig::default(),
                "t".to_owned().into(),
            )
            .unwrap();
        let ready = |ready| Readiness {
            ready,
            reason: "R",
            message: String::new(),
        };
        handle.set_readiness(ready(true));
        handle.set_readiness(ready(true));
        handle.set_readiness(ready(false));
        assert_eq!(changes.try_recv().unwrap(), key);
        assert_eq!(changes.try_recv().unwrap(), key);
        assert!(
            changes.try_recv().is_err(),
            "an unchanged readiness is not announced"
        );
        registry.remove(&key);
        assert_eq!(changes.try_recv().unwrap(), key);
    }
}

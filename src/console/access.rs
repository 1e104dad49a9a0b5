//! The console's only way to the API server: a client that carries the person's identity —
//! their bearer token in the cluster (the operator's own credentials are dropped from the
//! configuration), or the kubeconfig's for the local console. Every read and write below goes
//! through it, so a person sees and does exactly what RBAC gives them, and the audit log names
//! them.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Event;
use kube::api::{ListParams, Patch, PatchParams};
use kube::config::AuthInfo;
use kube::{Api, Client, Config};
use secrecy::ExposeSecret;
use serde::de::DeserializeOwned;

use super::session::Identity;
use crate::crd::kind::Object;
use crate::crd::{ContactSyncPolicy, GhlConnection, TagRule};

/// The field manager of the console's writes (the person is who the audit log names).
pub const FIELD_MANAGER: &str = "ghl-console";
/// Objects listed per page.
const PAGE: u32 = 500;
/// Pages read at most per kind and namespace (5,000 objects).
const MAX_PAGES: usize = 10;

/// Where the API server is and how people reach it.
#[derive(Clone)]
pub enum Backend {
    /// In the cluster: the API server's address and CA, and no credentials of the operator's.
    Person(Box<Config>),
    /// The local console: the kubeconfig's client.
    Local(Client),
}

/// Namespaces worth looking in when a person may not list cluster-wide (those holding the
/// operator's objects, or the kubeconfig's).
pub type Hint = Arc<dyn Fn() -> Vec<String> + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error("this console serves people with their own Kubernetes token")]
    NoToken,
    #[error("a Kubernetes client: {0}")]
    Client(#[source] kube::Error),
    #[error(transparent)]
    Api(#[from] kube::Error),
}

impl Backend {
    /// A backend for people's tokens, from the process's own configuration with its
    /// credentials removed.
    pub fn for_people(mut config: Config) -> Self {
        config.auth_info = AuthInfo::default();
        Self::Person(Box::new(config))
    }

    /// The client acting as `identity`.
    pub fn client(&self, identity: &Identity) -> Result<Client, AccessError> {
        match (self, identity) {
            (Self::Local(client), Identity::Local) => Ok(client.clone()),
            (Self::Person(config), Identity::Token(token)) => {
                let mut config = (**config).clone();
                config.auth_info = AuthInfo {
                    token: Some(token.expose_secret().to_owned().into()),
                    ..AuthInfo::default()
                };
                Client::try_from(config).map_err(AccessError::Client)
            }
            _ => Err(AccessError::NoToken),
        }
    }
}

/// Whether an error is the API server's refusal (403) — not seeing, rather than failing.
pub fn forbidden(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(e) if e.code == 403 || e.code == 401)
}

/// Every object of a kind the person may list: cluster-wide if allowed, else in each hinted
/// namespace they may read (the others are simply not shown). Paged by the API server.
pub async fn list<K: Object + DeserializeOwned>(
    client: &Client,
    hint: &[String],
) -> Result<Vec<K>, AccessError> {
    match list_in(Api::<K>::all(client.clone())).await {
        Ok(items) => return Ok(items),
        Err(e) if forbidden(&e) => {}
        Err(e) => return Err(e.into()),
    }
    let mut items = Vec::new();
    for namespace in hint {
        match list_in(Api::<K>::namespaced(client.clone(), namespace)).await {
            Ok(found) => items.extend(found),
            Err(e) if forbidden(&e) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(items)
}

async fn list_in<K: Object + DeserializeOwned>(api: Api<K>) -> Result<Vec<K>, kube::Error> {
    let mut items = Vec::new();
    let mut params = ListParams::default().limit(PAGE);
    for _ in 0..MAX_PAGES {
        let page = api.list(&params).await?;
        items.extend(page.items);
        match page.metadata.continue_ {
            Some(token) if !token.is_empty() => params = params.continue_token(&token),
            _ => break,
        }
    }
    Ok(items)
}

/// What the person may see.
#[derive(Default)]
pub struct Seen {
    pub connections: Vec<GhlConnection>,
    pub policies: Vec<ContactSyncPolicy>,
    pub rules: Vec<TagRule>,
}

impl Seen {
    pub async fn load(client: &Client, hint: &[String]) -> Result<Self, AccessError> {
        let (connections, policies, rules) = futures::try_join!(
            list::<GhlConnection>(client, hint),
            list::<ContactSyncPolicy>(client, hint),
            list::<TagRule>(client, hint),
        )?;
        Ok(Self {
            connections,
            policies,
            rules,
        })
    }

    /// The namespaces of what is seen, sorted.
    pub fn namespaces(&self) -> Vec<String> {
        let mut all: Vec<String> = self
            .connections
            .iter()
            .filter_map(|o| o.metadata.namespace.clone())
            .chain(
                self.policies
                    .iter()
                    .filter_map(|o| o.metadata.namespace.clone()),
            )
            .chain(
                self.rules
                    .iter()
                    .filter_map(|o| o.metadata.namespace.clone()),
            )
            .collect();
        all.sort();
        all.dedup();
        all
    }
}

/// The newest Events about an object (none when the person may not read Events).
pub async fn events(client: &Client, namespace: &str, kind: &str, name: &str) -> Vec<Event> {
    let api: Api<Event> = Api::namespaced(client.clone(), namespace);
    let params = ListParams::default()
        .fields(&format!(
            "involvedObject.kind={kind},involvedObject.name={name}"
        ))
        .limit(100);
    let mut events = api.list(&params).await.map(|l| l.items).unwrap_or_default();
    events.sort_by_key(|e| {
        std::cmp::Reverse(
            e.last_timestamp
                .as_ref()
                .map(|t| t.0)
                .or(e.event_time.as_ref().map(|t| t.0)),
        )
    });
    events.truncate(20);
    events
}

/// Writes the approval of `hash` on an object, as the person.
pub async fn approve<K: Object + DeserializeOwned>(
    client: &Client,
    namespace: &str,
    name: &str,
    hash: &str,
) -> Result<(), AccessError> {
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    let patch = serde_json::json!({"metadata": {"annotations": {
        crate::crd::vocabulary::annotation::APPROVE_PLAN: hash}}});
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..PatchParams::default()
    };
    api.patch(name, &params, &Patch::Merge(&patch)).await?;
    Ok(())
}

/// Applies (server-side) `object` as the person; `dry_run`: the API server checks it
/// (schema, admission, RBAC) and stores nothing.
pub async fn apply<K: Object + DeserializeOwned>(
    client: &Client,
    namespace: &str,
    object: &serde_json::Value,
    dry_run: bool,
) -> Result<K, AccessError> {
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    let name = object["metadata"]["name"].as_str().unwrap_or_default();
    let mut params = PatchParams::apply(FIELD_MANAGER);
    params.dry_run = dry_run;
    Ok(api.patch(name, &params, &Patch::Apply(object)).await?)
}

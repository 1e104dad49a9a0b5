//! Reading what a spec's `…Ref` names: one key of a ConfigMap or a Secret, with a typed
//! error that names the object and never repeats its content.

use std::sync::Arc;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::{Api, Client};

/// Why the object a `…Ref` names could not be read.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RefError {
    #[error("{kind} {name} does not exist")]
    Missing { kind: &'static str, name: String },
    #[error("{kind} {name} has no key {key:?}")]
    NoKey {
        kind: &'static str,
        name: String,
        key: String,
    },
    #[error("cannot read {kind} {name}: {source}")]
    Unreadable {
        kind: &'static str,
        name: String,
        #[source]
        source: Arc<kube::Error>,
    },
    /// A CLI run over manifests: the object is not among them.
    #[error("{kind} {name} is not among the manifests")]
    NotInManifests { kind: &'static str, name: String },
    /// A source that names neither a ConfigMap nor a Secret.
    #[error("set configMapRef or secretRef")]
    NoRef,
}

/// The value of `key` in Secret `namespace`/`name`.
pub async fn secret_key(
    client: &Client,
    namespace: &str,
    name: &str,
    key: &str,
) -> Result<Vec<u8>, RefError> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let secret = get(&secrets, "Secret", name).await?;
    secret
        .data
        .and_then(|mut d| d.remove(key))
        .map(|b| b.0)
        .ok_or_else(|| no_key("Secret", name, key))
}

/// The value of `key` in ConfigMap `namespace`/`name`.
pub async fn config_map_key(
    client: &Client,
    namespace: &str,
    name: &str,
    key: &str,
) -> Result<String, RefError> {
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let config_map = get(&config_maps, "ConfigMap", name).await?;
    config_map
        .data
        .and_then(|mut d| d.remove(key))
        .ok_or_else(|| no_key("ConfigMap", name, key))
}

async fn get<K>(api: &Api<K>, kind: &'static str, name: &str) -> Result<K, RefError>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.get_opt(name)
        .await
        .map_err(|source| RefError::Unreadable {
            kind,
            name: name.to_owned(),
            source: Arc::new(source),
        })?
        .ok_or_else(|| RefError::Missing {
            kind,
            name: name.to_owned(),
        })
}

fn no_key(kind: &'static str, name: &str, key: &str) -> RefError {
    RefError::NoKey {
        kind,
        name: name.to_owned(),
        key: key.to_owned(),
    }
}

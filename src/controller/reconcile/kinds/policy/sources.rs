//! Reading a policy's `contactsFrom` (network: the Kubernetes API). What could not be read is
//! said without echoing any of the object's content.

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::{Api, Client};

use crate::crd::contact_sync_policy::{ContactSource, ContactSyncPolicySpec};
use crate::engine::desired::SourceText;

/// The text of every `contactsFrom` entry, in order, or why it could not be read.
pub async fn read(
    client: &Client,
    namespace: &str,
    spec: &ContactSyncPolicySpec,
) -> Vec<SourceText> {
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let mut out = Vec::with_capacity(spec.contacts_from.len());
    for source in &spec.contacts_from {
        out.push(SourceText {
            key: key_of(source).to_owned(),
            text: text_of(&config_maps, &secrets, source).await,
            sensitive: source.secret_ref.is_some(),
        });
    }
    out
}

fn key_of(source: &ContactSource) -> &str {
    source
        .config_map_ref
        .as_ref()
        .map(|r| r.key.as_str())
        .or_else(|| source.secret_ref.as_ref().map(|r| r.key.as_str()))
        .unwrap_or_default()
}

async fn text_of(
    config_maps: &Api<ConfigMap>,
    secrets: &Api<Secret>,
    source: &ContactSource,
) -> Result<String, String> {
    match (&source.config_map_ref, &source.secret_ref) {
        (Some(r), _) => match config_maps.get_opt(&r.name).await {
            Ok(Some(cm)) => cm
                .data
                .and_then(|d| d.get(&r.key).cloned())
                .ok_or_else(|| format!("ConfigMap {} has no key {:?}", r.name, r.key)),
            Ok(None) => Err(format!("ConfigMap {} does not exist", r.name)),
            Err(e) => Err(format!("cannot read ConfigMap {}: {e}", r.name)),
        },
        (None, Some(r)) => match secrets.get_opt(&r.name).await {
            Ok(Some(secret)) => secret
                .data
                .and_then(|d| {
                    d.get(&r.key)
                        .map(|b| String::from_utf8_lossy(&b.0).into_owned())
                })
                .ok_or_else(|| format!("Secret {} has no key {:?}", r.name, r.key)),
            Ok(None) => Err(format!("Secret {} does not exist", r.name)),
            Err(e) => Err(format!("cannot read Secret {}: {e}", r.name)),
        },
        (None, None) => Err("set configMapRef or secretRef".to_owned()),
    }
}

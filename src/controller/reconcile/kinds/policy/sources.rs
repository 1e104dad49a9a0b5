//! Reading a policy's `contactsFrom` (network: the Kubernetes API). What could not be read is
//! said without echoing any of the object's content.

use kube::Client;

use crate::crd::contact_sync_policy::{ContactSource, ContactSyncPolicySpec};
use crate::engine::desired::SourceText;
use crate::refs::{self, RefError, SecretRole};

/// The text of every `contactsFrom` entry, in order, or why it could not be read.
pub async fn read(
    client: &Client,
    namespace: &str,
    spec: &ContactSyncPolicySpec,
) -> Vec<SourceText> {
    let mut out = Vec::with_capacity(spec.contacts_from.len());
    for source in &spec.contacts_from {
        out.push(SourceText {
            key: key_of(source).to_owned(),
            text: text_of(client, namespace, source).await,
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
    client: &Client,
    namespace: &str,
    source: &ContactSource,
) -> Result<String, RefError> {
    match (&source.config_map_ref, &source.secret_ref) {
        (Some(r), _) => refs::config_map_key(client, namespace, &r.name, &r.key).await,
        (None, Some(r)) => {
            refs::secret_key(client, namespace, (&r.name, &r.key), SecretRole::Contacts)
                .await
                .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        }
        (None, None) => Err(RefError::NoRef),
    }
}

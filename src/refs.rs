//! Reading what a spec's `…Ref` names: one key of a ConfigMap or a Secret, with a typed
//! error that names the object and never repeats its content.
//!
//! Secrets opt in: one is read on an object's behalf only when it carries the label
//! `ghl.servis.ai/secret-type` naming the role it plays ([`SecretRole`]). Its metadata is read
//! first; a Secret without the label is never read further, and nothing of it is sent.

use std::sync::Arc;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::ObjectMeta;
use kube::{Api, Client};

use crate::crd::vocabulary::label;

/// The role a Secret a user names plays for an object (its `ghl.servis.ai/secret-type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SecretRole {
    /// A Private Integration Token (`auth.privateIntegrationToken.secretRef`).
    Pit,
    /// An OAuth app's `client_id` and `client_secret` (`auth.oauth.clientSecretRef`).
    OAuthClient,
    /// A one-time authorization code (`auth.oauth.authorizationCodeSecretRef`).
    OAuthCode,
    /// A change feed sink's signing secret (`export.sinks[].signingSecretRef`).
    FeedSigning,
    /// Contact records (`contactsFrom[].secretRef`).
    Contacts,
    /// Request headers for an HTTP source (`contactsFrom[].http.headersSecretRef`).
    Source,
}

impl SecretRole {
    /// The label value that opts a Secret in to this role.
    pub const fn label_value(self) -> &'static str {
        match self {
            SecretRole::Pit => "pit",
            SecretRole::OAuthClient => "oauth-client",
            SecretRole::OAuthCode => "oauth-code",
            SecretRole::FeedSigning => "feed-signing",
            SecretRole::Contacts => "contacts",
            SecretRole::Source => "source",
        }
    }

    /// Whether a Secret with this metadata opted in to the role.
    pub fn admits(self, meta: &ObjectMeta) -> bool {
        meta.labels
            .as_ref()
            .and_then(|labels| labels.get(label::SECRET_TYPE))
            .is_some_and(|value| value.trim() == self.label_value())
    }
}

impl std::fmt::Display for SecretRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.label_value())
    }
}

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
    /// A Secret that did not opt in to the role it would play.
    #[error(
        "Secret {name} is not labelled ghl.servis.ai/secret-type={role}: the operator reads a Secret only for the role its label names; add the label to use it"
    )]
    NotUsable { name: String, role: SecretRole },
    /// A source that names neither a ConfigMap nor a Secret.
    #[error("set configMapRef, secretRef or http")]
    NoRef,
    /// An HTTP source that could not be read.
    #[error(transparent)]
    Http(#[from] crate::sources::fetch::SourceError),
}

impl RefError {
    /// The condition reason an object reports for this error.
    pub fn reason(&self) -> &'static str {
        match self {
            RefError::NotUsable { .. } => crate::crd::vocabulary::reason::SECRET_NOT_USABLE,
            RefError::Http(e) => e.reason(),
            _ => crate::crd::vocabulary::reason::SECRET_NOT_FOUND,
        }
    }
}

/// Secret `name` if it exists and opted in to `role` (`None`: it does not exist). Only its
/// metadata is read from one that did not opt in.
pub async fn opted_in(
    secrets: &Api<Secret>,
    name: &str,
    role: SecretRole,
) -> Result<Option<Secret>, RefError> {
    let unreadable = |source| RefError::Unreadable {
        kind: "Secret",
        name: name.to_owned(),
        source: Arc::new(source),
    };
    let Some(meta) = secrets.get_metadata_opt(name).await.map_err(unreadable)? else {
        return Ok(None);
    };
    if !role.admits(&meta.metadata) {
        return Err(RefError::NotUsable {
            name: name.to_owned(),
            role,
        });
    }
    let secret = secrets.get_opt(name).await.map_err(unreadable)?;
    // Relabelled between the two reads: the second read decides.
    match secret {
        Some(secret) if !role.admits(&secret.metadata) => Err(RefError::NotUsable {
            name: name.to_owned(),
            role,
        }),
        secret => Ok(secret),
    }
}

/// The value of `key` in Secret `namespace`/`name`, which must have opted in to `role`.
pub async fn secret_key(
    client: &Client,
    namespace: &str,
    (name, key): (&str, &str),
    role: SecretRole,
) -> Result<Vec<u8>, RefError> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let secret = opted_in(&secrets, name, role)
        .await?
        .ok_or_else(|| RefError::Missing {
            kind: "Secret",
            name: name.to_owned(),
        })?;
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn meta(labels: &[(&str, &str)]) -> ObjectMeta {
        ObjectMeta {
            labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect::<BTreeMap<_, _>>(),
            ),
            ..ObjectMeta::default()
        }
    }

    #[test]
    fn a_secret_plays_only_the_role_its_label_names() {
        let cases = [
            (vec![(label::SECRET_TYPE, "pit")], SecretRole::Pit, true),
            (vec![(label::SECRET_TYPE, " pit ")], SecretRole::Pit, true),
            (
                vec![(label::SECRET_TYPE, "pit")],
                SecretRole::Contacts,
                false,
            ),
            (vec![(label::SECRET_TYPE, "PIT")], SecretRole::Pit, false),
            (
                vec![(label::SECRET_TYPE, "contacts")],
                SecretRole::Contacts,
                true,
            ),
            (vec![("app", "db")], SecretRole::Pit, false),
            (vec![], SecretRole::FeedSigning, false),
        ];
        for (labels, role, admitted) in cases {
            assert_eq!(
                role.admits(&meta(&labels)),
                admitted,
                "{labels:?} as {role}"
            );
        }
        assert!(!SecretRole::Pit.admits(&ObjectMeta::default()));
        let refused = RefError::NotUsable {
            name: "db-password".into(),
            role: SecretRole::Pit,
        };
        assert!(
            refused
                .to_string()
                .contains("ghl.servis.ai/secret-type=pit"),
            "{refused}"
        );
        assert_eq!(refused.reason(), "SecretNotUsable");
    }
}

//! Where a connection's outbox lives: one Secret in the connection's namespace, owned by the
//! connection (deleted with it), named after it and a digest of its uid, typed and labeled as
//! the operator's. Written with compare-and-swap on its resourceVersion; a Secret that is not
//! the outbox of this connection (another type, another owner) is never read or written.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};

use super::book::{Book, Unreadable};
use crate::crd::vocabulary::label;

/// The outbox Secret's type.
pub const OUTBOX_SECRET_TYPE: &str = "ghl.servis.ai/outbox";
const DATA_KEY: &str = "entries";
/// Characters of the connection's name in the Secret's name.
const NAME_BYTES: usize = 180;
const UID_DIGEST_CHARS: usize = 10;

/// Whose outbox: a GhlConnection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboxOwner {
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

impl OutboxOwner {
    /// `ghl-outbox-<connection>-<uid digest>`.
    pub fn secret_name(&self) -> String {
        let name = &self.name[..self.name.len().min(NAME_BYTES)];
        let name = name.trim_end_matches(['-', '.']);
        let uid = crate::engine::ledger::key_digest(&self.uid);
        format!("ghl-outbox-{name}-{}", &uid[..UID_DIGEST_CHARS])
    }

    /// Whether `secret` is this connection's outbox. Pure.
    pub fn owns(&self, secret: &Secret) -> bool {
        secret.type_.as_deref() == Some(OUTBOX_SECRET_TYPE)
            && !self.uid.is_empty()
            && secret
                .metadata
                .owner_references
                .iter()
                .flatten()
                .any(|r| r.uid == self.uid && r.kind == "GhlConnection")
    }

    /// The Secret holding `book`. Pure.
    pub fn secret(&self, book: &Book, resource_version: Option<String>) -> Secret {
        let labels = BTreeMap::from([
            (
                label::MANAGED_BY.to_owned(),
                label::MANAGED_BY_VALUE.to_owned(),
            ),
            (label::OWNER_KIND.to_owned(), "GhlConnection".to_owned()),
            (
                label::OWNER_NAME.to_owned(),
                if self.name.len() <= 63 {
                    self.name.clone()
                } else {
                    crate::engine::ledger::key_digest(&self.name)
                },
            ),
        ]);
        Secret {
            metadata: ObjectMeta {
                name: Some(self.secret_name()),
                namespace: Some(self.namespace.clone()),
                labels: Some(labels),
                resource_version,
                owner_references: Some(vec![OwnerReference {
                    api_version: "ghl.servis.ai/v1alpha1".to_owned(),
                    kind: "GhlConnection".to_owned(),
                    name: self.name.clone(),
                    uid: self.uid.clone(),
                    controller: Some(true),
                    block_owner_deletion: Some(false),
                }]),
                ..ObjectMeta::default()
            },
            type_: Some(OUTBOX_SECRET_TYPE.to_owned()),
            data: Some(BTreeMap::from([(
                DATA_KEY.to_owned(),
                ByteString(book.encode().into_bytes()),
            )])),
            ..Secret::default()
        }
    }
}

/// Why the outbox could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("reading or writing Secret {name}: {source}")]
    Api {
        name: String,
        #[source]
        source: Box<kube::Error>,
    },
    #[error("Secret {name} is in the way: it is not this connection's outbox")]
    NotOurs { name: String },
    #[error("Secret {name}: {source}")]
    Unreadable {
        name: String,
        #[source]
        source: Unreadable,
    },
    /// Someone else wrote it since it was read: read it again and merge.
    #[error("Secret {name} changed since it was read")]
    Conflict { name: String },
}

/// The outbox's storage, as last read or written.
pub struct Store {
    api: Api<Secret>,
    owner: OutboxOwner,
    /// `None`: no Secret yet.
    resource_version: Option<String>,
}

impl Store {
    pub fn new(client: Client, owner: OutboxOwner) -> Self {
        Self {
            api: Api::namespaced(client, &owner.namespace),
            owner,
            resource_version: None,
        }
    }

    fn name(&self) -> String {
        self.owner.secret_name()
    }

    fn api_error(&self, source: kube::Error) -> StoreError {
        match &source {
            kube::Error::Api(e) if e.code == 409 => StoreError::Conflict { name: self.name() },
            _ => StoreError::Api {
                name: self.name(),
                source: Box::new(source),
            },
        }
    }

    /// What is stored (nothing: an empty book).
    pub async fn load(&mut self) -> Result<Book, StoreError> {
        let name = self.name();
        let Some(secret) = self
            .api
            .get_opt(&name)
            .await
            .map_err(|e| self.api_error(e))?
        else {
            self.resource_version = None;
            return Ok(Book::default());
        };
        if !self.owner.owns(&secret) {
            return Err(StoreError::NotOurs { name });
        }
        let text = secret
            .data
            .as_ref()
            .and_then(|d| d.get(DATA_KEY))
            .map(|b| String::from_utf8_lossy(&b.0).into_owned())
            .unwrap_or_default();
        let book = Book::decode(&text).map_err(|source| StoreError::Unreadable {
            name: name.clone(),
            source,
        })?;
        self.resource_version = secret.metadata.resource_version;
        Ok(book)
    }

    /// Writes `book` over what was last read or written (create-only the first time).
    pub async fn write(&mut self, book: &Book) -> Result<(), StoreError> {
        let secret = self.owner.secret(book, self.resource_version.clone());
        let written = match &self.resource_version {
            None => self.api.create(&PostParams::default(), &secret).await,
            Some(_) => {
                self.api
                    .replace(&self.name(), &PostParams::default(), &secret)
                    .await
            }
        }
        .map_err(|e| self.api_error(e))?;
        self.resource_version = written.metadata.resource_version;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner() -> OutboxOwner {
        OutboxOwner {
            namespace: "crm".into(),
            name: "acme".into(),
            uid: "uid-1".into(),
        }
    }

    #[test]
    fn names_carry_the_uid_and_only_the_connections_own_secret_is_its_outbox() {
        let name = owner().secret_name();
        assert!(name.starts_with("ghl-outbox-acme-"), "{name}");
        let other = OutboxOwner {
            uid: "uid-2".into(),
            ..owner()
        };
        assert_ne!(
            other.secret_name(),
            name,
            "a re-created connection starts afresh"
        );
        let long = OutboxOwner {
            name: "a".repeat(253),
            ..owner()
        };
        assert!(long.secret_name().len() <= 253);

        let secret = owner().secret(&Book::default(), None);
        assert!(owner().owns(&secret));
        assert!(!other.owns(&secret), "another owner's");
        let mut untyped = secret.clone();
        untyped.type_ = Some("Opaque".into());
        assert!(!owner().owns(&untyped), "a Secret someone put in its place");
    }
}

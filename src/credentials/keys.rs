//! The operator's own keys: one random secret, kept in a Secret of the operator's namespace
//! (`ghl-operator-keys`, created once, create-only), from which the key of each use is
//! derived:
//!
//! - **fingerprints** of credentials shown in status and on workloads: HMACs, so that a weak
//!   token cannot be guessed offline from what more people can read than the Secret;
//! - **seals** of approvals: what the admission webhook stamps and the operator verifies.
//!
//! Without a cluster (the CLI, tests) the keys are random per process.

use std::fmt;

use hmac::{Hmac, KeyInit, Mac};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};
use rand::RngExt;
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

use crate::crd::vocabulary::label;

/// The Secret holding the operator's keys, in its own namespace.
pub const KEYS_SECRET: &str = "ghl-operator-keys";
const KEY: &str = "key";

/// The keys derived from the operator's secret.
#[derive(Clone)]
pub struct OperatorKeys {
    fingerprint: [u8; 32],
    seal: [u8; 32],
}

impl fmt::Debug for OperatorKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OperatorKeys(…)")
    }
}

/// The operator's keys could not be loaded or created.
#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    #[error("reading or creating Secret {namespace}/{KEYS_SECRET}: {source}")]
    Api {
        namespace: String,
        #[source]
        source: Box<kube::Error>,
    },
    #[error("Secret {namespace}/{KEYS_SECRET} holds no usable key (delete it to make a new one)")]
    Unusable { namespace: String },
}

fn mac(key: &[u8]) -> Hmac<Sha256> {
    <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes keys of any length")
}

/// `HMAC(secret, purpose)`: the key of one use.
fn derive(secret: &[u8], purpose: &str) -> [u8; 32] {
    let mut mac = mac(secret);
    mac.update(purpose.as_bytes());
    mac.finalize().into_bytes().into()
}

impl OperatorKeys {
    /// The keys derived from `secret` (at least 32 bytes).
    pub fn from_secret(secret: &[u8]) -> Option<Self> {
        (secret.len() >= 32).then(|| Self {
            fingerprint: derive(secret, "ghl-operator fingerprint v1"),
            seal: derive(secret, "ghl-operator approval seal v1"),
        })
    }

    /// Keys for this process only (the CLI, tests).
    pub fn ephemeral() -> Self {
        let secret: [u8; 32] = rand::rng().random();
        Self::from_secret(&secret).expect("32 bytes")
    }

    /// The keys of the operator in `namespace`: read from its keys Secret, which is created
    /// (create-only: two replicas starting together end up with the one that won) when missing.
    pub async fn load_or_create(client: &Client, namespace: &str) -> Result<Self, KeysError> {
        let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
        let api = |source| KeysError::Api {
            namespace: namespace.to_owned(),
            source: Box::new(source),
        };
        let existing = match secrets.get_opt(KEYS_SECRET).await.map_err(api)? {
            Some(secret) => secret,
            None => {
                let secret: [u8; 32] = rand::rng().random();
                let fresh = Secret {
                    metadata: ObjectMeta {
                        name: Some(KEYS_SECRET.to_owned()),
                        labels: Some(
                            [(
                                label::MANAGED_BY.to_owned(),
                                label::MANAGED_BY_VALUE.to_owned(),
                            )]
                            .into(),
                        ),
                        ..ObjectMeta::default()
                    },
                    type_: Some("Opaque".into()),
                    data: Some([(KEY.to_owned(), ByteString(secret.to_vec()))].into()),
                    ..Secret::default()
                };
                match secrets.create(&PostParams::default(), &fresh).await {
                    Ok(created) => created,
                    Err(kube::Error::Api(e)) if e.code == 409 => {
                        secrets.get(KEYS_SECRET).await.map_err(api)?
                    }
                    Err(e) => return Err(api(e)),
                }
            }
        };
        existing
            .data
            .as_ref()
            .and_then(|d| d.get(KEY))
            .and_then(|b| Self::from_secret(&b.0))
            .ok_or_else(|| KeysError::Unusable {
                namespace: namespace.to_owned(),
            })
    }

    /// A short, keyed fingerprint of a credential: the same for the same token, and useless
    /// to whoever does not hold the key.
    pub fn fingerprint(&self, token: &SecretString) -> String {
        let mut mac = mac(&self.fingerprint);
        mac.update(token.expose_secret().as_bytes());
        hex(&mac.finalize().into_bytes()[..6])
    }

    /// The seal of `parts` (joined unambiguously).
    pub fn seal(&self, parts: &[&str]) -> String {
        let mut mac = mac(&self.seal);
        for part in parts {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part.as_bytes());
        }
        hex(&mac.finalize().into_bytes())
    }

    /// Whether `seal` is the seal of `parts` (in constant time).
    pub fn verify_seal(&self, parts: &[&str], seal: &str) -> bool {
        let Some(given) = unhex(seal) else {
            return false;
        };
        let mut mac = mac(&self.seal);
        for part in parts {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part.as_bytes());
        }
        mac.verify_slice(&given).is_ok()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || text.len() > 128 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_are_keyed_stable_and_short() {
        let token = SecretString::from("pit-123".to_owned());
        let a = OperatorKeys::from_secret(&[1; 32]).unwrap();
        let b = OperatorKeys::from_secret(&[2; 32]).unwrap();
        assert_eq!(a.fingerprint(&token), a.fingerprint(&token));
        assert_ne!(a.fingerprint(&token), b.fingerprint(&token), "keyed");
        assert_ne!(
            a.fingerprint(&token),
            a.fingerprint(&SecretString::from("pit-124".to_owned()))
        );
        assert_eq!(a.fingerprint(&token).len(), 12);
        // Not the unsalted digest status used to carry.
        assert_ne!(
            a.fingerprint(&token),
            crate::credentials::token_secret::fingerprint(&token)
        );
        assert!(OperatorKeys::from_secret(&[1; 31]).is_none());
    }

    #[test]
    fn seals_bind_every_part_and_only_the_key_makes_them() {
        let keys = OperatorKeys::from_secret(&[7; 32]).unwrap();
        let seal = keys.seal(&["uid-1", "aaaa", "bob"]);
        assert!(keys.verify_seal(&["uid-1", "aaaa", "bob"], &seal));
        for other in [
            ["uid-2", "aaaa", "bob"],
            ["uid-1", "bbbb", "bob"],
            ["uid-1", "aaaa", "alice"],
            // Joined without lengths these two would collide.
            ["uid-1a", "aaa", "bob"],
        ] {
            assert!(!keys.verify_seal(&other, &seal), "{other:?}");
        }
        let stranger = OperatorKeys::from_secret(&[8; 32]).unwrap();
        assert!(!stranger.verify_seal(&["uid-1", "aaaa", "bob"], &seal));
        for garbage in ["", "zz", "abc", &"0".repeat(200)] {
            assert!(!keys.verify_seal(&["uid-1", "aaaa", "bob"], garbage));
        }
    }
}

//! Standard Webhooks signatures (https://www.standardwebhooks.com): `webhook-id`,
//! `webhook-timestamp` (Unix seconds) and `webhook-signature: v1,<base64 HMAC-SHA256>` over
//! `<id>.<timestamp>.<body>`, keyed with the base64-decoded part after `whsec_` (or the raw
//! secret bytes without that prefix). Pure.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// A sink's signing key.
#[derive(Clone)]
pub struct SigningKey(Vec<u8>);

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(…)")
    }
}

/// Why a Secret value is not a signing key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidSigningKey {
    #[error("the signing secret starts with whsec_ but is not base64 after it")]
    NotBase64,
    #[error("the signing secret is empty")]
    Empty,
}

impl SigningKey {
    /// The key a Secret value stands for: `whsec_<base64>`, or the bytes as they are.
    pub fn from_secret(secret: &[u8]) -> Result<Self, InvalidSigningKey> {
        let trimmed = secret.trim_ascii();
        let key = match trimmed.strip_prefix(b"whsec_") {
            Some(encoded) => BASE64
                .decode(encoded)
                .map_err(|_| InvalidSigningKey::NotBase64)?,
            None => trimmed.to_vec(),
        };
        if key.is_empty() {
            return Err(InvalidSigningKey::Empty);
        }
        Ok(Self(key))
    }

    /// The MAC of `<id>.<timestamp>.<body>`.
    fn mac(&self, id: &str, timestamp: i64, body: &[u8]) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.0)
            .expect("HMAC takes keys of any length");
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        mac
    }

    /// The `webhook-signature` header value for a message.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let mac = self.mac(id, timestamp, body);
        format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()))
    }

    /// Whether `header` (space-separated `v1,<sig>` entries) holds this key's signature of the
    /// message — what a receiver checks (in constant time).
    pub fn verify(&self, id: &str, timestamp: i64, body: &[u8], header: &str) -> bool {
        header.split_whitespace().any(|entry| {
            let Some(encoded) = entry.strip_prefix("v1,") else {
                return false;
            };
            let Ok(given) = BASE64.decode(encoded) else {
                return false;
            };
            self.mac(id, timestamp, body).verify_slice(&given).is_ok()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_standard_webhooks_test_vector() {
        // The example of the Standard Webhooks specification.
        let key = SigningKey::from_secret(b"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = br#"{"test": 2432232314}"#;
        let signature = key.sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body);
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        assert!(key.verify("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body, &signature));
        assert!(!key.verify("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265331, body, &signature));
        assert!(!key.verify("msg_other", 1614265330, body, &signature));
    }

    #[test]
    fn raw_secrets_and_bad_ones() {
        let raw = SigningKey::from_secret(b"plain secret\n").unwrap();
        assert_eq!(raw.0, b"plain secret");
        assert!(SigningKey::from_secret(b"whsec_not base64!").is_err());
        assert!(SigningKey::from_secret(b"  ").is_err());
        assert_eq!(format!("{raw:?}"), "SigningKey(…)", "never printed");
    }
}

//! Standard Webhooks signatures (https://www.standardwebhooks.com): `webhook-id`,
//! `webhook-timestamp` (Unix seconds) and `webhook-signature: v1,<base64 HMAC-SHA256>` over
//! `<id>.<timestamp>.<body>`, keyed with the secret base64-decoded after an optional `whsec_`
//! prefix — as the official Standard Webhooks libraries read a secret, so a receiver using
//! one of them with the same Secret value verifies what we send. Pure.

use base64::Engine;
use base64::alphabet;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// Secrets are read with padding optional, as the official libraries read them.
const SECRET_BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

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
    #[error(
        "the signing secret is not base64 (a Standard Webhooks secret is whsec_ followed by base64, as the official libraries read it)"
    )]
    NotBase64,
    #[error("the signing secret is empty")]
    Empty,
}

impl SigningKey {
    /// The key a Secret value stands for: `whsec_<base64>`, or `<base64>` (the prefix is
    /// optional, as in the official libraries); anything else is refused, never used as raw
    /// bytes a receiver's library would read differently.
    pub fn from_secret(secret: &[u8]) -> Result<Self, InvalidSigningKey> {
        let trimmed = secret.trim_ascii();
        let encoded = trimmed.strip_prefix(b"whsec_").unwrap_or(trimmed);
        if encoded.is_empty() {
            return Err(InvalidSigningKey::Empty);
        }
        let key = SECRET_BASE64
            .decode(encoded)
            .map_err(|_| InvalidSigningKey::NotBase64)?;
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
    fn secrets_read_as_the_official_libraries_read_them() {
        let prefixed = SigningKey::from_secret(b"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        type Case<'a> = (&'a [u8], Result<&'a [u8], InvalidSigningKey>);
        let cases: [Case; 9] = [
            // Without the prefix the value is base64 all the same.
            (b"MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n", Ok(&prefixed.0)),
            (b"c2VjcmV0", Ok(b"secret")),
            (b"whsec_c2VjcmV0", Ok(b"secret")),
            // Padding is optional.
            (b"whsec_a2U", Ok(b"ke")),
            (b"whsec_a2U=", Ok(b"ke")),
            // Raw bytes are refused, never used as a key a receiver would read differently.
            (b"plain secret", Err(InvalidSigningKey::NotBase64)),
            (b"whsec_not base64!", Err(InvalidSigningKey::NotBase64)),
            (b"  ", Err(InvalidSigningKey::Empty)),
            (b"whsec_", Err(InvalidSigningKey::Empty)),
        ];
        for (secret, expected) in cases {
            let got = SigningKey::from_secret(secret).map(|k| k.0);
            assert_eq!(
                got.as_deref().map_err(Clone::clone),
                expected,
                "{}",
                String::from_utf8_lossy(secret)
            );
        }
        assert_eq!(format!("{prefixed:?}"), "SigningKey(…)", "never printed");
    }
}

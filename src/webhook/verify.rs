//! Signatures of GHL's webhooks, checked on the raw bytes received: `X-GHL-Signature`
//! (Ed25519) when present — and then only it, as GHL's SDKs do — else the legacy
//! `x-wh-signature` (RSA-SHA256, PKCS#1 v1.5). Both are base64. Pure.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::pkcs8::DecodePublicKey;
use rsa::signature::Verifier as _;
use sha2::Sha256;

/// GHL's published keys (see `keys/SOURCE.md`).
const GHL_ED25519: &str = include_str!("keys/ghl-webhook-ed25519-public-key.pem");
const GHL_RSA: &str = include_str!("keys/ghl-webhook-rsa-sha256-public-key.pem");

/// The keys webhooks are verified with.
#[derive(Clone, Debug)]
pub struct PublicKeys {
    ed25519: Vec<ed25519_dalek::VerifyingKey>,
    rsa: Vec<rsa::pkcs1v15::VerifyingKey<Sha256>>,
}

/// A key file that is neither an Ed25519 nor an RSA public key (SPKI PEM).
#[derive(Debug, thiserror::Error)]
#[error("not an Ed25519 or RSA public key in PEM (SPKI) form: {0}")]
pub struct KeyError(String);

/// Why a webhook's signature is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Neither header.
    Missing,
    /// A header that is not base64 of a signature.
    Malformed,
    /// No key verifies it.
    Mismatch,
}

/// Which signature verified a webhook.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    Ed25519,
    Rsa,
}

impl PublicKeys {
    /// GHL's published keys.
    pub fn ghl() -> Self {
        Self::from_pems(&[GHL_ED25519, GHL_RSA]).unwrap_or(Self {
            ed25519: Vec::new(),
            rsa: Vec::new(),
        })
    }

    /// Keys from PEM texts, each an Ed25519 or RSA public key (SPKI).
    pub fn from_pems(pems: &[&str]) -> Result<Self, KeyError> {
        let mut keys = Self {
            ed25519: Vec::new(),
            rsa: Vec::new(),
        };
        for pem in pems {
            // Files written by `echo` or `jq -r` end in blank lines the PEM parser refuses.
            let pem = &format!("{}\n", pem.trim());
            if let Ok(key) = ed25519_dalek::VerifyingKey::from_public_key_pem(pem) {
                keys.ed25519.push(key);
            } else if let Ok(key) = rsa::PublicKey::from_public_key_pem(pem) {
                keys.rsa
                    .push(rsa::pkcs1v15::VerifyingKey::<Sha256>::new(key));
            } else {
                let start: String = pem.trim().chars().take(40).collect();
                return Err(KeyError(start));
            }
        }
        Ok(keys)
    }

    /// How many keys of each scheme.
    pub fn counts(&self) -> (usize, usize) {
        (self.ed25519.len(), self.rsa.len())
    }

    /// Verifies `body` by its `X-GHL-Signature` (Ed25519) header, or without one by its
    /// `x-wh-signature` (RSA) header. An empty or `N/A` header counts as absent.
    pub fn verify(
        &self,
        ed25519: Option<&str>,
        rsa: Option<&str>,
        body: &[u8],
    ) -> Result<Scheme, Refusal> {
        if let Some(signature) = present(ed25519) {
            let bytes = BASE64.decode(signature).map_err(|_| Refusal::Malformed)?;
            let signature =
                ed25519_dalek::Signature::from_slice(&bytes).map_err(|_| Refusal::Malformed)?;
            return self
                .ed25519
                .iter()
                .any(|key| key.verify_strict(body, &signature).is_ok())
                .then_some(Scheme::Ed25519)
                .ok_or(Refusal::Mismatch);
        }
        if let Some(signature) = present(rsa) {
            let bytes = BASE64.decode(signature).map_err(|_| Refusal::Malformed)?;
            let signature = rsa::pkcs1v15::Signature::try_from(bytes.as_slice())
                .map_err(|_| Refusal::Malformed)?;
            return self
                .rsa
                .iter()
                .any(|key| key.verify(body, &signature).is_ok())
                .then_some(Scheme::Rsa)
                .ok_or(Refusal::Mismatch);
        }
        Err(Refusal::Missing)
    }
}

/// A signature header's value, unless it is empty or `N/A`.
/// Whether a request carries a signature at all (either header, non-empty): one that does
/// not is refused before its body is read.
pub fn signed(ed25519: Option<&str>, rsa: Option<&str>) -> bool {
    present(ed25519).is_some() || present(rsa).is_some()
}

fn present(header: Option<&str>) -> Option<&str> {
    header
        .map(str::trim)
        .filter(|v| !v.is_empty() && *v != "N/A")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::webhooks::Keys;

    fn sandbox_keys() -> PublicKeys {
        let keys = Keys::get();
        PublicKeys::from_pems(&[&keys.ed25519_public_pem, &keys.rsa_public_pem]).unwrap()
    }

    #[test]
    fn ghl_keys_are_built_in() {
        assert_eq!(PublicKeys::ghl().counts(), (1, 1));
    }

    #[test]
    fn each_header_alone_and_every_way_to_fail() {
        let keys = sandbox_keys();
        let body = br#"{"type":"ContactUpdate","id":"c1"}"#;
        let (ed, rsa) = Keys::get().sign(body);
        let (other_ed, other_rsa) = Keys::get().sign(b"another body");
        type Case<'a> = (
            &'a str,
            Option<&'a str>,
            Option<&'a str>,
            &'a [u8],
            Result<Scheme, Refusal>,
        );
        let cases: [Case; 10] = [
            (
                "both: Ed25519 wins",
                Some(&ed),
                Some(&rsa),
                body,
                Ok(Scheme::Ed25519),
            ),
            ("Ed25519 alone", Some(&ed), None, body, Ok(Scheme::Ed25519)),
            ("RSA alone", None, Some(&rsa), body, Ok(Scheme::Rsa)),
            (
                "N/A falls back to RSA",
                Some("N/A"),
                Some(&rsa),
                body,
                Ok(Scheme::Rsa),
            ),
            ("none", None, None, body, Err(Refusal::Missing)),
            (
                "tampered body",
                Some(&ed),
                Some(&rsa),
                b"{}",
                Err(Refusal::Mismatch),
            ),
            (
                "a bad Ed25519 signature never falls back to a good RSA one",
                Some(&other_ed),
                Some(&rsa),
                body,
                Err(Refusal::Mismatch),
            ),
            (
                "RSA of another body",
                None,
                Some(&other_rsa),
                body,
                Err(Refusal::Mismatch),
            ),
            (
                "not base64",
                Some("%%%"),
                None,
                body,
                Err(Refusal::Malformed),
            ),
            (
                "too short",
                None,
                Some("AAAA"),
                body,
                Err(Refusal::Mismatch),
            ),
        ];
        for (name, ed, rsa, body, expected) in cases {
            assert_eq!(keys.verify(ed, rsa, body), expected, "{name}");
        }
        // GHL's own keys do not verify the sandbox's signatures.
        assert_eq!(
            PublicKeys::ghl().verify(Some(&ed), None, body),
            Err(Refusal::Mismatch)
        );
    }

    #[test]
    fn key_files_with_blank_lines_around_them_are_read() {
        let keys = crate::sandbox::webhooks::Keys::get();
        for (ed, rsa) in [
            (
                format!("{}\n\n", keys.ed25519_public_pem.trim()),
                format!("{}\n\n\n", keys.rsa_public_pem.trim()),
            ),
            (
                format!("\n  {}", keys.ed25519_public_pem.trim()),
                keys.rsa_public_pem.trim().to_owned(),
            ),
        ] {
            let read = PublicKeys::from_pems(&[&ed, &rsa]).expect("keys read");
            assert_eq!(read.counts(), (1, 1));
        }
    }

    #[test]
    fn key_files_must_be_public_keys() {
        assert!(PublicKeys::from_pems(&["-----BEGIN CERTIFICATE-----\nMII=\n"]).is_err());
        assert!(PublicKeys::from_pems(&["not a key"]).is_err());
    }
}

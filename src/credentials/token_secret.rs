//! The operator-managed OAuth token Secret: what it holds and how it is read and written.
//!
//! Keys: `access_token`, `refresh_token`, `expires_at`, `scope`, `user_type`, `revision`,
//! `refreshed_at`, `code_digest` (which authorization code produced the grant), and, for
//! agency grants, `location_access_token` / `location_expires_at`. `previous_access_token`
//! keeps the last access token (still valid until it expires) until the new one has worked.
//!
//! The **claim** annotation marks a refresh (or code exchange) in flight: it is written with
//! compare-and-swap on the Secret's resourceVersion *before* the single-use token is spent,
//! so only one process ever spends a given token, and a crash mid-refresh leaves evidence
//! instead of a second spend.

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use secrecy::{ExposeSecret, SecretString};

use crate::crd::vocabulary::annotation;
use crate::engine::ledger::key_digest;

/// Annotation: a refresh or code exchange in flight (`<what> <token digest> <holder> <time>`).
pub const CLAIM: &str = annotation::REFRESH_CLAIM;

/// A token grant as stored.
#[derive(Clone, Debug)]
pub struct StoredGrant {
    pub access_token: SecretString,
    pub refresh_token: Option<SecretString>,
    pub expires_at: Timestamp,
    pub scope: Option<String>,
    pub user_type: Option<String>,
    pub revision: u64,
    pub refreshed_at: Timestamp,
    pub code_digest: Option<String>,
    pub previous_access_token: Option<SecretString>,
    pub location_access_token: Option<SecretString>,
    pub location_expires_at: Option<Timestamp>,
}

/// What a claim says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claim {
    /// `refresh` or `exchange`.
    pub what: String,
    /// Digest of the token or code being spent.
    pub digest: String,
    pub holder: String,
    pub at: String,
}

impl Claim {
    pub fn render(&self) -> String {
        format!("{} {} {} {}", self.what, self.digest, self.holder, self.at)
    }

    pub fn parse(text: &str) -> Option<Self> {
        let mut parts = text.split_whitespace();
        Some(Self {
            what: parts.next()?.to_owned(),
            digest: parts.next()?.to_owned(),
            holder: parts.next()?.to_owned(),
            at: parts.next().unwrap_or_default().to_owned(),
        })
    }
}

/// Whether the token Secret is the operator's (it created it, or a user handed it over by
/// labelling it): only such a Secret is ever written.
pub fn is_ours(secret: &Secret) -> bool {
    secret
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(crate::crd::vocabulary::label::MANAGED_BY))
        .is_some_and(|v| v == crate::crd::vocabulary::label::MANAGED_BY_VALUE)
}

/// Which connection (by name, in the Secret's namespace) a token Secret holds the tokens of;
/// `None` for Secrets written before the operator recorded it.
pub fn holder(secret: &Secret) -> Option<&str> {
    secret
        .metadata
        .annotations
        .as_ref()?
        .get(annotation::TOKEN_OF)
        .map(String::as_str)
}

/// Whose token Secret it is, for a connection about to use it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Holding {
    /// This connection's (or none yet: it may be created).
    Own,
    /// The operator's, not yet marked with its holder, and this connection is the eldest of
    /// those naming it: it marks it as its own first.
    Unmarked,
    /// Not written by the operator.
    NotOperators,
    /// Another connection's: marked with its name, or unmarked and named by an older one.
    Another,
}

/// Whose token Secret `secret` is for the connection `connection` (a name: a connection
/// deleted and applied again keeps its tokens); `eldest`: no older connection of the namespace
/// names the same Secret. Pure.
pub fn holding(secret: Option<&Secret>, connection: &str, eldest: bool) -> Holding {
    let Some(secret) = secret else {
        return Holding::Own;
    };
    if !is_ours(secret) {
        return Holding::NotOperators;
    }
    match holder(secret) {
        Some(holder) if holder == connection => Holding::Own,
        Some(_) => Holding::Another,
        None if eldest => Holding::Unmarked,
        None => Holding::Another,
    }
}

/// `secret` marked as holding the tokens of `connection`.
pub fn marked(mut secret: Secret, connection: &str) -> Secret {
    secret
        .metadata
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(annotation::TOKEN_OF.to_owned(), connection.to_owned());
    secret
}

/// A short, non-reversible fingerprint of a secret value (safe for annotations and status).
pub fn fingerprint(secret: &SecretString) -> String {
    key_digest(secret.expose_secret())[..12].to_owned()
}

fn text(data: &BTreeMap<String, ByteString>, key: &str) -> Option<String> {
    data.get(key)
        .map(|b| String::from_utf8_lossy(&b.0).trim().to_owned())
        .filter(|s| !s.is_empty())
}

fn time(data: &BTreeMap<String, ByteString>, key: &str) -> Option<Timestamp> {
    text(data, key)?.parse().ok()
}

/// Reads a stored grant; `None` when the Secret holds no access token (not bootstrapped).
pub fn read(secret: &Secret) -> Option<StoredGrant> {
    let data = secret.data.as_ref()?;
    let access_token = SecretString::from(text(data, "access_token")?);
    Some(StoredGrant {
        access_token,
        refresh_token: text(data, "refresh_token").map(SecretString::from),
        expires_at: time(data, "expires_at").unwrap_or(Timestamp::UNIX_EPOCH),
        scope: text(data, "scope"),
        user_type: text(data, "user_type"),
        revision: text(data, "revision")
            .and_then(|r| r.parse().ok())
            .unwrap_or(0),
        refreshed_at: time(data, "refreshed_at").unwrap_or(Timestamp::UNIX_EPOCH),
        code_digest: text(data, "code_digest"),
        previous_access_token: text(data, "previous_access_token").map(SecretString::from),
        location_access_token: text(data, "location_access_token").map(SecretString::from),
        location_expires_at: time(data, "location_expires_at"),
    })
}

/// The claim on a token Secret, if any.
pub fn claim_of(secret: &Secret) -> Option<Claim> {
    secret
        .metadata
        .annotations
        .as_ref()?
        .get(CLAIM)
        .and_then(|c| Claim::parse(c))
}

/// The Secret's data for `grant`.
pub fn data_of(grant: &StoredGrant) -> BTreeMap<String, ByteString> {
    let mut data = BTreeMap::new();
    let mut put = |key: &str, value: String| {
        data.insert(key.to_owned(), ByteString(value.into_bytes()));
    };
    put(
        "access_token",
        grant.access_token.expose_secret().to_owned(),
    );
    if let Some(refresh) = &grant.refresh_token {
        put("refresh_token", refresh.expose_secret().to_owned());
    }
    put("expires_at", grant.expires_at.to_string());
    if let Some(scope) = &grant.scope {
        put("scope", scope.clone());
    }
    if let Some(user_type) = &grant.user_type {
        put("user_type", user_type.clone());
    }
    put("revision", grant.revision.to_string());
    put("refreshed_at", grant.refreshed_at.to_string());
    if let Some(digest) = &grant.code_digest {
        put("code_digest", digest.clone());
    }
    if let Some(previous) = &grant.previous_access_token {
        put("previous_access_token", previous.expose_secret().to_owned());
    }
    if let Some(location) = &grant.location_access_token {
        put("location_access_token", location.expose_secret().to_owned());
    }
    if let Some(at) = grant.location_expires_at {
        put("location_expires_at", at.to_string());
    }
    data
}

/// `secret` rewritten to hold `grant`, without a claim, with the revision annotation.
pub fn with_grant(mut secret: Secret, grant: &StoredGrant) -> Secret {
    secret.data = Some(data_of(grant));
    secret.string_data = None;
    let annotations = secret
        .metadata
        .annotations
        .get_or_insert_with(BTreeMap::new);
    annotations.remove(CLAIM);
    annotations.insert(
        annotation::TOKEN_REVISION.to_owned(),
        grant.revision.to_string(),
    );
    secret
}

/// `secret` with `claim` set (data untouched).
pub fn with_claim(mut secret: Secret, claim: &Claim) -> Secret {
    secret
        .metadata
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(CLAIM.to_owned(), claim.render());
    secret
}

/// `secret` without a claim.
pub fn without_claim(mut secret: Secret) -> Secret {
    if let Some(annotations) = secret.metadata.annotations.as_mut() {
        annotations.remove(CLAIM);
    }
    secret
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    #[test]
    fn a_token_secret_serves_one_connection() {
        let secret = |operators: bool, holder: Option<&str>| Secret {
            metadata: ObjectMeta {
                labels: operators.then(|| {
                    BTreeMap::from([(
                        crate::crd::vocabulary::label::MANAGED_BY.to_owned(),
                        crate::crd::vocabulary::label::MANAGED_BY_VALUE.to_owned(),
                    )])
                }),
                annotations: holder
                    .map(|h| BTreeMap::from([(annotation::TOKEN_OF.to_owned(), h.to_owned())])),
                ..ObjectMeta::default()
            },
            ..Secret::default()
        };
        let table = [
            ("none yet", None, true, Holding::Own),
            ("none yet, younger", None, false, Holding::Own),
            (
                "marked as mine",
                Some(secret(true, Some("a"))),
                false,
                Holding::Own,
            ),
            (
                "marked as theirs",
                Some(secret(true, Some("b"))),
                true,
                Holding::Another,
            ),
            (
                "unmarked, eldest",
                Some(secret(true, None)),
                true,
                Holding::Unmarked,
            ),
            (
                "unmarked, younger",
                Some(secret(true, None)),
                false,
                Holding::Another,
            ),
            (
                "a user's Secret",
                Some(secret(false, None)),
                true,
                Holding::NotOperators,
            ),
            (
                "a user's, marked",
                Some(secret(false, Some("a"))),
                true,
                Holding::NotOperators,
            ),
        ];
        for (case, secret, eldest, expected) in table {
            assert_eq!(holding(secret.as_ref(), "a", eldest), expected, "{case}");
        }
        assert_eq!(holder(&marked(secret(true, None), "a")), Some("a"));
    }

    use super::*;

    fn grant() -> StoredGrant {
        StoredGrant {
            access_token: "at-1".to_owned().into(),
            refresh_token: Some("rt-1".to_owned().into()),
            expires_at: "2030-01-01T00:00:00Z".parse().unwrap(),
            scope: Some("contacts.readonly contacts.write".into()),
            user_type: Some("Location".into()),
            revision: 7,
            refreshed_at: "2029-12-31T00:00:00Z".parse().unwrap(),
            code_digest: Some("abc".into()),
            previous_access_token: None,
            location_access_token: None,
            location_expires_at: None,
        }
    }

    #[test]
    fn a_grant_round_trips_through_a_secret_and_drops_the_claim() {
        let claim = Claim {
            what: "refresh".into(),
            digest: "d".into(),
            holder: "op-0".into(),
            at: "2030-01-01T00:00:00Z".into(),
        };
        let secret = with_claim(Secret::default(), &claim);
        assert_eq!(claim_of(&secret), Some(claim));
        let secret = with_grant(secret, &grant());
        assert!(claim_of(&secret).is_none());
        let back = read(&secret).unwrap();
        assert_eq!(back.access_token.expose_secret(), "at-1");
        assert_eq!(back.refresh_token.unwrap().expose_secret(), "rt-1");
        assert_eq!(back.revision, 7);
        assert_eq!(back.expires_at, grant().expires_at);
        assert_eq!(
            secret.metadata.annotations.unwrap()[annotation::TOKEN_REVISION],
            "7"
        );
    }

    #[test]
    fn an_empty_secret_is_not_bootstrapped() {
        assert!(read(&Secret::default()).is_none());
    }

    #[test]
    fn fingerprints_are_short_and_not_the_value() {
        let fp = fingerprint(&"pit-sandbox-token".to_owned().into());
        assert_eq!(fp.len(), 12);
        assert!(!fp.contains("sandbox"));
    }
}

//! Who is asking: a person's Kubernetes bearer token (from an auth proxy's `Authorization`
//! header, or pasted once on the login page and kept server-side behind an HttpOnly,
//! SameSite=Strict session cookie), or — for the local console — whoever opened its one-time
//! login URL, acting with the kubeconfig's identity. Sessions expire (idle and absolute), and
//! CSRF tokens are bound to the identity. A token never reaches a log and never leaves the
//! process except toward the API server.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{Hmac, KeyInit, Mac};
use rand::RngExt;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

/// The session cookie (HttpOnly, SameSite=Strict, Path=/).
pub const SESSION_COOKIE: &str = "ghl_console";
/// The login form's double-submit cookie (before a session exists).
pub const LOGIN_COOKIE: &str = "ghl_console_login";
/// A session unused this long ends.
pub const IDLE: Duration = Duration::from_secs(30 * 60);
/// A session ends this long after login, used or not.
pub const ABSOLUTE: Duration = Duration::from_secs(8 * 3600);
/// Sessions kept at most (the oldest go first).
const MAX_SESSIONS: usize = 10_000;
/// Longest token accepted (service account tokens are ~1 KiB; OIDC ones a few).
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// How a request acts toward the API server.
#[derive(Clone)]
pub enum Identity {
    /// With this person's bearer token.
    Token(SecretString),
    /// With the kubeconfig's identity (the local console, after its login URL).
    Local,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Token(_) => f.write_str("Identity::Token(…)"),
            Self::Local => f.write_str("Identity::Local"),
        }
    }
}

impl Identity {
    /// What CSRF tokens are bound to: a digest of the token (or the session), never the
    /// token itself.
    fn binding(&self, session: Option<&str>) -> String {
        match (self, session) {
            (_, Some(session)) => format!("session:{session}"),
            (Self::Token(token), None) => {
                let digest = Sha256::digest(token.expose_secret().as_bytes());
                format!("token:{}", B64.encode(digest))
            }
            (Self::Local, None) => "local".to_owned(),
        }
    }
}

/// A token as a header or a login form gives it: trimmed, `Bearer ` accepted, bounded, and
/// only the characters a token has (a token is never echoed, so the check is all it gets).
pub fn parse_token(raw: &str) -> Option<SecretString> {
    let raw = raw.trim();
    let token = raw
        .strip_prefix("Bearer ")
        .or_else(|| raw.strip_prefix("bearer "))
        .unwrap_or(raw)
        .trim();
    let valid = !token.is_empty()
        && !token.eq_ignore_ascii_case("bearer")
        && token.len() <= MAX_TOKEN_BYTES
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~+/=:".contains(&b));
    valid.then(|| SecretString::from(token.to_owned()))
}

struct Session {
    identity: Identity,
    started: Instant,
    seen: Instant,
}

/// The console's sessions and its CSRF key (both in memory: a restart asks people to log in
/// again).
pub struct Sessions {
    sessions: Mutex<HashMap<String, Session>>,
    key: [u8; 32],
}

impl Default for Sessions {
    fn default() -> Self {
        Self {
            sessions: Mutex::new(HashMap::new()),
            key: rand::rng().random(),
        }
    }
}

/// A random value for an id or a one-time secret.
pub fn random_id() -> String {
    let bytes: [u8; 32] = rand::rng().random();
    B64.encode(bytes)
}

/// Whether a session started at `started` and last used at `seen` is still alive at `now`.
/// Pure.
pub fn alive(started: Instant, seen: Instant, now: Instant) -> bool {
    now.saturating_duration_since(seen) < IDLE && now.saturating_duration_since(started) < ABSOLUTE
}

impl Sessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts a session for `identity`; its id goes in the cookie.
    pub fn start(&self, identity: Identity, now: Instant) -> String {
        let id = random_id();
        let mut sessions = self.lock();
        sessions.retain(|_, s| alive(s.started, s.seen, now));
        if sessions.len() >= MAX_SESSIONS
            && let Some(oldest) = sessions
                .iter()
                .min_by_key(|(_, s)| s.started)
                .map(|(id, _)| id.clone())
        {
            sessions.remove(&oldest);
        }
        sessions.insert(
            id.clone(),
            Session {
                identity,
                started: now,
                seen: now,
            },
        );
        id
    }

    /// The identity of a live session (and it counts as used).
    pub fn get(&self, id: &str, now: Instant) -> Option<Identity> {
        let mut sessions = self.lock();
        let session = sessions.get_mut(id)?;
        if !alive(session.started, session.seen, now) {
            sessions.remove(id);
            return None;
        }
        session.seen = now;
        Some(session.identity.clone())
    }

    pub fn end(&self, id: &str) {
        self.lock().remove(id);
    }

    /// The CSRF token of forms shown to `identity` (in `session`, when it has one).
    pub fn csrf(&self, identity: &Identity, session: Option<&str>) -> String {
        let mut mac =
            <Hmac<Sha256> as KeyInit>::new_from_slice(&self.key).expect("HMAC takes any key");
        mac.update(b"csrf\0");
        mac.update(identity.binding(session).as_bytes());
        B64.encode(mac.finalize().into_bytes())
    }

    /// Whether `given` is the CSRF token of `identity` (constant time).
    pub fn csrf_ok(&self, identity: &Identity, session: Option<&str>, given: &str) -> bool {
        let expected = self.csrf(identity, session);
        expected.len() == given.len()
            && expected
                .bytes()
                .zip(given.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_parsed_strictly() {
        let cases = [
            ("abc.def-ghi_jkl", Some("abc.def-ghi_jkl")),
            ("Bearer eyJhbGciOi.x.y", Some("eyJhbGciOi.x.y")),
            ("  token\n", Some("token")),
            ("", None),
            ("Bearer ", None),
            ("two words", None),
            ("<script>", None),
        ];
        for (raw, expected) in cases {
            let got = parse_token(raw);
            assert_eq!(
                got.as_ref()
                    .map(|t| t.expose_secret().to_owned())
                    .as_deref(),
                expected,
                "{raw:?}"
            );
        }
        assert!(parse_token(&"a".repeat(MAX_TOKEN_BYTES + 1)).is_none());
    }

    #[test]
    fn sessions_expire_when_idle_or_old() {
        let t0 = Instant::now();
        let cases = [
            (Duration::ZERO, Duration::ZERO, true),
            (Duration::from_secs(60), Duration::from_secs(29 * 60), true),
            (IDLE, Duration::ZERO, false),
            (
                ABSOLUTE - Duration::from_secs(1),
                ABSOLUTE - Duration::from_secs(10),
                true,
            ),
            (ABSOLUTE, ABSOLUTE - Duration::from_secs(10), false),
        ];
        for (now, seen, expected) in cases {
            assert_eq!(alive(t0, t0 + seen, t0 + now), expected, "{now:?} {seen:?}");
        }
        let sessions = Sessions::default();
        let id = sessions.start(Identity::Local, t0);
        assert!(sessions.get(&id, t0 + Duration::from_secs(60)).is_some());
        assert!(
            sessions
                .get(&id, t0 + Duration::from_secs(60) + IDLE)
                .is_none()
        );
        assert!(sessions.get(&id, t0).is_none(), "gone once expired");
        assert!(sessions.get("forged", t0).is_none());
    }

    #[test]
    fn csrf_tokens_are_bound_to_the_identity() {
        let sessions = Sessions::default();
        let alice = Identity::Token(SecretString::from("alice-token".to_owned()));
        let bob = Identity::Token(SecretString::from("bob-token".to_owned()));
        let token = sessions.csrf(&alice, None);
        assert!(sessions.csrf_ok(&alice, None, &token));
        assert!(!sessions.csrf_ok(&bob, None, &token));
        assert!(!sessions.csrf_ok(&alice, Some("s1"), &token));
        assert!(!sessions.csrf_ok(&alice, None, ""));
        assert!(!token.contains("alice"), "the token is not in it");
        // Another process (another key) does not accept it.
        assert!(!Sessions::default().csrf_ok(&alice, None, &token));
    }
}

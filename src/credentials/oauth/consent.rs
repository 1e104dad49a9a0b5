//! Consent through the operator: the URL a person opens to grant the connection access, the
//! `state` that ties GHL's redirect back to one connection, and where the code it brings is
//! kept until the connection exchanges it. Pure.
//!
//! `state` is `<namespace>.<name>.<expiry>.<nonce>.<seal>` (each part URL-safe): opaque to
//! GHL, readable by the callback, sealed with the operator's key over the connection's uid, so
//! it is good for that connection only (not a re-created one of the same name), for one hour,
//! and — since the code it brings is recorded with it — once.

use jiff::Timestamp;
use url::Url;

use crate::credentials::keys::OperatorKeys;

/// How long a consent URL is good for.
pub const STATE_TTL: std::time::Duration = std::time::Duration::from_secs(3600);
/// A URL with less than this left is reissued.
pub const REISSUE_BEFORE: std::time::Duration = std::time::Duration::from_secs(600);
/// Where the operator takes GHL's redirect, on its public (webhook) listener.
pub const CALLBACK_PATH: &str = "/oauth/callback";

/// The connection a state names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Named {
    pub namespace: String,
    pub name: String,
    pub expires_at: Timestamp,
    nonce: String,
    seal: String,
}

/// Why a state is not accepted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StateRefused {
    #[error("the consent link is malformed or was changed")]
    Malformed,
    #[error(
        "the consent link is not for this connection (changed, or the connection was re-created)"
    )]
    Forged,
    #[error("the consent link expired; open the current one from the connection's status")]
    Expired,
}

fn seal_parts<'a>(uid: &'a str, named: &'a Named, expiry: &'a str) -> [&'a str; 6] {
    [
        "consent",
        uid,
        &named.namespace,
        &named.name,
        expiry,
        &named.nonce,
    ]
}

/// A new state for the connection `namespace/name` of uid `uid`, good until `now` + [`STATE_TTL`].
pub fn issue(
    keys: &OperatorKeys,
    (namespace, name, uid): (&str, &str, &str),
    nonce: &str,
    now: Timestamp,
) -> (String, Timestamp) {
    let expires_at = now.checked_add(STATE_TTL).unwrap_or(now);
    let expiry = expires_at.as_second().to_string();
    let mut named = Named {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        expires_at,
        nonce: nonce.to_owned(),
        seal: String::new(),
    };
    named.seal = keys.seal(&seal_parts(uid, &named, &expiry));
    let state = format!(
        "{}.{}.{expiry}.{}.{}",
        named.namespace, named.name, named.nonce, named.seal
    );
    (state, expires_at)
}

/// The connection `state` names (not yet checked: see [`verify`]).
pub fn parse(state: &str) -> Result<Named, StateRefused> {
    // Namespaces are DNS labels (no dots); names may hold dots: split from both ends.
    let (namespace, rest) = state.split_once('.').ok_or(StateRefused::Malformed)?;
    let mut tail = rest.rsplitn(4, '.');
    let (seal, nonce, expiry, name) = (
        tail.next().ok_or(StateRefused::Malformed)?,
        tail.next().ok_or(StateRefused::Malformed)?,
        tail.next().ok_or(StateRefused::Malformed)?,
        tail.next().ok_or(StateRefused::Malformed)?,
    );
    let expires_at = expiry
        .parse::<i64>()
        .ok()
        .and_then(|s| Timestamp::from_second(s).ok())
        .ok_or(StateRefused::Malformed)?;
    if namespace.is_empty() || name.is_empty() || nonce.is_empty() || seal.is_empty() {
        return Err(StateRefused::Malformed);
    }
    Ok(Named {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        expires_at,
        nonce: nonce.to_owned(),
        seal: seal.to_owned(),
    })
}

/// Checks `named` against the connection's current uid and the time.
pub fn verify(
    keys: &OperatorKeys,
    named: &Named,
    uid: &str,
    now: Timestamp,
) -> Result<(), StateRefused> {
    let expiry = named.expires_at.as_second().to_string();
    if !keys.verify_seal(&seal_parts(uid, named, &expiry), &named.seal) {
        return Err(StateRefused::Forged);
    }
    if named.expires_at <= now {
        return Err(StateRefused::Expired);
    }
    Ok(())
}

/// What the consent URL asks for.
pub struct Request<'a> {
    pub authorization_url: &'a str,
    pub client_id: &'a str,
    pub redirect_uri: &'a str,
    pub scopes: &'a [String],
    pub state: &'a str,
    /// An agency (Company) grant.
    pub company: bool,
}

/// The URL a person opens to consent.
pub fn url(request: &Request<'_>) -> Result<String, url::ParseError> {
    let mut url = Url::parse(request.authorization_url)?;
    {
        let mut query = url.query_pairs_mut();
        query
            .append_pair("response_type", "code")
            .append_pair("redirect_uri", request.redirect_uri)
            .append_pair("client_id", request.client_id)
            .append_pair("scope", &request.scopes.join(" "))
            .append_pair("state", request.state);
        if request.company {
            query.append_pair("user_type", "Company");
        }
    }
    Ok(url.to_string())
}

/// Whether a published consent URL expiring at `expires_at` should be reissued now.
pub fn due(expires_at: Option<Timestamp>, now: Timestamp) -> bool {
    let margin = jiff::SignedDuration::from_secs(REISSUE_BEFORE.as_secs().try_into().unwrap_or(0));
    expires_at.is_none_or(|at| at.duration_since(now) < margin)
}

/// Why a `redirectUri` cannot bring GHL back to the operator, if it cannot.
pub fn redirect_problem(redirect_uri: Option<&str>) -> Option<String> {
    let Some(text) = redirect_uri else {
        return Some(format!(
            "set spec.auth.oauth.redirectUri to https://<the operator's public host>{CALLBACK_PATH} (and register it with the app)"
        ));
    };
    match Url::parse(text) {
        Ok(url) if matches!(url.scheme(), "https" | "http") && url.path() == CALLBACK_PATH => None,
        // Quoted without userinfo, query or fragment: whatever secret it carries stays out
        // of status.
        Ok(url) => Some(format!(
            "redirectUri {}://{}{} is not the operator's callback: its path must be {CALLBACK_PATH} (and its scheme https, or http)",
            url.scheme(),
            url.host_str().unwrap_or_default(),
            url.path()
        )),
        Err(_) => Some("redirectUri is not a URL".to_owned()),
    }
}

/// Whether a consent can come back to the operator: `redirectUri` is its callback, and it
/// serves one (`served`: it listens on `--webhook-addr`). `Err` says what to change. Pure.
pub fn redirect_served(redirect_uri: Option<&str>, served: bool) -> Result<(), String> {
    if let Some(problem) = redirect_problem(redirect_uri) {
        return Err(problem);
    }
    if !served {
        return Err(format!(
            "the operator serves no {CALLBACK_PATH}: run it with --webhook-addr (chart: webhooks.enabled=true) and route the redirect URI's host to that port"
        ));
    }
    Ok(())
}

/// The consent Secret's key holding the code.
pub const CODE_KEY: &str = "code";
/// The consent Secret's key holding a digest of the state that brought the code (a state is
/// good once).
pub const STATE_KEY: &str = "state";

/// The Secret a consent's code is kept in until the connection exchanges it.
pub fn code_secret_name(name: &str, uid: &str) -> String {
    let name = &name[..name.len().min(180)];
    let uid = crate::engine::ledger::key_digest(uid);
    format!(
        "ghl-consent-{}-{}",
        name.trim_end_matches(['-', '.']),
        &uid[..10]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_consent_comes_back_only_to_a_callback_the_operator_serves() {
        let table = [
            (Some("https://ops.example.com/oauth/callback"), true, None),
            (Some("http://127.0.0.1:8443/oauth/callback"), true, None),
            (
                Some("https://ops.example.com/oauth/callback"),
                false,
                Some("--webhook-addr"),
            ),
            (
                Some("https://ops.example.com/callback"),
                true,
                Some("its path must be /oauth/callback"),
            ),
            (
                Some("ftp://ops.example.com/oauth/callback"),
                true,
                Some("its path must be"),
            ),
            (Some("not a url"), true, Some("is not a URL")),
            (None, true, Some("set spec.auth.oauth.redirectUri")),
        ];
        for (uri, served, expected) in table {
            match (redirect_served(uri, served), expected) {
                (Ok(()), None) => {}
                (Err(why), Some(part)) => assert!(why.contains(part), "{uri:?}: {why}"),
                (got, want) => panic!("{uri:?} served={served}: got {got:?}, wanted {want:?}"),
            }
        }
    }

    #[test]
    fn a_state_names_its_connection_and_is_good_for_it_alone_and_an_hour() {
        let keys = OperatorKeys::ephemeral();
        let now: Timestamp = "2030-01-01T00:00:00Z".parse().unwrap();
        let (state, expires) = issue(&keys, ("crm", "acme.eu", "uid-1"), "n0nce", now);
        assert_eq!(expires, now.checked_add(STATE_TTL).unwrap());
        let named = parse(&state).unwrap();
        assert_eq!(
            (named.namespace.as_str(), named.name.as_str()),
            ("crm", "acme.eu")
        );
        assert_eq!(verify(&keys, &named, "uid-1", now), Ok(()));
        // A re-created connection (new uid), another key, a later time, a changed byte.
        assert_eq!(
            verify(&keys, &named, "uid-2", now),
            Err(StateRefused::Forged)
        );
        let other = OperatorKeys::ephemeral();
        assert_eq!(
            verify(&other, &named, "uid-1", now),
            Err(StateRefused::Forged)
        );
        assert_eq!(
            verify(&keys, &named, "uid-1", expires),
            Err(StateRefused::Expired)
        );
        let tampered = state.replacen("crm", "hr", 1);
        let named = parse(&tampered).unwrap();
        assert_eq!(
            verify(&keys, &named, "uid-1", now),
            Err(StateRefused::Forged)
        );
        for bad in ["", "crm", "crm.acme", "crm.acme.x.n.s", "..1.n.s"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_consent_url_carries_what_ghl_asks_for() {
        let scopes = vec!["contacts.readonly".to_owned(), "contacts.write".to_owned()];
        let url = url(&Request {
            authorization_url: "https://marketplace.gohighlevel.com/oauth/chooselocation",
            client_id: "app-1",
            redirect_uri: "https://ops.example.com/oauth/callback",
            scopes: &scopes,
            state: "crm.acme.1.n.s",
            company: false,
        })
        .unwrap();
        assert_eq!(
            url,
            "https://marketplace.gohighlevel.com/oauth/chooselocation?response_type=code&redirect_uri=https%3A%2F%2Fops.example.com%2Foauth%2Fcallback&client_id=app-1&scope=contacts.readonly+contacts.write&state=crm.acme.1.n.s"
        );
        let now: Timestamp = "2030-01-01T00:00:00Z".parse().unwrap();
        assert!(due(None, now));
        assert!(due(Some(now.checked_add(REISSUE_BEFORE / 2).unwrap()), now));
        assert!(!due(Some(now.checked_add(STATE_TTL).unwrap()), now));
        assert!(redirect_problem(Some("https://ops.example.com/oauth/callback")).is_none());
        for bad in [
            None,
            Some("https://ops.example.com/callback"),
            Some("not a url"),
        ] {
            assert!(redirect_problem(bad).is_some(), "{bad:?}");
        }
    }
}

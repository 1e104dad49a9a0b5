//! Where the operator may send what. Every URL in an object is a door out of the cluster: the
//! GHL token goes only to base URLs the installer allows (`--allowed-base-url`), contact data
//! only to sink URLs the installer allows (`--allowed-sink-url`). Pure.

use url::Url;

/// Allowed URLs: a URL is allowed when its scheme, host and port equal one of them and its
/// path is that one's path or below it, on segment boundaries.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AllowList {
    allowed: Vec<Url>,
}

/// Why a URL is refused (or, for the allowed ones themselves, cannot be one).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlRefused {
    #[error("{url:?} is not a URL: {reason}")]
    NotAUrl {
        url: String,
        reason: url::ParseError,
    },
    #[error("{url:?} is not an http(s) URL with a host")]
    NotHttp { url: String },
    #[error("URLs with credentials in them are not allowed")]
    Credentials,
    #[error("{origin} is not among the URLs the operator's installer allows")]
    NotAllowed { origin: String },
}

/// Whether `path` is `allowed` or below it, on segment boundaries (`/hooks` allows
/// `/hooks/ghl`, never `/hooks-admin`).
fn within(path: &str, allowed: &str) -> bool {
    let allowed = allowed.trim_end_matches('/');
    path == allowed
        || allowed.is_empty()
        || path
            .strip_prefix(allowed)
            .is_some_and(|rest| rest.starts_with('/'))
}

fn parse(url: &str) -> Result<Url, UrlRefused> {
    Url::parse(url).map_err(|reason| UrlRefused::NotAUrl {
        url: url.to_owned(),
        reason,
    })
}

impl AllowList {
    /// Parses the allowed URLs (flags); a bad one is an error naming it.
    pub fn parse<S: AsRef<str>>(urls: &[S]) -> Result<Self, UrlRefused> {
        let allowed = urls
            .iter()
            .map(|u| {
                let url = parse(u.as_ref())?;
                if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
                    return Err(UrlRefused::NotHttp {
                        url: u.as_ref().to_owned(),
                    });
                }
                Ok(url)
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { allowed })
    }

    /// GHL's API only (the default for base URLs).
    pub fn ghl() -> Self {
        Self::parse(&[crate::crd::connection::DEFAULT_BASE_URL]).unwrap_or_default()
    }

    pub fn is_empty(&self) -> bool {
        self.allowed.is_empty()
    }

    /// Whether `url` may be used; `Err` says why not.
    pub fn check(&self, url: &str) -> Result<(), UrlRefused> {
        let parsed = parse(url)?;
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(UrlRefused::Credentials);
        }
        let allowed = self.allowed.iter().any(|a| {
            a.scheme() == parsed.scheme()
                && a.host_str() == parsed.host_str()
                && a.port_or_known_default() == parsed.port_or_known_default()
                && within(parsed.path(), a.path())
        });
        if allowed {
            Ok(())
        } else {
            Err(UrlRefused::NotAllowed {
                origin: format!(
                    "{}://{}{}",
                    parsed.scheme(),
                    parsed.host_str().unwrap_or_default(),
                    parsed.port().map(|p| format!(":{p}")).unwrap_or_default()
                ),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scheme_host_port_and_path_prefix_must_match() {
        let list = AllowList::parse(&[
            "https://services.leadconnectorhq.com",
            "http://servis-ai.crm.svc:8080/hooks/",
        ])
        .unwrap();
        let cases = [
            ("https://services.leadconnectorhq.com", true),
            ("https://services.leadconnectorhq.com:443/contacts", true),
            ("http://services.leadconnectorhq.com", false),
            ("https://services.leadconnectorhq.com:8443", false),
            ("https://services.leadconnectorhq.com.evil.example", false),
            ("https://evil.example/?services.leadconnectorhq.com", false),
            ("https://user:pw@services.leadconnectorhq.com", false),
            ("http://servis-ai.crm.svc:8080/hooks/ghl", true),
            ("http://servis-ai.crm.svc:8080/hooks/", true),
            ("http://servis-ai.crm.svc:8080/hooks", true),
            ("http://servis-ai.crm.svc:8080/hooks-admin", false),
            ("http://servis-ai.crm.svc:8080/hooksx/ghl", false),
            ("http://servis-ai.crm.svc:8080/other", false),
            ("not a url", false),
        ];
        for (url, expected) in cases {
            assert_eq!(list.check(url).is_ok(), expected, "{url}");
        }
        let err = list.check("https://attacker.example:9/x").unwrap_err();
        assert_eq!(
            err,
            UrlRefused::NotAllowed {
                origin: "https://attacker.example:9".into()
            }
        );
        let err = err.to_string();
        assert!(
            err.contains("attacker.example:9") && !err.contains("/x"),
            "{err}"
        );
        assert!(
            AllowList::default()
                .check("https://anything.example")
                .is_err()
        );
    }

    #[test]
    fn by_default_only_ghl() {
        let ghl = AllowList::ghl();
        assert!(ghl.check("https://services.leadconnectorhq.com").is_ok());
        assert!(ghl.check("http://127.0.0.1:8088").is_err());
    }

    #[test]
    fn bad_allowed_urls_are_refused() {
        assert_eq!(
            AllowList::parse(&["ftp://x"]),
            Err(UrlRefused::NotHttp {
                url: "ftp://x".into()
            })
        );
        assert!(matches!(
            AllowList::parse(&["nonsense"]),
            Err(UrlRefused::NotAUrl { .. })
        ));
    }
}

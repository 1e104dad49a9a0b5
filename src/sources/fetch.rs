//! One conditional GET of a source document: only to URLs the installer allows
//! (`--allowed-source-url`), no redirects followed, the answer capped in size and time, and
//! errors that name the URL's origin and path — never its query, and never a byte of the
//! document.

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{
    ETAG, HeaderMap, HeaderName, HeaderValue, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED,
};
use url::Url;

use crate::egress::{AllowList, UrlRefused};

/// The largest document read (a 100,000-contact JSON export is ~20 MiB).
pub const MAX_BYTES: usize = 32 * 1024 * 1024;
/// The longest a fetch may take, connection to last byte.
pub const TIMEOUT: Duration = Duration::from_secs(15);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// What the last answer said about its version, for the next conditional request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Validators {
    pub etag: Option<String>,
    pub last_modified: Option<String>,
}

impl Validators {
    fn of(headers: &HeaderMap) -> Self {
        let text = |name| {
            headers
                .get(name)
                .and_then(|v: &HeaderValue| v.to_str().ok())
                .map(str::to_owned)
        };
        Self {
            etag: text(ETAG),
            last_modified: text(LAST_MODIFIED),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.etag.is_none() && self.last_modified.is_none()
    }
}

/// A fetch's outcome.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fetched {
    /// A document (new, or the server does not do conditional requests).
    Document {
        text: String,
        validators: Validators,
    },
    /// 304: what was read last time still holds.
    Unchanged,
}

/// Why a source could not be read. Names the URL's origin and path only.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    #[error("the source URL is refused: {0}")]
    Refused(UrlRefused),
    #[error("{0} answered HTTP {1}")]
    Status(String, u16),
    #[error("{0} redirected (redirects are not followed: name the final URL)")]
    Redirected(String),
    #[error("{0} answered 304 to a request that was not conditional")]
    UnexpectedNotModified(String),
    #[error("{0}: the document is larger than {MAX_BYTES} bytes")]
    TooLarge(String),
    #[error("{0}: the document is not UTF-8 text")]
    NotText(String),
    #[error("{0}: no answer within {TIMEOUT:?}")]
    TimedOut(String),
    #[error("{0}: {1}")]
    Transport(String, &'static str),
    /// A plan computed for a person (the console): the operator's network is not theirs.
    #[error("{0} is read by the operator only: a plan computed for a person does not fetch it")]
    NotFetchedHere(String),
    #[error(
        "headers Secret {0}: key {1:?} is not a valid HTTP header name, or its value is not a valid header value"
    )]
    BadHeader(String, String),
}

impl SourceError {
    /// The failure reason a policy reports.
    pub fn reason(&self) -> &'static str {
        match self {
            SourceError::Refused(_) => crate::crd::vocabulary::reason::SOURCE_NOT_ALLOWED,
            _ => "SourceUnavailable",
        }
    }
}

/// `scheme://host[:port]/path` of `url`: what messages name (a query may carry a token).
pub fn shown(url: &str) -> String {
    match Url::parse(url) {
        Ok(u) => format!(
            "{}://{}{}{}",
            u.scheme(),
            u.host_str().unwrap_or_default(),
            u.port().map(|p| format!(":{p}")).unwrap_or_default(),
            u.path()
        ),
        Err(_) => "the source URL".to_owned(),
    }
}

/// The headers a Secret's data makes (key = header name). Conditional-request and framing
/// headers are the fetcher's own and are not taken.
pub fn headers_from(
    secret: &str,
    data: impl IntoIterator<Item = (String, Vec<u8>)>,
) -> Result<HeaderMap, SourceError> {
    let mut headers = HeaderMap::new();
    for (key, value) in data {
        let bad = || SourceError::BadHeader(secret.to_owned(), key.clone());
        let name = HeaderName::from_bytes(key.trim().as_bytes()).map_err(|_| bad())?;
        let mut value = HeaderValue::from_bytes(value.trim_ascii()).map_err(|_| bad())?;
        value.set_sensitive(true);
        let reserved = [
            reqwest::header::HOST,
            IF_NONE_MATCH,
            IF_MODIFIED_SINCE,
            reqwest::header::CONTENT_LENGTH,
            reqwest::header::TRANSFER_ENCODING,
            reqwest::header::CONNECTION,
        ];
        if !reserved.contains(&name) {
            headers.insert(name, value);
        }
    }
    Ok(headers)
}

/// Fetches source documents for the allowed URLs.
#[derive(Clone)]
pub struct Fetcher {
    http: reqwest::Client,
    allowed: AllowList,
}

impl Fetcher {
    pub fn new(allowed: AllowList) -> Self {
        crate::tls::install_default_provider();
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(TIMEOUT)
            .user_agent(concat!("ghl-operator/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default();
        Self { http, allowed }
    }

    pub fn allowed(&self) -> &AllowList {
        &self.allowed
    }

    /// One GET of `url` with `headers`, conditional on `validators` when there are any.
    pub async fn fetch(
        &self,
        url: &str,
        headers: &HeaderMap,
        validators: &Validators,
    ) -> Result<Fetched, SourceError> {
        self.allowed.check(url).map_err(SourceError::Refused)?;
        let at = shown(url);
        let mut request = self.http.get(url).headers(headers.clone());
        if let Some(etag) = &validators.etag {
            request = request.header(IF_NONE_MATCH, etag);
        }
        if let Some(modified) = &validators.last_modified {
            request = request.header(IF_MODIFIED_SINCE, modified);
        }
        let transport = |e: reqwest::Error| {
            if e.is_timeout() {
                SourceError::TimedOut(at.clone())
            } else if e.is_connect() {
                SourceError::Transport(at.clone(), "cannot connect")
            } else {
                SourceError::Transport(at.clone(), "the request failed")
            }
        };
        let mut response = request.send().await.map_err(transport)?;
        let status = response.status();
        if status == StatusCode::NOT_MODIFIED {
            return if validators.is_empty() {
                Err(SourceError::UnexpectedNotModified(at))
            } else {
                Ok(Fetched::Unchanged)
            };
        }
        if status.is_redirection() {
            return Err(SourceError::Redirected(at));
        }
        if !status.is_success() {
            return Err(SourceError::Status(at, status.as_u16()));
        }
        if response
            .content_length()
            .is_some_and(|n| n > MAX_BYTES as u64)
        {
            return Err(SourceError::TooLarge(at));
        }
        let validators = Validators::of(response.headers());
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(transport)? {
            if body.len() + chunk.len() > MAX_BYTES {
                return Err(SourceError::TooLarge(at));
            }
            body.extend_from_slice(&chunk);
        }
        let text = String::from_utf8(body).map_err(|_| SourceError::NotText(at))?;
        Ok(Fetched::Document { text, validators })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_origin_and_path_never_the_query() {
        assert_eq!(
            shown("https://api.servis.ai:8443/export/leads.json?token=s3cret"),
            "https://api.servis.ai:8443/export/leads.json"
        );
        let e = SourceError::Status(shown("http://a.example/x.csv?k=v"), 500);
        assert_eq!(e.to_string(), "http://a.example/x.csv answered HTTP 500");
        assert_eq!(shown("not a url"), "the source URL");
    }

    #[test]
    fn a_headers_secret_becomes_sensitive_headers_without_the_fetchers_own() {
        let headers = headers_from(
            "servis-ai-source",
            [
                ("Authorization".to_owned(), b"Bearer abc\n".to_vec()),
                ("If-None-Match".to_owned(), b"\"x\"".to_vec()),
                ("x-api-key".to_owned(), b"k".to_vec()),
            ],
        )
        .unwrap();
        assert_eq!(headers.len(), 2);
        assert!(headers["authorization"].is_sensitive());
        assert_eq!(headers["authorization"], "Bearer abc");
        let bad = headers_from("s", [("bad header".to_owned(), b"v".to_vec())]).unwrap_err();
        assert!(bad.to_string().contains("\"bad header\""), "{bad}");
    }
}

//! Sources that pull: `contactsFrom[].http` documents, fetched with conditional requests and
//! kept between reads.
//!
//! - [`fetch`]: one GET, allowed by `--allowed-source-url`, capped, no redirects.
//! - [`HttpSources`]: the last answer of every source an object reads, by owner and index. A
//!   reconcile reads through it (a fresh answer is reused, a stale one re-asked
//!   conditionally); [`HttpSources::refresh_due`] re-asks each source once per its
//!   `refreshInterval`, so an unchanged source costs one 304 per interval, and names the owners
//!   whose document changed (the caller wakes them).
//!
//! The document itself is never logged or reported: only its origin and path, and digests.

pub mod fetch;

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::header::HeaderMap;

use crate::crd::contact_sync_policy::ContactSource;
use crate::egress::AllowList;
use fetch::{Fetched, Fetcher, SourceError, Validators};

/// `refreshInterval` when a source omits it.
pub const DEFAULT_REFRESH: Duration = Duration::from_secs(300);

/// The name a source's format is guessed from: its key, or the last segment of its URL's path.
pub fn format_key(source: &ContactSource) -> String {
    if let Some(http) = &source.http {
        return url::Url::parse(&http.url)
            .ok()
            .and_then(|u| {
                u.path_segments()
                    .and_then(|mut s| s.next_back().map(str::to_owned))
            })
            .unwrap_or_default();
    }
    source
        .config_map_ref
        .as_ref()
        .map(|r| r.key.clone())
        .or_else(|| source.secret_ref.as_ref().map(|r| r.key.clone()))
        .unwrap_or_default()
}

/// What is known of one source.
struct Entry {
    url: String,
    headers: HeaderMap,
    /// Digest of `headers`, to tell a changed headers Secret.
    headers_digest: u64,
    refresh: Duration,
    validators: Validators,
    /// The last document read (kept through failures, for a later 304).
    document: Option<Arc<str>>,
    /// What a read answers now: the document, or the last fetch's failure.
    failed: Option<SourceError>,
    asked_at: Instant,
}

impl Entry {
    /// A source not asked yet (or whose URL or headers changed: nothing kept applies).
    fn new(url: &str, headers: HeaderMap, headers_digest: u64, refresh: Duration) -> Self {
        Self {
            url: url.to_owned(),
            headers,
            headers_digest,
            refresh,
            validators: Validators::default(),
            document: None,
            failed: None,
            asked_at: Instant::now(),
        }
    }

    fn answer(&self) -> Result<Arc<str>, SourceError> {
        match (&self.failed, &self.document) {
            (Some(e), _) => Err(e.clone()),
            (None, Some(doc)) => Ok(Arc::clone(doc)),
            (None, None) => Err(SourceError::Transport(
                fetch::shown(&self.url),
                "not read yet",
            )),
        }
    }

    /// Takes in a fetch's outcome; true when what a read answers changed.
    fn take(&mut self, outcome: Result<Fetched, SourceError>, at: Instant) -> bool {
        let before = (self.failed.clone(), self.document.clone());
        self.asked_at = at;
        match outcome {
            Ok(Fetched::Unchanged) => self.failed = None,
            Ok(Fetched::Document { text, validators }) => {
                self.validators = validators;
                if self.document.as_deref() != Some(text.as_str()) {
                    self.document = Some(Arc::from(text));
                }
                self.failed = None;
            }
            Err(e) => self.failed = Some(e),
        }
        (self.failed.clone(), self.document.clone()) != before
    }
}

fn digest(headers: &HeaderMap) -> u64 {
    let mut pairs: Vec<String> = headers
        .iter()
        .map(|(k, v)| format!("{k}\u{0}{}", String::from_utf8_lossy(v.as_bytes())))
        .collect();
    pairs.sort();
    crate::engine::ledger::fingerprint(pairs.iter().map(String::as_str))
}

/// The sources of every owner (`K`: who to wake when a document changes).
pub struct HttpSources<K> {
    fetcher: Fetcher,
    entries: Mutex<HashMap<(K, usize), Entry>>,
}

impl<K: Clone + Eq + Hash> HttpSources<K> {
    pub fn new(allowed: AllowList) -> Self {
        Self {
            fetcher: Fetcher::new(allowed),
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<(K, usize), Entry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether `url` may be fetched at all.
    pub fn check(&self, url: &str) -> Result<(), crate::egress::UrlRefused> {
        self.fetcher.allowed().check(url)
    }

    /// The document of `owner`'s source `index`: the kept answer while it is younger than
    /// `refresh` (and the URL and headers are the same), else a fresh, conditional fetch. A
    /// URL outside the allowlist is refused without a request.
    pub async fn read(
        &self,
        owner: &K,
        index: usize,
        url: &str,
        headers: HeaderMap,
        refresh: Duration,
    ) -> Result<Arc<str>, SourceError> {
        self.fetcher
            .allowed()
            .check(url)
            .map_err(SourceError::Refused)?;
        let key = (owner.clone(), index);
        let headers_digest = digest(&headers);
        let validators = {
            let mut entries = self.entries();
            match entries.get_mut(&key) {
                Some(e) if e.url == url && e.headers_digest == headers_digest => {
                    e.refresh = refresh;
                    if e.asked_at.elapsed() < refresh {
                        return e.answer();
                    }
                    e.validators.clone()
                }
                _ => Validators::default(),
            }
        };
        let outcome = self.fetcher.fetch(url, &headers, &validators).await;
        let mut entries = self.entries();
        let fresh = || Entry::new(url, headers.clone(), headers_digest, refresh);
        let entry = entries.entry(key).or_insert_with(fresh);
        if entry.url != url || entry.headers_digest != headers_digest {
            *entry = fresh();
        }
        entry.take(outcome, Instant::now());
        entry.answer()
    }

    /// Re-asks every source whose `refreshInterval` has passed since it was last asked, and
    /// returns the owners whose answer changed (a new document, a failure, a recovery).
    pub async fn refresh_due(&self) -> Vec<K> {
        let due: Vec<((K, usize), String, HeaderMap, Validators)> = self
            .entries()
            .iter()
            .filter(|(_, e)| e.asked_at.elapsed() >= e.refresh)
            .map(|(k, e)| {
                (
                    k.clone(),
                    e.url.clone(),
                    e.headers.clone(),
                    e.validators.clone(),
                )
            })
            .collect();
        let mut changed = Vec::new();
        for (key, url, headers, validators) in due {
            let outcome = self.fetcher.fetch(&url, &headers, &validators).await;
            let mut entries = self.entries();
            if let Some(entry) = entries.get_mut(&key)
                && entry.url == url
                && entry.take(outcome, Instant::now())
                && !changed.contains(&key.0)
            {
                changed.push(key.0.clone());
            }
        }
        changed
    }

    /// Forgets the sources of `owner` from `index` on (all of them with 0): the owner is gone,
    /// or names fewer sources now.
    pub fn forget(&self, owner: &K, from: usize) {
        self.entries().retain(|(o, i), _| o != owner || *i < from);
    }

    /// Forgets every source `keep` does not want any more.
    pub fn retain(&self, mut keep: impl FnMut(&K, usize, &str) -> bool) {
        self.entries().retain(|(o, i), e| keep(o, *i, &e.url));
    }

    /// Sources kept.
    pub fn len(&self) -> usize {
        self.entries().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

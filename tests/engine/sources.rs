//! `contactsFrom[].http` documents through [`HttpSources`], against a local export endpoint:
//! a fresh answer is reused, an unchanged document costs one 304 per refresh, a changed one
//! names its owner, a failure is reported and a recovery too; a URL outside the allowlist, a
//! redirect, an oversized document are refused, the first without a request.

use std::time::Duration;

use ghl_operator::egress::AllowList;
use ghl_operator::sources::HttpSources;
use ghl_operator::sources::fetch::SourceError;
use reqwest::header::HeaderMap;

use crate::support::source::{self, Source};

const DOC: &str = r#"[{"mail": "ada@example.com", "given": "Ada"}]"#;

fn sources(source: &Source) -> HttpSources<&'static str> {
    HttpSources::new(AllowList::parse(&[source.url("/export/")]).unwrap())
}

#[tokio::test]
async fn an_unchanged_document_costs_one_conditional_request_per_refresh() {
    let source = source::start(DOC).await;
    let sources = sources(&source);
    let url = source.url("/export/leads.json");
    let refresh = Duration::from_millis(300);
    let first = sources
        .read(&"crm/vip", 0, &url, HeaderMap::new(), refresh)
        .await;
    assert_eq!(first.unwrap().as_ref(), DOC);
    let again = sources
        .read(&"crm/vip", 0, &url, HeaderMap::new(), refresh)
        .await;
    assert_eq!(again.unwrap().as_ref(), DOC);
    assert_eq!(source.asked(), 1, "a fresh answer is reused");

    assert!(sources.refresh_due().await.is_empty(), "nothing due yet");
    assert_eq!(source.asked(), 1);
    for round in 1..=3 {
        tokio::time::sleep(refresh).await;
        assert!(sources.refresh_due().await.is_empty(), "unchanged");
        assert_eq!(source.asked(), 1 + round);
        assert_eq!(source.not_modified(), round, "each a 304");
    }

    source.set_document(r#"[{"mail": "grace@example.com"}]"#);
    tokio::time::sleep(refresh).await;
    assert_eq!(
        sources.refresh_due().await,
        ["crm/vip"],
        "changed: wake the owner"
    );
    let read = sources
        .read(&"crm/vip", 0, &url, HeaderMap::new(), refresh)
        .await;
    assert!(read.unwrap().contains("grace@"));
    assert_eq!(
        source.asked(),
        5,
        "the reconcile reads what the refresh fetched"
    );
}

#[tokio::test]
async fn a_failure_is_reported_and_so_is_the_recovery() {
    let source = source::start(DOC).await;
    let sources = sources(&source);
    let url = source.url("/export/leads.json");
    let refresh = Duration::from_millis(200);
    sources
        .read(&"crm/vip", 0, &url, HeaderMap::new(), refresh)
        .await
        .unwrap();
    source.fail_with(Some(500));
    tokio::time::sleep(refresh).await;
    assert_eq!(sources.refresh_due().await, ["crm/vip"]);
    let failed = sources
        .read(&"crm/vip", 0, &url, HeaderMap::new(), refresh)
        .await
        .unwrap_err();
    assert_eq!(
        failed,
        SourceError::Status(source.url("/export/leads.json"), 500)
    );
    assert_eq!(failed.reason(), "SourceUnavailable");
    source.fail_with(None);
    tokio::time::sleep(refresh).await;
    assert_eq!(sources.refresh_due().await, ["crm/vip"], "recovered");
    let back = sources
        .read(&"crm/vip", 0, &url, HeaderMap::new(), refresh)
        .await;
    assert_eq!(
        back.unwrap().as_ref(),
        DOC,
        "the kept document, confirmed by a 304"
    );
    assert_eq!(source.not_modified(), 1);
}

#[tokio::test]
async fn refused_redirected_and_oversized_documents_are_errors() {
    let source = source::start(DOC).await;
    let sources = sources(&source);
    let refresh = Duration::from_secs(60);
    let outside = source.url("/private/private.json?token=s3cret");
    let refused = sources
        .read(&"crm/vip", 0, &outside, HeaderMap::new(), refresh)
        .await
        .unwrap_err();
    assert!(matches!(refused, SourceError::Refused(_)), "{refused}");
    assert_eq!(refused.reason(), "SourceNotAllowed");
    assert!(!refused.to_string().contains("s3cret"), "{refused}");
    assert_eq!(source.asked(), 0, "never fetched");

    let moved = sources
        .read(
            &"crm/vip",
            1,
            &source.url("/export/moved.json"),
            HeaderMap::new(),
            refresh,
        )
        .await
        .unwrap_err();
    assert!(matches!(moved, SourceError::Redirected(_)), "{moved}");
    assert_eq!(source.asked_for("leads.json"), 0, "not followed");

    source.set_document(&"x".repeat(ghl_operator::sources::fetch::MAX_BYTES + 1));
    let large = sources
        .read(
            &"crm/vip",
            2,
            &source.url("/export/big.json"),
            HeaderMap::new(),
            refresh,
        )
        .await
        .unwrap_err();
    assert!(matches!(large, SourceError::TooLarge(_)), "{large}");

    sources.forget(&"crm/vip", 0);
    assert!(sources.is_empty());
}

//! Redirects are never followed: a base URL that answers 3xx (a misconfigured or hostile proxy
//! in front of GHL) receives the request, and whatever it points to receives nothing — no
//! bearer token, no client secret, no code, no refresh token. The error names the status and
//! where it pointed.

use std::sync::Arc;

use ghl_operator::ghl::models::{ListContactsQuery, UserTypeParam};
use ghl_operator::ghl::oauth::{ClientCredentials, OAuthClient};
use ghl_operator::ghl::retry::RetryPolicy;
use ghl_operator::ghl::transport::HttpTimeouts;
use ghl_operator::ghl::{ErrorClass, GhlApi, GhlError, GhlMetrics};
use secrecy::SecretString;
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::mock_ghl::client;

/// A target that would take anything, and a base URL that redirects every request to it with
/// `status`.
async fn redirecting(status: u16) -> (MockServer, MockServer) {
    let target = MockServer::start().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(200).set_body_string("{}"))
        .mount(&target)
        .await;
    let base = MockServer::start().await;
    Mock::given(any())
        .respond_with(
            ResponseTemplate::new(status)
                .insert_header("location", format!("{}/steal", target.uri()).as_str()),
        )
        .mount(&base)
        .await;
    (base, target)
}

fn assert_redirected(error: &GhlError, status: u16) {
    let GhlError::Redirected {
        status: got, to, ..
    } = error
    else {
        panic!("expected a refused redirect, got {error}");
    };
    assert_eq!((*got, to.as_str()), (status, "127.0.0.1"));
    assert_eq!(error.class(), ErrorClass::Terminal);
    assert_eq!(error.category(), "redirected");
    assert!(!error.is_retryable(), "a redirect is not retried");
}

#[tokio::test]
async fn the_contacts_client_never_follows_a_redirect() {
    for status in [301, 302, 303, 307, 308] {
        let (base, target) = redirecting(status).await;
        let (client, _) = client(&base.uri());
        let query = ListContactsQuery {
            limit: Some(1),
            ..ListContactsQuery::default()
        };
        let error = client.list_contacts(&query).await.unwrap_err();
        assert_redirected(&error, status);
        let sent = base.received_requests().await.unwrap_or_default();
        assert_eq!(
            sent.len(),
            1,
            "{status}: the base URL gets the first request only"
        );
        assert!(
            target
                .received_requests()
                .await
                .unwrap_or_default()
                .is_empty(),
            "{status}: the redirect's target receives nothing"
        );
    }
}

#[tokio::test]
async fn the_oauth_client_never_reposts_the_token_form() {
    for status in [307, 308] {
        let (base, target) = redirecting(status).await;
        let oauth = OAuthClient::new(
            &base.uri(),
            "2021-07-28",
            HttpTimeouts::default(),
            RetryPolicy::default(),
            Arc::new(GhlMetrics::default()),
        )
        .unwrap();
        let client = ClientCredentials {
            client_id: "app-id".into(),
            client_secret: SecretString::from("app-secret".to_owned()),
        };
        let code = SecretString::from("one-time-code".to_owned());
        let error = oauth
            .exchange_code(&client, &code, None, UserTypeParam::Location)
            .await
            .unwrap_err();
        assert_redirected(&error, status);
        assert_eq!(base.received_requests().await.unwrap_or_default().len(), 1);
        assert!(
            target
                .received_requests()
                .await
                .unwrap_or_default()
                .is_empty(),
            "{status}: the client secret and the code went nowhere else"
        );
    }
}

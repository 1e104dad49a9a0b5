//! The OAuth endpoints: form-encoded bodies, the right headers, and no retry of a refresh.

use std::sync::Arc;

use ghl_operator::ghl::GhlMetrics;
use ghl_operator::ghl::models::UserTypeParam;
use ghl_operator::ghl::oauth::{ClientCredentials, OAuthClient};
use ghl_operator::ghl::retry::RetryPolicy;
use ghl_operator::ghl::transport::HttpTimeouts;
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

fn form(request: &Request) -> Vec<(String, String)> {
    let mut pairs: Vec<_> = url::form_urlencoded::parse(&request.body)
        .into_owned()
        .collect();
    pairs.sort();
    pairs
}

async fn serve(answer: ResponseTemplate) -> (MockServer, OAuthClient) {
    let server = MockServer::start().await;
    Mock::given(any()).respond_with(answer).mount(&server).await;
    let client = OAuthClient::new(
        &server.uri(),
        "2021-07-28",
        HttpTimeouts::default(),
        RetryPolicy::default(),
        Arc::new(GhlMetrics::default()),
    )
    .unwrap();
    (server, client)
}

fn creds() -> ClientCredentials {
    ClientCredentials {
        client_id: "app-id".into(),
        client_secret: SecretString::from("app-secret".to_owned()),
    }
}

fn grant() -> serde_json::Value {
    json!({"access_token": "at-1", "token_type": "Bearer", "expires_in": 86399, "refresh_token": "rt-1",
           "scope": "contacts.readonly contacts.write", "userType": "Location", "locationId": "ve9EPM428h8vShlRW1KT", "userId": "u1"})
}

#[tokio::test]
async fn code_exchange_posts_the_form_without_bearer_or_version() {
    let (server, client) = serve(ResponseTemplate::new(200).set_body_json(grant())).await;
    let code = SecretString::from("code-1".to_owned());
    let grant = client
        .exchange_code(
            &creds(),
            &code,
            Some("https://example.com/cb"),
            UserTypeParam::Location,
        )
        .await
        .unwrap();
    assert_eq!(grant.tokens.access_token.expose_secret(), "at-1");
    assert_eq!(
        grant.tokens.scopes(),
        ["contacts.readonly", "contacts.write"]
    );
    let req = &server.received_requests().await.unwrap()[0];
    assert_eq!(
        (req.method.as_str(), req.url.path()),
        ("POST", "/oauth/token")
    );
    assert_eq!(
        req.headers.get("content-type").unwrap(),
        "application/x-www-form-urlencoded"
    );
    assert!(req.headers.get("authorization").is_none());
    assert!(req.headers.get("version").is_none());
    assert_eq!(
        form(req),
        [
            ("client_id".into(), "app-id".into()),
            ("client_secret".into(), "app-secret".into()),
            ("code".into(), "code-1".into()),
            ("grant_type".into(), "authorization_code".into()),
            ("redirect_uri".into(), "https://example.com/cb".into()),
            ("user_type".into(), "Location".into()),
        ]
    );
}

#[tokio::test]
async fn a_refresh_is_never_retried_after_a_server_error() {
    // GHL may have consumed the single-use refresh token: a blind retry would lose it.
    let (server, client) = serve(ResponseTemplate::new(502)).await;
    let refresh = SecretString::from("rt-0".to_owned());
    let err = client
        .refresh(&creds(), &refresh, UserTypeParam::Location)
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(502));
    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 1);
    let body = form(&requests[0]);
    assert!(body.contains(&("grant_type".into(), "refresh_token".into())));
    assert!(body.contains(&("refresh_token".into(), "rt-0".into())));
}

#[tokio::test]
async fn location_token_uses_the_agency_token_and_version() {
    let answer = json!({"access_token": "loc-at", "token_type": "Bearer", "expires_in": 86399,
                        "scope": "contacts.readonly", "locationId": "ve9EPM428h8vShlRW1KT", "userId": "u1"});
    let (server, client) = serve(ResponseTemplate::new(200).set_body_json(answer)).await;
    let agency = SecretString::from("agency-at".to_owned());
    let grant = client
        .location_token(&agency, "company-1", "ve9EPM428h8vShlRW1KT")
        .await
        .unwrap();
    assert_eq!(grant.tokens.access_token.expose_secret(), "loc-at");
    let req = &server.received_requests().await.unwrap()[0];
    assert_eq!(
        (req.method.as_str(), req.url.path()),
        ("POST", "/oauth/locationToken")
    );
    assert_eq!(
        req.headers.get("authorization").unwrap(),
        "Bearer agency-at"
    );
    assert_eq!(req.headers.get("version").unwrap(), "2021-07-28");
    assert_eq!(
        form(req),
        [
            ("companyId".into(), "company-1".into()),
            ("locationId".into(), "ve9EPM428h8vShlRW1KT".into()),
        ]
    );
}

#[tokio::test]
async fn a_grant_without_access_token_is_malformed_and_secrets_stay_out_of_debug() {
    let (_server, client) =
        serve(ResponseTemplate::new(200).set_body_json(json!({"userId": "u1"}))).await;
    let err = client
        .refresh(
            &creds(),
            &SecretString::from("rt".to_owned()),
            UserTypeParam::Location,
        )
        .await
        .unwrap_err();
    assert_eq!(err.category(), "malformed_response");

    let (_server, client) = serve(ResponseTemplate::new(200).set_body_json(grant())).await;
    let grant = client
        .refresh(
            &creds(),
            &SecretString::from("rt".to_owned()),
            UserTypeParam::Location,
        )
        .await
        .unwrap();
    let debug = format!("{grant:?}");
    assert!(
        !debug.contains("at-1") && !debug.contains("rt-1"),
        "{debug}"
    );
}

//! Credentials as GHL treats them: the Version header, bearer tokens, scopes, locations,
//! expiring access tokens, single-use refresh tokens and codes, agency → location tokens.

use std::time::Duration;

use ghl_operator::sandbox::SandboxConfig;
use serde_json::{Value, json};

use crate::support::sandbox::{Raw, start, start_default};

pub async fn token_call(raw: &Raw, form: &[(&str, &str)]) -> crate::support::sandbox::Answer {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish();
    raw.send(
        raw.http
            .post(format!("{}/oauth/token", raw.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body),
    )
    .await
}

const CLIENT: [(&str, &str); 2] = [
    ("client_id", "sandbox-client-id"),
    ("client_secret", "sandbox-client-secret"),
];

pub async fn grant_from_code(raw: &Raw, code_body: Value) -> Value {
    let code = raw.admin("POST", "oauth/code", Some(code_body)).await["code"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut form = CLIENT.to_vec();
    form.extend([("grant_type", "authorization_code"), ("code", &code)]);
    let answer = token_call(raw, &form).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    answer.json
}

#[tokio::test]
async fn version_header_and_bearer_token_are_required() {
    let sandbox = start_default().await;
    let raw = Raw::new(&sandbox);
    let path = format!("/contacts/?locationId={}", sandbox.location_id);
    let no_version = raw
        .send(
            raw.http
                .get(format!("{}{path}", raw.base))
                .bearer_auth(&raw.token),
        )
        .await;
    assert_eq!(no_version.status, 400);
    assert_eq!(no_version.json["message"], "version header was not found");
    let wrong_version = raw
        .send(
            raw.http
                .get(format!("{}{path}", raw.base))
                .bearer_auth(&raw.token)
                .header("Version", "2023-02-21"),
        )
        .await;
    assert_eq!(wrong_version.status, 400);
    let no_token = raw
        .send(
            raw.http
                .get(format!("{}{path}", raw.base))
                .header("Version", "2021-07-28"),
        )
        .await;
    assert_eq!(no_token.status, 401);
    assert_eq!(
        no_token.json,
        json!({"statusCode": 401, "message": "Invalid JWT", "error": "Unauthorized"})
    );
    assert_eq!(raw.call("GET", &path, None).await.status, 200);
}

#[tokio::test]
async fn another_location_is_forbidden() {
    let sandbox = start_default().await;
    let raw = Raw::new(&sandbox);
    let answer = raw
        .call("GET", "/contacts/?locationId=someOtherLocation000", None)
        .await;
    assert_eq!(answer.status, 403);
    assert_eq!(
        answer.json["message"],
        "The token does not have access to this location."
    );
    let create = raw
        .call(
            "POST",
            "/contacts/",
            Some(json!({"locationId": "someOtherLocation000", "email": "a@b.co"})),
        )
        .await;
    assert_eq!(create.status, 403);
}

#[tokio::test]
async fn tokens_without_the_scope_are_refused() {
    let sandbox = start_default().await;
    let mut raw = Raw::new(&sandbox);
    let grant = grant_from_code(&raw, json!({"scopes": ["contacts.readonly"]})).await;
    raw.token = grant["access_token"].as_str().unwrap().to_owned();
    let read = raw
        .call(
            "GET",
            &format!("/contacts/?locationId={}", sandbox.location_id),
            None,
        )
        .await;
    assert_eq!(read.status, 200);
    let write = raw
        .call(
            "POST",
            "/contacts/",
            Some(json!({"locationId": sandbox.location_id, "email": "a@b.co"})),
        )
        .await;
    assert_eq!(write.status, 401);
    assert_eq!(
        write.json["message"],
        "The token is not authorized for this scope."
    );
}

#[tokio::test]
async fn access_tokens_expire_and_refresh_tokens_are_single_use() {
    let sandbox = start(SandboxConfig {
        access_token_ttl: Duration::from_secs(600),
        search_lag: Duration::ZERO,
        ..SandboxConfig::default()
    })
    .await;
    let mut raw = Raw::new(&sandbox);
    let grant = grant_from_code(&raw, json!({})).await;
    assert_eq!(grant["expires_in"], 600);
    assert_eq!(grant["userType"], "Location");
    assert_eq!(grant["locationId"], sandbox.location_id);
    raw.token = grant["access_token"].as_str().unwrap().to_owned();
    let list = format!("/contacts/?locationId={}", sandbox.location_id);
    assert_eq!(raw.call("GET", &list, None).await.status, 200);

    raw.admin("POST", "clock", Some(json!({"advanceSeconds": 601})))
        .await;
    let expired = raw.call("GET", &list, None).await;
    assert_eq!(expired.status, 401);

    let refresh = grant["refresh_token"].as_str().unwrap().to_owned();
    let mut form = CLIENT.to_vec();
    form.extend([
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh.as_str()),
    ]);
    let renewed = token_call(&raw, &form).await;
    assert_eq!(renewed.status, 200);
    assert_ne!(
        renewed.json["refresh_token"], grant["refresh_token"],
        "refresh tokens rotate"
    );
    raw.token = renewed.json["access_token"].as_str().unwrap().to_owned();
    assert_eq!(raw.call("GET", &list, None).await.status, 200);

    let stats = raw.admin("GET", "stats", None).await;
    assert_eq!(stats["refreshTokenReuse"], 0);
    let reused = token_call(&raw, &form).await;
    assert_eq!(reused.status, 400);
    assert_eq!(
        reused.json["message"],
        "Invalid grant: refresh token is invalid"
    );
    let stats = raw.admin("GET", "stats", None).await;
    assert_eq!(
        stats["refreshTokenReuse"], 1,
        "a spent refresh token presented again is counted"
    );
}

#[tokio::test]
async fn codes_are_single_use_and_clients_must_authenticate() {
    let sandbox = start_default().await;
    let raw = Raw::new(&sandbox);
    let code = raw.admin("POST", "oauth/code", Some(json!({}))).await["code"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut wrong = vec![
        ("client_id", "sandbox-client-id"),
        ("client_secret", "wrong"),
    ];
    wrong.extend([
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
    ]);
    assert_eq!(token_call(&raw, &wrong).await.status, 401);
    let mut right = CLIENT.to_vec();
    right.extend([
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
    ]);
    assert_eq!(token_call(&raw, &right).await.status, 200);
    let again = token_call(&raw, &right).await;
    assert_eq!(again.status, 400);
    assert_eq!(
        again.json["message"],
        "Invalid grant: authorization code is invalid"
    );
    assert_eq!(
        token_call(&raw, &[("grant_type", "refresh_token")])
            .await
            .status,
        422
    );
}

#[tokio::test]
async fn an_agency_token_mints_location_tokens() {
    let sandbox = start_default().await;
    let mut raw = Raw::new(&sandbox);
    let agency = grant_from_code(&raw, json!({"userType": "Company"})).await;
    assert_eq!(agency["userType"], "Company");
    assert!(agency.get("locationId").is_none());
    raw.token = agency["access_token"].as_str().unwrap().to_owned();
    let contacts = raw
        .call(
            "GET",
            &format!("/contacts/?locationId={}", sandbox.location_id),
            None,
        )
        .await;
    assert_eq!(
        contacts.status, 401,
        "agency tokens cannot call location routes"
    );
    let form = format!(
        "companyId=sandboxCompany000001&locationId={}",
        sandbox.location_id
    );
    let minted = raw
        .send(
            raw.request("POST", "/oauth/locationToken")
                .header("content-type", "application/x-www-form-urlencoded")
                .body(form),
        )
        .await;
    assert_eq!(minted.status, 200, "{}", minted.text);
    assert_eq!(minted.json["locationId"], sandbox.location_id);
    raw.token = minted.json["access_token"].as_str().unwrap().to_owned();
    let contacts = raw
        .call(
            "GET",
            &format!("/contacts/?locationId={}", sandbox.location_id),
            None,
        )
        .await;
    assert_eq!(contacts.status, 200);
}

//! Several locations of one agency in one sandbox: separate data, tokens, rate limits and
//! stats; one agency grant mints a token for each.

use std::time::Duration;

use ghl_operator::sandbox::{RateLimit, RunningSandbox, SandboxConfig};
use serde_json::json;

use crate::auth::grant_from_code;
use crate::support::sandbox::{Raw, start};

const SECOND: &str = "locSecond00000000002";

fn two_locations() -> SandboxConfig {
    SandboxConfig {
        other_locations: vec![SECOND.into()],
        rate_limit: RateLimit {
            requests: 4,
            window: Duration::from_secs(5),
        },
        search_lag: Duration::ZERO,
        ..SandboxConfig::default()
    }
}

#[tokio::test]
async fn each_location_has_its_own_data_token_budget_and_stats() {
    let sandbox = start(two_locations()).await;
    assert_eq!(sandbox.locations.len(), 2);
    let (first, first_token) = sandbox.locations[0].clone();
    let (second, second_token) = sandbox.locations[1].clone();
    assert_eq!(first, sandbox.location_id);
    assert_eq!(second_token, format!("{}.{SECOND}", sandbox.token));
    let mut a = Raw::new(&sandbox);
    a.token = first_token;
    let mut b = Raw::new(&sandbox);
    b.token = second_token;

    // The same email in both locations: no duplicate across locations.
    let contact = |location: &str| json!({"locationId": location, "email": "same@example.com"});
    let in_a = a.call("POST", "/contacts/", Some(contact(&first))).await;
    let in_b = b.call("POST", "/contacts/", Some(contact(&second))).await;
    assert_eq!((in_a.status, in_b.status), (201, 201), "{}", in_b.text);
    let a_id = in_a.json["contact"]["id"].as_str().unwrap().to_owned();
    assert_eq!(in_b.json["contact"]["locationId"], second.as_str());

    // A location's token reaches only its own location.
    let foreign = b.call("GET", &format!("/contacts/{a_id}"), None).await;
    assert_eq!(foreign.status, 404, "{}", foreign.text);
    let other = b
        .call(
            "POST",
            "/contacts/search",
            Some(json!({"locationId": first, "pageLimit": 10})),
        )
        .await;
    assert_eq!(other.status, 403, "{}", other.text);

    // Separate budgets (4 per window): `a` spends its window and is limited; `b`, with three
    // calls behind it, still has room.
    for expected in [200, 200, 200, 429] {
        let answer = a.call("GET", &format!("/contacts/{a_id}"), None).await;
        assert_eq!(answer.status, expected, "{}", answer.text);
    }
    let found = b
        .call(
            "POST",
            "/contacts/search",
            Some(json!({"locationId": second, "pageLimit": 10})),
        )
        .await;
    assert_eq!(found.status, 200, "{}", found.text);
    assert_eq!(found.json["total"], 1);

    let stats = a.admin("GET", "stats", None).await;
    assert_eq!(stats["byLocation"][&first]["totalRequests"], 5, "{stats}");
    assert_eq!(stats["byLocation"][&first]["rateLimited"], 1, "{stats}");
    assert_eq!(stats["byLocation"][SECOND]["totalRequests"], 4, "{stats}");
    assert_eq!(stats["byLocation"][SECOND]["rateLimited"], 0, "{stats}");
    let state = a
        .admin("GET", &format!("state?locationId={SECOND}"), None)
        .await;
    assert_eq!(state["locationId"], SECOND);
    assert_eq!(state["contacts"].as_array().unwrap().len(), 1);
}

/// A sandbox of three locations, and a caller holding an agency (Company) token for them.
async fn three_locations_as_agency() -> (RunningSandbox, Raw) {
    let sandbox = start(SandboxConfig {
        other_locations: vec![SECOND.into(), "locThird000000000003".into()],
        ..SandboxConfig::default()
    })
    .await;
    let mut raw = Raw::new(&sandbox);
    let agency = grant_from_code(&raw, json!({"userType": "Company"})).await;
    raw.token = agency["access_token"].as_str().unwrap().to_owned();
    (sandbox, raw)
}

#[tokio::test]
async fn one_agency_grant_mints_a_token_for_each_location() {
    let (sandbox, raw) = three_locations_as_agency().await;
    for (location, _) in &sandbox.locations {
        let minted = raw
            .send(
                raw.request("POST", "/oauth/locationToken")
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(format!(
                        "companyId=sandboxCompany000001&locationId={location}"
                    )),
            )
            .await;
        assert_eq!(minted.status, 200, "{}", minted.text);
        assert_eq!(minted.json["locationId"], location.as_str());
        let mut as_location = Raw::new(&sandbox);
        as_location.token = minted.json["access_token"].as_str().unwrap().to_owned();
        let listed = as_location
            .call("GET", &format!("/contacts/?locationId={location}"), None)
            .await;
        assert_eq!(listed.status, 200, "{}", listed.text);
    }
    let unknown = raw
        .send(
            raw.request("POST", "/oauth/locationToken")
                .header("content-type", "application/x-www-form-urlencoded")
                .body("companyId=sandboxCompany000001&locationId=notOurs0000000000000"),
        )
        .await;
    assert_eq!(unknown.status, 400, "{}", unknown.text);
}

#[tokio::test]
async fn an_agency_token_lists_the_installed_locations_a_page_at_a_time() {
    let (sandbox, raw) = three_locations_as_agency().await;
    let query = "companyId=sandboxCompany000001&appId=sandbox&isInstalled=true";
    let page = raw
        .call(
            "GET",
            &format!("/oauth/installedLocations?{query}&skip=1&limit=1"),
            None,
        )
        .await;
    assert_eq!(page.status, 200, "{}", page.text);
    assert_eq!(page.json["count"], 3);
    assert_eq!(page.json["locations"][0]["_id"], SECOND);
    assert_eq!(page.json["locations"].as_array().unwrap().len(), 1);
    // Another app or company, or a location token: refused.
    for (bad, status) in [
        ("companyId=sandboxCompany000001&appId=other", 400),
        ("companyId=otherCompany&appId=sandbox", 400),
        ("appId=sandbox", 422),
    ] {
        let answer = raw
            .call("GET", &format!("/oauth/installedLocations?{bad}"), None)
            .await;
        assert_eq!(answer.status, status, "{bad}: {}", answer.text);
    }
    let as_location = Raw::new(&sandbox);
    let refused = as_location
        .call("GET", &format!("/oauth/installedLocations?{query}"), None)
        .await;
    assert_eq!(refused.status, 401, "{}", refused.text);
}

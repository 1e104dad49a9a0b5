//! Contacts: duplicate rules on create and upsert, GHL's validation, and bad input answered
//! with GHL-shaped 4xx, never a crash.

use std::time::Duration;

use ghl_operator::sandbox::SandboxConfig;
use serde_json::{Value, json};

use crate::support::sandbox::{Raw, start, start_default};

async fn create(raw: &Raw, loc: &str, body: Value) -> crate::support::sandbox::Answer {
    let mut body = body;
    body["locationId"] = json!(loc);
    raw.call("POST", "/contacts/", Some(body)).await
}

#[tokio::test]
async fn upsert_follows_the_duplicate_rules() {
    let sandbox = start_default().await;
    let raw = Raw::new(&sandbox);
    let loc = &sandbox.location_id;
    let by_email = create(&raw, loc, json!({"email": "ada@example.com"}))
        .await
        .json["contact"]["id"]
        .clone();
    let by_phone = create(&raw, loc, json!({"phone": "+1 415 555 0100"}))
        .await
        .json["contact"]["id"]
        .clone();

    // Matches by email (case-insensitive): updates, not new.
    let upsert = raw
        .call(
            "POST",
            "/contacts/upsert",
            Some(json!({"locationId": loc, "email": "ADA@example.com", "firstName": "Ada"})),
        )
        .await;
    assert_eq!(upsert.status, 200);
    assert_eq!(upsert.json["new"], false);
    assert_eq!(upsert.json["contact"]["id"], by_email);
    assert_eq!(upsert.json["contact"]["firstName"], "Ada");

    // Matches by phone (digits only).
    let upsert = raw
        .call(
            "POST",
            "/contacts/upsert",
            Some(json!({"locationId": loc, "phone": "+14155550100", "city": "SF"})),
        )
        .await;
    assert_eq!(upsert.json["contact"]["id"], by_phone);

    // Email and phone match different contacts: the email match wins, the phone is dropped.
    let upsert = raw
        .call(
            "POST",
            "/contacts/upsert",
            Some(json!({"locationId": loc, "email": "ada@example.com", "phone": "+14155550100"})),
        )
        .await;
    assert_eq!(upsert.json["contact"]["id"], by_email);
    assert!(
        upsert.json["contact"].get("phone").is_none(),
        "{}",
        upsert.json
    );

    // No match: created.
    let upsert = raw
        .call(
            "POST",
            "/contacts/upsert",
            Some(json!({"locationId": loc, "email": "new@example.com", "tags": ["A", "b"]})),
        )
        .await;
    assert_eq!(upsert.json["new"], true);
    assert_eq!(upsert.json["contact"]["tags"], json!(["a", "b"]));
    assert_eq!(upsert.json["contact"]["id"].as_str().unwrap().len(), 20);

    let state = raw.admin("GET", "state", None).await;
    assert_eq!(state["contacts"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn create_refuses_duplicates_and_names_the_existing_contact() {
    let sandbox = start_default().await;
    let raw = Raw::new(&sandbox);
    let first = create(
        &raw,
        &sandbox.location_id,
        json!({"email": "ada@example.com"}),
    )
    .await;
    assert_eq!(first.status, 201);
    let again = create(
        &raw,
        &sandbox.location_id,
        json!({"email": "Ada@Example.com"}),
    )
    .await;
    assert_eq!(again.status, 400);
    assert_eq!(again.json["meta"]["contactId"], first.json["contact"]["id"]);
    assert_eq!(again.json["meta"]["matchingField"], "email");

    // A location that allows duplicates creates a second one.
    let lenient = start(SandboxConfig {
        allow_duplicate_contact: true,
        search_lag: Duration::ZERO,
        ..SandboxConfig::default()
    })
    .await;
    let raw = Raw::new(&lenient);
    assert_eq!(
        create(&raw, &lenient.location_id, json!({"email": "a@b.co"}))
            .await
            .status,
        201
    );
    assert_eq!(
        create(&raw, &lenient.location_id, json!({"email": "a@b.co"}))
            .await
            .status,
        201
    );
    let upsert = raw
        .call("POST", "/contacts/upsert", Some(json!({"locationId": lenient.location_id, "email": "a@b.co", "createNewIfDuplicateAllowed": true})))
        .await;
    assert_eq!(upsert.json["new"], true);
}

#[tokio::test]
async fn tags_on_put_replace_while_tag_endpoints_add_and_remove() {
    let sandbox = start_default().await;
    let raw = Raw::new(&sandbox);
    let id = create(
        &raw,
        &sandbox.location_id,
        json!({"email": "a@b.co", "tags": ["one", "two"]}),
    )
    .await
    .json["contact"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let added = raw
        .call(
            "POST",
            &format!("/contacts/{id}/tags"),
            Some(json!({"tags": ["three"]})),
        )
        .await;
    assert_eq!(added.status, 201);
    assert_eq!(added.json["tags"], json!(["one", "two", "three"]));
    let removed = raw
        .call(
            "DELETE",
            &format!("/contacts/{id}/tags"),
            Some(json!({"tags": ["one"]})),
        )
        .await;
    assert_eq!(removed.json["tags"], json!(["two", "three"]));
    let put = raw
        .call(
            "PUT",
            &format!("/contacts/{id}"),
            Some(json!({"tags": ["only"]})),
        )
        .await;
    assert_eq!(put.json["contact"]["tags"], json!(["only"]));
}

#[tokio::test]
async fn puts_refuse_undeclared_fields_like_ghl() {
    let sandbox = start_default().await;
    let raw = Raw::new(&sandbox);
    let id = create(
        &raw,
        &sandbox.location_id,
        json!({"email": "a@b.co", "companyName": "X"}),
    )
    .await
    .json["contact"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for field in ["gender", "companyName", "additionalEmails", "locationId"] {
        let answer = raw
            .call("PUT", &format!("/contacts/{id}"), Some(json!({field: "x"})))
            .await;
        assert_eq!(answer.status, 422, "{field}");
        assert_eq!(
            answer.json["message"],
            json!([format!("property {field} should not exist")])
        );
        assert_eq!(answer.json["error"], "Unprocessable Entity");
    }
    let wrong_type = raw
        .call(
            "PUT",
            &format!("/contacts/{id}"),
            Some(json!({"dnd": "yes", "email": "nope"})),
        )
        .await;
    assert_eq!(wrong_type.status, 422);
    assert_eq!(wrong_type.json["message"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn bad_input_gets_ghl_shaped_4xx_and_the_sandbox_keeps_serving() {
    let sandbox = start_default().await;
    let raw = Raw::new(&sandbox);
    let loc = sandbox.location_id.clone();
    let garbage = raw
        .send(
            raw.request("POST", "/contacts/")
                .header("content-type", "application/json")
                .body("{\"email\": "),
        )
        .await;
    assert_eq!(garbage.status, 400);
    assert_eq!(garbage.json["statusCode"], 400);

    let huge = "x".repeat(2 << 20);
    let too_big = raw
        .send(
            raw.request("POST", "/contacts/")
                .header("content-type", "application/json")
                .body(huge),
        )
        .await;
    assert_eq!(too_big.status, 413);
    assert_eq!(too_big.json["statusCode"], 413);

    let not_object = raw.call("POST", "/contacts/", Some(json!([1, 2, 3]))).await;
    assert_eq!(not_object.status, 422);
    let wrong_types = raw
        .call(
            "POST",
            "/contacts/",
            Some(json!({"locationId": 5, "tags": "vip", "customFields": {}})),
        )
        .await;
    assert_eq!(wrong_types.status, 422);
    assert_eq!(
        wrong_types.json["message"].as_array().unwrap().len(),
        3,
        "{}",
        wrong_types.json
    );
    let missing_location = raw
        .call("POST", "/contacts/", Some(json!({"email": "a@b.co"})))
        .await;
    assert_eq!(
        missing_location.json["message"],
        json!(["locationId should not be empty"])
    );
    let bad_task = raw
        .call(
            "POST",
            "/contacts/AAAAAAAAAAAAAAAAAAAA/tasks",
            Some(json!({"title": 3})),
        )
        .await;
    assert_eq!(bad_task.status, 422);
    let bad_search = raw
        .call(
            "POST",
            "/contacts/search",
            Some(json!({"locationId": loc, "pageLimit": "ten"})),
        )
        .await;
    assert_eq!(bad_search.status, 422);
    let bad_date = raw
        .call(
            "POST",
            "/contacts/upsert",
            Some(json!({"locationId": loc, "email": "t@b.co"})),
        )
        .await;
    let cid = bad_date.json["contact"]["id"].as_str().unwrap().to_owned();
    let bad_due = raw
        .call(
            "POST",
            &format!("/contacts/{cid}/tasks"),
            Some(json!({"title": "t", "dueDate": "tomorrow", "completed": false})),
        )
        .await;
    assert_eq!(bad_due.status, 422);
    let unknown_route = raw.call("GET", "/contacts/a/b/c/d", None).await;
    assert_eq!(unknown_route.status, 404);

    // Still serving after all of that.
    let fine = raw
        .call(
            "POST",
            "/contacts/",
            Some(json!({"locationId": loc, "email": "fine@b.co"})),
        )
        .await;
    assert_eq!(fine.status, 201);
}

#[tokio::test]
async fn search_filters_paginate_and_cap_page_numbers() {
    let sandbox = start_default().await;
    let raw = Raw::new(&sandbox);
    let loc = sandbox.location_id.clone();
    for i in 0..25 {
        let domain = if i % 5 == 0 {
            "bigcorp.com"
        } else {
            "small.io"
        };
        create(&raw, &loc, json!({"email": format!("p{i}@{domain}"), "tags": if i % 2 == 0 { json!(["even"]) } else { json!([]) }})).await;
    }
    let search = |body: Value| {
        let mut body = body;
        body["locationId"] = json!(loc);
        raw.call("POST", "/contacts/search", Some(body))
    };
    let big = search(json!({"pageLimit": 100, "filters": [{"field": "email", "operator": "contains", "value": "@bigcorp.com"}]})).await;
    assert_eq!(big.json["total"], 5);
    let even_big = search(json!({"pageLimit": 100, "filters": [
        {"field": "email", "operator": "contains", "value": "@bigcorp.com"},
        {"field": "tags", "operator": "eq", "value": "even"}]}))
    .await;
    assert_eq!(even_big.json["total"], 3); // 0, 10, 20
    let mut seen = Vec::new();
    let mut after = Value::Null;
    loop {
        let mut body =
            json!({"pageLimit": 7, "sort": [{"field": "dateAdded", "direction": "asc"}]});
        if !after.is_null() {
            body["searchAfter"] = after.clone();
        }
        let page = search(body).await;
        let contacts = page.json["contacts"].as_array().unwrap().clone();
        if contacts.is_empty() {
            break;
        }
        after = contacts.last().unwrap()["searchAfter"].clone();
        seen.extend(contacts.into_iter().map(|c| c["id"].clone()));
    }
    assert_eq!(seen.len(), 25);
    let capped = search(json!({"pageLimit": 500, "page": 21})).await;
    assert_eq!(capped.status, 422);
}

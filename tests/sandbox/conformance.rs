//! Conformance: every operation the sandbox serves is exercised over HTTP and each request and
//! response is validated against GHL's official OpenAPI specs by openapi-core (Python), an
//! implementation independent of ours. Documented deviations are listed in
//! `tests/conformance/validate_exchanges.py` and `src/sandbox/mod.rs`.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use ghl_operator::sandbox::{RateLimit, SandboxConfig, Seed};
use serde_json::{Map, Value, json};

use crate::support::sandbox::{Raw, start};

/// Every operation name the sandbox serves.
const ALL_OPERATIONS: &[&str] = &[
    "contacts.get",
    "contacts.update",
    "contacts.delete",
    "contacts.create",
    "contacts.list",
    "contacts.upsert",
    "contacts.search",
    "contacts.by_business",
    "tasks.list",
    "tasks.create",
    "tasks.get",
    "tasks.update",
    "tasks.delete",
    "tasks.complete",
    "tasks.search",
    "custom_fields.list",
    "notes.list",
    "notes.create",
    "notes.get",
    "notes.update",
    "notes.delete",
    "appointments.list",
    "tags.add",
    "tags.remove",
    "tags.bulk",
    "oauth.token",
    "oauth.location_token",
];

/// Records raw exchanges in the shape the validator reads.
struct Recorder {
    raw: Raw,
    exchanges: Vec<Value>,
}

impl Recorder {
    #[allow(clippy::too_many_arguments)]
    async fn exchange(
        &mut self,
        spec: &str,
        operation: &str,
        method: &str,
        path: &str,
        query: &[(&str, &str)],
        body: Option<Value>,
        form: Option<&[(&str, &str)]>,
        headers: &[(&str, &str)],
        valid_request: bool,
    ) -> Value {
        let mut builder = self
            .raw
            .http
            .request(
                method.parse().unwrap(),
                format!("{}{}", self.raw.base, path),
            )
            .query(query);
        let mut sent_headers = Map::new();
        for (k, v) in headers {
            builder = builder.header(*k, *v);
            sent_headers.insert((*k).to_owned(), json!(v));
        }
        let (text, content_type) = match (&body, form) {
            (Some(json_body), _) => (Some(json_body.to_string()), "application/json"),
            (None, Some(fields)) => {
                let encoded = url::form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(fields)
                    .finish();
                (Some(encoded), "application/x-www-form-urlencoded")
            }
            (None, None) => (None, "application/json"),
        };
        if let Some(text) = &text {
            builder = builder
                .header("content-type", content_type)
                .body(text.clone());
            sent_headers.insert("Content-Type".into(), json!(content_type));
        }
        let answer = self.raw.send(builder).await;
        let query_map: Map<String, Value> = query
            .iter()
            .map(|(k, v)| ((*k).to_owned(), json!(v)))
            .collect();
        self.exchanges.push(json!({
            "spec": spec, "operation": operation, "method": method, "path": path,
            "query": query_map, "headers": sent_headers, "body": text, "contentType": content_type,
            "validRequest": valid_request, "status": answer.status, "responseBody": answer.text,
        }));
        answer.json
    }
}

fn ghl_headers(token: &str) -> Vec<(&'static str, String)> {
    vec![
        ("Authorization", format!("Bearer {token}")),
        ("Version", "2021-07-28".to_owned()),
    ]
}

fn seed() -> Seed {
    serde_json::from_value(json!({
        "contacts": [{
            "email": "grace@example.com", "firstName": "Grace", "businessId": "641c094001436dbc2081e642",
            "appointments": [{"title": "Demo", "calendarId": "YlWd2wuCAZQzh2cH1fVZ", "status": "booked",
                              "appointmentStatus": "booked", "startTime": "2030-02-03 10:00:00", "endTime": "2030-02-03 10:30:00"}]
        }]
    }))
    .unwrap()
}

#[tokio::test]
async fn every_operation_conforms_to_the_official_spec() {
    let sandbox = start(SandboxConfig {
        search_lag: Duration::ZERO,
        seed: seed(),
        ..SandboxConfig::default()
    })
    .await;
    let loc = sandbox.location_id.clone();
    let raw = Raw::new(&sandbox);
    let pit = raw.token.clone();
    let mut r = Recorder {
        raw,
        exchanges: Vec::new(),
    };
    let h_owned = ghl_headers(&pit);
    let h: Vec<(&str, &str)> = h_owned.iter().map(|(k, v)| (*k, v.as_str())).collect();

    // Contacts.
    let created = r
        .exchange("contacts", "create-contact", "POST", "/contacts/", &[], Some(json!({
            "locationId": loc, "firstName": "Ada", "lastName": "Lovelace", "email": "ada@example.com",
            "phone": "+14155550100", "companyName": "Analytical Engines", "tags": ["vip"],
            "customFields": [{"id": "ZtPpXCQ5SVSmrSrpGOq6", "field_value": "gold"}], "source": "conformance"
        })), None, &h, true)
        .await;
    let id = created["contact"]["id"].as_str().unwrap().to_owned();
    r.exchange(
        "contacts",
        "get-contact",
        "GET",
        &format!("/contacts/{id}"),
        &[],
        None,
        None,
        &h,
        true,
    )
    .await;
    r.exchange("contacts", "update-contact", "PUT", &format!("/contacts/{id}"), &[],
        Some(json!({"lastName": "Byron", "dnd": false, "customFields": [{"id": "ZtPpXCQ5SVSmrSrpGOq6", "field_value": "platinum"}]})),
        None, &h, true).await;
    r.exchange(
        "contacts",
        "upsert-contact",
        "POST",
        "/contacts/upsert",
        &[],
        Some(json!({"locationId": loc, "email": "ada@example.com", "city": "London"})),
        None,
        &h,
        true,
    )
    .await;
    r.exchange(
        "contacts",
        "upsert-contact",
        "POST",
        "/contacts/upsert",
        &[],
        Some(json!({"locationId": loc, "email": "alan@example.com", "firstName": "Alan"})),
        None,
        &h,
        true,
    )
    .await;
    r.exchange(
        "contacts",
        "get-contacts",
        "GET",
        "/contacts/",
        &[("locationId", &loc), ("limit", "10")],
        None,
        None,
        &h,
        true,
    )
    .await;
    r.exchange("contacts-2025", "search-contacts-advanced", "POST", "/contacts/search", &[],
        Some(json!({"locationId": loc, "pageLimit": 2, "filters": [{"field": "email", "operator": "contains", "value": "example.com"}],
                    "sort": [{"field": "dateAdded", "direction": "asc"}]})), None, &h, true).await;
    r.exchange(
        "contacts",
        "get-contacts-by-businessId",
        "GET",
        "/contacts/business/641c094001436dbc2081e642",
        &[("locationId", &loc), ("limit", "10"), ("skip", "0")],
        None,
        None,
        &h,
        true,
    )
    .await;

    // Tasks.
    let task = r.exchange("contacts", "create-task", "POST", &format!("/contacts/{id}/tasks"), &[],
        Some(json!({"title": "Kickoff", "body": "Agenda", "dueDate": "2030-01-10T15:00:00Z", "completed": false})),
        None, &h, true).await;
    let task_id = task["task"]["id"].as_str().unwrap().to_owned();
    r.exchange(
        "contacts",
        "get-all-tasks",
        "GET",
        &format!("/contacts/{id}/tasks"),
        &[],
        None,
        None,
        &h,
        true,
    )
    .await;
    r.exchange(
        "contacts",
        "get-task",
        "GET",
        &format!("/contacts/{id}/tasks/{task_id}"),
        &[],
        None,
        None,
        &h,
        true,
    )
    .await;
    r.exchange(
        "contacts",
        "update-task",
        "PUT",
        &format!("/contacts/{id}/tasks/{task_id}"),
        &[],
        Some(json!({"title": "Kickoff call"})),
        None,
        &h,
        true,
    )
    .await;
    r.exchange(
        "contacts",
        "update-task-completed",
        "PUT",
        &format!("/contacts/{id}/tasks/{task_id}/completed"),
        &[],
        Some(json!({"completed": true})),
        None,
        &h,
        true,
    )
    .await;
    r.exchange(
        "locations-tasks",
        "task-search",
        "POST",
        &format!("/locations/{loc}/tasks/search"),
        &[],
        Some(json!({"contactId": [id], "limit": 10, "skip": 0})),
        None,
        &h,
        true,
    )
    .await;
    r.exchange(
        "locations-custom-fields",
        "get-custom-fields",
        "GET",
        &format!("/locations/{loc}/customFields"),
        &[("model", "contact")],
        None,
        None,
        &h,
        true,
    )
    .await;
    r.exchange(
        "contacts",
        "delete-task",
        "DELETE",
        &format!("/contacts/{id}/tasks/{task_id}"),
        &[],
        None,
        None,
        &h,
        true,
    )
    .await;

    // Notes.
    let note = r
        .exchange(
            "contacts",
            "create-note",
            "POST",
            &format!("/contacts/{id}/notes"),
            &[],
            Some(json!({"body": "Met at the summit"})),
            None,
            &h,
            true,
        )
        .await;
    let note_id = note["note"]["id"].as_str().unwrap().to_owned();
    r.exchange(
        "contacts",
        "get-all-notes",
        "GET",
        &format!("/contacts/{id}/notes"),
        &[],
        None,
        None,
        &h,
        true,
    )
    .await;
    r.exchange(
        "contacts",
        "get-note",
        "GET",
        &format!("/contacts/{id}/notes/{note_id}"),
        &[],
        None,
        None,
        &h,
        true,
    )
    .await;
    r.exchange(
        "contacts",
        "update-note",
        "PUT",
        &format!("/contacts/{id}/notes/{note_id}"),
        &[],
        Some(json!({"body": "Met twice"})),
        None,
        &h,
        true,
    )
    .await;
    r.exchange(
        "contacts",
        "delete-note",
        "DELETE",
        &format!("/contacts/{id}/notes/{note_id}"),
        &[],
        None,
        None,
        &h,
        true,
    )
    .await;

    // Appointments of the seeded contact, tags, bulk tags.
    let state = r.raw.admin("GET", "state", None).await;
    let grace = state["contacts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["email"] == "grace@example.com")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    r.exchange(
        "contacts",
        "get-appointments-for-contact",
        "GET",
        &format!("/contacts/{grace}/appointments"),
        &[],
        None,
        None,
        &h,
        true,
    )
    .await;
    r.exchange(
        "contacts",
        "add-tags",
        "POST",
        &format!("/contacts/{id}/tags"),
        &[],
        Some(json!({"tags": ["newsletter"]})),
        None,
        &h,
        true,
    )
    .await;
    r.exchange(
        "contacts",
        "remove-tags",
        "DELETE",
        &format!("/contacts/{id}/tags"),
        &[],
        Some(json!({"tags": ["vip"]})),
        None,
        &h,
        true,
    )
    .await;
    r.exchange("contacts", "create-association", "POST", "/contacts/bulk/tags/update/add", &[],
        Some(json!({"locationId": loc, "contacts": [id, grace, "notafirebaseid"], "tags": ["summit"]})), None, &h, true).await;
    r.exchange(
        "contacts",
        "create-association",
        "POST",
        "/contacts/bulk/tags/update/remove",
        &[],
        Some(json!({"locationId": loc, "contacts": [grace], "tags": ["summit"]})),
        None,
        &h,
        true,
    )
    .await;

    // Errors GHL declares: 400 (no Version), 401 (bad token), 422 (unknown field), 404.
    let no_version = [("Authorization", h[0].1)];
    r.exchange(
        "contacts",
        "get-contact",
        "GET",
        &format!("/contacts/{id}"),
        &[],
        None,
        None,
        &no_version,
        false,
    )
    .await;
    r.exchange(
        "contacts",
        "get-contact",
        "GET",
        &format!("/contacts/{id}"),
        &[],
        None,
        None,
        &[("Authorization", "Bearer wrong"), ("Version", "2021-07-28")],
        true,
    )
    .await;
    r.exchange(
        "contacts",
        "update-contact",
        "PUT",
        &format!("/contacts/{id}"),
        &[],
        Some(json!({"gender": "x"})),
        None,
        &h,
        false,
    )
    .await;
    r.exchange(
        "contacts",
        "get-contact",
        "GET",
        "/contacts/AAAAAAAAAAAAAAAAAAAA",
        &[],
        None,
        None,
        &h,
        true,
    )
    .await;
    r.exchange(
        "contacts",
        "delete-contact",
        "DELETE",
        &format!("/contacts/{id}"),
        &[],
        None,
        None,
        &h,
        true,
    )
    .await;

    // OAuth: code exchange, refresh, and a location token from an agency token.
    let code = r.raw.admin("POST", "oauth/code", Some(json!({}))).await["code"]
        .as_str()
        .unwrap()
        .to_owned();
    let client = [
        ("client_id", "sandbox-client-id"),
        ("client_secret", "sandbox-client-secret"),
    ];
    let mut exchange_form = client.to_vec();
    exchange_form.extend([
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("user_type", "Location"),
    ]);
    let grant = r
        .exchange(
            "oauth",
            "get-access-token",
            "POST",
            "/oauth/token",
            &[],
            None,
            Some(&exchange_form),
            &[],
            true,
        )
        .await;
    let refresh = grant["refresh_token"].as_str().unwrap().to_owned();
    let mut refresh_form = client.to_vec();
    refresh_form.extend([
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh.as_str()),
    ]);
    r.exchange(
        "oauth",
        "get-access-token",
        "POST",
        "/oauth/token",
        &[],
        None,
        Some(&refresh_form),
        &[],
        true,
    )
    .await;
    r.exchange(
        "oauth",
        "get-access-token",
        "POST",
        "/oauth/token",
        &[],
        None,
        Some(&refresh_form),
        &[],
        true,
    )
    .await;
    let company_code = r
        .raw
        .admin("POST", "oauth/code", Some(json!({"userType": "Company"})))
        .await["code"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut company_form = client.to_vec();
    company_form.extend([
        ("grant_type", "authorization_code"),
        ("code", company_code.as_str()),
        ("user_type", "Company"),
    ]);
    let agency = r
        .exchange(
            "oauth",
            "get-access-token",
            "POST",
            "/oauth/token",
            &[],
            None,
            Some(&company_form),
            &[],
            true,
        )
        .await;
    let agency_auth = format!("Bearer {}", agency["access_token"].as_str().unwrap());
    r.exchange(
        "oauth",
        "get-location-access-token",
        "POST",
        "/oauth/locationToken",
        &[],
        None,
        Some(&[("companyId", "sandboxCompany000001"), ("locationId", &loc)]),
        &[("Authorization", &agency_auth), ("Version", "2021-07-28")],
        true,
    )
    .await;

    let stats = r.raw.admin("GET", "stats", None).await;
    let served: BTreeSet<&str> = stats["byOperation"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let missing: Vec<&&str> = ALL_OPERATIONS
        .iter()
        .filter(|op| !served.contains(**op))
        .collect();
    assert!(missing.is_empty(), "operations not exercised: {missing:?}");

    // A 429 from a sandbox with a tiny limit.
    let limited = start(SandboxConfig {
        rate_limit: RateLimit {
            requests: 1,
            window: Duration::from_secs(60),
        },
        ..SandboxConfig::default()
    })
    .await;
    let mut lr = Recorder {
        raw: Raw::new(&limited),
        exchanges: Vec::new(),
    };
    for _ in 0..2 {
        lr.exchange(
            "contacts",
            "get-contacts",
            "GET",
            "/contacts/",
            &[("locationId", &loc)],
            None,
            None,
            &h,
            true,
        )
        .await;
    }
    assert_eq!(lr.exchanges[1]["status"], 429);
    r.exchanges.extend(lr.exchanges);

    let statuses: BTreeSet<u64> = r
        .exchanges
        .iter()
        .map(|e| e["status"].as_u64().unwrap())
        .collect();
    for expected in [200, 201, 400, 401, 404, 422, 429] {
        assert!(
            statuses.contains(&expected),
            "no {expected} exchange recorded: {statuses:?}"
        );
    }
    validate(&r.exchanges);
}

fn validate(exchanges: &[Value]) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("exchanges.json");
    std::fs::write(&file, serde_json::to_vec_pretty(exchanges).unwrap()).unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let output = std::process::Command::new("python3")
        .arg(root.join("tests/conformance/validate_exchanges.py"))
        .arg(root.join("tests/fixtures/ghl/openapi"))
        .arg(&file)
        .output()
        .expect("python3 runs (scripts/install-test-deps.sh installs openapi-core)");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    println!("{report}");
    assert!(output.status.success(), "spec validation failed:\n{report}");
}

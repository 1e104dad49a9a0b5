//! Every GHL endpoint the product needs: the request the client sends (method, path, query,
//! headers, body) and how it reads the answer.

use crate::support::mock_ghl::{LOCATION, assert_ghl_headers, exchange, query};
use ghl_operator::ghl::GhlApi;
use ghl_operator::ghl::models::*;
use serde_json::json;

fn contact_json(id: &str) -> serde_json::Value {
    json!({"id": id, "locationId": LOCATION, "email": "ada@example.com", "tags": ["vip"],
           "customFields": [{"id": "ZtPpXCQ5SVSmrSrpGOq6", "value": "gold"}], "dateAdded": "2021-07-02T05:18:26.704Z"})
}

#[tokio::test]
async fn get_contact() {
    let (result, req) = exchange(200, json!({"contact": contact_json("c1")}), async |c| {
        c.get_contact("c1").await
    })
    .await;
    let contact = result.unwrap();
    assert_eq!(contact.id, "c1");
    assert_eq!(contact.custom_fields[0].value, json!("gold"));
    assert_eq!(req.method.as_str(), "GET");
    assert_eq!(req.url.path(), "/contacts/c1");
    assert!(req.body.is_empty());
    assert_ghl_headers(&req);
}

#[tokio::test]
async fn ids_are_percent_encoded_in_paths() {
    let (_, req) = exchange(200, json!({"contact": contact_json("a/b")}), async |c| {
        c.get_contact("a/b c").await
    })
    .await;
    assert_eq!(req.url.path(), "/contacts/a%2Fb%20c");
}

#[tokio::test]
async fn create_contact_adds_the_location() {
    let body = CreateContact {
        fields: UpdateContact {
            email: Some("ada@example.com".into()),
            first_name: Some("Ada".into()),
            custom_fields: vec![CustomFieldInput {
                id: "ZtPpXCQ5SVSmrSrpGOq6".into(),
                field_value: json!("gold"),
            }],
            ..UpdateContact::default()
        },
        tags: vec!["vip".into()],
        ..CreateContact::default()
    };
    let (result, req) = exchange(201, json!({"contact": contact_json("new1")}), async |c| {
        c.create_contact(&body).await
    })
    .await;
    assert_eq!(result.unwrap().id, "new1");
    assert_eq!(req.method.as_str(), "POST");
    assert_eq!(req.url.path(), "/contacts/");
    assert_ghl_headers(&req);
    assert_eq!(
        req.body_json::<serde_json::Value>().unwrap(),
        json!({"locationId": LOCATION, "email": "ada@example.com", "firstName": "Ada", "tags": ["vip"],
               "customFields": [{"id": "ZtPpXCQ5SVSmrSrpGOq6", "field_value": "gold"}]})
    );
}

#[tokio::test]
async fn update_contact_sends_only_the_given_fields() {
    let body = UpdateContact {
        last_name: Some("Byron".into()),
        ..UpdateContact::default()
    };
    let (result, req) = exchange(
        200,
        json!({"succeded": true, "contact": contact_json("c1")}),
        async |c| c.update_contact("c1", &body).await,
    )
    .await;
    assert_eq!(result.unwrap().id, "c1");
    assert_eq!(req.method.as_str(), "PUT");
    assert_eq!(req.url.path(), "/contacts/c1");
    assert_eq!(
        req.body_json::<serde_json::Value>().unwrap(),
        json!({"lastName": "Byron"})
    );
}

#[tokio::test]
async fn delete_contact() {
    let (result, req) = exchange(200, json!({"succeded": true}), async |c| {
        c.delete_contact("c1").await
    })
    .await;
    result.unwrap();
    assert_eq!(req.method.as_str(), "DELETE");
    assert_eq!(req.url.path(), "/contacts/c1");
    assert_ghl_headers(&req);
}

#[tokio::test]
async fn upsert_contact() {
    let body = UpsertContact {
        contact: CreateContact {
            fields: UpdateContact {
                email: Some("ada@example.com".into()),
                ..UpdateContact::default()
            },
            ..CreateContact::default()
        },
        create_new_if_duplicate_allowed: Some(false),
    };
    let (result, req) = exchange(
        200,
        json!({"new": false, "contact": contact_json("c1"), "traceId": "t-1"}),
        async |c| c.upsert_contact(&body).await,
    )
    .await;
    let outcome = result.unwrap();
    assert!(!outcome.new);
    assert_eq!(outcome.contact.id, "c1");
    assert_eq!(req.url.path(), "/contacts/upsert");
    assert_eq!(
        req.body_json::<serde_json::Value>().unwrap(),
        json!({"locationId": LOCATION, "email": "ada@example.com", "createNewIfDuplicateAllowed": false})
    );
}

#[tokio::test]
async fn list_contacts_sends_location_limit_and_cursor() {
    let page = ListContactsQuery {
        limit: Some(100),
        start_after_id: Some("c9".into()),
        start_after: Some(1_631_087_949_919),
        query: None,
    };
    let (result, req) = exchange(
        200,
        json!({"contacts": [contact_json("c10")], "count": 1, "meta": {"total": 1, "startAfterId": "c10", "startAfter": 1631087949920u64}}),
        async |c| c.list_contacts(&page).await,
    )
    .await;
    let list = result.unwrap();
    assert_eq!(list.contacts[0].id, "c10");
    assert_eq!(list.meta.unwrap().start_after_id.as_deref(), Some("c10"));
    assert_eq!(req.method.as_str(), "GET");
    assert_eq!(req.url.path(), "/contacts/");
    assert_eq!(
        query(&req),
        [
            ("limit".into(), "100".into()),
            ("locationId".into(), LOCATION.into()),
            ("startAfter".into(), "1631087949919".into()),
            ("startAfterId".into(), "c9".into()),
        ]
    );
}

#[tokio::test]
async fn search_contacts_body() {
    let search = ContactSearch {
        page_limit: 500,
        search_after: vec![json!(1234), json!("c1")],
        filters: vec![SearchFilter::condition(
            "email",
            FilterOperator::Contains,
            Some(json!("@bigcorp.com")),
        )],
        sort: vec![SearchSort {
            field: "dateAdded".into(),
            direction: SortDirection::Asc,
        }],
        ..ContactSearch::default()
    };
    let mut found = contact_json("c2");
    found["searchAfter"] = json!([1235, "c2"]);
    let (result, req) = exchange(200, json!({"contacts": [found], "total": 1}), async |c| {
        c.search_contacts(&search).await
    })
    .await;
    let page = result.unwrap();
    assert_eq!(page.total, Some(1));
    assert_eq!(page.contacts[0].search_after, [json!(1235), json!("c2")]);
    assert_eq!(req.method.as_str(), "POST");
    assert_eq!(req.url.path(), "/contacts/search");
    assert_eq!(
        req.body_json::<serde_json::Value>().unwrap(),
        json!({"locationId": LOCATION, "pageLimit": 500, "searchAfter": [1234, "c1"],
               "filters": [{"field": "email", "operator": "contains", "value": "@bigcorp.com"}],
               "sort": [{"field": "dateAdded", "direction": "asc"}]})
    );
}

fn task_json(id: &str) -> serde_json::Value {
    json!({"id": id, "title": "Kickoff", "body": "Agenda", "dueDate": "2030-01-10T15:00:00.000Z", "completed": false, "contactId": "c1"})
}

#[tokio::test]
async fn task_endpoints() {
    let (r, req) = exchange(200, json!({"tasks": [task_json("t1")]}), async |c| {
        c.list_tasks("c1").await
    })
    .await;
    assert_eq!(r.unwrap()[0].id, "t1");
    assert_eq!(
        (req.method.as_str(), req.url.path()),
        ("GET", "/contacts/c1/tasks")
    );

    let (r, req) = exchange(200, json!({"task": task_json("t1")}), async |c| {
        c.get_task("c1", "t1").await
    })
    .await;
    assert_eq!(r.unwrap().title.as_deref(), Some("Kickoff"));
    assert_eq!(
        (req.method.as_str(), req.url.path()),
        ("GET", "/contacts/c1/tasks/t1")
    );

    let create = CreateTask {
        title: "Kickoff".into(),
        body: None,
        due_date: "2030-01-10T15:00:00Z".into(),
        completed: false,
        assigned_to: None,
    };
    let (r, req) = exchange(201, json!({"task": task_json("t2")}), async |c| {
        c.create_task("c1", &create).await
    })
    .await;
    assert_eq!(r.unwrap().id, "t2");
    assert_eq!(
        (req.method.as_str(), req.url.path()),
        ("POST", "/contacts/c1/tasks")
    );
    assert_eq!(
        req.body_json::<serde_json::Value>().unwrap(),
        json!({"title": "Kickoff", "dueDate": "2030-01-10T15:00:00Z", "completed": false})
    );
    assert_ghl_headers(&req);

    let update = UpdateTask {
        body: Some("New agenda".into()),
        ..UpdateTask::default()
    };
    let (r, req) = exchange(200, json!({"task": task_json("t2")}), async |c| {
        c.update_task("c1", "t2", &update).await
    })
    .await;
    r.unwrap();
    assert_eq!(
        (req.method.as_str(), req.url.path()),
        ("PUT", "/contacts/c1/tasks/t2")
    );
    assert_eq!(
        req.body_json::<serde_json::Value>().unwrap(),
        json!({"body": "New agenda"})
    );

    let (r, req) = exchange(200, json!({"task": task_json("t2")}), async |c| {
        c.complete_task("c1", "t2", true).await
    })
    .await;
    r.unwrap();
    assert_eq!(
        (req.method.as_str(), req.url.path()),
        ("PUT", "/contacts/c1/tasks/t2/completed")
    );
    assert_eq!(
        req.body_json::<serde_json::Value>().unwrap(),
        json!({"completed": true})
    );

    let (r, req) = exchange(200, json!({"succeded": true}), async |c| {
        c.delete_task("c1", "t2").await
    })
    .await;
    r.unwrap();
    assert_eq!(
        (req.method.as_str(), req.url.path()),
        ("DELETE", "/contacts/c1/tasks/t2")
    );
}

#[tokio::test]
async fn location_task_search() {
    let search = TaskSearch {
        contact_ids: vec!["c1".into(), "c2".into()],
        completed: Some(false),
        limit: 100,
        skip: 200,
        ..TaskSearch::default()
    };
    let (r, req) = exchange(200, json!({"tasks": [task_json("t1")]}), async |c| {
        c.search_location_tasks(&search).await
    })
    .await;
    assert_eq!(r.unwrap().len(), 1);
    assert_eq!(req.method.as_str(), "POST");
    assert_eq!(
        req.url.path(),
        format!("/locations/{LOCATION}/tasks/search")
    );
    assert_eq!(
        req.body_json::<serde_json::Value>().unwrap(),
        json!({"contactId": ["c1", "c2"], "completed": false, "limit": 100, "skip": 200})
    );
    assert_ghl_headers(&req);
}

fn note_json(id: &str) -> serde_json::Value {
    json!({"id": id, "body": "Met at the summit", "contactId": "c1", "dateAdded": "2021-07-08T12:02:11.285Z"})
}

#[tokio::test]
async fn note_endpoints() {
    let (r, req) = exchange(200, json!({"notes": [note_json("n1")]}), async |c| {
        c.list_notes("c1").await
    })
    .await;
    assert_eq!(r.unwrap()[0].body, "Met at the summit");
    assert_eq!(
        (req.method.as_str(), req.url.path()),
        ("GET", "/contacts/c1/notes")
    );

    let (r, req) = exchange(200, json!({"note": note_json("n1")}), async |c| {
        c.get_note("c1", "n1").await
    })
    .await;
    r.unwrap();
    assert_eq!(
        (req.method.as_str(), req.url.path()),
        ("GET", "/contacts/c1/notes/n1")
    );

    let create = CreateNote {
        body: "Met at the summit".into(),
        ..CreateNote::default()
    };
    let (r, req) = exchange(201, json!({"note": note_json("n2")}), async |c| {
        c.create_note("c1", &create).await
    })
    .await;
    assert_eq!(r.unwrap().id, "n2");
    assert_eq!(
        (req.method.as_str(), req.url.path()),
        ("POST", "/contacts/c1/notes")
    );
    assert_eq!(
        req.body_json::<serde_json::Value>().unwrap(),
        json!({"body": "Met at the summit"})
    );

    let update = UpdateNote {
        body: Some("Met twice".into()),
        ..UpdateNote::default()
    };
    let (r, req) = exchange(200, json!({"note": note_json("n2")}), async |c| {
        c.update_note("c1", "n2", &update).await
    })
    .await;
    r.unwrap();
    assert_eq!(
        (req.method.as_str(), req.url.path()),
        ("PUT", "/contacts/c1/notes/n2")
    );
    assert_eq!(
        req.body_json::<serde_json::Value>().unwrap(),
        json!({"body": "Met twice"})
    );

    let (r, req) = exchange(200, json!({"succeded": true}), async |c| {
        c.delete_note("c1", "n2").await
    })
    .await;
    r.unwrap();
    assert_eq!(
        (req.method.as_str(), req.url.path()),
        ("DELETE", "/contacts/c1/notes/n2")
    );
}

#[tokio::test]
async fn appointments() {
    let (r, req) = exchange(
        200,
        json!({"events": [{"id": "e1", "calendarId": "cal", "startTime": "2021-07-16 11:00:00", "appointmentStatus": "booked"}]}),
        async |c| c.list_appointments("c1").await,
    )
    .await;
    let events = r.unwrap();
    assert_eq!(events[0].appointment_status.as_deref(), Some("booked"));
    assert_eq!(
        (req.method.as_str(), req.url.path()),
        ("GET", "/contacts/c1/appointments")
    );
    assert_ghl_headers(&req);
}

#[tokio::test]
async fn tag_endpoints() {
    let tags = vec!["vip".to_owned(), "newsletter".to_owned()];
    let (r, req) = exchange(
        201,
        json!({"tags": ["vip", "newsletter", "old"]}),
        async |c| c.add_tags("c1", &tags).await,
    )
    .await;
    assert_eq!(r.unwrap().len(), 3);
    assert_eq!(
        (req.method.as_str(), req.url.path()),
        ("POST", "/contacts/c1/tags")
    );
    assert_eq!(
        req.body_json::<serde_json::Value>().unwrap(),
        json!({"tags": ["vip", "newsletter"]})
    );

    let (r, req) = exchange(200, json!({"tags": ["old"]}), async |c| {
        c.remove_tags("c1", &tags).await
    })
    .await;
    assert_eq!(r.unwrap(), ["old"]);
    assert_eq!(
        (req.method.as_str(), req.url.path()),
        ("DELETE", "/contacts/c1/tags")
    );
    assert_eq!(
        req.body_json::<serde_json::Value>().unwrap(),
        json!({"tags": ["vip", "newsletter"]})
    );
    assert_ghl_headers(&req);
}

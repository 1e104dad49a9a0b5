//! The GHL models against the official OpenAPI specs: the specs' own examples deserialize into
//! our response types, every field our types name is declared by the spec (no guessed names),
//! and the request bodies we send validate against the declared request schemas.

use std::collections::BTreeSet;

use crate::support::spec::{Spec, model_property_names, validator};
use ghl_operator::ghl::error::error_message;
use ghl_operator::ghl::models::*;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

fn contacts() -> Spec {
    Spec::load("contacts.json")
}

/// Deserializes the example of `operation`'s `status` response into `T`.
fn example_into<T: DeserializeOwned>(spec: &Spec, operation: &str, status: &str) -> (T, Value) {
    let schema = spec.response_schema(operation, status);
    let example = spec.example(&schema);
    let value = serde_json::from_value(example.clone()).unwrap_or_else(|e| {
        panic!("{operation} {status} example does not fit our type: {e}\n{example:#}")
    });
    (value, example)
}

#[test]
fn contact_responses_deserialize_from_the_spec_examples() {
    let spec = contacts();
    let (got, example): (ContactEnvelope, _) = example_into(&spec, "get-contact", "200");
    assert_eq!(got.contact.id, example["contact"]["id"]);
    assert_eq!(
        got.contact.email.as_deref(),
        example["contact"]["email"].as_str()
    );
    assert_eq!(
        got.contact.tags.len(),
        example["contact"]["tags"].as_array().unwrap().len()
    );
    assert_eq!(got.contact.custom_fields.len(), 1);

    let (created, example): (ContactEnvelope, _) = example_into(&spec, "create-contact", "201");
    assert_eq!(created.contact.id, example["contact"]["id"]);
    assert_eq!(
        created.contact.company_name.as_deref(),
        example["contact"]["companyName"].as_str()
    );

    let (updated, _): (UpdatedContactEnvelope, _) = example_into(&spec, "update-contact", "200");
    assert!(updated.succeded);

    let (upserted, example): (UpsertOutcome, _) = example_into(&spec, "upsert-contact", "200");
    assert_eq!(upserted.new, example["new"].as_bool().unwrap());

    let (deleted, _): (DeleteAck, _) = example_into(&spec, "delete-contact", "200");
    assert!(deleted.succeded);

    let (list, _): (ContactList, _) = example_into(&spec, "get-contacts", "200");
    assert_eq!(list.contacts.len(), 1);
    assert_eq!(list.count, Some(10));

    let (by_business, _): (ContactList, _) =
        example_into(&spec, "get-contacts-by-businessId", "200");
    assert_eq!(by_business.contacts.len(), 1);
}

#[test]
fn search_response_deserializes_from_the_2025_spec_revision() {
    // The current spec dropped the search response schema; the 2025-08-26 revision declares it.
    let spec = Spec::load("contacts.2025-08-26.de87e88a.json");
    let (page, example): (SearchContactsResponse, _) =
        example_into(&spec, "search-contacts-advanced", "200");
    assert_eq!(page.total, Some(120));
    let contact = &page.contacts[0];
    assert_eq!(contact.id, example["contacts"][0]["id"]);
    assert!(
        !contact.search_after.is_empty(),
        "the cursor must survive decoding"
    );
}

#[test]
fn task_note_appointment_and_tag_responses_deserialize() {
    let spec = contacts();
    let (tasks, _): (TaskList, _) = example_into(&spec, "get-all-tasks", "200");
    assert_eq!(
        tasks.tasks[0].due_date.as_deref(),
        Some("2021-07-08T02:30:00.000Z")
    );
    for (op, status) in [
        ("get-task", "200"),
        ("create-task", "201"),
        ("update-task", "200"),
        ("update-task-completed", "200"),
    ] {
        let (task, _): (TaskEnvelope, _) = example_into(&spec, op, status);
        assert!(!task.task.id.is_empty(), "{op}");
    }
    let (_, _): (DeleteAck, _) = example_into(&spec, "delete-task", "200");

    let (notes, _): (NoteList, _) = example_into(&spec, "get-all-notes", "200");
    assert_eq!(notes.notes[0].body, "lorem ipsum");
    for (op, status) in [
        ("get-note", "200"),
        ("create-note", "201"),
        ("update-note", "200"),
    ] {
        let (note, _): (NoteEnvelope, _) = example_into(&spec, op, status);
        assert!(!note.note.id.is_empty(), "{op}");
    }
    let (_, _): (DeleteAck, _) = example_into(&spec, "delete-note", "200");

    let (events, _): (AppointmentList, _) =
        example_into(&spec, "get-appointments-for-contact", "200");
    assert_eq!(
        events.events[0].start_time.as_deref(),
        Some("2021-07-16 11:00:00")
    );

    let (added, _): (TagsBody, _) = example_into(&spec, "add-tags", "201");
    assert_eq!(added.tags.len(), 2);
    let (_, _): (TagsBody, _) = example_into(&spec, "remove-tags", "200");
}

#[test]
fn oauth_responses_deserialize_from_the_spec_examples() {
    let spec = Spec::load("oauth.json");
    let (grant, _): (TokenGrant, _) = example_into(&spec, "get-access-token", "200");
    assert_eq!(grant.tokens.expires_in, Some(86399));
    assert_eq!(
        grant.tokens.scopes(),
        [
            "conversations/message.readonly",
            "conversations/message.write"
        ]
    );
    assert!(grant.tokens.refresh_token.is_some());
    let (location, _): (LocationTokenGrant, _) =
        example_into(&spec, "get-location-access-token", "200");
    assert_eq!(
        location.location_id.as_deref(),
        Some("l1C08ntBrFjLS0elLIYU")
    );
    let (installed, _): (InstalledLocations, _) =
        example_into(&spec, "get-installed-location", "200");
    assert!(!installed.locations.is_empty());
    assert!(!installed.locations[0].id.is_empty());
}

#[test]
fn error_bodies_from_the_common_schemas_parse() {
    let spec = contacts();
    let bad_request = spec
        .example(&spec.resolve("../common/common-schemas.json#/components/schemas/BadRequestDTO"));
    assert_eq!(
        error_message(400, bad_request.to_string().as_bytes()),
        "Bad Request"
    );
    let unprocessable = spec.example(
        &spec.resolve("../common/common-schemas.json#/components/schemas/UnprocessableDTO"),
    );
    assert_eq!(
        error_message(422, unprocessable.to_string().as_bytes()),
        "Unprocessable Entity"
    );
    let unauthorized = spec.example(
        &spec.resolve("../common/common-schemas.json#/components/schemas/UnauthorizedDTO"),
    );
    assert_eq!(
        error_message(401, unauthorized.to_string().as_bytes()),
        "Invalid token: access token is invalid"
    );
}

/// Names our type declares that none of the given spec schemas declare.
fn undeclared<T: schemars::JsonSchema>(spec_names: &[BTreeSet<String>]) -> BTreeSet<String> {
    let declared: BTreeSet<String> = spec_names.iter().flatten().cloned().collect();
    model_property_names::<T>()
        .difference(&declared)
        .cloned()
        .collect()
}

#[test]
fn every_field_our_models_name_is_declared_by_the_spec() {
    let spec = contacts();
    let old = Spec::load("contacts.2025-08-26.de87e88a.json");
    let names = |s: &Spec, schema: &str| s.property_names(&s.schema(schema));

    let contact_schemas = [
        names(&spec, "GetContectByIdSchema"),
        names(&spec, "CreateContactSchema"),
        names(&spec, "ContactsSearchSchema"),
        names(&old, "Contact"),
    ];
    assert_eq!(undeclared::<Contact>(&contact_schemas), BTreeSet::new());
    assert_eq!(
        undeclared::<CustomFieldValue>(&[names(&spec, "CustomFieldSchema")]),
        BTreeSet::new()
    );
    assert_eq!(
        undeclared::<DndSettings>(&[names(&spec, "DndSettingsSchema")]),
        BTreeSet::new()
    );
    assert_eq!(
        undeclared::<DndSetting>(&[names(&spec, "DndSettingSchema")]),
        BTreeSet::new()
    );
    assert_eq!(
        undeclared::<Task>(&[names(&spec, "TaskSchema")]),
        BTreeSet::new()
    );
    assert_eq!(
        undeclared::<Note>(&[names(&spec, "GetNoteSchema")]),
        BTreeSet::new()
    );
    assert_eq!(
        undeclared::<Appointment>(&[names(&spec, "GetEventSchema")]),
        BTreeSet::new()
    );
    assert_eq!(
        undeclared::<ContactsMeta>(&[names(&spec, "ContactsMetaSchema")]),
        BTreeSet::new()
    );
    assert_eq!(
        undeclared::<UpsertOutcome>(&[names(&spec, "UpsertContactsSuccessfulResponseDto")]),
        BTreeSet::new()
    );
    assert_eq!(
        undeclared::<SearchContactsResponse>(&[names(&old, "SearchContactSuccessResponseDto")]),
        BTreeSet::new()
    );

    // Requests: GHL answers undeclared fields with 422, so these must be exact subsets.
    let create = names(&spec, "CreateContactDto");
    assert_eq!(
        undeclared::<CreateContact>(std::slice::from_ref(&create)),
        BTreeSet::new()
    );
    let mut upsert = names(&spec, "UpsertContactDto");
    upsert.remove("locationId");
    assert_eq!(undeclared::<UpsertContact>(&[upsert]), BTreeSet::new());
    let update = names(&spec, "UpdateContactDto");
    assert_eq!(
        undeclared::<UpdateContact>(std::slice::from_ref(&update)),
        BTreeSet::new()
    );
    assert!(!update.contains("companyName") && !update.contains("locationId"));
    assert_eq!(
        undeclared::<CustomFieldInput>(&[names(&spec, "customFieldsInputStringSchema")]),
        BTreeSet::new()
    );
    assert_eq!(
        undeclared::<CreateTask>(&[names(&spec, "CreateTaskParams")]),
        BTreeSet::new()
    );
    assert_eq!(
        undeclared::<UpdateTask>(&[names(&spec, "UpdateTaskBody")]),
        BTreeSet::new()
    );
    assert_eq!(
        undeclared::<CompleteTask>(&[names(&spec, "UpdateTaskStatusParams")]),
        BTreeSet::new()
    );
    assert_eq!(
        undeclared::<CreateNote>(&[names(&spec, "NotesDTO")]),
        BTreeSet::new()
    );
    assert_eq!(
        undeclared::<UpdateNote>(&[names(&spec, "UpdateNoteDTO")]),
        BTreeSet::new()
    );
    assert_eq!(
        undeclared::<TagsBody>(&[names(&spec, "TagsDTO")]),
        BTreeSet::new()
    );

    let oauth = Spec::load("oauth.json");
    let oauth_names = |schema: &str| oauth.property_names(&oauth.schema(schema));
    assert_eq!(
        undeclared::<TokenGrant>(&[oauth_names("GetAccessCodeSuccessfulResponseDto")]),
        BTreeSet::new()
    );
    assert_eq!(
        undeclared::<TokenRequest<'static>>(&[oauth_names("GetAccessCodebodyDto")]),
        BTreeSet::new()
    );
    // refresh_token on location tokens was added by GHL in 2026 (API-FACTS §2.2); the v2 spec lags.
    let mut location = oauth_names("GetLocationAccessTokenSuccessfulResponseDto");
    location.insert("refresh_token".into());
    assert_eq!(
        undeclared::<LocationTokenGrant>(&[location]),
        BTreeSet::new()
    );
    assert_eq!(
        undeclared::<LocationTokenRequest<'static>>(&[oauth_names("GetLocationAccessCodeBodyDto")]),
        BTreeSet::new()
    );
    assert_eq!(
        undeclared::<InstalledLocations>(&[oauth_names(
            "GetInstalledLocationsSuccessfulResponseDto"
        )]),
        BTreeSet::new()
    );
    assert_eq!(
        undeclared::<InstalledLocation>(&[oauth_names("InstalledLocationSchema")]),
        BTreeSet::new()
    );
}

#[test]
fn request_bodies_we_send_validate_against_the_spec() {
    let spec = contacts();
    let full_create = CreateContact {
        fields: UpdateContact {
            first_name: Some("Ada".into()),
            last_name: Some("Lovelace".into()),
            name: Some("Ada Lovelace".into()),
            email: Some("ada@example.com".into()),
            phone: Some("+14155550100".into()),
            address1: Some("1 Engine Way".into()),
            city: Some("London".into()),
            state: Some("LDN".into()),
            postal_code: Some("N1".into()),
            website: Some("https://example.com".into()),
            timezone: Some("Europe/London".into()),
            dnd: Some(false),
            custom_fields: vec![CustomFieldInput {
                id: "ZtPpXCQ5SVSmrSrpGOq6".into(),
                field_value: json!("gold"),
            }],
            source: Some("ghl-operator".into()),
            date_of_birth: Some("1815-12-10".into()),
            country: Some("GB".into()),
            assigned_to: Some("y0BeYjuRIlDwsDcOHOJo".into()),
        },
        tags: vec!["vip".into()],
        company_name: Some("Analytical Engines".into()),
    };
    let mut body = serde_json::to_value(&full_create).unwrap();
    body["locationId"] = json!("ve9EPM428h8vShlRW1KT");
    // Spec defect: `dateOfBirth` and numeric custom field values are typed `object` while
    // their examples (and what GHL accepts) are strings and numbers.
    let spec = spec.with_example_types_fixed();
    let check = |operation: &str, body: &Value| {
        let schema = spec.request_schema(operation);
        let v = validator(&spec, &schema);
        let errors: Vec<String> = v.iter_errors(body).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{operation}: {errors:?}\n{body:#}");
    };
    check("create-contact", &body);
    check("upsert-contact", &body);

    let update = UpdateContact {
        first_name: Some("Ada".into()),
        email: Some("ada@example.com".into()),
        dnd: Some(true),
        custom_fields: vec![CustomFieldInput {
            id: "ZtPpXCQ5SVSmrSrpGOq6".into(),
            field_value: json!(42),
        }],
        ..UpdateContact::default()
    };
    check("update-contact", &serde_json::to_value(&update).unwrap());

    let task = CreateTask {
        title: "Kickoff".into(),
        body: Some("Agenda".into()),
        due_date: "2030-01-10T15:00:00Z".into(),
        completed: false,
        assigned_to: None,
    };
    check("create-task", &serde_json::to_value(&task).unwrap());
    check(
        "update-task",
        &serde_json::to_value(UpdateTask {
            title: Some("New".into()),
            completed: Some(true),
            ..UpdateTask::default()
        })
        .unwrap(),
    );
    check(
        "update-task-completed",
        &serde_json::to_value(CompleteTask { completed: true }).unwrap(),
    );
    check(
        "create-note",
        &serde_json::to_value(CreateNote {
            body: "Met at the summit".into(),
            ..CreateNote::default()
        })
        .unwrap(),
    );
    check(
        "add-tags",
        &serde_json::to_value(TagsBody {
            tags: vec!["vip".into()],
        })
        .unwrap(),
    );

    // A body the spec refuses really is refused (the check can fail).
    let schema = spec.request_schema("create-task");
    assert!(!validator(&spec, &schema).is_valid(&json!({"title": "no due date"})));
}

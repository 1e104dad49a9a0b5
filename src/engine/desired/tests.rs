use serde_json::json;

use super::*;

fn spec(value: serde_json::Value) -> ContactSyncPolicySpec {
    let mut base = json!({"connectionRef": {"name": "acme"}});
    base.as_object_mut()
        .unwrap()
        .extend(value.as_object().unwrap().clone());
    serde_json::from_value(base).unwrap()
}

#[test]
fn valid_records_are_normalized() {
    let s = spec(json!({"contacts": [{
        "email": " Ada@Example.com", "phone": "+1 415 555 0100", "tags": ["VIP", "vip", "News"],
        "tasks": [{"key": "k", "title": "Call", "dueDate": "2030-01-10T15:00:00Z"}],
        "notes": [{"key": "n", "body": "Hi"}], "customFields": {"f": 3}
    }]}));
    let d = build(&s, &[]).unwrap();
    assert!(d.failures.is_empty(), "{:?}", d.failures);
    let c = &d.contacts[0];
    assert_eq!(c.key, "ada@example.com");
    assert_eq!(
        c.tags,
        ["vip".to_owned(), "news".to_owned()]
            .into_iter()
            .collect::<TagSet>()
    );
    assert_eq!(
        c.tasks[0].due,
        "2030-01-10T15:00:00Z".parse::<Timestamp>().unwrap()
    );
    assert_eq!(c.source, "contacts[0]");
}

/// (record, expected failing field, expected reason)
#[test]
fn bad_records_are_located_and_skipped() {
    let cases = [
        (json!({"email": "nope"}), "email", "InvalidEmail"),
        (json!({"firstName": "No key"}), "email", "MissingMatchKey"),
        (
            json!({"email": "a@b.co", "phone": "555"}),
            "phone",
            "InvalidPhone",
        ),
        (
            json!({"email": "a@b.co", "country": "USA"}),
            "country",
            "InvalidCountry",
        ),
        (
            json!({"email": "a@b.co", "dateOfBirth": "10/12/1815"}),
            "dateOfBirth",
            "InvalidDate",
        ),
        (
            json!({"email": "a@b.co", "customFields": {"f": {"x": 1}}}),
            "customFields.f",
            "InvalidCustomField",
        ),
        (
            json!({"email": "a@b.co", "tasks": [{"key": "k", "title": "T", "dueDate": "soon"}]}),
            "tasks[0].dueDate",
            "InvalidDate",
        ),
        (
            json!({"email": "a@b.co", "tasks": [{"key": "k", "title": "T", "dueDate": "2030-01-01T00:00:00Z"},
                                             {"key": "k", "title": "U", "dueDate": "2030-01-01T00:00:00Z"}]}),
            "tasks[1].key",
            "DuplicateKey",
        ),
        (
            json!({"email": "a@b.co", "notes": [{"key": "n", "body": " "}]}),
            "notes[0].body",
            "MissingBody",
        ),
        (
            json!({"email": "a@b.co", "tags": [" "]}),
            "tags",
            "InvalidTag",
        ),
    ];
    for (record, field, reason) in cases {
        let s = spec(json!({"contacts": [record.clone(), {"email": "good@b.co"}]}));
        let d = build(&s, &[]).unwrap();
        assert_eq!(
            d.contacts.len(),
            1,
            "{record}: the good record still applies"
        );
        let failure = &d.failures[0];
        assert_eq!(failure.record, "contacts[0]", "{record}");
        assert_eq!(failure.field.as_deref(), Some(field), "{record}");
        assert_eq!(failure.reason, reason, "{record}");
        assert!(!failure.message.contains("a@b.co"), "no values in messages");
    }
}

#[test]
fn duplicates_name_the_first_declaration() {
    let s = spec(json!({"contacts": [{"email": "a@b.co"}, {"email": "A@B.CO"}]}));
    let d = build(&s, &[]).unwrap();
    assert_eq!(d.contacts.len(), 1);
    assert_eq!(d.failures[0].record, "contacts[1]");
    assert!(d.failures[0].message.contains("contacts[0]"));
}

#[test]
fn sources_are_read_and_their_problems_reported() {
    let s = spec(json!({"contactsFrom": [
        {"configMapRef": {"name": "a", "key": "c.csv"}},
        {"configMapRef": {"name": "b", "key": "gone.csv"}},
        {"configMapRef": {"name": "c", "key": "data"}}]}));
    let sources = [
        SourceText {
            key: "c.csv".into(),
            text: Ok("email,tags\na@b.co,x;y\nbad,z\n".into()),
            sensitive: false,
        },
        SourceText {
            key: "gone.csv".into(),
            text: Err(crate::refs::RefError::Missing {
                kind: "ConfigMap",
                name: "b".into(),
            }),
            sensitive: false,
        },
        SourceText {
            key: "data".into(),
            text: Ok("[]".into()),
            sensitive: false,
        },
    ];
    let d = build(&s, &sources).unwrap();
    assert_eq!(d.contacts.len(), 1);
    assert_eq!(d.contacts[0].source, "contactsFrom[0][0]");
    let reasons: Vec<(&str, &str)> = d
        .failures
        .iter()
        .map(|f| (f.record.as_str(), f.reason.as_str()))
        .collect();
    assert_eq!(
        reasons,
        [
            ("contactsFrom[0][1]", "InvalidEmail"),
            ("contactsFrom[1]", "SourceUnavailable"),
            ("contactsFrom[2]", "UnknownFormat"),
        ]
    );
}

#[test]
fn a_secret_source_never_echoes_its_content() {
    let s = spec(json!({"contactsFrom": [
        {"secretRef": {"name": "db", "key": "password.csv"}},
        {"secretRef": {"name": "db", "key": "other.json"}}]}));
    let sources = [
        SourceText {
            key: "password.csv".into(),
            text: Ok("hunter2-db-password\n".into()),
            sensitive: true,
        },
        SourceText {
            key: "other.json".into(),
            text: Ok("[{\"email\": 42, \"s3cr3t\": \"x\"}, {\"email\": [\"tok-123\"]}]".into()),
            sensitive: true,
        },
    ];
    let d = build(&s, &sources).unwrap();
    assert_eq!(d.failures.len(), 3);
    for failure in &d.failures {
        let text = format!("{failure:?}");
        for secret in ["hunter2", "s3cr3t", "tok-123"] {
            assert!(!text.contains(secret), "{text}");
        }
    }
    // The same content from a ConfigMap is reported in full.
    let open = [SourceText {
        sensitive: false,
        ..sources[0].clone()
    }];
    let s = spec(json!({"contactsFrom": [{"configMapRef": {"name": "c", "key": "password.csv"}}]}));
    let d = build(&s, &open).unwrap();
    assert!(d.failures[0].message.contains("hunter2"));
}

#[test]
fn phone_matching_and_field_policy_keys() {
    let s = spec(json!({"matchBy": "phone", "contacts": [{"phone": "+1 (415) 555-0100"}]}));
    assert_eq!(build(&s, &[]).unwrap().contacts[0].key, "+14155550100");
    let s = spec(json!({"fieldPolicy": {"shoeSize": "Observe"}, "contacts": []}));
    assert!(build(&s, &[]).is_err());
    let s = spec(
        json!({"fieldPolicy": {"phone": "InitOnly", "customFields.x": "Observe", "tags": "Observe"}}),
    );
    let d = build(&s, &[]).unwrap();
    assert_eq!(d.field_policy.field(Field::Phone), FieldPolicy::InitOnly);
    assert_eq!(d.field_policy.field(Field::City), FieldPolicy::Enforce);
    assert_eq!(d.field_policy.custom("x"), FieldPolicy::Observe);
}

#[test]
fn a_sources_field_map_renames_its_keys_and_a_bad_map_fails_the_source() {
    let s = spec(json!({"contactsFrom": [
        {"configMapRef": {"name": "a", "key": "people.json"},
         "fieldMap": {"email": "mail", "firstName": "given", "customFields.tier": "tier"}},
        {"configMapRef": {"name": "b", "key": "more.json"},
         "fieldMap": {"shoeSize": "shoe"}}]}));
    let text = r#"[{"mail": "Ada@Example.com", "given": "Ada", "tier": "gold", "crmId": 7},
                   {"given": "No Mail"}]"#;
    let sources = [
        SourceText {
            key: "people.json".into(),
            text: Ok(text.into()),
            sensitive: false,
        },
        SourceText {
            key: "more.json".into(),
            text: Ok(text.into()),
            sensitive: false,
        },
    ];
    let d = build(&s, &sources).unwrap();
    assert_eq!(d.contacts.len(), 1);
    assert_eq!(d.contacts[0].key.as_str(), "ada@example.com");
    let reasons: Vec<(&str, &str)> = d
        .failures
        .iter()
        .map(|f| (f.record.as_str(), f.reason.as_str()))
        .collect();
    // The record without the mapped email fails alone; the bad map fails its whole source.
    assert_eq!(reasons[0].0, "contactsFrom[0][1]");
    assert_eq!(reasons[1], ("contactsFrom[1]", "InvalidFieldMap"));
    assert_eq!(reasons.len(), 2);
}

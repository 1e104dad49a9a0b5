//! The desired state of a ContactSyncPolicy: its records (inline and from `contactsFrom`)
//! validated and normalized. A bad record is reported with where it came from, which field and
//! why — never with its values — and skipped; the rest still applies. Pure; no I/O (the caller
//! fetches `contactsFrom` texts).

pub mod records;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use jiff::Timestamp;
use serde_json::Value;

use crate::crd::contact_sync_policy::{
    ContactRecord, ContactSyncPolicySpec, FieldPolicy, MatchBy, RecordFailure,
};
use crate::engine::collections::{SmallMap, TagSet, Text};
use crate::engine::fields::{Field, normalize_phone, normalize_tag};
use crate::engine::ledger::KeyDigest;
use crate::refs::RefError;

use records::{RecordError, format_for};

/// What `contactsFrom[i]` yielded: the key name it was read from and its text, or why it
/// could not be read (missing ConfigMap, missing key, ...).
#[derive(Clone, Debug)]
pub struct SourceText {
    pub key: String,
    pub text: Result<String, RefError>,
    /// Read from a Secret: what it holds is never repeated in a failure (status is readable
    /// by more people than the Secret).
    pub sensitive: bool,
}

/// A failure of a Secret-backed record, with nothing of the Secret's content: the reason,
/// the field only when it is a contact field's name, a generic message.
fn scrubbed(failure: RecordFailure) -> RecordFailure {
    let field = failure
        .field
        .filter(|f| f == "tags" || f == "email" || f == "phone" || Field::from_name(f).is_some());
    let message = match failure.reason.as_str() {
        "InvalidSource" | "UnknownColumn" | "UnknownField" | "InvalidRecord" => {
            "the Secret's content is not readable as records of contact fields (details withheld: the source is a Secret)".to_owned()
        }
        _ => failure.message,
    };
    RecordFailure {
        field,
        message,
        ..failure
    }
}

/// A declared task.
#[derive(Clone, Debug, PartialEq)]
pub struct DesiredTask {
    pub key: String,
    pub title: String,
    pub body: Option<String>,
    pub due: Timestamp,
    pub assigned_to: Option<String>,
    pub completed: bool,
}

/// A declared note.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredNote {
    pub key: String,
    pub body: String,
}

/// A valid declared contact.
#[derive(Clone, Debug, PartialEq)]
pub struct DesiredContact {
    /// Where it was declared: `contacts[3]`, `contactsFrom[0][17]`.
    pub source: Text,
    /// The normalized match key (email or phone, per `matchBy`).
    pub key: Text,
    /// The key as the ledger knows it (a digest).
    pub ledger_key: KeyDigest,
    pub fields: SmallMap<Field, Text>,
    pub custom_fields: SmallMap<String, Value>,
    pub tags: TagSet,
    pub tasks: Vec<DesiredTask>,
    pub notes: Vec<DesiredNote>,
}

/// Who owns each field, from `spec.fieldPolicy`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FieldPolicies(BTreeMap<String, FieldPolicy>);

impl FieldPolicies {
    pub fn field(&self, field: Field) -> FieldPolicy {
        self.0.get(field.name()).copied().unwrap_or_default()
    }

    pub fn custom(&self, id: &str) -> FieldPolicy {
        self.0
            .get(&format!("customFields.{id}"))
            .copied()
            .unwrap_or_default()
    }

    /// A policy written for a custom field's key (`customFields.contact.tier`) applies to the
    /// id the key resolved to.
    pub fn alias_custom(&mut self, key: &str, id: &str) {
        if let Some(policy) = self.0.get(&format!("customFields.{key}")).copied() {
            self.0.entry(format!("customFields.{id}")).or_insert(policy);
        }
    }

    pub fn tags(&self) -> FieldPolicy {
        self.0.get("tags").copied().unwrap_or_default()
    }
}

/// The desired state, and the records that were refused.
#[derive(Clone, Debug, Default)]
pub struct Desired {
    pub match_by: MatchBy,
    pub contacts: Vec<DesiredContact>,
    pub failures: Vec<RecordFailure>,
    pub field_policy: FieldPolicies,
    /// Ledger keys of records declared but left to another owner (see
    /// [`crate::engine::ownership`]): neither planned nor released.
    pub held: BTreeSet<KeyDigest>,
    /// `contactsFrom` entries that were read but hold no records (an empty key, a header-only
    /// CSV, `[]`): never taken to mean "release everything" (see the planner).
    pub empty_sources: Vec<String>,
}

/// A problem with the spec as a whole (not one record): the policy stalls until it changes.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// The caller did not load `contactsFrom[index]` (a bug of the caller).
    #[error("contactsFrom[{index}] was not loaded")]
    NotLoaded { index: usize },
    #[error(
        "fieldPolicy: unknown field {field:?} (use a contact field name, customFields.<id or key>, or tags)"
    )]
    UnknownPolicyField { field: String },
}

/// Builds the desired state. `sources[i]` holds what `spec.contactsFrom[i]` yielded.
pub fn build(spec: &ContactSyncPolicySpec, sources: &[SourceText]) -> Result<Desired, SpecError> {
    let field_policy = validate_field_policy(&spec.field_policy)?;
    let mut desired = Desired {
        match_by: spec.match_by,
        field_policy,
        ..Desired::default()
    };
    let mut seen: HashMap<String, String> = HashMap::new();
    let mut accept =
        |source: String, parsed: Result<ContactRecord, RecordError>, desired: &mut Desired| {
            let result = parsed.and_then(|record| validate(&record, spec.match_by, &source));
            match result {
                Ok(contact) => {
                    if let Some(first) = seen.get(contact.key.as_str()) {
                        desired.failures.push(RecordFailure {
                            record: source,
                            field: Some(match_field(spec.match_by).into()),
                            reason: "DuplicateRecord".into(),
                            message: format!(
                                "declares the same {} as {first}",
                                match_field(spec.match_by)
                            ),
                        });
                    } else {
                        seen.insert(contact.key.to_string(), source);
                        desired.contacts.push(contact);
                    }
                }
                Err(e) => desired.failures.push(RecordFailure {
                    record: source,
                    field: e.field,
                    reason: e.reason.into(),
                    message: e.message,
                }),
            }
        };
    for (i, record) in spec.contacts.iter().enumerate() {
        accept(format!("contacts[{i}]"), Ok(record.clone()), &mut desired);
    }
    for (i, source) in spec.contacts_from.iter().enumerate() {
        let label = format!("contactsFrom[{i}]");
        let Some(loaded) = sources.get(i) else {
            return Err(SpecError::NotLoaded { index: i });
        };
        let failures_before = desired.failures.len();
        let mut n = 0;
        let read = records_of(source.format, loaded, &mut |record| {
            accept(format!("{label}[{n}]"), record, &mut desired);
            n += 1;
        });
        match read {
            Err(e) => desired.failures.push(RecordFailure {
                record: label,
                field: e.field,
                reason: e.reason.into(),
                message: e.message,
            }),
            Ok(0) => desired.empty_sources.push(label),
            Ok(_) => {}
        }
        if loaded.sensitive {
            let tail = desired.failures.split_off(failures_before);
            desired.failures.extend(tail.into_iter().map(scrubbed));
        }
    }
    desired.contacts.shrink_to_fit();
    Ok(desired)
}

/// Hands each record a loaded source holds to `each`; how many there were, or why the source
/// cannot be read as records.
fn records_of(
    declared: Option<crate::crd::contact_sync_policy::RecordFormat>,
    loaded: &SourceText,
    each: &mut dyn FnMut(records::ParsedRecord),
) -> Result<usize, RecordError> {
    let text = loaded
        .text
        .as_ref()
        .map_err(|why| RecordError::new(None, "SourceUnavailable", why.to_string()))?;
    let format = format_for(declared, &loaded.key).ok_or_else(|| {
        RecordError::new(
            None,
            "UnknownFormat",
            format!(
                "cannot tell the format of key {:?}: set format to csv, json or yaml",
                loaded.key
            ),
        )
    })?;
    records::for_each(format, text, each)
}

fn match_field(match_by: MatchBy) -> &'static str {
    match match_by {
        MatchBy::Email => "email",
        MatchBy::Phone => "phone",
    }
}

fn validate_field_policy(
    policies: &BTreeMap<String, FieldPolicy>,
) -> Result<FieldPolicies, SpecError> {
    for key in policies.keys() {
        let known = key == "tags"
            || Field::from_name(key).is_some()
            || key
                .strip_prefix("customFields.")
                .is_some_and(|id| !id.is_empty());
        if !known {
            return Err(SpecError::UnknownPolicyField { field: key.clone() });
        }
    }
    Ok(FieldPolicies(policies.clone()))
}

/// Checks one record and normalizes it.
///
/// One piece: one record's checks, in the order a user reads the record.
fn validate(
    record: &ContactRecord,
    match_by: MatchBy,
    source: &str,
) -> Result<DesiredContact, RecordError> {
    let mut fields = SmallMap::new();
    let declared: [(Field, &Option<String>); 16] = [
        (Field::FirstName, &record.first_name),
        (Field::LastName, &record.last_name),
        (Field::Name, &record.name),
        (Field::Email, &record.email),
        (Field::Phone, &record.phone),
        (Field::CompanyName, &record.company_name),
        (Field::Address1, &record.address1),
        (Field::City, &record.city),
        (Field::State, &record.state),
        (Field::PostalCode, &record.postal_code),
        (Field::Country, &record.country),
        (Field::Website, &record.website),
        (Field::Timezone, &record.timezone),
        (Field::Source, &record.source),
        (Field::DateOfBirth, &record.date_of_birth),
        (Field::AssignedTo, &record.assigned_to),
    ];
    for (field, value) in declared {
        if let Some(value) = value.as_deref().map(str::trim).filter(|v| !v.is_empty()) {
            fields.insert(field, value.to_owned());
        }
    }
    if let Some(dnd) = record.dnd {
        fields.insert(Field::Dnd, dnd.to_string());
    }
    let bad = |field: &str, reason: &'static str, message: &str| {
        Err(RecordError::new(Some(field), reason, message))
    };
    if let Some(email) = fields.get(&Field::Email)
        && !is_email(email)
    {
        return bad("email", "InvalidEmail", "not a valid email address");
    }
    if let Some(phone) = fields.get(&Field::Phone) {
        let normalized = normalize_phone(phone);
        let digits = normalized.trim_start_matches('+').len();
        if !normalized.starts_with('+') || !(8..=15).contains(&digits) {
            return bad(
                "phone",
                "InvalidPhone",
                "not an E.164 phone number (like +14155550100)",
            );
        }
    }
    if let Some(country) = fields.get(&Field::Country)
        && !(country.len() == 2 && country.chars().all(|c| c.is_ascii_alphabetic()))
    {
        return bad("country", "InvalidCountry", "not a two-letter country code");
    }
    if let Some(date) = fields.get(&Field::DateOfBirth)
        && date.parse::<jiff::civil::Date>().is_err()
    {
        return bad(
            "dateOfBirth",
            "InvalidDate",
            "not a date in YYYY-MM-DD form",
        );
    }
    let key_field = match_field(match_by);
    let key = match match_by {
        MatchBy::Email => fields.get(&Field::Email).map(|e| Field::Email.normalize(e)),
        MatchBy::Phone => fields.get(&Field::Phone).map(|p| normalize_phone(p)),
    };
    let Some(key) = key else {
        return bad(
            key_field,
            "MissingMatchKey",
            &format!("{key_field} is required (the policy matches contacts by {key_field})"),
        );
    };

    let mut custom_fields = SmallMap::new();
    for (id, value) in &record.custom_fields {
        let valid = match value {
            Value::String(_) | Value::Number(_) => true,
            Value::Array(items) => items.iter().all(Value::is_string),
            _ => false,
        };
        if id.trim().is_empty() || !valid {
            return bad(
                &format!("customFields.{id}"),
                "InvalidCustomField",
                "custom field values must be a string, a number or a list of strings",
            );
        }
        custom_fields.insert(id.clone(), value.clone());
    }

    let mut tags = TagSet::new();
    for tag in &record.tags {
        let tag = normalize_tag(tag);
        if tag.is_empty() {
            return bad("tags", "InvalidTag", "tags must not be empty");
        }
        tags.insert(tag);
    }

    let mut tasks = Vec::new();
    let mut task_keys = BTreeSet::new();
    for (i, task) in record.tasks.iter().enumerate() {
        let at = format!("tasks[{i}]");
        if !task_keys.insert(task.key.clone()) {
            return bad(
                &format!("{at}.key"),
                "DuplicateKey",
                "another task of this contact has the same key",
            );
        }
        if task.title.trim().is_empty() {
            return bad(&format!("{at}.title"), "MissingTitle", "tasks need a title");
        }
        let Ok(due) = task.due_date.parse::<Timestamp>() else {
            return bad(
                &format!("{at}.dueDate"),
                "InvalidDate",
                "not an RFC 3339 date-time (like 2030-01-10T15:00:00Z)",
            );
        };
        tasks.push(DesiredTask {
            key: task.key.clone(),
            title: task.title.trim().to_owned(),
            body: task.body.clone().filter(|b| !b.is_empty()),
            due,
            assigned_to: task.assigned_to.clone().filter(|a| !a.is_empty()),
            completed: task.completed,
        });
    }
    let mut notes = Vec::new();
    let mut note_keys = BTreeSet::new();
    for (i, note) in record.notes.iter().enumerate() {
        let at = format!("notes[{i}]");
        if !note_keys.insert(note.key.clone()) {
            return bad(
                &format!("{at}.key"),
                "DuplicateKey",
                "another note of this contact has the same key",
            );
        }
        if note.body.trim().is_empty() {
            return bad(&format!("{at}.body"), "MissingBody", "notes need a body");
        }
        notes.push(DesiredNote {
            key: note.key.clone(),
            body: note.body.clone(),
        });
    }
    Ok(DesiredContact {
        source: Text::from(source),
        ledger_key: KeyDigest::of(&key),
        key: Text::from(key),
        fields: fields
            .into_iter()
            .map(|(f, v)| (f, Text::from(v)))
            .collect(),
        custom_fields,
        tags,
        tasks,
        notes,
    })
}

fn is_email(text: &str) -> bool {
    let Some((local, domain)) = text.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !text.contains(char::is_whitespace)
        && !domain.contains('@')
}

#[cfg(test)]
mod tests {
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
        let s =
            spec(json!({"contactsFrom": [{"configMapRef": {"name": "c", "key": "password.csv"}}]}));
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
}

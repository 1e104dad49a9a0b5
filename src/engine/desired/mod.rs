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
    for (i, record) in spec.contacts.records().into_iter().enumerate() {
        accept(format!("contacts[{i}]"), Ok(record), &mut desired);
    }
    for (i, source) in spec.contacts_from.iter().enumerate() {
        let label = format!("contactsFrom[{i}]");
        let Some(loaded) = sources.get(i) else {
            return Err(SpecError::NotLoaded { index: i });
        };
        let failures_before = desired.failures.len();
        let mut n = 0;
        let read = records_of(source, loaded, &mut |record| {
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
    source: &crate::crd::contact_sync_policy::ContactSource,
    loaded: &SourceText,
    each: &mut dyn FnMut(records::ParsedRecord),
) -> Result<usize, RecordError> {
    let declared = source.format;
    let map = records::FieldMap::new(&source.field_map)?;
    let text = loaded.text.as_ref().map_err(|why| {
        let reason = match why {
            RefError::NotUsable { .. } => "SecretNotUsable",
            RefError::Http(e) => e.reason(),
            _ => "SourceUnavailable",
        };
        RecordError::new(None, reason, why.to_string())
    })?;
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
    records::for_each(format, text, &map, each)
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
        unique_key(&mut task_keys, &task.key, &at, "task")?;
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
        unique_key(&mut note_keys, &note.key, &at, "note")?;
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

/// Refuses a task or note (`what`) at `at` whose key another of the contact's has.
fn unique_key(
    keys: &mut BTreeSet<String>,
    key: &str,
    at: &str,
    what: &str,
) -> Result<(), RecordError> {
    if keys.insert(key.to_owned()) {
        return Ok(());
    }
    Err(RecordError::new(
        Some(&format!("{at}.key")),
        "DuplicateKey",
        format!("another {what} of this contact has the same key"),
    ))
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
mod tests;

//! Request-body validation the way GHL's NestJS pipes do it: unknown properties are refused
//! ("property X should not exist"), wrong types are refused, and all messages come back
//! together in one 422.

use serde_json::{Map, Value};

use super::errors::ApiError;

/// The type a body property must have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A string (or null, which clears the field where GHL allows it).
    Text,
    /// A string that must look like an email address.
    Email,
    Bool,
    Number,
    TextList,
    /// Contact custom field inputs: `[{id | key, field_value}]`.
    CustomFields,
    /// A JSON object (dnd settings).
    Object,
}

/// One declared property of a request body.
pub struct Field {
    pub name: &'static str,
    pub kind: Kind,
    pub required: bool,
}

pub const fn opt(name: &'static str, kind: Kind) -> Field {
    Field {
        name,
        kind,
        required: false,
    }
}

pub const fn req(name: &'static str, kind: Kind) -> Field {
    Field {
        name,
        kind,
        required: true,
    }
}

/// Contact attributes GHL stores as given (shared by create, update and upsert).
pub const CONTACT_ATTRIBUTES: &[Field] = &[
    opt("firstName", Kind::Text),
    opt("lastName", Kind::Text),
    opt("name", Kind::Text),
    opt("email", Kind::Email),
    opt("phone", Kind::Text),
    opt("address1", Kind::Text),
    opt("city", Kind::Text),
    opt("state", Kind::Text),
    opt("postalCode", Kind::Text),
    opt("website", Kind::Text),
    opt("timezone", Kind::Text),
    opt("dnd", Kind::Bool),
    opt("dndSettings", Kind::Object),
    opt("inboundDndSettings", Kind::Object),
    opt("source", Kind::Text),
    opt("dateOfBirth", Kind::Text),
    opt("country", Kind::Text),
    opt("companyName", Kind::Text),
    opt("assignedTo", Kind::Text),
    opt("gender", Kind::Text),
];

/// Attributes `UpdateContactDto` does not declare (a PUT carrying them is refused).
pub const NOT_UPDATABLE: &[&str] = &["companyName", "gender"];

/// Validates `body` against the declared fields plus `extra`; returns the object.
pub fn check<'a>(body: &'a Value, fields: &[&[Field]]) -> Result<&'a Map<String, Value>, ApiError> {
    check_with(body, fields, true)
}

/// Validates a partial update: the same fields, none of them required.
pub fn check_update<'a>(
    body: &'a Value,
    fields: &[&[Field]],
) -> Result<&'a Map<String, Value>, ApiError> {
    check_with(body, fields, false)
}

fn check_with<'a>(
    body: &'a Value,
    fields: &[&[Field]],
    required: bool,
) -> Result<&'a Map<String, Value>, ApiError> {
    let Some(object) = body.as_object() else {
        return Err(ApiError::unprocessable(vec![
            "request body must be a JSON object".into(),
        ]));
    };
    let mut messages = Vec::new();
    for (name, value) in object {
        match fields
            .iter()
            .flat_map(|f| f.iter())
            .find(|f| f.name == name)
        {
            None => messages.push(format!("property {name} should not exist")),
            Some(field) => {
                if let Some(problem) = type_problem(field, value) {
                    messages.push(problem);
                }
            }
        }
    }
    let wanted = fields.iter().flat_map(|f| f.iter());
    for field in wanted.filter(|f| required && f.required) {
        if object.get(field.name).is_none_or(Value::is_null) {
            messages.push(format!("{} should not be empty", field.name));
        }
    }
    if messages.is_empty() {
        Ok(object)
    } else {
        Err(ApiError::unprocessable(messages))
    }
}

fn type_problem(field: &Field, value: &Value) -> Option<String> {
    let name = field.name;
    if value.is_null() {
        return field
            .required
            .then(|| format!("{name} should not be empty"));
    }
    match field.kind {
        Kind::Text if !value.is_string() => Some(format!("{name} must be a string")),
        Kind::Email => match value.as_str() {
            Some(text) if looks_like_email(text) => None,
            _ => Some(format!("{name} must be an email")),
        },
        Kind::Bool if !value.is_boolean() => Some(format!("{name} must be a boolean value")),
        Kind::Number if !value.is_number() => Some(format!("{name} must be a number")),
        Kind::TextList => match value.as_array() {
            Some(items) if items.iter().all(Value::is_string) => None,
            _ => Some(format!("{name} must be an array of strings")),
        },
        Kind::CustomFields => match value.as_array() {
            Some(items) if items.iter().all(valid_custom_field) => None,
            _ => Some(format!(
                "{name} must be an array of objects with an id (or key) and a field_value"
            )),
        },
        Kind::Object if !value.is_object() => Some(format!("{name} must be an object")),
        _ => None,
    }
}

fn valid_custom_field(item: &Value) -> bool {
    let Some(object) = item.as_object() else {
        return false;
    };
    let keyed = ["id", "key"]
        .iter()
        .any(|k| object.get(*k).is_some_and(Value::is_string));
    let known = object
        .keys()
        .all(|k| matches!(k.as_str(), "id" | "key" | "field_value" | "fieldValue"));
    keyed && known
}

fn looks_like_email(text: &str) -> bool {
    let Some((local, domain)) = text.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !text.contains(char::is_whitespace)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const TASK: &[Field] = &[req("title", Kind::Text), opt("completed", Kind::Bool)];

    #[test]
    fn unknown_wrong_and_missing_fields_are_all_reported() {
        let body = json!({"completed": "yes", "gender": "x"});
        let err = check(&body, &[TASK]).unwrap_err();
        assert_eq!(err.status, 422);
        let messages = err.body["message"].as_array().unwrap();
        let text: Vec<&str> = messages.iter().filter_map(Value::as_str).collect();
        assert!(
            text.contains(&"completed must be a boolean value"),
            "{text:?}"
        );
        assert!(
            text.contains(&"property gender should not exist"),
            "{text:?}"
        );
        assert!(text.contains(&"title should not be empty"), "{text:?}");
    }

    #[test]
    fn contacts_need_plausible_emails_and_keyed_custom_fields() {
        let fields: &[&[Field]] = &[
            CONTACT_ATTRIBUTES,
            &[opt("customFields", Kind::CustomFields)],
        ];
        assert!(check(&json!({"email": "ada@example.com"}), fields).is_ok());
        assert!(check(&json!({"email": "not an email"}), fields).is_err());
        assert!(
            check(
                &json!({"customFields": [{"id": "f1", "field_value": 3}]}),
                fields
            )
            .is_ok()
        );
        assert!(check(&json!({"customFields": [{"field_value": 3}]}), fields).is_err());
        assert!(check(&json!([1, 2]), fields).is_err());
    }
}

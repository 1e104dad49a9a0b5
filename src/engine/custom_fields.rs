//! Custom fields named by key. `customFields` may name a field by its key (`contact.tier`, the
//! same in every sub-account that has the field) as well as by its id (different in each), so
//! one manifest serves several locations. Keys are resolved per location from its field
//! definitions before anything is observed or planned; GHL's contacts carry ids only.
//!
//! A key the location does not have fails its record — named, with nothing about that contact
//! planned — after the definitions were read again (the field may be new). As with any
//! invalid record, releases and prunes wait until every record is valid.

use std::collections::BTreeMap;

use crate::crd::contact_sync_policy::RecordFailure;
use crate::engine::desired::Desired;
use crate::ghl::models::{CustomFieldDefinition, SearchFilter};
use crate::ghl::operation::Operation;
use crate::ghl::{GhlApi, GhlError};

/// GHL's keys of contact fields start with this.
const KEY_PREFIX: &str = "contact.";

/// Whether a `customFields` name is a field key rather than an id.
pub fn is_key(name: &str) -> bool {
    name.starts_with(KEY_PREFIX)
}

/// Field key → id for the location's contact fields. Pure.
pub fn ids_by_key(definitions: &[CustomFieldDefinition]) -> BTreeMap<&str, &str> {
    definitions
        .iter()
        .filter(|d| !d.id.is_empty() && d.model.as_deref().is_none_or(|m| m == "contact"))
        .filter_map(|d| Some((d.field_key.as_deref()?, d.id.as_str())))
        .collect()
}

/// The keys `desired` names that `ids` does not know.
fn unknown<'a>(desired: &'a Desired, ids: &BTreeMap<&str, &str>) -> Vec<&'a str> {
    desired
        .contacts
        .iter()
        .flat_map(|c| c.custom_fields.iter().map(|(name, _)| name.as_str()))
        .filter(|name| is_key(name) && !ids.contains_key(name))
        .collect()
}

/// Rewrites every key to its id; a record naming a key `ids` lacks, or naming one field by key
/// and by id, fails (it is held: neither planned nor released). Pure.
pub fn resolve(desired: &mut Desired, ids: &BTreeMap<&str, &str>, location: &str) {
    for (key, id) in ids {
        desired.field_policy.alias_custom(key, id);
    }
    let contacts = std::mem::take(&mut desired.contacts);
    for mut contact in contacts {
        if !contact.custom_fields.iter().any(|(name, _)| is_key(name)) {
            desired.contacts.push(contact);
            continue;
        }
        let mut failure = None;
        let mut resolved = crate::engine::collections::SmallMap::new();
        for (name, value) in std::mem::take(&mut contact.custom_fields) {
            let id = if is_key(&name) {
                match ids.get(name.as_str()) {
                    Some(id) => (*id).to_owned(),
                    None => {
                        failure = Some((
                            name.clone(),
                            "UnknownCustomField",
                            format!(
                                "location {location} has no contact custom field with key \
                                 {name:?} (GHL: Settings → Custom Fields; or name it by id)"
                            ),
                        ));
                        break;
                    }
                }
            } else {
                name.clone()
            };
            if resolved.get(&id).is_some() {
                failure = Some((
                    name.clone(),
                    "DuplicateCustomField",
                    format!("names custom field {id} twice (by key and by id)"),
                ));
                break;
            }
            resolved.insert(id, value);
        }
        match failure {
            None => {
                contact.custom_fields = resolved;
                desired.contacts.push(contact);
            }
            Some((field, reason, message)) => {
                desired.held.insert(contact.ledger_key);
                desired.failures.push(RecordFailure {
                    record: contact.source.to_string(),
                    field: Some(format!("customFields.{field}")),
                    reason: reason.into(),
                    message,
                });
            }
        }
    }
}

/// Resolves `desired`'s field keys for `api`'s location (nothing is read when it names none):
/// the definitions as last read, read again when a key is missing from them.
pub async fn resolve_keys(api: &dyn GhlApi, desired: &mut Desired) -> Result<(), GhlError> {
    let names_keys = desired
        .contacts
        .iter()
        .any(|c| c.custom_fields.iter().any(|(name, _)| is_key(name)));
    if !names_keys {
        return Ok(());
    }
    let mut definitions = api.custom_fields(false).await?;
    if !unknown(desired, &ids_by_key(&definitions)).is_empty() {
        definitions = api.custom_fields(true).await?;
    }
    resolve(desired, &ids_by_key(&definitions), api.location_id());
    Ok(())
}

/// The search filter fields naming a custom field by key (`customFields.contact.tier`).
fn filter_keys(filters: &mut [SearchFilter]) -> Vec<&mut String> {
    let mut found = Vec::new();
    for filter in filters {
        match filter {
            SearchFilter::Group { filters, .. } => found.extend(filter_keys(filters)),
            SearchFilter::Condition { field, .. } => {
                if field.strip_prefix("customFields.").is_some_and(is_key) {
                    found.push(field);
                }
            }
        }
    }
    found
}

/// Rewrites search filters on `customFields.<key>` (a TagRule's selector) to the location's
/// ids; a key the location lacks (after reading its fields again) is an error naming it.
pub async fn resolve_filter_keys(
    api: &dyn GhlApi,
    filters: &mut [SearchFilter],
) -> Result<(), GhlError> {
    let mut fields = filter_keys(filters);
    if fields.is_empty() {
        return Ok(());
    }
    let mut definitions = api.custom_fields(false).await?;
    let missing = |defs: &[CustomFieldDefinition], fields: &[&mut String]| {
        let ids = ids_by_key(defs);
        fields
            .iter()
            .any(|f| !ids.contains_key(&f["customFields.".len()..]))
    };
    if missing(&definitions, &fields) {
        definitions = api.custom_fields(true).await?;
    }
    let ids = ids_by_key(&definitions);
    for field in &mut fields {
        let key = field["customFields.".len()..].to_owned();
        let Some(id) = ids.get(key.as_str()) else {
            return Err(GhlError::InvalidRequest {
                operation: Operation::SearchContacts,
                message: format!(
                    "selector filter {field}: location {} has no contact custom field with key {key:?}",
                    api.location_id()
                ),
            });
        };
        **field = format!("customFields.{id}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::engine::desired::{SourceText, build};

    fn definitions() -> Vec<CustomFieldDefinition> {
        let def = |id: &str, key: &str, model: Option<&str>| CustomFieldDefinition {
            id: id.into(),
            field_key: Some(key.into()),
            model: model.map(Into::into),
        };
        vec![
            def("f-tier", "contact.tier", Some("contact")),
            def("f-size", "contact.size", None),
            def("o-stage", "opportunity.stage", Some("opportunity")),
            def("", "contact.broken", Some("contact")),
        ]
    }

    fn desired(records: serde_json::Value) -> Desired {
        let spec = serde_json::from_value(json!({
            "connectionRef": {"name": "c"}, "contacts": records
        }))
        .unwrap();
        build(&spec, &[] as &[SourceText]).unwrap()
    }

    #[test]
    fn filters_on_custom_field_keys_are_found_in_groups_too() {
        use crate::ghl::models::FilterOperator;
        let condition = |field: &str| SearchFilter::condition(field, FilterOperator::Exists, None);
        let mut filters = vec![
            condition("email"),
            condition("customFields.contact.tier"),
            condition("customFields.f-raw-id"),
            SearchFilter::Group {
                group: "OR".into(),
                filters: vec![condition("customFields.contact.size"), condition("tags")],
            },
        ];
        let found: Vec<String> = filter_keys(&mut filters)
            .into_iter()
            .map(|f| f.clone())
            .collect();
        assert_eq!(
            found,
            ["customFields.contact.tier", "customFields.contact.size"]
        );
    }

    #[test]
    fn keys_resolve_to_this_locations_ids_and_unknown_keys_fail_their_record() {
        let defs = definitions();
        let ids = ids_by_key(&defs);
        assert_eq!(
            ids.into_iter().collect::<Vec<_>>(),
            [("contact.size", "f-size"), ("contact.tier", "f-tier")],
            "contact fields with an id only"
        );
        let table = [
            (
                json!({"contact.tier": "gold"}),
                Some(json!({"f-tier": "gold"})),
                None,
            ),
            (
                json!({"contact.tier": "gold", "raw-id": 3}),
                Some(json!({"f-tier": "gold", "raw-id": 3})),
                None,
            ),
            (json!({"raw-id": "x"}), Some(json!({"raw-id": "x"})), None),
            (
                json!({"contact.nope": "x"}),
                None,
                Some("UnknownCustomField"),
            ),
            (
                json!({"contact.broken": "x"}),
                None,
                Some("UnknownCustomField"),
            ),
            (
                json!({"opportunity.stage": "x"}),
                Some(json!({"opportunity.stage": "x"})),
                None,
            ),
            (
                json!({"contact.tier": "a", "f-tier": "b"}),
                None,
                Some("DuplicateCustomField"),
            ),
        ];
        for (fields, expected, failure) in table {
            let mut d = desired(json!([{"email": "a@example.com", "customFields": fields}]));
            resolve(&mut d, &ids_by_key(&defs), "LOC");
            match expected {
                Some(want) => {
                    let got: serde_json::Map<String, serde_json::Value> = d.contacts[0]
                        .custom_fields
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect();
                    assert_eq!(serde_json::Value::Object(got), want, "{fields}");
                    assert!(d.failures.is_empty());
                }
                None => {
                    assert!(d.contacts.is_empty(), "{fields}");
                    assert_eq!(d.failures[0].reason, failure.unwrap(), "{fields}");
                    assert_eq!(d.failures[0].record, "contacts[0]");
                    assert_eq!(d.held.len(), 1, "held: neither planned nor released");
                }
            }
        }
    }
}

//! Imports at size: beyond `--inline-max` records, the contacts go to ConfigMaps the policy
//! reads through `contactsFrom`, each small enough for `kubectl apply` as it is — client-side
//! apply copies the whole object into an annotation, and annotations are limited to 256 KiB.
//!
//! Flat records (no tasks or notes) are written as CSV, one row per contact; records CSV
//! cannot hold exactly — tasks, notes, a tag with `;`, a number in a custom field — as JSON
//! arrays. Which one is decided by reading the CSV back with the parser the operator uses.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::ObjectMeta;
use serde_json::Value;

use crate::crd::common::ConfigMapKeyRef;
use crate::crd::contact_sync_policy::{ContactRecord, ContactSource, RecordFormat};
use crate::engine::desired::records;

/// The largest text one ConfigMap holds (under half of the 256 KiB annotation limit
/// client-side `kubectl apply` copies it into, leaving room for escaping and metadata).
pub const CHUNK_BYTES: usize = 100 * 1024;

/// Splits records, in order, into groups whose JSON array is at most `limit` bytes (a single
/// record larger than that gets a group of its own). Pure.
pub fn groups(
    records: &[ContactRecord],
    limit: usize,
) -> Result<Vec<&[ContactRecord]>, serde_json::Error> {
    let mut out = Vec::new();
    let (mut start, mut size) = (0, 2); // "[]"
    for (i, record) in records.iter().enumerate() {
        let len = serde_json::to_string(record)?.len() + 1;
        if i > start && size + len > limit {
            out.push(&records[start..i]);
            (start, size) = (i, 2);
        }
        size += len;
    }
    if start < records.len() {
        out.push(&records[start..]);
    }
    Ok(out)
}

/// The records as CSV (a header of the fields any of them sets, `tags` joined by `;`,
/// `customFields.<id>`), or `None` when reading it back would not give exactly `records`.
pub fn csv_of(records: &[ContactRecord]) -> Option<String> {
    if records
        .iter()
        .any(|r| !r.tasks.is_empty() || !r.notes.is_empty())
    {
        return None;
    }
    let rows: Vec<BTreeMap<String, String>> = records
        .iter()
        .map(|record| {
            let Value::Object(object) = serde_json::to_value(record).ok()? else {
                return None;
            };
            let mut row = BTreeMap::new();
            for (field, value) in object {
                match (field.as_str(), value) {
                    ("tags", Value::Array(tags)) => {
                        let tags: Vec<&str> = tags.iter().filter_map(Value::as_str).collect();
                        row.insert(field, tags.join(";"));
                    }
                    ("customFields", Value::Object(custom)) => {
                        for (id, value) in custom {
                            row.insert(format!("customFields.{id}"), value.as_str()?.to_owned());
                        }
                    }
                    (_, Value::String(text)) => {
                        row.insert(field, text);
                    }
                    (_, Value::Bool(flag)) => {
                        row.insert(field, flag.to_string());
                    }
                    (_, Value::Array(items)) if items.is_empty() => {}
                    _ => return None,
                }
            }
            Some(row)
        })
        .collect::<Option<_>>()?;
    let columns: BTreeSet<&str> = rows
        .iter()
        .flat_map(|r| r.keys().map(String::as_str))
        .collect();
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer.write_record(&columns).ok()?;
    for row in &rows {
        writer
            .write_record(
                columns
                    .iter()
                    .map(|c| row.get(*c).map_or("", String::as_str)),
            )
            .ok()?;
    }
    let text = String::from_utf8(writer.into_inner().ok()?).ok()?;
    let back = records::parse(RecordFormat::Csv, &text).ok()?;
    let exact = back.len() == records.len()
        && back
            .iter()
            .zip(records)
            .all(|(read, record)| read.as_ref().is_ok_and(|read| read == record));
    exact.then_some(text)
}

/// ConfigMaps `<policy>-contacts-<n>` holding the groups (CSV when every group reads back
/// exactly, else JSON), and the `contactsFrom` entries that read them.
pub fn config_maps(
    policy: &str,
    namespace: &str,
    groups: &[&[ContactRecord]],
) -> Result<(Vec<ConfigMap>, Vec<ContactSource>), serde_json::Error> {
    let csv: Option<Vec<String>> = groups.iter().map(|g| csv_of(g)).collect();
    let (format, key, texts) = match csv {
        Some(texts) => (RecordFormat::Csv, "contacts.csv", texts),
        None => (
            RecordFormat::Json,
            "contacts.json",
            groups
                .iter()
                .map(serde_json::to_string)
                .collect::<Result<_, _>>()?,
        ),
    };
    Ok(texts
        .into_iter()
        .enumerate()
        .map(|(i, text)| {
            let name = format!("{policy}-contacts-{i}");
            let map = ConfigMap {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    namespace: Some(namespace.to_owned()),
                    labels: Some(BTreeMap::from([(
                        "app.kubernetes.io/part-of".to_owned(),
                        policy.to_owned(),
                    )])),
                    ..ObjectMeta::default()
                },
                data: Some(BTreeMap::from([(key.to_owned(), text)])),
                ..ConfigMap::default()
            };
            let source = ContactSource {
                config_map_ref: Some(ConfigMapKeyRef {
                    name,
                    key: key.to_owned(),
                }),
                secret_ref: None,
                http: None,
                refresh_interval: None,
                format: Some(format),
                field_map: Default::default(),
            };
            (map, source)
        })
        .unzip())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn record(value: Value) -> ContactRecord {
        serde_json::from_value(value).unwrap()
    }

    fn noted(i: usize, note: usize) -> ContactRecord {
        record(json!({
            "email": format!("c{i}@example.com"),
            "notes": [{"key": "n", "body": "x".repeat(note)}],
        }))
    }

    #[test]
    fn records_split_in_order_under_the_limit() {
        let table = [
            (vec![], 1000, 0),
            (vec![noted(0, 10)], 1000, 1),
            ((0..10).map(|i| noted(i, 10)).collect(), 1000, 1),
            ((0..10).map(|i| noted(i, 200)).collect(), 1000, 4),
            (vec![noted(0, 5000), noted(1, 10)], 1000, 2),
        ];
        for (records, limit, expected) in table {
            let out = groups(&records, limit).unwrap();
            assert_eq!(
                out.len(),
                expected,
                "{} records, limit {limit}",
                records.len()
            );
            for group in &out {
                let size = serde_json::to_string(group).unwrap().len();
                assert!(
                    size <= limit || group.len() == 1,
                    "over the limit only alone"
                );
            }
            assert_eq!(out.concat(), records, "nothing lost, order kept");
        }
    }

    #[test]
    fn csv_only_when_it_reads_back_exactly() {
        let flat = record(
            json!({"email": "a@example.com", "firstName": "Ada, \"the\" first",
                                 "tags": ["vip", "new"], "dnd": true,
                                 "customFields": {"contact.tier": "gold"}}),
        );
        let sparse = record(json!({"phone": "+14155550100"}));
        let text = csv_of(&[flat.clone(), sparse.clone()]).expect("flat records fit CSV");
        assert!(
            text.starts_with("customFields.contact.tier,dnd,email,firstName,phone,tags\n"),
            "{text}"
        );
        for lossy in [
            noted(0, 3),
            record(json!({"email": "b@example.com", "tags": ["a;b"]})),
            record(json!({"email": "b@example.com", "customFields": {"n": 3}})),
            record(json!({"email": "b@example.com", "lastName": " padded "})),
        ] {
            assert_eq!(csv_of(&[flat.clone(), lossy.clone()]), None, "{lossy:?}");
        }
    }

    #[test]
    fn each_group_becomes_a_config_map_the_policy_reads() {
        let flat = vec![record(json!({"email": "a@example.com"}))];
        let with_notes = vec![noted(0, 3)];
        let (maps, sources) = config_maps("big", "crm", &[&flat, &flat]).unwrap();
        assert_eq!(maps[1].metadata.name.as_deref(), Some("big-contacts-1"));
        assert_eq!(maps[1].metadata.namespace.as_deref(), Some("crm"));
        let reference = sources[1].config_map_ref.as_ref().unwrap();
        assert_eq!(
            (reference.name.as_str(), reference.key.as_str()),
            ("big-contacts-1", "contacts.csv")
        );
        assert_eq!(sources[1].format, Some(RecordFormat::Csv));
        let (_, sources) = config_maps("big", "crm", &[&flat, &with_notes]).unwrap();
        assert!(
            sources.iter().all(|s| s.format == Some(RecordFormat::Json)),
            "one format for all"
        );
    }
}

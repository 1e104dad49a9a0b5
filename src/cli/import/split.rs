//! Imports at size: beyond `--inline-max` records, the contacts go to ConfigMaps the policy
//! reads through `contactsFrom` (JSON arrays: the records keep their tasks, notes and custom
//! fields, which CSV cannot hold), each small enough for `kubectl apply` as it is — client-side
//! apply copies the whole object into an annotation, and annotations are limited to 256 KiB.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::ObjectMeta;

use crate::crd::common::ConfigMapKeyRef;
use crate::crd::contact_sync_policy::{ContactRecord, ContactSource, RecordFormat};

/// The largest JSON array one ConfigMap holds (under half of the 256 KiB annotation limit
/// client-side `kubectl apply` copies it into, leaving room for escaping and metadata).
pub const CHUNK_BYTES: usize = 100 * 1024;
/// The key of the records in each ConfigMap.
pub const KEY: &str = "contacts.json";

/// Splits records, in order, into JSON arrays of at most `limit` bytes each (a single record
/// larger than that gets an array of its own). Pure.
pub fn chunks(records: &[ContactRecord], limit: usize) -> Result<Vec<String>, serde_json::Error> {
    let mut out = Vec::new();
    let mut current: Vec<String> = Vec::new();
    let mut size = 2; // "[]"
    for record in records {
        let text = serde_json::to_string(record)?;
        if !current.is_empty() && size + text.len() + 1 > limit {
            out.push(format!("[{}]", current.join(",")));
            current.clear();
            size = 2;
        }
        size += text.len() + 1;
        current.push(text);
    }
    if !current.is_empty() {
        out.push(format!("[{}]", current.join(",")));
    }
    Ok(out)
}

/// ConfigMaps `<policy>-contacts-<n>` holding `chunks`, and the `contactsFrom` entries that
/// read them.
pub fn config_maps(
    policy: &str,
    namespace: &str,
    chunks: Vec<String>,
) -> (Vec<ConfigMap>, Vec<ContactSource>) {
    chunks
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
                data: Some(BTreeMap::from([(KEY.to_owned(), text)])),
                ..ConfigMap::default()
            };
            let source = ContactSource {
                config_map_ref: Some(ConfigMapKeyRef {
                    name,
                    key: KEY.to_owned(),
                }),
                secret_ref: None,
                format: Some(RecordFormat::Json),
            };
            (map, source)
        })
        .unzip()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(i: usize, note: usize) -> ContactRecord {
        serde_json::from_value(serde_json::json!({
            "email": format!("c{i}@example.com"),
            "notes": [{"key": "n", "body": "x".repeat(note)}],
        }))
        .unwrap()
    }

    #[test]
    fn records_split_in_order_under_the_limit_and_round_trip() {
        let table = [
            (vec![], 1000, 0),
            (vec![record(0, 10)], 1000, 1),
            ((0..10).map(|i| record(i, 10)).collect(), 1000, 1),
            ((0..10).map(|i| record(i, 200)).collect(), 1000, 4),
            (vec![record(0, 5000), record(1, 10)], 1000, 2),
        ];
        for (records, limit, expected) in table {
            let out = chunks(&records, limit).unwrap();
            assert_eq!(
                out.len(),
                expected,
                "{} records, limit {limit}",
                records.len()
            );
            let mut back: Vec<ContactRecord> = Vec::new();
            for chunk in &out {
                assert!(
                    chunk.len() <= limit
                        || serde_json::from_str::<Vec<ContactRecord>>(chunk)
                            .unwrap()
                            .len()
                            == 1,
                    "over the limit only when one record is"
                );
                back.extend(serde_json::from_str::<Vec<ContactRecord>>(chunk).unwrap());
            }
            assert_eq!(back, records, "nothing lost, order kept");
        }
    }

    #[test]
    fn each_chunk_becomes_a_config_map_the_policy_reads() {
        let (maps, sources) = config_maps("big", "crm", vec!["[]".into(), "[]".into()]);
        assert_eq!(maps[1].metadata.name.as_deref(), Some("big-contacts-1"));
        assert_eq!(maps[1].metadata.namespace.as_deref(), Some("crm"));
        let reference = sources[1].config_map_ref.as_ref().unwrap();
        assert_eq!(
            (reference.name.as_str(), reference.key.as_str()),
            ("big-contacts-1", KEY)
        );
        assert_eq!(sources[1].format, Some(RecordFormat::Json));
    }
}

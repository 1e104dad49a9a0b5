//! Reading contact records from `contactsFrom` sources: CSV, JSON or YAML text. Every record
//! is parsed on its own, so one bad record is reported and the others still load.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Map, Value};

use crate::crd::contact_sync_policy::{ContactRecord, RecordFormat};
use crate::engine::fields::Field;
use crate::privacy::redact;

/// A record, or why it could not be read. Errors never quote record values.
pub type ParsedRecord = Result<ContactRecord, RecordError>;

/// A problem with one record (or a whole source).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordError {
    pub field: Option<String>,
    pub reason: &'static str,
    pub message: String,
}

impl RecordError {
    pub fn new(field: Option<&str>, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            field: field.map(str::to_owned),
            reason,
            message: message.into(),
        }
    }
}

/// Picks the format from the spec or the key's extension.
pub fn format_for(declared: Option<RecordFormat>, key: &str) -> Option<RecordFormat> {
    declared.or_else(|| {
        let lower = key.to_lowercase();
        if lower.ends_with(".csv") {
            Some(RecordFormat::Csv)
        } else if lower.ends_with(".json") {
            Some(RecordFormat::Json)
        } else if lower.ends_with(".yaml") || lower.ends_with(".yml") {
            Some(RecordFormat::Yaml)
        } else {
            None
        }
    })
}

/// A source's `fieldMap`, checked: which contact field each mapped source key becomes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldMap {
    by_source: HashMap<String, String>,
}

/// Whether `name` is a contact field a record may carry (`customFields.<key>` included).
fn is_contact_field(name: &str) -> bool {
    name == "tags"
        || name
            .strip_prefix("customFields.")
            .is_some_and(|key| !key.is_empty())
        || Field::from_name(name).is_some()
}

impl FieldMap {
    /// From the spec's `{<contact field>: <source key>}`: every target a contact field, every
    /// source key named once.
    pub fn new(map: &BTreeMap<String, String>) -> Result<Self, RecordError> {
        let invalid = |message: String| Err(RecordError::new(None, "InvalidFieldMap", message));
        let mut by_source = HashMap::new();
        for (target, source) in map {
            if !is_contact_field(target) {
                return invalid(format!(
                    "fieldMap: {target:?} is not a contact field (use GHL field names, tags, or customFields.<key>)"
                ));
            }
            if source.is_empty() {
                return invalid(format!("fieldMap: {target:?} maps from an empty key"));
            }
            if let Some(other) = by_source.insert(source.clone(), target.clone()) {
                return invalid(format!(
                    "fieldMap: source key {source:?} is mapped to both {other:?} and {target:?}"
                ));
            }
        }
        Ok(Self { by_source })
    }

    fn is_set(&self) -> bool {
        !self.by_source.is_empty()
    }

    /// The contact field a source key stands for: its mapping, or itself.
    fn target<'a>(&'a self, key: &'a str) -> &'a str {
        self.by_source.get(key).map_or(key, String::as_str)
    }

    /// A record's object with its keys renamed; with a map, keys that are neither mapped nor
    /// contact fields are dropped.
    fn rename(&self, object: Map<String, Value>) -> Map<String, Value> {
        if !self.is_set() {
            return object;
        }
        let mut out = Map::new();
        let mut custom = Map::new();
        for (key, value) in object {
            let target = self.target(&key);
            if let Some(id) = target.strip_prefix("customFields.") {
                custom.insert(id.to_owned(), value);
            } else if matches!(target, "customFields" | "tasks" | "notes")
                || is_contact_field(target)
            {
                out.insert(target.to_owned(), value);
            }
        }
        if !custom.is_empty() {
            let fields = out
                .entry("customFields")
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(fields) = fields {
                fields.extend(custom);
            }
        }
        out
    }
}

/// Parses a source's text into records. `Err` when the source as a whole is unreadable.
pub fn parse(format: RecordFormat, text: &str) -> Result<Vec<ParsedRecord>, RecordError> {
    let mut out = Vec::new();
    for_each(format, text, &FieldMap::default(), &mut |record| {
        out.push(record)
    })?;
    Ok(out)
}

/// Hands each record of a source to `each` as it is read (a source of 100,000 records is never
/// held as records all at once); returns how many there were. `Err` when the source as a whole
/// is unreadable (records before the problem may have been handed out).
pub fn for_each(
    format: RecordFormat,
    text: &str,
    map: &FieldMap,
    each: &mut dyn FnMut(ParsedRecord),
) -> Result<usize, RecordError> {
    let unreadable = |what: &str, e: &dyn std::fmt::Display| {
        RecordError::new(
            None,
            "InvalidSource",
            format!("not a {what} of records: {}", redact(&e.to_string())),
        )
    };
    match format {
        RecordFormat::Json => {
            use serde::de::DeserializeSeed;
            let mut deserializer = serde_json::Deserializer::from_str(text);
            let count = Records(each, map)
                .deserialize(&mut deserializer)
                .and_then(|count| deserializer.end().map(|()| count))
                .map_err(|e| unreadable("JSON array", &e))?;
            Ok(count)
        }
        RecordFormat::Yaml => {
            let values: Vec<Value> =
                serde_saphyr::from_str(text).map_err(|e| unreadable("YAML list", &e))?;
            let count = values.len();
            values
                .into_iter()
                .for_each(|v| each(record_from_value(v, map)));
            Ok(count)
        }
        RecordFormat::Csv => csv_records(text, map, each),
    }
}

/// A JSON array read element by element, each handed out as a record.
struct Records<'a>(&'a mut dyn FnMut(ParsedRecord), &'a FieldMap);

impl<'de> serde::de::DeserializeSeed<'de> for Records<'_> {
    type Value = usize;

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<usize, D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Records<'_> {
    type Value = usize;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an array of records")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<usize, A::Error> {
        let mut count = 0;
        while let Some(value) = seq.next_element::<Value>()? {
            (self.0)(record_from_value(value, self.1));
            count += 1;
        }
        Ok(count)
    }
}

fn record_from_value(value: Value, map: &FieldMap) -> ParsedRecord {
    let value = match value {
        Value::Object(object) => Value::Object(map.rename(object)),
        other => other,
    };
    if let Some(object) = value.as_object() {
        for key in object.keys() {
            let known = matches!(key.as_str(), "tags" | "customFields" | "tasks" | "notes")
                || Field::from_name(key).is_some();
            if !known {
                return Err(RecordError::new(
                    Some(key),
                    "UnknownField",
                    format!("unknown field {key:?}"),
                ));
            }
        }
    }
    serde_json::from_value::<ContactRecord>(value).map_err(|e| {
        RecordError::new(
            None,
            "InvalidRecord",
            format!("cannot read the record: {}", redact(&e.to_string())),
        )
    })
}

/// CSV: a header row of field names (`email`, `firstName`, ..., `tags` with `;` between tags,
/// `customFields.<id>`, `dnd` as true/false); tasks and notes need JSON or YAML.
fn csv_records(
    text: &str,
    map: &FieldMap,
    out: &mut dyn FnMut(ParsedRecord),
) -> Result<usize, RecordError> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .flexible(false)
        .from_reader(text.as_bytes());
    let headers = reader
        .headers()
        .map_err(|_| RecordError::new(None, "InvalidSource", "the CSV has no readable header row"))?
        .clone();
    // Columns as contact fields (renamed by the map); with a map, others are skipped (None).
    let headers: Vec<Option<&str>> = headers
        .iter()
        .map(|column| map.target(column))
        .map(|column| (!map.is_set() || is_contact_field(column)).then_some(column))
        .collect();
    for &column in headers.iter().flatten() {
        if !is_contact_field(column) {
            return Err(RecordError::new(
                Some(column),
                "UnknownColumn",
                format!(
                    "unknown CSV column {column:?} (use GHL field names, tags, or customFields.<id>)"
                ),
            ));
        }
    }
    let mut count = 0;
    for row in reader.records() {
        count += 1;
        let row = match row {
            Ok(row) => row,
            Err(_) => {
                out(Err(RecordError::new(
                    None,
                    "InvalidRecord",
                    "the row has the wrong number of columns",
                )));
                continue;
            }
        };
        let mut object = Map::new();
        let mut custom = Map::new();
        for (column, cell) in headers.iter().zip(row.iter()) {
            let Some(column) = *column else { continue };
            if cell.is_empty() {
                continue;
            }
            if column == "tags" {
                let tags: Vec<Value> = cell
                    .split(';')
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .map(|t| Value::String(t.to_owned()))
                    .collect();
                object.insert("tags".into(), Value::Array(tags));
            } else if let Some(id) = column.strip_prefix("customFields.") {
                custom.insert(id.to_owned(), Value::String(cell.to_owned()));
            } else if column == "dnd" {
                match cell.to_lowercase().as_str() {
                    "true" | "yes" | "1" => object.insert("dnd".into(), Value::Bool(true)),
                    "false" | "no" | "0" => object.insert("dnd".into(), Value::Bool(false)),
                    _ => {
                        out(Err(RecordError::new(
                            Some("dnd"),
                            "InvalidValue",
                            "dnd must be true or false",
                        )));
                        continue;
                    }
                };
            } else {
                object.insert(column.to_owned(), Value::String(cell.to_owned()));
            }
        }
        if !custom.is_empty() {
            object.insert("customFields".into(), Value::Object(custom));
        }
        // Columns are renamed already.
        out(record_from_value(
            Value::Object(object),
            &FieldMap::default(),
        ));
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_rows_become_records() {
        let text = "email,firstName,tags,customFields.abc,dnd\nada@example.com,Ada,vip; newsletter,gold,yes\ngrace@example.com,Grace,,,\n";
        let records = parse(RecordFormat::Csv, text).unwrap();
        let ada = records[0].as_ref().unwrap();
        assert_eq!(ada.email.as_deref(), Some("ada@example.com"));
        assert_eq!(ada.tags, ["vip", "newsletter"]);
        assert_eq!(ada.custom_fields["abc"], "gold");
        assert_eq!(ada.dnd, Some(true));
        assert!(records[1].as_ref().unwrap().tags.is_empty());
    }

    #[test]
    fn csv_problems_are_located() {
        let err = parse(RecordFormat::Csv, "email,shoeSize\na@b.co,44\n").unwrap_err();
        assert_eq!(err.field.as_deref(), Some("shoeSize"));
        let records = parse(RecordFormat::Csv, "email,dnd\na@b.co,maybe\nb@b.co,no\n").unwrap();
        assert_eq!(
            records[0].as_ref().unwrap_err().field.as_deref(),
            Some("dnd")
        );
        assert!(records[1].is_ok());
    }

    #[test]
    fn json_and_yaml_records_fail_one_by_one_without_quoting_values() {
        let text = r#"[{"email": "a@b.co", "tasks": [{"key": "k", "title": "T", "dueDate": "2030-01-01T00:00:00Z"}]},
                       {"email": 12345678901}, {"email": "c@d.co", "shoe": 1}]"#;
        let records = parse(RecordFormat::Json, text).unwrap();
        assert_eq!(records[0].as_ref().unwrap().tasks.len(), 1);
        let err = records[1].as_ref().unwrap_err();
        assert!(!err.message.contains("12345678901"), "{}", err.message);
        assert_eq!(
            records[2].as_ref().unwrap_err().field.as_deref(),
            Some("shoe")
        );
        let yaml = "- email: a@b.co\n  tags: [x]\n- phone: '+14155550100'\n";
        assert_eq!(parse(RecordFormat::Yaml, yaml).unwrap().len(), 2);
        assert!(parse(RecordFormat::Json, "{\"not\": \"a list\"}").is_err());
    }

    fn map(pairs: &[(&str, &str)]) -> Result<FieldMap, RecordError> {
        FieldMap::new(
            &pairs
                .iter()
                .map(|(t, s)| (t.to_string(), s.to_string()))
                .collect(),
        )
    }

    fn mapped(format: RecordFormat, text: &str, pairs: &[(&str, &str)]) -> Vec<ParsedRecord> {
        let mut out = Vec::new();
        for_each(format, text, &map(pairs).unwrap(), &mut |r| out.push(r)).unwrap();
        out
    }

    #[test]
    fn a_field_map_renames_a_sources_keys_to_contact_fields() {
        let pairs = [
            ("email", "mail"),
            ("firstName", "given"),
            ("customFields.tier", "tier"),
            ("tags", "labels"),
        ];
        // A record shaped by another system, in each format; unmapped keys are ignored.
        let json = r#"[{"mail": "ada@example.com", "given": "Ada", "tier": "gold", "labels": ["vip"], "internalId": 7}]"#;
        let yaml = "- mail: ada@example.com\n  given: Ada\n  tier: gold\n  labels: [vip]\n  internalId: 7\n";
        let csv = "mail,given,tier,labels,internalId\nada@example.com,Ada,gold,vip,7\n";
        for (format, text) in [
            (RecordFormat::Json, json),
            (RecordFormat::Yaml, yaml),
            (RecordFormat::Csv, csv),
        ] {
            let records = mapped(format, text, &pairs);
            let ada = records[0].as_ref().unwrap();
            assert_eq!(ada.email.as_deref(), Some("ada@example.com"), "{format:?}");
            assert_eq!(ada.first_name.as_deref(), Some("Ada"), "{format:?}");
            assert_eq!(ada.custom_fields["tier"], "gold", "{format:?}");
            assert_eq!(ada.tags, ["vip"], "{format:?}");
        }
        // A record missing the mapped key of its match field has no email: the record fails
        // later, as any record without one does; a contact field a source already names
        // stays readable beside the map.
        let records = mapped(
            RecordFormat::Json,
            r#"[{"given": "Ada", "phone": "+14155550100"}]"#,
            &pairs,
        );
        let record = records[0].as_ref().unwrap();
        assert_eq!(record.email, None);
        assert_eq!(record.phone.as_deref(), Some("+14155550100"));
    }

    #[test]
    fn a_field_map_is_checked() {
        for (pairs, says) in [
            (&[("shoeSize", "shoe")][..], "not a contact field"),
            (&[("customFields.", "x")][..], "not a contact field"),
            (&[("email", "")][..], "empty key"),
            (
                &[("email", "mail"), ("firstName", "mail")][..],
                "mapped to both",
            ),
        ] {
            let err = map(pairs).unwrap_err();
            assert_eq!(err.reason, "InvalidFieldMap");
            assert!(err.message.contains(says), "{}", err.message);
        }
        assert!(map(&[]).is_ok());
        // Without a map an unknown key is still an error.
        let err = parse(RecordFormat::Csv, "email,given\na@b.co,A\n").unwrap_err();
        assert_eq!(err.field.as_deref(), Some("given"));
    }

    #[test]
    fn format_guessed_from_the_key() {
        assert_eq!(format_for(None, "contacts.CSV"), Some(RecordFormat::Csv));
        assert_eq!(format_for(None, "x.yml"), Some(RecordFormat::Yaml));
        assert_eq!(
            format_for(Some(RecordFormat::Json), "x.csv"),
            Some(RecordFormat::Json)
        );
        assert_eq!(format_for(None, "contacts"), None);
    }
}

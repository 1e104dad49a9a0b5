//! The "New" forms: what a person fills in becomes YAML they can apply (as themselves) or
//! download for Git. Pure: a form in, the manifest (or what is wrong with it) out.

use serde::Deserialize;
use serde_json::{Value, json};

use crate::crd::tag_rule::FilterOperator;

/// Contact fields a TagRule can filter on (besides `customFields.<key>`), as its CRD documents.
pub const FILTER_FIELDS: [&str; 15] = [
    "email",
    "phone",
    "tags",
    "source",
    "companyName",
    "city",
    "state",
    "country",
    "postalCode",
    "firstNameLowerCase",
    "lastNameLowerCase",
    "assignedTo",
    "dnd",
    "dateAdded",
    "dateUpdated",
];

/// The operators, as the CRD spells them.
pub fn operators() -> Vec<String> {
    use FilterOperator::*;
    [Eq, NotEq, Contains, NotContains, Exists, NotExists]
        .iter()
        .map(|o| {
            serde_json::to_value(o)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default()
        })
        .collect()
}

/// A problem with a form, naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct FormError {
    pub field: &'static str,
    pub problem: String,
}

fn bad(field: &'static str, problem: impl Into<String>) -> FormError {
    FormError {
        field,
        problem: problem.into(),
    }
}

/// A Kubernetes object name (DNS-1123 label for namespaces, subdomain for names).
fn name(field: &'static str, value: &str, max: usize) -> Result<String, FormError> {
    let value = value.trim();
    let ok = !value.is_empty()
        && value.len() <= max
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && value.as_bytes()[0].is_ascii_alphanumeric()
        && value.as_bytes()[value.len() - 1].is_ascii_alphanumeric();
    if ok {
        Ok(value.to_owned())
    } else {
        Err(bad(
            field,
            "lowercase letters, digits, '-' and '.', starting and ending with a letter or digit",
        ))
    }
}

fn tags(field: &'static str, value: &str) -> Result<Vec<String>, FormError> {
    let tags: Vec<String> = value
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect();
    if tags.iter().any(|t| t.len() > 100) {
        return Err(bad(field, "a tag is at most 100 characters"));
    }
    Ok(tags)
}

/// The TagRule form: up to three filters.
#[derive(Debug, Default, Deserialize)]
pub struct TagRuleForm {
    pub namespace: String,
    pub name: String,
    pub connection: String,
    #[serde(default)]
    pub add_tags: String,
    #[serde(default)]
    pub remove_tags: String,
    #[serde(default)]
    pub mode: String,
    #[serde(default)]
    pub field1: String,
    #[serde(default)]
    pub op1: String,
    #[serde(default)]
    pub value1: String,
    #[serde(default)]
    pub field2: String,
    #[serde(default)]
    pub op2: String,
    #[serde(default)]
    pub value2: String,
    #[serde(default)]
    pub field3: String,
    #[serde(default)]
    pub op3: String,
    #[serde(default)]
    pub value3: String,
}

fn filter(field: &str, op: &str, value: &str) -> Result<Option<Value>, FormError> {
    let field = field.trim();
    if field.is_empty() {
        return Ok(None);
    }
    let known = FILTER_FIELDS.contains(&field)
        || field
            .strip_prefix("customFields.")
            .is_some_and(|k| !k.is_empty() && k.len() <= 100);
    if !known {
        return Err(bad(
            "selector",
            format!("{field:?} is not a field a TagRule can filter on"),
        ));
    }
    if !operators().iter().any(|o| o == op) {
        return Err(bad("selector", format!("{op:?} is not an operator")));
    }
    let value = value.trim();
    let presence = op == "exists" || op == "not_exists";
    match (presence, value.is_empty()) {
        (true, _) => Ok(Some(json!({"field": field, "operator": op}))),
        (false, true) => Err(bad("selector", format!("{field} {op} needs a value"))),
        (false, false) if value.chars().count() > 75 => {
            Err(bad("selector", "a value is at most 75 characters"))
        }
        (false, false) => Ok(Some(
            json!({"field": field, "operator": op, "value": value}),
        )),
    }
}

impl TagRuleForm {
    /// The TagRule the form describes.
    pub fn manifest(&self) -> Result<Value, FormError> {
        let namespace = name("namespace", &self.namespace, 63)?;
        let rule = name("name", &self.name, 253)?;
        let connection = name("connection", &self.connection, 253)?;
        let add = tags("add tags", &self.add_tags)?;
        let remove = tags("remove tags", &self.remove_tags)?;
        if add.is_empty() && remove.is_empty() {
            return Err(bad("add tags", "a rule adds or removes at least one tag"));
        }
        let mut filters = Vec::new();
        for (f, o, v) in [
            (&self.field1, &self.op1, &self.value1),
            (&self.field2, &self.op2, &self.value2),
            (&self.field3, &self.op3, &self.value3),
        ] {
            filters.extend(filter(f, o, v)?);
        }
        if filters.is_empty() {
            return Err(bad(
                "selector",
                "at least one filter (a rule for every contact is a policy's job)",
            ));
        }
        let mode = match self.mode.as_str() {
            "" | "Plan" => "Plan",
            "Apply" => "Apply",
            other => return Err(bad("mode", format!("{other:?} is not Plan or Apply"))),
        };
        Ok(json!({
            "apiVersion": "ghl.servis.ai/v1alpha1",
            "kind": "TagRule",
            "metadata": {"name": rule, "namespace": namespace},
            "spec": {
                "connectionRef": {"name": connection},
                "selector": {"filters": filters},
                "addTags": add,
                "removeTags": remove,
                "mode": mode,
            }
        }))
    }
}

/// The policy-from-CSV form: the CSV goes into a ConfigMap the policy reads.
#[derive(Debug, Default, Deserialize)]
pub struct CsvPolicyForm {
    pub namespace: String,
    pub name: String,
    pub connection: String,
    pub csv: String,
}

/// Largest CSV a form takes (a ConfigMap holds at most 1 MiB).
pub const MAX_CSV_BYTES: usize = 900 * 1024;

impl CsvPolicyForm {
    /// The ConfigMap and the ContactSyncPolicy (`mode: Plan`, so nothing is written to GHL
    /// before a person looks at the plan).
    pub fn manifests(&self) -> Result<Vec<Value>, FormError> {
        let namespace = name("namespace", &self.namespace, 63)?;
        let policy = name("name", &self.name, 200)?;
        let connection = name("connection", &self.connection, 253)?;
        if self.csv.len() > MAX_CSV_BYTES {
            return Err(bad("csv", "at most 900 KiB (a ConfigMap holds 1 MiB)"));
        }
        let mut reader = csv::Reader::from_reader(self.csv.as_bytes());
        let headers = reader
            .headers()
            .map_err(|e| bad("csv", format!("no header row: {e}")))?
            .clone();
        if !headers.iter().any(|h| h == "email" || h == "phone") {
            return Err(bad(
                "csv",
                "the header row needs an email or a phone column",
            ));
        }
        let mut rows = 0usize;
        for (n, record) in reader.records().enumerate() {
            record.map_err(|e| bad("csv", format!("row {}: {e}", n + 2)))?;
            rows += 1;
        }
        if rows == 0 {
            return Err(bad("csv", "no rows"));
        }
        let config_map = format!("{policy}-contacts");
        Ok(vec![
            json!({
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": config_map, "namespace": namespace},
                "data": {"contacts.csv": self.csv},
            }),
            json!({
                "apiVersion": "ghl.servis.ai/v1alpha1", "kind": "ContactSyncPolicy",
                "metadata": {"name": policy, "namespace": namespace},
                "spec": {
                    "connectionRef": {"name": connection},
                    "mode": "Plan",
                    "contactsFrom": [{"configMapRef": {"name": config_map, "key": "contacts.csv"}, "format": "csv"}],
                }
            }),
        ])
    }
}

/// The sink form: a change feed sink added to a connection.
#[derive(Debug, Default, Deserialize)]
pub struct SinkForm {
    pub namespace: String,
    pub connection: String,
    pub sink: String,
    pub url: String,
    pub secret: String,
    #[serde(default)]
    pub include: Vec<String>,
}

impl SinkForm {
    /// The server-side apply of `spec.export.sinks[]` (a list keyed by name: this sink only).
    pub fn manifest(&self) -> Result<Value, FormError> {
        let namespace = name("namespace", &self.namespace, 63)?;
        let connection = name("connection", &self.connection, 253)?;
        let sink = name("sink", &self.sink, 63)?;
        let secret = name("secret", &self.secret, 253)?;
        let url = url::Url::parse(self.url.trim()).map_err(|e| bad("url", e.to_string()))?;
        if !matches!(url.scheme(), "https" | "http") || url.host_str().is_none() {
            return Err(bad(
                "url",
                "an http(s) URL (the operator sends only to URLs its installer allows)",
            ));
        }
        let include: Vec<&str> = self
            .include
            .iter()
            .map(String::as_str)
            .filter(|p| matches!(*p, "tasks" | "notes" | "appointments"))
            .collect();
        Ok(json!({
            "apiVersion": "ghl.servis.ai/v1alpha1", "kind": "GhlConnection",
            "metadata": {"name": connection, "namespace": namespace},
            "spec": {"export": {"sinks": [{
                "name": sink, "url": url.as_str(),
                "signingSecretRef": {"name": secret, "key": "secret"},
                "include": include,
            }]}}
        }))
    }
}

/// YAML for people (and Git), one document per object.
pub fn yaml(objects: &[Value]) -> String {
    objects
        .iter()
        .map(|o| serde_saphyr::to_string(o).unwrap_or_default())
        .collect::<Vec<_>>()
        .join("---\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule() -> TagRuleForm {
        TagRuleForm {
            namespace: "crm".into(),
            name: "hot".into(),
            connection: "acme".into(),
            add_tags: "hot, lead".into(),
            field1: "tags".into(),
            op1: "contains".into(),
            value1: "lead-hot".into(),
            ..TagRuleForm::default()
        }
    }

    #[test]
    fn a_tag_rule_form_becomes_a_valid_rule() {
        let manifest = rule().manifest().unwrap();
        let parsed: crate::crd::TagRule = serde_json::from_value(manifest.clone()).unwrap();
        assert_eq!(parsed.spec.add_tags, ["hot", "lead"]);
        assert_eq!(
            manifest["spec"]["mode"], "Plan",
            "new rules only plan until switched"
        );
        assert_eq!(
            parsed.spec.selector.filters[0].value.as_deref(),
            Some("lead-hot")
        );
    }

    #[test]
    fn bad_tag_rule_forms_name_their_field() {
        type Edit = fn(&mut TagRuleForm);
        let cases: [(Edit, &str); 7] = [
            (|f| f.name = "Bad Name".into(), "name"),
            (|f| f.namespace = "-x".into(), "namespace"),
            (|f| f.add_tags = String::new(), "add tags"),
            (|f| f.field1 = "password".into(), "selector"),
            (|f| f.op1 = "matches".into(), "selector"),
            (|f| f.value1 = String::new(), "selector"),
            (|f| f.mode = "Yolo".into(), "mode"),
        ];
        for (edit, field) in cases {
            let mut form = rule();
            edit(&mut form);
            assert_eq!(form.manifest().unwrap_err().field, field);
        }
        let mut exists = rule();
        exists.op1 = "exists".into();
        exists.value1 = "ignored".into();
        assert!(
            exists.manifest().unwrap()["spec"]["selector"]["filters"][0]
                .get("value")
                .is_none()
        );
    }

    #[test]
    fn a_csv_becomes_a_config_map_and_a_plan_only_policy() {
        let form = CsvPolicyForm {
            namespace: "crm".into(),
            name: "imported".into(),
            connection: "acme".into(),
            csv: "email,firstName\na@example.com,Ada\n".into(),
        };
        let objects = form.manifests().unwrap();
        assert_eq!(objects[0]["data"]["contacts.csv"], form.csv.as_str());
        let policy: crate::crd::ContactSyncPolicy =
            serde_json::from_value(objects[1].clone()).unwrap();
        assert_eq!(policy.spec.mode, crate::crd::common::Mode::Plan);
        assert!(yaml(&objects).contains("---\n"));
        for csv in ["", "name\nAda\n", "email\n", "email,a\n\"unterminated\n"] {
            let form = CsvPolicyForm {
                csv: csv.into(),
                ..form.clone_shallow()
            };
            assert_eq!(form.manifests().unwrap_err().field, "csv", "{csv:?}");
        }
    }

    #[test]
    fn a_sink_form_adds_one_sink() {
        let form = SinkForm {
            namespace: "crm".into(),
            connection: "acme".into(),
            sink: "servis-ai".into(),
            url: "https://servis.example.com/hooks/ghl".into(),
            secret: "feed-secret".into(),
            include: vec!["tasks".into(), "passwords".into()],
        };
        let patch = form.manifest().unwrap();
        assert_eq!(
            patch["spec"]["export"]["sinks"][0]["include"],
            json!(["tasks"])
        );
        let bad = SinkForm {
            url: "file:///etc/passwd".into(),
            ..form
        };
        assert_eq!(bad.manifest().unwrap_err().field, "url");
    }

    impl CsvPolicyForm {
        fn clone_shallow(&self) -> Self {
            Self {
                namespace: self.namespace.clone(),
                name: self.name.clone(),
                connection: self.connection.clone(),
                csv: self.csv.clone(),
            }
        }
    }
}

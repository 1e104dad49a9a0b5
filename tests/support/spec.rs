//! The official GHL OpenAPI specs vendored under `tests/fixtures/ghl/openapi` (CC0), with
//! `$ref` resolution across files and example synthesis from the specs' own `example` values.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

fn openapi_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ghl/openapi")
}

/// One spec file and the folder it lives in (for relative `$ref`s).
pub struct Spec {
    pub doc: Value,
    dir: PathBuf,
}

impl Spec {
    /// Loads `apps/<name>` (e.g. `contacts.json`).
    pub fn load(name: &str) -> Self {
        let path = openapi_dir().join("apps").join(name);
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        Self {
            doc: serde_json::from_str(&text).unwrap(),
            dir: path.parent().unwrap().to_path_buf(),
        }
    }

    /// A copy in which schemas typed `object` without properties but exemplified by a scalar
    /// (a recurring defect: `dateOfBirth`, numeric custom field values) take the example's type.
    pub fn with_example_types_fixed(&self) -> Self {
        fn fix(node: &mut Value) {
            if let Value::Object(map) = node {
                let scalar_example = map.get("example").and_then(|e| match e {
                    Value::String(_) => Some("string"),
                    Value::Number(_) => Some("number"),
                    Value::Bool(_) => Some("boolean"),
                    _ => None,
                });
                if map.get("type").and_then(Value::as_str) == Some("object")
                    && !map.contains_key("properties")
                    && let Some(kind) = scalar_example
                {
                    map.insert("type".into(), Value::String(kind.into()));
                }
                map.values_mut().for_each(fix);
            } else if let Value::Array(items) = node {
                items.iter_mut().for_each(fix);
            }
        }
        let mut doc = self.doc.clone();
        fix(&mut doc);
        Self {
            doc,
            dir: self.dir.clone(),
        }
    }

    pub fn schema(&self, name: &str) -> Value {
        self.doc["components"]["schemas"]
            .get(name)
            .cloned()
            .unwrap_or_else(|| panic!("no schema {name}"))
    }

    /// Resolves a `$ref` (local or into a sibling file) to its schema.
    pub fn resolve(&self, reference: &str) -> Value {
        let (file, pointer) = reference.split_once('#').unwrap_or(("", reference));
        let doc = if file.is_empty() {
            self.doc.clone()
        } else {
            let path = self.dir.join(file);
            serde_json::from_str(
                &std::fs::read_to_string(&path)
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display())),
            )
            .unwrap()
        };
        doc.pointer(pointer)
            .cloned()
            .unwrap_or_else(|| panic!("unresolved $ref {reference}"))
    }

    fn deref(&self, schema: &Value) -> Value {
        match schema.get("$ref").and_then(Value::as_str) {
            Some(r) => self.deref(&self.resolve(r)),
            None => schema.clone(),
        }
    }

    /// The operation with this `operationId`: (method, path, operation object).
    pub fn operation(&self, id: &str) -> (String, String, Value) {
        for (path, ops) in self.doc["paths"].as_object().unwrap() {
            for (method, op) in ops.as_object().unwrap() {
                if op.get("operationId").and_then(Value::as_str) == Some(id) {
                    return (method.to_uppercase(), path.clone(), op.clone());
                }
            }
        }
        panic!("no operation {id}");
    }

    /// The JSON schema of an operation's response with `status` (dereferenced).
    pub fn response_schema(&self, id: &str, status: &str) -> Value {
        let (_, _, op) = self.operation(id);
        let schema = op["responses"][status]["content"]["application/json"]["schema"].clone();
        assert!(!schema.is_null(), "{id} declares no {status} JSON body");
        self.deref(&schema)
    }

    /// The JSON schema of an operation's request body (dereferenced).
    pub fn request_schema(&self, id: &str) -> Value {
        let (_, _, op) = self.operation(id);
        let content = &op["requestBody"]["content"];
        let schema = content
            .get("application/json")
            .or_else(|| content.get("application/x-www-form-urlencoded"))
            .map(|c| c["schema"].clone())
            .unwrap_or_else(|| panic!("{id} has no request body"));
        self.deref(&schema)
    }

    /// Property names a schema declares (following `allOf`).
    pub fn property_names(&self, schema: &Value) -> BTreeSet<String> {
        let schema = self.deref(schema);
        let mut names: BTreeSet<String> = schema
            .get("properties")
            .and_then(Value::as_object)
            .map(|p| p.keys().cloned().collect())
            .unwrap_or_default();
        if let Some(parts) = schema.get("allOf").and_then(Value::as_array) {
            for part in parts {
                names.extend(self.property_names(part));
            }
        }
        names
    }

    /// The schema of property `name` of `schema` (dereferenced).
    pub fn property(&self, schema: &Value, name: &str) -> Value {
        self.deref(&self.deref(schema)["properties"][name])
    }

    /// An example value for a schema, built from the spec's own `example`s. An example whose
    /// JSON type contradicts the declared type (the spec has a few) is replaced by a value of
    /// the declared type, so the test checks our types against the declarations.
    pub fn example(&self, schema: &Value) -> Value {
        let schema = self.deref(schema);
        if let Some(options) = schema
            .get("anyOf")
            .or_else(|| schema.get("oneOf"))
            .and_then(Value::as_array)
        {
            return self.example(&options[0]);
        }
        if let Some(parts) = schema.get("allOf").and_then(Value::as_array) {
            let mut merged = Map::new();
            for part in parts {
                if let Value::Object(o) = self.example(part) {
                    merged.extend(o);
                }
            }
            return Value::Object(merged);
        }
        let declared = schema.get("type").and_then(Value::as_str);
        if let Some(props) = schema.get("properties").and_then(Value::as_object) {
            let object: Map<String, Value> = props
                .iter()
                .map(|(name, prop)| (name.clone(), self.example(prop)))
                .collect();
            return Value::Object(object);
        }
        if let Some(example) = schema.get("example")
            && matches_type(example, declared, &schema, self)
        {
            return example.clone();
        }
        match declared {
            Some("array") => json!([self.example(&schema["items"])]),
            Some("object") => json!({}),
            Some("number") => json!(1.5),
            Some("integer") => json!(1),
            Some("boolean") => json!(true),
            _ => json!("x"),
        }
    }
}

fn matches_type(value: &Value, declared: Option<&str>, schema: &Value, spec: &Spec) -> bool {
    match declared {
        Some("string") => value.is_string(),
        Some("number") => value.is_number(),
        Some("integer") => value.is_i64() || value.is_u64(),
        Some("boolean") => value.is_boolean(),
        Some("array") => value.as_array().is_some_and(|items| {
            let item_schema = spec.deref(&schema["items"]);
            let item_type = item_schema.get("type").and_then(Value::as_str);
            items
                .iter()
                .all(|i| matches_type(i, item_type, &item_schema, spec))
        }),
        Some("object") => value.is_object(),
        _ => true,
    }
}

/// Property names our model type declares, from its derived JSON schema.
pub fn model_property_names<T: schemars::JsonSchema>() -> BTreeSet<String> {
    let schema = serde_json::to_value(schemars::schema_for!(T)).unwrap();
    collect_props(&schema, &schema)
}

fn collect_props(root: &Value, schema: &Value) -> BTreeSet<String> {
    let schema = match schema.get("$ref").and_then(Value::as_str) {
        Some(r) => root
            .pointer(r.trim_start_matches('#'))
            .cloned()
            .unwrap_or(Value::Null),
        None => schema.clone(),
    };
    let mut names: BTreeSet<String> = schema
        .get("properties")
        .and_then(Value::as_object)
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default();
    for key in ["allOf", "anyOf", "oneOf"] {
        if let Some(parts) = schema.get(key).and_then(Value::as_array) {
            for part in parts {
                names.extend(collect_props(root, part));
            }
        }
    }
    names
}

/// A JSON-schema validator for a spec schema (OpenAPI 3.0 keywords that JSON Schema lacks,
/// like `nullable` and `example`, are ignored; local `$ref`s resolve inside the spec).
pub fn validator(spec: &Spec, schema: &Value) -> jsonschema::Validator {
    let mut root = schema.clone();
    if let Value::Object(map) = &mut root {
        map.insert("components".into(), spec.doc["components"].clone());
    }
    jsonschema::validator_for(&root).unwrap()
}

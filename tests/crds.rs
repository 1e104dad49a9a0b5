//! The CRDs: committed YAML matches the types, the schemas document every field and carry the
//! Kubernetes markers, the examples validate, and the CEL rules hold (evaluated client-side,
//! because the test API server (1.20) does not enforce them).

use std::path::{Path, PathBuf};

use ghl_operator::crd::{self, ContactSyncPolicy, GhlConnection, TagRule};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;
use kube::core::cel::Validator;
use serde_json::{Value, json};

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn schema_of(crd: &CustomResourceDefinition) -> Value {
    serde_json::to_value(
        crd.spec.versions[0]
            .schema
            .as_ref()
            .and_then(|s| s.open_api_v3_schema.as_ref())
            .expect("generated CRDs have a schema"),
    )
    .unwrap()
}

#[test]
fn committed_crds_match_the_types() {
    for (file, definition) in crd::all() {
        let path = repo("crds").join(file);
        let committed =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let generated = crd::to_yaml(&definition).unwrap();
        assert!(
            committed == generated,
            "{} is stale: run `cargo run -- crds --out-dir crds` and commit the result",
            path.display()
        );
    }
}

#[test]
fn the_charts_crd_templates_match_the_types_and_are_kept_at_uninstall() {
    for (file, definition) in crd::all() {
        let path = repo("charts/ghl-operator/templates/crds").join(file);
        let committed =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let generated = crd::to_chart_template(&definition).unwrap();
        assert!(
            committed == generated,
            "{} is stale: run `cargo run -- crds --chart --out-dir charts/ghl-operator/templates/crds` and commit the result",
            path.display()
        );
        // Installed only with `crds.install`, annotated to be kept only with `crds.keep`.
        assert!(committed.contains("{{- if .Values.crds.install }}"));
        assert!(committed.contains("{{- if .Values.crds.keep }}"));
        assert!(committed.contains("helm.sh/resource-policy: keep"));
    }
    assert!(
        !repo("charts/ghl-operator/crds").exists(),
        "the chart's crds/ folder is never upgraded by Helm: CRDs are templates"
    );
}

#[test]
fn the_binary_prints_all_three_crds() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_ghl-operator"))
        .arg("crds")
        .output()
        .unwrap();
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).unwrap();
    let docs: Vec<CustomResourceDefinition> = serde_saphyr::from_multiple(&text).unwrap();
    let names: Vec<_> = docs
        .iter()
        .map(|d| d.metadata.name.clone().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "ghlconnections.ghl.servis.ai",
            "contactsyncpolicies.ghl.servis.ai",
            "tagrules.ghl.servis.ai"
        ]
    );
}

#[test]
fn names_columns_and_scope_follow_the_product() {
    for (_, definition) in crd::all() {
        let spec = &definition.spec;
        assert_eq!(spec.group, "ghl.servis.ai");
        assert_eq!(spec.scope, "Namespaced");
        assert_eq!(
            spec.names.categories.as_deref(),
            Some(&["ghl".to_owned()][..])
        );
        assert!(!spec.names.short_names.as_ref().unwrap().is_empty());
        let version = &spec.versions[0];
        assert_eq!(version.name, "v1alpha1");
        assert!(version.subresources.as_ref().unwrap().status.is_some());
        let columns: Vec<_> = version
            .additional_printer_columns
            .as_ref()
            .unwrap()
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        assert!(columns.contains(&"Ready"), "{columns:?}");
        assert!(columns.contains(&"Age"), "{columns:?}");
        // The state a person must act on shows in `kubectl get`; the message with -o wide.
        assert!(columns.contains(&"Reason"), "{columns:?}");
        let message = version
            .additional_printer_columns
            .as_ref()
            .unwrap()
            .iter()
            .find(|c| c.name == "Message")
            .unwrap_or_else(|| panic!("a Message column: {columns:?}"));
        assert_eq!(message.priority, Some(1));
    }
    assert_eq!(
        GhlConnection::crd().spec.names.short_names.unwrap(),
        ["ghlconn"]
    );
    let policy_columns: Vec<_> = ContactSyncPolicy::crd().spec.versions[0]
        .additional_printer_columns
        .clone()
        .unwrap()
        .into_iter()
        .map(|c| c.name)
        .collect();
    for column in ["Synced", "Desired", "InSync", "Drifted", "Failed"] {
        assert!(policy_columns.iter().any(|c| c == column), "{column}");
    }
}

/// Walks a schema and returns the paths of properties without a description.
fn undocumented(schema: &Value, path: &str, out: &mut Vec<String>) {
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        for (name, prop) in props {
            let here = format!("{path}.{name}");
            // apiVersion/kind/metadata are the standard envelope.
            let envelope =
                path.is_empty() && ["apiVersion", "kind", "metadata"].contains(&name.as_str());
            if !envelope && prop.get("description").is_none() {
                out.push(here.clone());
            }
            undocumented(prop, &here, out);
        }
    }
    if let Some(items) = schema.get("items") {
        undocumented(items, &format!("{path}[]"), out);
    }
    if let Some(extra) = schema.get("additionalProperties").filter(|v| v.is_object()) {
        undocumented(extra, &format!("{path}{{}}"), out);
    }
}

#[test]
fn every_field_has_a_description_for_kubectl_explain() {
    for (file, definition) in crd::all() {
        let mut missing = Vec::new();
        undocumented(&schema_of(&definition), "", &mut missing);
        assert!(
            missing.is_empty(),
            "{file}: undocumented fields {missing:?}"
        );
    }
}

#[test]
fn conditions_are_map_lists_keyed_by_type_and_status_has_observed_generation() {
    for (file, definition) in crd::all() {
        let status = &schema_of(&definition)["properties"]["status"]["properties"];
        let conditions = &status["conditions"];
        assert_eq!(conditions["x-kubernetes-list-type"], "map", "{file}");
        assert_eq!(
            conditions["x-kubernetes-list-map-keys"],
            json!(["type"]),
            "{file}"
        );
        assert_eq!(status["observedGeneration"]["type"], "integer", "{file}");
    }
}

/// All example documents of our group, with the CRD each belongs to.
fn example_objects() -> Vec<(String, Value)> {
    let mut out = Vec::new();
    let mut paths: Vec<_> = std::fs::read_dir(repo("examples"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    paths.sort();
    for path in paths {
        let text = std::fs::read_to_string(&path).unwrap();
        let docs: Vec<Value> = serde_saphyr::from_multiple(&text)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        for doc in docs {
            out.push((
                path.file_name().unwrap().to_string_lossy().into_owned(),
                doc,
            ));
        }
    }
    out
}

fn crd_for(kind: &str) -> Option<CustomResourceDefinition> {
    crd::all()
        .into_iter()
        .map(|(_, c)| c)
        .find(|c| c.spec.names.kind == kind)
}

#[test]
fn examples_validate_against_the_generated_schemas_and_cel_rules() {
    let mut seen = std::collections::BTreeSet::new();
    for (file, doc) in example_objects() {
        let kind = doc["kind"].as_str().unwrap_or_default().to_owned();
        let Some(definition) = crd_for(&kind) else {
            continue;
        };
        assert_eq!(doc["apiVersion"], "ghl.servis.ai/v1alpha1", "{file}");
        let schema = schema_of(&definition);
        let validator = jsonschema::validator_for(&schema).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&doc)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{file} ({kind}): {errors:?}");
        Validator::new()
            .validate(&schema, &doc, None)
            .unwrap_or_else(|e| panic!("{file} ({kind}) breaks a CEL rule: {e}"));
        match kind.as_str() {
            "GhlConnection" => drop(serde_json::from_value::<GhlConnection>(doc).unwrap()),
            "ContactSyncPolicy" => drop(serde_json::from_value::<ContactSyncPolicy>(doc).unwrap()),
            "TagRule" => drop(serde_json::from_value::<TagRule>(doc).unwrap()),
            other => panic!("unexpected kind {other}"),
        }
        seen.insert(kind);
    }
    assert_eq!(
        seen.len(),
        3,
        "examples must cover all three kinds: {seen:?}"
    );
}

#[test]
fn schema_rejects_what_the_api_server_would() {
    let schema = schema_of(&GhlConnection::crd());
    let validator = jsonschema::validator_for(&schema).unwrap();
    let mut bad = example_connection();
    bad["spec"]["auth"]["privateIntegrationToken"]["maxAge"] = json!("ninety days");
    assert!(
        !validator.is_valid(&bad),
        "a malformed duration must be refused"
    );
    let mut bad = example_connection();
    bad["spec"]["rateLimit"] = json!({"sharePercent": 150});
    assert!(
        !validator.is_valid(&bad),
        "a share above 100% must be refused"
    );
    let mut bad = example_connection();
    bad["spec"]["auth"]["oauth"] = json!({"clientSecretRef": {"name": "c"}, "tokenSecretRef": {"name": "t"}, "userType": "Agency"});
    assert!(
        !validator.is_valid(&bad),
        "unknown enum values must be refused"
    );
}

#[test]
fn a_policy_reads_at_most_256_sources() {
    let schema = schema_of(&ContactSyncPolicy::crd());
    let validator = jsonschema::validator_for(&schema).unwrap();
    let source = json!({"configMapRef": {"name": "batch", "key": "contacts.csv"}});
    let mut policy = example_policy();
    policy["spec"]["contactsFrom"] = json!(vec![source.clone(); 256]);
    assert!(validator.is_valid(&policy), "256 sources are allowed");
    policy["spec"]["contactsFrom"] = json!(vec![source; 257]);
    assert!(
        !validator.is_valid(&policy),
        "each source is a read (or a fetch) per reconcile: their number is bounded"
    );
}

fn example_connection() -> Value {
    json!({
        "apiVersion": "ghl.servis.ai/v1alpha1",
        "kind": "GhlConnection",
        "metadata": {"name": "acme", "namespace": "crm"},
        "spec": {
            "locationId": "ve9EPM428h8vShlRW1KT",
            "auth": {"privateIntegrationToken": {"secretRef": {"name": "acme-pit", "key": "token"}}}
        }
    })
}

fn cel(kind: &str, object: &Value, old: Option<&Value>) -> Result<(), String> {
    let schema = schema_of(&crd_for(kind).unwrap());
    Validator::new()
        .validate(&schema, object, old)
        .map_err(|e| e.to_string())
}

#[test]
fn cel_location_id_is_immutable() {
    let old = example_connection();
    let mut new = old.clone();
    assert_eq!(cel("GhlConnection", &new, Some(&old)), Ok(()));
    new["spec"]["locationId"] = json!("another0location0id0");
    let err = cel("GhlConnection", &new, Some(&old)).unwrap_err();
    assert!(err.contains("locationId is immutable"), "{err}");
}

#[test]
fn cel_auth_is_exactly_one_of() {
    let oauth = json!({"clientSecretRef": {"name": "c"}, "tokenSecretRef": {"name": "t"}});
    let mut both = example_connection();
    both["spec"]["auth"]["oauth"] = oauth.clone();
    let err = cel("GhlConnection", &both, None).unwrap_err();
    assert!(
        err.contains("exactly one of privateIntegrationToken, oauth or agencyGrant"),
        "{err}"
    );
    let agency = json!({"connectionRef": {"name": "agency"}, "tokenSecretRef": {"name": "t"}});
    let mut pit_and_agency = example_connection();
    pit_and_agency["spec"]["auth"]["agencyGrant"] = agency.clone();
    assert!(cel("GhlConnection", &pit_and_agency, None).is_err());
    let mut only_agency = example_connection();
    only_agency["spec"]["auth"] = json!({"agencyGrant": agency});
    assert_eq!(cel("GhlConnection", &only_agency, None), Ok(()));

    let mut neither = example_connection();
    neither["spec"]["auth"] = json!({});
    assert!(cel("GhlConnection", &neither, None).is_err());

    let mut only_oauth = example_connection();
    only_oauth["spec"]["auth"] = json!({"oauth": oauth});
    assert_eq!(cel("GhlConnection", &only_oauth, None), Ok(()));
}

fn example_policy() -> Value {
    json!({
        "apiVersion": "ghl.servis.ai/v1alpha1",
        "kind": "ContactSyncPolicy",
        "metadata": {"name": "vip", "namespace": "crm"},
        "spec": {"connectionRef": {"name": "acme"}, "contacts": [{"email": "ada@example.com"}]}
    })
}

#[test]
fn cel_connection_ref_is_immutable_and_sources_are_one_of() {
    let old = example_policy();
    let mut moved = old.clone();
    moved["spec"]["connectionRef"]["name"] = json!("other");
    let err = cel("ContactSyncPolicy", &moved, Some(&old)).unwrap_err();
    assert!(err.contains("connectionRef is immutable"), "{err}");

    let mut edited = old.clone();
    edited["spec"]["prune"] = json!(true);
    assert_eq!(cel("ContactSyncPolicy", &edited, Some(&old)), Ok(()));

    let mut two_sources = example_policy();
    two_sources["spec"]["contactsFrom"] = json!([{
        "configMapRef": {"name": "a", "key": "c.csv"},
        "secretRef": {"name": "b", "key": "c.csv"}
    }]);
    let err = cel("ContactSyncPolicy", &two_sources, None).unwrap_err();
    assert!(
        err.contains("exactly one of configMapRef, secretRef or http"),
        "{err}"
    );
}

fn example_rule() -> Value {
    json!({
        "apiVersion": "ghl.servis.ai/v1alpha1",
        "kind": "TagRule",
        "metadata": {"name": "r", "namespace": "crm"},
        "spec": {
            "connectionRef": {"name": "acme"},
            "selector": {"filters": [{"field": "email", "operator": "contains", "value": "@bigcorp.com"}]},
            "addTags": ["enterprise"],
            "removeTags": ["smb"]
        }
    })
}

#[test]
fn cel_tag_rule_rules() {
    assert_eq!(cel("TagRule", &example_rule(), None), Ok(()));

    let mut overlap = example_rule();
    overlap["spec"]["removeTags"] = json!(["enterprise"]);
    let err = cel("TagRule", &overlap, None).unwrap_err();
    assert!(err.contains("both addTags and removeTags"), "{err}");

    let mut nothing = example_rule();
    nothing["spec"]["addTags"] = json!([]);
    nothing["spec"]["removeTags"] = json!([]);
    let err = cel("TagRule", &nothing, None).unwrap_err();
    assert!(
        err.contains("at least one of addTags, removeTags, tasks or notes"),
        "{err}"
    );

    let mut exists_with_value = example_rule();
    exists_with_value["spec"]["selector"]["filters"] =
        json!([{"field": "phone", "operator": "exists", "value": "x"}]);
    assert!(cel("TagRule", &exists_with_value, None).is_err());

    let mut eq_without_value = example_rule();
    eq_without_value["spec"]["selector"]["filters"] = json!([{"field": "city", "operator": "eq"}]);
    assert!(cel("TagRule", &eq_without_value, None).is_err());

    let mut exists_ok = example_rule();
    exists_ok["spec"]["selector"]["filters"] = json!([{"field": "phone", "operator": "exists"}]);
    assert_eq!(cel("TagRule", &exists_ok, None), Ok(()));
}

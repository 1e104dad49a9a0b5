//! Reading manifests for the CLI: the YAML (or JSON) files users `kubectl apply`, from files
//! and folders. GhlConnections, ContactSyncPolicies and TagRules are checked like the API
//! server would (schema types and CEL rules); Secrets and ConfigMaps supply credentials and
//! `contactsFrom` data; other kinds are ignored.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use kube::CustomResourceExt;
use kube::core::cel::Validator;
use serde_json::Value;

use crate::crd::{ContactSyncPolicy, GhlConnection, TagRule};

/// `namespace/name`.
pub type ObjectKey = (String, String);

/// Everything read from the given paths.
#[derive(Debug, Default)]
pub struct Manifests {
    pub connections: BTreeMap<ObjectKey, GhlConnection>,
    pub policies: BTreeMap<ObjectKey, ContactSyncPolicy>,
    pub rules: BTreeMap<ObjectKey, TagRule>,
    pub secrets: BTreeMap<ObjectKey, BTreeMap<String, String>>,
    pub config_maps: BTreeMap<ObjectKey, BTreeMap<String, String>>,
}

/// Why manifests could not be read; `at` names the file (and document).
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("{at}: {source}")]
    Io {
        at: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}: no such file or folder")]
    NotFound(String),
    #[error("{at}: not valid YAML: {reason}")]
    NotYaml { at: String, reason: String },
    #[error("{at}: {kind} without metadata.name")]
    NoName { at: String, kind: String },
    #[error("{at}: Secret data {key:?} is not base64")]
    NotBase64 { at: String, key: String },
    /// Refused as the API server would: a type or a CEL rule.
    #[error("{at}: {reason}")]
    Invalid { at: String, reason: String },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ManifestError + '_ {
    move |source| ManifestError::Io {
        at: path.display().to_string(),
        source,
    }
}

/// The files under `paths` (folders are walked; `.yaml`, `.yml`, `.json`), sorted.
fn files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, ManifestError> {
    let mut out = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
                .map_err(io(path))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .collect();
            entries.sort();
            let nested: Vec<PathBuf> = entries
                .into_iter()
                .filter(|p| p.is_dir() || is_manifest(p))
                .collect();
            out.extend(files(&nested)?);
        } else if path.exists() {
            out.push(path.clone());
        } else {
            return Err(ManifestError::NotFound(path.display().to_string()));
        }
    }
    Ok(out)
}

fn is_manifest(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml" | "json")
    )
}

impl Manifests {
    /// Keeps only the objects in `namespaces`; returns the policies and rules dropped
    /// (`Kind namespace/name`).
    pub fn retain_namespaces(&mut self, namespaces: &[String]) -> Vec<String> {
        let keep = |key: &ObjectKey| namespaces.contains(&key.0);
        let mut dropped: Vec<String> = self
            .policies
            .keys()
            .filter(|k| !keep(k))
            .map(|(ns, name)| format!("ContactSyncPolicy {ns}/{name}"))
            .chain(
                self.rules
                    .keys()
                    .filter(|k| !keep(k))
                    .map(|(ns, name)| format!("TagRule {ns}/{name}")),
            )
            .collect();
        dropped.sort();
        self.connections.retain(|k, _| keep(k));
        self.policies.retain(|k, _| keep(k));
        self.rules.retain(|k, _| keep(k));
        self.secrets.retain(|k, _| keep(k));
        self.config_maps.retain(|k, _| keep(k));
        dropped
    }

    /// Reads every manifest under `paths`. `default_namespace` applies to objects without one.
    pub fn load(paths: &[PathBuf], default_namespace: &str) -> Result<Self, ManifestError> {
        let mut manifests = Manifests::default();
        for file in files(paths)? {
            let text = std::fs::read_to_string(&file).map_err(io(&file))?;
            manifests.add_text(&text, &file.display().to_string(), default_namespace)?;
        }
        Ok(manifests)
    }

    /// Adds the documents of one YAML (or JSON) text; `origin` names it in errors.
    pub fn add_text(
        &mut self,
        text: &str,
        origin: &str,
        default_namespace: &str,
    ) -> Result<(), ManifestError> {
        let docs: Vec<Value> =
            serde_saphyr::from_multiple(text).map_err(|e| ManifestError::NotYaml {
                at: origin.to_owned(),
                reason: e.to_string(),
            })?;
        for (n, mut doc) in docs.into_iter().enumerate() {
            if doc.is_null() {
                continue;
            }
            let at = format!("{origin} (document {})", n + 1);
            let kind = doc["kind"].as_str().unwrap_or_default().to_owned();
            if doc["metadata"]["namespace"].as_str().is_none() && kind != "Namespace" {
                doc["metadata"]["namespace"] = Value::String(default_namespace.to_owned());
            }
            let key = (
                doc["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                doc["metadata"]["name"]
                    .as_str()
                    .ok_or_else(|| ManifestError::NoName {
                        at: at.clone(),
                        kind: kind.clone(),
                    })?
                    .to_owned(),
            );
            match kind.as_str() {
                "GhlConnection" => {
                    let object: GhlConnection = checked::<GhlConnection>(&doc, &at)?;
                    self.connections.insert(key, object);
                }
                "ContactSyncPolicy" => {
                    let object: ContactSyncPolicy = checked::<ContactSyncPolicy>(&doc, &at)?;
                    self.policies.insert(key, object);
                }
                "TagRule" => {
                    let object: TagRule = checked::<TagRule>(&doc, &at)?;
                    self.rules.insert(key, object);
                }
                "Secret" => {
                    let mut data = BTreeMap::new();
                    for (k, v) in doc["data"].as_object().into_iter().flatten() {
                        let bytes =
                            BASE64.decode(v.as_str().unwrap_or_default()).map_err(|_| {
                                ManifestError::NotBase64 {
                                    at: at.clone(),
                                    key: k.clone(),
                                }
                            })?;
                        data.insert(k.clone(), String::from_utf8_lossy(&bytes).into_owned());
                    }
                    for (k, v) in doc["stringData"].as_object().into_iter().flatten() {
                        data.insert(k.clone(), v.as_str().unwrap_or_default().to_owned());
                    }
                    self.secrets.insert(key, data);
                }
                "ConfigMap" => {
                    let data = doc["data"]
                        .as_object()
                        .into_iter()
                        .flatten()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                        .collect();
                    self.config_maps.insert(key, data);
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// Deserializes a custom resource after the checks the API server makes: types (through
/// serde) and the CRD's CEL rules.
fn checked<K>(doc: &Value, at: &str) -> Result<K, ManifestError>
where
    K: CustomResourceExt + serde::de::DeserializeOwned,
{
    let crd = K::crd();
    let schema = crd.spec.versions[0]
        .schema
        .as_ref()
        .and_then(|s| s.open_api_v3_schema.as_ref())
        .and_then(|s| serde_json::to_value(s).ok())
        .unwrap_or(Value::Null);
    let invalid = |reason: String| ManifestError::Invalid {
        at: at.to_owned(),
        reason,
    };
    if let Err(errors) = Validator::new().validate(&schema, doc, None) {
        return Err(invalid(errors.to_string()));
    }
    serde_json::from_value(doc.clone()).map_err(|e| invalid(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_kinds_and_defaults_the_namespace() {
        let text = r#"
apiVersion: v1
kind: Secret
metadata: {name: pit}
stringData: {token: abc}
data: {other: aGVsbG8=}
---
apiVersion: ghl.servis.ai/v1alpha1
kind: GhlConnection
metadata: {name: acme}
spec:
  locationId: loc
  auth: {privateIntegrationToken: {secretRef: {name: pit, key: token}}}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: batch, namespace: crm}
data: {contacts.csv: "email\na@b.co\n"}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: ignored}
"#;
        let mut m = Manifests::default();
        m.add_text(text, "test.yaml", "default").unwrap();
        let pit = &m.secrets[&("default".to_owned(), "pit".to_owned())];
        assert_eq!(pit["token"], "abc");
        assert_eq!(pit["other"], "hello");
        assert!(
            m.connections
                .contains_key(&("default".to_owned(), "acme".to_owned()))
        );
        assert!(
            m.config_maps[&("crm".to_owned(), "batch".to_owned())]["contacts.csv"]
                .starts_with("email")
        );
    }

    #[test]
    fn invalid_objects_are_refused_with_their_location() {
        let both_auths = r#"
apiVersion: ghl.servis.ai/v1alpha1
kind: GhlConnection
metadata: {name: acme}
spec:
  locationId: loc
  auth:
    privateIntegrationToken: {secretRef: {name: pit, key: token}}
    oauth: {clientSecretRef: {name: c}, tokenSecretRef: {name: t}}
"#;
        let err = Manifests::default()
            .add_text(both_auths, "bad.yaml", "default")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("bad.yaml (document 1)") && err.contains("exactly one"),
            "{err}"
        );
        let bad_type = "apiVersion: ghl.servis.ai/v1alpha1\nkind: ContactSyncPolicy\nmetadata: {name: p}\nspec: {connectionRef: {name: a}, prune: maybe}\n";
        let err = Manifests::default()
            .add_text(bad_type, "p.yaml", "default")
            .unwrap_err();
        assert!(matches!(err, ManifestError::Invalid { .. }), "{err}");
        let err = err.to_string();
        assert!(err.contains("p.yaml"), "{err}");
    }

    #[test]
    fn the_examples_load() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
        let m = Manifests::load(&[root], "default").unwrap();
        assert_eq!(m.connections.len(), 4);
        assert_eq!(m.policies.len(), 1);
        assert_eq!(m.rules.len(), 2, "enterprise-domain and hot-leads");
    }
}

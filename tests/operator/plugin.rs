//! The plugin as kubectl users call it: `status --kubeconfig FILE --context NAME -o json`
//! reads the cluster of the named context (not the current one) in that context's namespace,
//! and prints a List a program can parse.

use std::process::Command;

use serde_json::{Value, json};

use crate::harness::*;

#[tokio::test]
async fn status_takes_kubeconfig_context_and_output_like_kubectl() {
    let Some((client, ns)) = setup("plugin").await else {
        return;
    };
    apply(&client, &ns.name, json!({
        "apiVersion": "ghl.servis.ai/v1alpha1", "kind": "ContactSyncPolicy", "metadata": {"name": "listed"},
        "spec": {"connectionRef": {"name": "none"}, "mode": "Plan", "contacts": [{"email": "a@example.com"}]}
    }))
    .await;
    // The test cluster's kubeconfig, with a current context that leads nowhere and a second
    // one, named, with the test's namespace.
    let admin: Value =
        serde_saphyr::from_str(&std::fs::read_to_string(kubeconfig_path()).unwrap()).unwrap();
    let config = json!({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [admin["clusters"][0].clone(),
                     {"name": "nowhere", "cluster": {"server": "https://127.0.0.1:1"}}],
        "users": admin["users"].clone(),
        "contexts": [
            {"name": "broken", "context": {"cluster": "nowhere", "user": admin["users"][0]["name"].clone()}},
            {"name": "team", "context": {"cluster": admin["clusters"][0]["name"].clone(),
                                         "user": admin["users"][0]["name"].clone(), "namespace": ns.name}}],
        "current-context": "broken",
    });
    let file =
        std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{}-kubeconfig", ns.name));
    std::fs::write(&file, serde_json::to_string(&config).unwrap()).unwrap();
    let status = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_ghl-operator"))
            .arg("status")
            .arg("--kubeconfig")
            .arg(&file)
            .args(args)
            .env_remove("KUBECONFIG")
            .output()
            .unwrap()
    };
    let output = status(&["--context", "team", "-o", "json"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let list: Value = serde_json::from_slice(&output.stdout).expect("-o json is JSON");
    assert_eq!(list["kind"], "List");
    let item = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == "listed")
        .expect("the context's namespace is read");
    assert_eq!(item["kind"], "ContactSyncPolicy");
    assert_eq!(item["namespace"], ns.name.as_str());
    let yaml = status(&["--context", "team", "-o", "yaml"]);
    let parsed: Value = serde_saphyr::from_slice(&yaml.stdout).expect("-o yaml is YAML");
    assert_eq!(parsed["items"], list["items"]);
    // Without --context: the current one, which leads nowhere.
    let current = status(&["-o", "json"]);
    assert!(
        !current.status.success(),
        "the current context is used by default"
    );
    ns.delete().await;
}

//! The Helm chart: rendered, strictly linted and schema-validated with Helm's own SDK
//! (`tests/chart/check_chart.py`), accepted by the API server (`--dry-run=server`), and its
//! RBAC enough for the operator to do its whole job — run as the chart's ServiceAccount.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::events::v1::Event;
use kube::Api;
use kube::api::{GroupVersionKind, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use crate::harness::*;
use crate::support::sandbox::{Raw, start_default};

const READY: Duration = Duration::from_secs(60);

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Runs the chart checks; returns the rendered value sets by name.
/// Renders every values set; `namespaced` is a release in `namespaces[0]` watching them all.
fn render(namespaces: &[&str]) -> std::collections::BTreeMap<String, Vec<Value>> {
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("chart-{}", namespaces[0]));
    let status = Command::new("python3")
        .arg(repo().join("tests/chart/check_chart.py"))
        .arg(repo().join("charts/ghl-operator"))
        .arg(&out)
        .args(namespaces)
        .status()
        .expect("python3 runs");
    assert!(status.success(), "chart checks failed (see stderr)");
    [
        "default",
        "all-features",
        "no-leader-election",
        "no-webhooks",
        "no-approval-webhook",
        "namespaced",
    ]
    .into_iter()
    .map(|name| {
        let text = std::fs::read_to_string(out.join(format!("{name}.json"))).unwrap();
        (name.to_owned(), serde_json::from_str(&text).unwrap())
    })
    .collect()
}

/// Removes every `x-kubernetes-validations` (CEL rules, which the 1.20 test server refuses to
/// apply; `tests/crds.rs` evaluates them client-side).
fn strip_cel(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.remove("x-kubernetes-validations");
            map.values_mut().for_each(strip_cel);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_cel),
        _ => {}
    }
}

fn gvk_of(object: &Value) -> GroupVersionKind {
    let api_version = object["apiVersion"].as_str().unwrap();
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    GroupVersionKind::gvk(group, version, object["kind"].as_str().unwrap())
}

fn rules_of<'a>(objects: &'a [Value], kind: &str, name_suffix: &str) -> &'a Value {
    &objects
        .iter()
        .find(|o| {
            o["kind"] == kind
                && o["metadata"]["name"]
                    .as_str()
                    .unwrap()
                    .ends_with(name_suffix)
        })
        .unwrap_or_else(|| panic!("a {kind} *{name_suffix}"))["rules"]
}

#[tokio::test]
async fn the_chart_renders_lints_validates_and_is_accepted_by_the_api_server() {
    let Some(client) = client().await else { return };
    let ns = TestNamespace::create(&client, "chart").await;
    let sets = render(&[&ns.name]);

    // watchNamespaces: a Role and a RoleBinding in each namespace, nothing cluster-wide.
    let namespaced = &sets["all-features"];
    for watched in ["crm", "sales"] {
        for kind in ["Role", "RoleBinding"] {
            assert!(
                namespaced
                    .iter()
                    .any(|o| o["kind"] == kind && o["metadata"]["namespace"] == watched),
                "a {kind} in {watched}"
            );
        }
    }
    // Cluster-wide only what has no namespace: the admission webhook's registration (its own
    // configuration by name) and access reviews; and the tenants' view/edit roles, which
    // grant nothing until aggregated into roles someone binds.
    let cluster_wide: Vec<&Value> = namespaced
        .iter()
        .filter(|o| o["kind"] == "ClusterRole" || o["kind"] == "ClusterRoleBinding")
        .collect();
    assert!(
        cluster_wide.iter().all(|o| {
            let name = o["metadata"]["name"].as_str().unwrap();
            name.ends_with("-admission")
                || (o["kind"] == "ClusterRole"
                    && (name.ends_with("-view") || name.ends_with("-edit")))
        }),
        "nothing cluster-wide when namespaces are listed but the admission webhook's: {cluster_wide:?}"
    );
    let admission = rules_of(namespaced, "ClusterRole", "-admission");
    assert_eq!(
        admission.to_string(),
        json!([
            {"apiGroups": ["authorization.k8s.io"], "resources": ["subjectaccessreviews"], "verbs": ["create"]},
            {"apiGroups": ["admissionregistration.k8s.io"], "resources": ["mutatingwebhookconfigurations"],
             "resourceNames": ["ghl-operator-approvals"], "verbs": ["get", "patch"]},
            {"apiGroups": ["admissionregistration.k8s.io"], "resources": ["mutatingwebhookconfigurations"], "verbs": ["create"]},
        ])
        .to_string()
    );

    // Least privilege: no wildcards anywhere, and the namespaced Role grants exactly what the
    // ClusterRole does.
    for (name, objects) in &sets {
        for object in objects
            .iter()
            .filter(|o| o["kind"] == "ClusterRole" || o["kind"] == "Role")
        {
            let text = object["rules"].to_string();
            assert!(!text.contains("\"*\""), "{name}: wildcard in {text}");
        }
    }
    assert_eq!(
        rules_of(&sets["default"], "ClusterRole", "ghl-operator"),
        rules_of(&sets["namespaced"], "Role", &ns.name)
    );

    // Server-side dry run of every object of every value set.
    let mut skipped = std::collections::BTreeSet::new();
    for (name, objects) in &sets {
        for object in objects {
            let mut object = object.clone();
            let gvk = gvk_of(&object);
            if gvk.kind == "CustomResourceDefinition" {
                // The 1.20 test server's apply schema predates CEL (see `install_crds`).
                strip_cel(&mut object);
            }
            let Ok((resource, caps)) = kube::discovery::pinned_kind(&client, &gvk).await else {
                skipped.insert(format!("{}/{}", gvk.group, gvk.kind));
                continue;
            };
            let api: Api<kube::api::DynamicObject> =
                if caps.scope == kube::discovery::Scope::Namespaced {
                    object["metadata"]["namespace"] = json!(ns.name);
                    Api::namespaced_with(client.clone(), &ns.name, &resource)
                } else {
                    Api::all_with(client.clone(), &resource)
                };
            let object_name = object["metadata"]["name"].as_str().unwrap().to_owned();
            api.patch(
                &object_name,
                &PatchParams::apply("helm").dry_run(),
                &Patch::Apply(&object),
            )
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "{name}: {} {object_name} refused by the API server: {e}",
                    gvk.kind
                )
            });
        }
    }
    // Only kinds this 1.20 test server cannot know: the Prometheus Operator's CRDs, and
    // PodDisruptionBudget in policy/v1 (served from Kubernetes 1.21).
    let allowed: std::collections::BTreeSet<String> = [
        "monitoring.coreos.com/ServiceMonitor",
        "monitoring.coreos.com/PrometheusRule",
        "policy/PodDisruptionBudget",
    ]
    .map(str::to_owned)
    .into();
    assert!(
        skipped.is_subset(&allowed),
        "unexpected kinds the server does not serve: {skipped:?}"
    );

    // The chart installs (and upgrades) the CRDs the binary generates, kept at uninstall.
    for (_, crd) in ghl_operator::crd::all() {
        let name = crd.metadata.name.clone().unwrap();
        let rendered = sets["default"]
            .iter()
            .find(|o| {
                o["kind"] == "CustomResourceDefinition" && o["metadata"]["name"] == name.as_str()
            })
            .unwrap_or_else(|| panic!("the chart renders {name}"));
        assert_eq!(
            rendered["metadata"]["annotations"]["helm.sh/resource-policy"], "keep",
            "{name} is kept when the release is uninstalled"
        );
        assert_eq!(
            rendered["spec"],
            serde_json::to_value(&crd.spec).unwrap(),
            "{name}"
        );
    }
    ns.delete().await;
}

/// A kubeconfig for the test API server that authenticates with `token`.
fn kubeconfig_with_token(token: &str, path: &Path) {
    let admin: Value =
        serde_saphyr::from_str(&std::fs::read_to_string(kubeconfig_path()).unwrap()).unwrap();
    let cluster = &admin["clusters"][0]["cluster"];
    let config = json!({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "test", "cluster": cluster}],
        "users": [{"name": "operator", "user": {"token": token}}],
        "contexts": [{"name": "operator", "context": {"cluster": "test", "user": "operator"}}],
        "current-context": "operator",
    });
    std::fs::write(path, serde_json::to_string(&config).unwrap()).unwrap();
}

#[tokio::test]
async fn the_operator_does_its_whole_job_with_only_the_charts_rbac() {
    let Some((client, ns)) = setup("rbac").await else {
        return;
    };
    // The release watches its own namespace and a second one, with a Role in each.
    let other = TestNamespace::create(&client, "rbac-b").await;
    let rendered = render(&[&ns.name, &other.name])
        .remove("namespaced")
        .unwrap();

    // Install the chart's ServiceAccount and RBAC (the Deployment cannot run here: no kubelet).
    for object in rendered.iter().filter(|o| {
        [
            "ServiceAccount",
            "Role",
            "RoleBinding",
            "ClusterRole",
            "ClusterRoleBinding",
        ]
        .contains(&o["kind"].as_str().unwrap())
    }) {
        let within = object["metadata"]["namespace"].as_str().unwrap_or(&ns.name);
        apply(&client, within, object.clone()).await;
    }
    assert!(
        rendered
            .iter()
            .any(|o| o["kind"] == "Role" && o["metadata"]["namespace"] == other.name.as_str()),
        "a Role in the second namespace"
    );
    let deployment = rendered.iter().find(|o| o["kind"] == "Deployment").unwrap();
    let pod = &deployment["spec"]["template"]["spec"];
    // Sharded: each replica advertises its pod IP, so the others forward it its webhooks.
    let container = &pod["containers"][0];
    assert!(
        container["args"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a == "--advertise-address=$(POD_IP)"),
        "{container}"
    );
    assert!(
        container["env"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["name"] == "POD_IP"
                && e["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"),
        "{container}"
    );
    let account = pod["serviceAccountName"].as_str().unwrap();
    let request: TokenRequest =
        serde_json::from_value(json!({"spec": {"audiences": [], "expirationSeconds": 3600}}))
            .unwrap();
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), &ns.name);
    let token = accounts
        .create_token_request(account, &PostParams::default(), &request)
        .await
        .expect("a token for the chart's ServiceAccount")
        .status
        .unwrap()
        .token;
    let kubeconfig =
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{}-kubeconfig.json", ns.name));
    kubeconfig_with_token(&token, &kubeconfig);

    // Run with the chart's own flags (the harness sets the metrics address, and the namespace
    // the downward API would give the pod).
    let args: Vec<String> = pod["containers"][0]["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_owned())
        // The webhook ports are fixed ones (tests run side by side), the admission Service has
        // no pod behind it here, the webhook keys come from a ConfigMap mount only a pod has,
        // and the address it advertises is the pod's IP.
        .filter(|a| {
            !a.starts_with("--metrics-addr")
                && !a.starts_with("--webhook-addr")
                && !a.starts_with("--admission-addr")
                && !a.starts_with("--admission-url")
                && !a.starts_with("--webhook-public-key")
                && !a.starts_with("--advertise-address")
        })
        .collect();
    assert!(
        args.iter().any(|a| a.starts_with("--lease-name=")),
        "the chart enables leader election: {args:?}"
    );
    let sandbox = start_default().await;
    let mut options = OperatorOptions::new(&ns.name, "chart-pod");
    options.kubeconfig = kubeconfig;
    let mut args = args;
    args.push(format!("--allowed-base-url={}", sandbox.url));
    let admission = free_port();
    args.push(format!("--admission-addr=127.0.0.1:{admission}"));
    args.push(format!("--admission-url=https://127.0.0.1:{admission}"));
    options.args = Some(args);
    let operator = Operator::start(options);

    for doc in examples(&sandbox.url) {
        apply(&client, &ns.name, doc).await;
    }
    wait_object(
        &connections(&client, &ns.name),
        "acme",
        "Ready",
        READY,
        |c| is_true(c, "Ready"),
    )
    .await;
    wait_object(
        &policies(&client, &ns.name),
        "vip-customers",
        "Synced",
        READY,
        |p| is_true(p, "Synced"),
    )
    .await;
    wait_object(
        &rules(&client, &ns.name),
        "enterprise-domain",
        "Ready",
        READY,
        |r| is_true(r, "Ready"),
    )
    .await;
    // The second namespace is watched too: its own connection and policy converge.
    for doc in examples(&sandbox.url)
        .into_iter()
        .filter(|d| d["kind"] == "Secret" || d["kind"] == "GhlConnection")
    {
        apply(&client, &other.name, doc).await;
    }
    apply(&client, &other.name, json!({
        "apiVersion": "ghl.servis.ai/v1alpha1", "kind": "ContactSyncPolicy",
        "metadata": {"name": "second"},
        "spec": {"connectionRef": {"name": "acme"}, "contacts": [{"email": "second@example.com"}]}
    }))
    .await;
    wait_object(
        &policies(&client, &other.name),
        "second",
        "Synced in the second namespace",
        READY,
        |p| is_true(p, "Synced"),
    )
    .await;
    assert_eq!(sandbox_contacts(&Raw::new(&sandbox)).await.len(), 4);
    let events: Api<Event> = Api::namespaced(client.clone(), &ns.name);
    wait_for("Events recorded with the chart's RBAC", READY, || async {
        let list = events.list(&ListParams::default()).await.ok()?;
        list.items
            .iter()
            .any(|e| e.reason.as_deref() == Some("PlanApplied"))
            .then_some(())
    })
    .await;
    let logs = operator.logs();
    assert!(
        !logs.contains("forbidden"),
        "an RBAC denial in {}",
        operator.log.display()
    );
    // The admission webhook registered itself with only this RBAC.
    let configurations: Api<
        k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration,
    > = Api::all(client.clone());
    let configuration = format!("ghl-operator-{}-approvals", ns.name);
    wait_for("the admission webhook registered", READY, || async {
        configurations.get_opt(&configuration).await.ok().flatten()
    })
    .await;
    operator.stop().await;
    configurations
        .delete(&configuration, &Default::default())
        .await
        .unwrap();
    ns.delete().await;
    other.delete().await;
}

//! What the benchmarks that run the real operator on the test API server share.

use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config, ResourceExt};
use serde_json::{Value, json};

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn kubeconfig_path() -> PathBuf {
    let run = std::env::var("K8S_RUN").unwrap_or_else(|_| "/tmp/k8s-testenv".into());
    Path::new(&run).join("kubeconfig")
}

/// A client of the test API server of `scripts/k8s-testenv.sh` with the CRDs installed, and
/// its kubeconfig; `None` (said on stderr) when it is not running.
pub async fn test_cluster() -> Option<(Client, PathBuf)> {
    let path = kubeconfig_path();
    if !path.exists() {
        eprintln!(
            "no test API server ({} missing): run scripts/k8s-testenv.sh start first",
            path.display()
        );
        return None;
    }
    let kubeconfig = Kubeconfig::read_from(&path).unwrap();
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap();
    let client = Client::try_from(config).unwrap();
    install_crds(&client).await;
    Some((client, path))
}

pub async fn apply(client: &Client, namespace: &str, mut object: Value) {
    let api_version = object["apiVersion"].as_str().unwrap().to_owned();
    let (group, version) = api_version.split_once('/').unwrap_or(("", &api_version));
    let gvk = GroupVersionKind::gvk(group, version, object["kind"].as_str().unwrap());
    let (resource, _) = kube::discovery::pinned_kind(client, &gvk).await.unwrap();
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &resource);
    object["metadata"]["namespace"] = json!(namespace);
    let name = object["metadata"]["name"].as_str().unwrap().to_owned();
    api.patch(
        &name,
        &PatchParams::apply("bench").force(),
        &Patch::Apply(&object),
    )
    .await
    .unwrap();
}

pub async fn install_crds(client: &Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for (_, crd) in ghl_operator::crd::all() {
        let name = crd.name_any();
        match crds.get_opt(&name).await.unwrap() {
            None => {
                let _ = crds.create(&PostParams::default(), &crd).await;
            }
            Some(current) => {
                let mut crd = crd.clone();
                crd.metadata.resource_version = current.metadata.resource_version;
                let _ = crds.replace(&name, &PostParams::default(), &crd).await;
            }
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
}

pub async fn create_namespace(client: &Client, name: &str) {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": name}})).unwrap(),
        )
        .await
        .unwrap();
}

/// The operator process, killed when dropped.
pub struct Operator(pub Child);

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A process's peak resident memory (`VmHWM`), in MiB.
#[allow(
    dead_code,
    reason = "only the benches that measure the operator use it"
)]
pub fn peak_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
}

/// A directory holding the sandbox's webhook public keys, for `--webhook-public-key`.
#[allow(
    dead_code,
    reason = "only the benches the sandbox posts webhooks in use it"
)]
pub fn webhook_keys_dir(name: &str) -> PathBuf {
    let keys = ghl_operator::sandbox::webhooks::Keys::get();
    let dir = std::env::temp_dir().join(format!("{name}-keys"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("ed25519.pem"), &keys.ed25519_public_pem).unwrap();
    std::fs::write(dir.join("rsa.pem"), &keys.rsa_public_pem).unwrap();
    dir
}

/// Serves `app` on a free local port (a sink); its address.
#[allow(dead_code, reason = "only the benches with a sink use it")]
pub async fn serve(app: axum::Router) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    addr
}

/// The sandbox's counters (`GET /__sandbox/stats`).
#[allow(dead_code, reason = "only the benches that count calls use it")]
pub async fn sandbox_stats(http: &reqwest::Client, sandbox_url: &str) -> serde_json::Value {
    http.get(format!("{sandbox_url}/__sandbox/stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

//! The operator tests' world: the real API server of `scripts/k8s-testenv.sh`, one namespace
//! per test, an in-process sandbox standing in for GHL, and the operator binary run as a
//! child process (as in a pod, with a kubeconfig instead of a service account).

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ghl_operator::crd::{ContactSyncPolicy, GhlConnection, TagRule};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    Api, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams,
};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config, Resource, ResourceExt};
use serde_json::{Value, json};

/// Strings that must never appear in the operator's logs: the tokens the tests use, and the
/// personal data of every contact they declare.
pub const FORBIDDEN_IN_LOGS: &[&str] = &[
    "pit-sandbox-token",
    "pit-wrong-token",
    // The sandbox's OAuth access and refresh tokens.
    "sbx-at-",
    "sbx-rt-",
    "ada@example.com",
    "grace@example.com",
    "alan@example.com",
    "ceo@bigcorp.com",
    "orphan@example.com",
    "delete@example.com",
    "+14155550100",
    "4155550100",
    "Lovelace",
    "Hopper",
    "Turing",
];

/// Where `scripts/k8s-testenv.sh start` wrote its kubeconfig.
pub fn kubeconfig_path() -> PathBuf {
    if let Ok(path) = std::env::var("GHL_TEST_KUBECONFIG") {
        return PathBuf::from(path);
    }
    let run = std::env::var("K8S_RUN").unwrap_or_else(|_| "/tmp/k8s-testenv".into());
    Path::new(&run).join("kubeconfig")
}

/// A client for the test API server, or `None` (test skipped, loudly) when none runs and the
/// suite was not asked to require one. `scripts/test-all.sh` sets `GHL_REQUIRE_K8S=1`.
pub async fn client() -> Option<Client> {
    ghl_operator::tls::install_default_provider();
    let path = kubeconfig_path();
    if !path.exists() {
        if std::env::var("GHL_REQUIRE_K8S").is_ok_and(|v| v == "1") {
            panic!(
                "no test API server: {} is missing (run scripts/k8s-testenv.sh start)",
                path.display()
            );
        }
        eprintln!(
            "SKIPPED: no test API server ({} missing); run ./scripts/test-all.sh",
            path.display()
        );
        return None;
    }
    Some(client_from(&path).await)
}

/// A test's cluster side: a client with the CRDs installed and the test's own namespace;
/// `None` when the test is skipped (see [`client`]).
pub async fn setup(prefix: &str) -> Option<(Client, TestNamespace)> {
    let client = client().await?;
    install_crds(&client).await;
    let ns = TestNamespace::create(&client, prefix).await;
    Some((client, ns))
}

pub async fn client_from(path: &Path) -> Client {
    let kubeconfig = Kubeconfig::read_from(path).expect("kubeconfig parses");
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("kubeconfig is usable");
    Client::try_from(config).expect("client builds")
}

/// Installs (server-side apply) the project's CRDs and waits until they are served.
pub async fn install_crds(client: &Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    // Create or replace rather than server-side apply: the 1.20 test server predates CEL
    // (`x-kubernetes-validations`), which its apply schema refuses and its create ignores.
    for (_, crd) in ghl_operator::crd::all() {
        let name = crd.name_any();
        match crds.get_opt(&name).await.expect("CRDs readable") {
            None => match crds.create(&PostParams::default(), &crd).await {
                Ok(_) => {}
                // Another test created it meanwhile.
                Err(kube::Error::Api(e)) if e.code == 409 => {}
                Err(e) => panic!("CRD {name} not created: {e}"),
            },
            Some(current) => {
                let mut crd = crd.clone();
                crd.metadata.resource_version = current.metadata.resource_version;
                match crds.replace(&name, &PostParams::default(), &crd).await {
                    Ok(_) => {}
                    Err(kube::Error::Api(e)) if e.code == 409 => {}
                    Err(e) => panic!("CRD {name} not replaced: {e}"),
                }
            }
        }
    }
    for (_, crd) in ghl_operator::crd::all() {
        let name = crd.name_any();
        wait_for(
            &format!("CRD {name} established"),
            Duration::from_secs(30),
            || async {
                let crd = crds.get(&name).await.ok()?;
                let established = crd
                    .status?
                    .conditions?
                    .iter()
                    .any(|c| c.type_ == "Established" && c.status == "True");
                established.then_some(())
            },
        )
        .await;
    }
}

/// Polls `check` every 200 ms until it yields a value; panics with `what` after `timeout`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A namespace of one test (deleted by [`TestNamespace::delete`]).
pub struct TestNamespace {
    pub name: String,
    client: Client,
}

impl TestNamespace {
    pub async fn create(client: &Client, prefix: &str) -> Self {
        let name = format!("{prefix}-{:08x}", rand::random::<u32>());
        let namespaces: Api<Namespace> = Api::all(client.clone());
        let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
        namespaces
            .create(&PostParams::default(), &ns)
            .await
            .expect("namespace created");
        Self {
            name,
            client: client.clone(),
        }
    }

    pub async fn delete(self) {
        let namespaces: Api<Namespace> = Api::all(self.client.clone());
        let _ = namespaces
            .delete(&self.name, &DeleteParams::default())
            .await;
    }
}

/// The API resource for a kind the tests apply.
async fn api_for(client: &Client, namespace: &str, gvk: &GroupVersionKind) -> Api<DynamicObject> {
    let (resource, caps) = kube::discovery::pinned_kind(client, gvk)
        .await
        .unwrap_or_else(|e| panic!("the API server serves {gvk:?}: {e}"));
    if caps.scope == kube::discovery::Scope::Namespaced {
        Api::namespaced_with(client.clone(), namespace, &resource)
    } else {
        Api::all_with(client.clone(), &resource)
    }
}

fn gvk_of(object: &Value) -> GroupVersionKind {
    let api_version = object["apiVersion"].as_str().expect("apiVersion");
    let kind = object["kind"].as_str().expect("kind");
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    GroupVersionKind::gvk(group, version, kind)
}

/// Server-side applies one object in `namespace` (as a user's `kubectl apply --server-side`).
pub async fn apply(client: &Client, namespace: &str, mut object: Value) {
    let api = api_for(client, namespace, &gvk_of(&object)).await;
    object["metadata"]["namespace"] = json!(namespace);
    let name = object["metadata"]["name"]
        .as_str()
        .expect("name")
        .to_owned();
    api.patch(
        &name,
        &PatchParams::apply("kubectl").force(),
        &Patch::Apply(&object),
    )
    .await
    .unwrap_or_else(|e| panic!("{} {name} applies: {e}", object["kind"]));
}

/// Parses multi-document YAML.
pub fn yaml_docs(text: &str) -> Vec<Value> {
    serde_saphyr::from_multiple::<Value>(text)
        .expect("YAML parses")
        .into_iter()
        .filter(|d| !d.is_null())
        .collect()
}

/// The repository's example manifests (Namespaces and the OAuth connection left out), with
/// connections pointed at `sandbox_url`.
pub fn examples(sandbox_url: &str) -> Vec<Value> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut docs = Vec::new();
    for file in [
        "10-connection-pit.yaml",
        "20-contact-sync-policy.yaml",
        "30-tag-rule.yaml",
    ] {
        let text = std::fs::read_to_string(root.join(file)).expect("example readable");
        for mut doc in yaml_docs(&text) {
            if doc["kind"] == "GhlConnection" {
                doc["spec"]["baseUrl"] = json!(sandbox_url);
            }
            docs.push(doc);
        }
    }
    docs
}

/// Applies the examples' connection and its Secret (no policy, no rule) into `namespace`.
pub async fn apply_connection(client: &Client, namespace: &str, sandbox_url: &str) {
    for doc in examples(sandbox_url) {
        if doc["kind"] != "ContactSyncPolicy" && doc["kind"] != "TagRule" {
            apply(client, namespace, doc).await;
        }
    }
}

pub fn policies(client: &Client, namespace: &str) -> Api<ContactSyncPolicy> {
    Api::namespaced(client.clone(), namespace)
}

pub fn connections(client: &Client, namespace: &str) -> Api<GhlConnection> {
    Api::namespaced(client.clone(), namespace)
}

pub fn rules(client: &Client, namespace: &str) -> Api<TagRule> {
    Api::namespaced(client.clone(), namespace)
}

/// `(status, reason)` of condition `type_` in a status with `conditions`.
pub fn condition<K: Resource + serde::Serialize>(obj: &K, type_: &str) -> Option<(String, String)> {
    let value = serde_json::to_value(obj).ok()?;
    value["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
        .map(|c| {
            (
                c["status"].as_str().unwrap_or("").to_owned(),
                c["reason"].as_str().unwrap_or("").to_owned(),
            )
        })
}

/// The message of condition `type_`.
pub fn condition_message<K: Resource + serde::Serialize>(obj: &K, type_: &str) -> Option<String> {
    let value = serde_json::to_value(obj).ok()?;
    value["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
        .and_then(|c| c["message"].as_str().map(str::to_owned))
}

pub fn is_true<K: Resource + serde::Serialize>(obj: &K, type_: &str) -> bool {
    condition(obj, type_).is_some_and(|(status, _)| status == "True")
}

/// Waits until `api`'s object `name` satisfies `check`, returning it.
pub async fn wait_object<K, F>(
    api: &Api<K>,
    name: &str,
    what: &str,
    timeout: Duration,
    check: F,
) -> K
where
    K: Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
    F: Fn(&K) -> bool,
{
    let mut last: Option<K> = None;
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(obj) = api.get(name).await {
            if check(&obj) {
                return obj;
            }
            last = Some(obj);
        }
        if Instant::now() > deadline {
            // The generation and status say why; managedFields would drown them.
            let seen = last.as_ref().map(|obj| {
                let value = serde_json::to_value(obj).unwrap_or_default();
                serde_json::to_string_pretty(&serde_json::json!({
                    "generation": value["metadata"]["generation"],
                    "status": value["status"],
                }))
                .unwrap_or_default()
            });
            panic!(
                "timed out after {timeout:?} waiting for {name}: {what}; last seen: {}",
                seen.as_deref().unwrap_or("nothing")
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The Lease duration every operator the harness starts runs with: short, so takeovers are
/// quick, yet its renew deadline (two thirds of it) outlasts the API server's stalls on a
/// loaded two-core CI machine (at 3 s, a leader there missed its 2 s deadline and exited).
pub const LEASE_DURATION: Duration = Duration::from_secs(6);

/// A running `ghl-operator run` process.
pub struct Operator {
    child: Option<Child>,
    pub metrics_url: String,
    pub log: PathBuf,
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Options of one operator process.
pub struct OperatorOptions {
    pub kubeconfig: PathBuf,
    pub namespace: String,
    pub identity: String,
    /// Flags instead of the defaults below (the chart's, in the RBAC test).
    pub args: Option<Vec<String>>,
    /// Flags after the defaults.
    pub extra_args: Vec<String>,
    pub env: Vec<(String, String)>,
}

impl OperatorOptions {
    /// Lets the operator send the connection's token to `base_url` (the sandbox).
    pub fn allowing(mut self, base_url: &str) -> Self {
        self.extra_args
            .push(format!("--allowed-base-url={base_url}"));
        self
    }

    pub fn new(namespace: &str, identity: &str) -> Self {
        Self {
            kubeconfig: kubeconfig_path(),
            namespace: namespace.to_owned(),
            identity: identity.to_owned(),
            args: None,
            extra_args: Vec::new(),
            env: Vec::new(),
        }
    }
}

impl Operator {
    /// Starts the operator watching the test's namespace, with its Lease there too.
    pub fn start(options: OperatorOptions) -> Self {
        let port = free_port();
        let logs = Path::new(env!("CARGO_TARGET_TMPDIR")).join("operator-logs");
        std::fs::create_dir_all(&logs).unwrap();
        // Appended to: a restarted process (crash tests) keeps one log per identity.
        let log = logs.join(format!("{}-{}.log", options.namespace, options.identity));
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let args = options.args.unwrap_or_else(|| {
            vec![
                "run".into(),
                format!("--lease-duration={}s", LEASE_DURATION.as_secs()),
                "--connection-check-interval=2s".into(),
                "--default-resync=1m".into(),
            ]
        });
        let file = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_ghl-operator"))
            .args(&args)
            .args(&options.extra_args)
            .envs(options.env.iter().map(|(k, v)| (k, v)))
            .arg(format!("--metrics-addr=127.0.0.1:{port}"))
            .arg(format!("--watch-namespace={}", options.namespace))
            .arg(format!("--lease-namespace={}", options.namespace))
            .env("KUBECONFIG", &options.kubeconfig)
            .env("POD_NAME", &options.identity)
            .env("GHL_LOG_FORMAT", "json")
            .env("RUST_LOG", "info,ghl_operator=debug")
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("operator starts");
        Self {
            child: Some(child),
            metrics_url: format!("http://127.0.0.1:{port}/metrics"),
            log,
        }
    }

    /// The `/metrics` text, or `None` while the server is not up.
    pub async fn metrics(&self) -> Option<String> {
        let response = reqwest::get(&self.metrics_url).await.ok()?;
        response.status().is_success().then_some(())?;
        response.text().await.ok()
    }

    /// The value of an unlabelled metric.
    pub async fn gauge(&self, name: &str) -> Option<f64> {
        let text = self.metrics().await?;
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Asserts that the log holds no token and no contact personal data.
    pub fn assert_logs_clean(&self) {
        let logs = self.logs();
        for secret in FORBIDDEN_IN_LOGS {
            assert!(
                !logs.contains(secret),
                "operator log {} contains {secret:?}",
                self.log.display()
            );
        }
    }

    /// Waits up to `timeout` for the process to exit by itself (e.g. at a crash point).
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                return Some(status);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }

    /// Whether the process is still there (not killed, not seen exiting).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// SIGKILL (a crash).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM (graceful), then waits for the exit status (asynchronously: the sandbox the
    /// operator may still be talking to runs on the test's runtime).
    pub async fn terminate(&mut self) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let _ = child.kill();
        child.wait().ok()
    }

    /// Stops gracefully and checks the log: every test ends with this.
    pub async fn stop(mut self) {
        let status = self.terminate().await;
        self.assert_logs_clean();
        assert!(
            status.is_some_and(|s| s.success()),
            "operator exited with {status:?}; log: {}",
            self.log.display()
        );
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Contacts in the sandbox by email: `email → contact JSON`.
pub async fn sandbox_contacts(raw: &crate::support::sandbox::Raw) -> BTreeMap<String, Value> {
    let state = raw.admin("GET", "state", None).await;
    state["contacts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| Some((c["email"].as_str()?.to_owned(), c.clone())))
        .collect()
}

/// The contacts the sandbox holds in `location` (one of several it serves).
/// Posts `event` as GHL would (signed with the sandbox's key) to the webhook receiver on
/// `port`; returns the answer's status.
pub async fn post_signed_webhook(port: u16, event: &Value) -> u16 {
    let body = serde_json::to_vec(event).unwrap();
    let signature = ghl_operator::sandbox::webhooks::Keys::get().sign(&body).0;
    reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/webhooks/ghl"))
        .header("content-type", "application/json")
        .header("x-ghl-signature", signature)
        .body(body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

pub async fn location_contacts(raw: &crate::support::sandbox::Raw, location: &str) -> Vec<Value> {
    let state = raw
        .admin("GET", &format!("state?locationId={location}"), None)
        .await;
    state["contacts"].as_array().cloned().unwrap_or_default()
}

/// Tags of a sandbox contact, sorted.
pub fn tags(contact: &Value) -> Vec<String> {
    let mut tags: Vec<String> = contact["tags"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t.as_str().map(str::to_owned))
        .collect();
    tags.sort();
    tags
}

//! `plan`, `apply`, `import`, `demo` and `sandbox` through the real binary.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use ghl_operator::sandbox::SandboxConfig;
use serde_json::Value;

use crate::support::sandbox::{Raw, start};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ghl-operator"))
}

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples")
}

/// Runs the binary off the async runtime's threads.
async fn run(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || bin().args(args).output().unwrap())
        .await
        .unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

#[tokio::test]
async fn plan_apply_plan_with_exit_codes_and_a_state_file() {
    let sandbox = start(SandboxConfig {
        search_lag: Duration::from_millis(300),
        ..SandboxConfig::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json").display().to_string();
    let ex = examples().display().to_string();
    let common = |cmd: &str| {
        args(&[
            cmd,
            "-f",
            &ex,
            "--base-url",
            &sandbox.url,
            "--token",
            &sandbox.token,
            "--state",
            &state,
        ])
    };

    let mut plan = common("plan");
    plan.push("--detailed-exitcode".into());
    let first = run(plan.clone()).await;
    assert_eq!(first.status.code(), Some(2), "{}", text(&first));
    let out = text(&first);
    assert!(out.contains("+ contact contacts[0]"), "{out}");
    assert!(out.contains("Plan: 5 to create, 0 to adopt"), "{out}");
    assert!(
        !out.contains("ada@example.com"),
        "personal data is masked: {out}"
    );

    let applied = run(common("apply")).await;
    assert_eq!(applied.status.code(), Some(0), "{}", text(&applied));
    assert!(text(&applied).contains("GHL writes"), "{}", text(&applied));
    assert!(Path::new(&state).exists());

    let again = run(plan).await;
    assert_eq!(
        again.status.code(),
        Some(0),
        "the second plan is empty: {}",
        text(&again)
    );
    assert!(text(&again).contains("No changes"), "{}", text(&again));

    let state_json = Raw::new(&sandbox).admin("GET", "state", None).await;
    assert_eq!(state_json["contacts"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn json_output_and_show_sensitive() {
    let ex = examples().display().to_string();
    let out = run(args(&["plan", "-f", &ex, "--sandbox", "-o", "json"])).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let plans: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let policy = &plans[0];
    assert_eq!(policy["name"], "ContactSyncPolicy crm/vip-customers");
    assert_eq!(policy["summary"]["create"], 5, "3 contacts, a task, a note");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("ada@example.com"));
    let shown = run(args(&["plan", "-f", &ex, "--sandbox", "--show-sensitive"])).await;
    assert!(text(&shown).contains("ada@example.com"), "{}", text(&shown));
}

#[tokio::test]
async fn bad_manifests_are_reported_with_their_location() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "apiVersion: ghl.servis.ai/v1alpha1\nkind: TagRule\nmetadata: {name: r}\nspec: {connectionRef: {name: a}, selector: {}, addTags: [x], removeTags: [x]}\n").unwrap();
    let out = run(args(&[
        "plan",
        "-f",
        &bad.display().to_string(),
        "--sandbox",
    ]))
    .await;
    assert_eq!(out.status.code(), Some(1));
    let msg = text(&out);
    assert!(
        msg.contains("bad.yaml (document 1)") && msg.contains("both addTags and removeTags"),
        "{msg}"
    );
}

#[tokio::test]
async fn import_writes_a_policy_that_plans_clean() {
    // The fixture seed, with Alan carrying a field the location knows by key (contact.tier).
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/seed.yaml");
    let tier = ghl_operator::sandbox::field_id("ve9EPM428h8vShlRW1KT", "contact.tier");
    let seeded = std::fs::read_to_string(fixture).unwrap().replace(
        "  firstName: Alan\n",
        &format!("  firstName: Alan\n  customFields: {{{tier}: gold}}\n"),
    );
    let seed = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("import-seed.yaml");
    std::fs::write(&seed, seeded).unwrap();
    let out = run(args(&[
        "import",
        "--sandbox",
        "--seed",
        &seed.display().to_string(),
        "--location",
        "ve9EPM428h8vShlRW1KT",
        "--name",
        "imported",
        "-n",
        "crm",
    ]))
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let yaml = String::from_utf8_lossy(&out.stdout).into_owned();
    let policy: ghl_operator::crd::ContactSyncPolicy = serde_saphyr::from_str(&yaml).unwrap();
    assert_eq!(policy.metadata.namespace.as_deref(), Some("crm"));
    let spec = &policy.spec;
    assert_eq!(spec.contacts.len(), 2, "the phone-only contact is left out");
    let records = spec.contacts.records();
    let grace = records
        .iter()
        .find(|c| c.email.as_deref() == Some("grace@example.com"))
        .unwrap();
    assert_eq!(grace.tags, ["customer"]);
    assert_eq!(grace.tasks[0].title, "Renewal call");
    assert_eq!(grace.notes[0].body, "Prefers email");
    // Custom fields by key where the location has one, by id where it does not.
    assert_eq!(grace.custom_fields["ZtPpXCQ5SVSmrSrpGOq6"], "silver");
    let alan = records
        .iter()
        .find(|c| c.email.as_deref() == Some("alan@example.com"))
        .unwrap();
    assert_eq!(
        alan.custom_fields.keys().collect::<Vec<_>>(),
        ["contact.tier"]
    );
    assert!(
        text(&out).contains("1 contact(s) without a email were left out")
            || text(&out).contains("left out")
    );
}

/// A policy reading servis-ai's export over HTTP, in `ns` crm with the PIT connection.
fn http_policy(url: &str) -> String {
    format!(
        r#"apiVersion: ghl.servis.ai/v1alpha1
kind: ContactSyncPolicy
metadata: {{name: from-export, namespace: crm}}
spec:
  connectionRef: {{name: acme}}
  contactsFrom:
  - http: {{url: "{url}", headersSecretRef: {{name: export-headers}}}}
    fieldMap: {{email: mail, firstName: given}}
---
apiVersion: v1
kind: Secret
metadata: {{name: export-headers, namespace: crm}}
stringData: {{Authorization: Bearer export-token}}
"#
    )
}

#[tokio::test]
async fn plan_and_apply_read_an_http_source_only_when_allowed() {
    let export = crate::support::source::start(
        r#"[{"mail": "lin@servis.example", "given": "Lin"}, {"mail": "omar@servis.example", "given": "Omar"}]"#,
    )
    .await;
    export.require_authorization("Bearer export-token");
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        examples().join("10-connection-pit.yaml"),
        dir.path().join("10-connection-pit.yaml"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("20-policy.yaml"),
        http_policy(&export.url("/export/people.json?since=0")),
    )
    .unwrap();
    let manifests = dir.path().display().to_string();
    let sandbox = start(SandboxConfig::default()).await;
    let state_dir = tempfile::tempdir().unwrap();
    let state = state_dir.path().join("state.json").display().to_string();
    let with = |cmd: &str, extra: &[&str]| {
        let mut list = args(&[
            cmd,
            "-f",
            &manifests,
            "--base-url",
            &sandbox.url,
            "--token",
            &sandbox.token,
            "--state",
            &state,
        ]);
        list.extend(args(extra));
        list
    };

    // A source that cannot be read is the plan's failure for that source: it releases
    // nothing and creates nothing, as in the cluster.
    let refused = run(with("plan", &[])).await;
    let msg = text(&refused);
    assert!(
        msg.contains("is not among the URLs the operator's installer allows (SourceNotAllowed)"),
        "{msg}"
    );
    assert!(msg.contains("Plan: 0 to create"), "{msg}");
    assert!(!msg.contains("since=0"), "the query is never shown: {msg}");
    assert_eq!(export.asked(), 0, "a URL not allowed is never fetched");

    let allowed = format!("--allowed-source-url={}", export.url("/export/"));
    let plan = run(with("plan", &[&allowed])).await;
    let msg = text(&plan);
    assert_eq!(plan.status.code(), Some(0), "{msg}");
    assert!(msg.contains("Plan: 2 to create"), "{msg}");
    assert!(
        !msg.contains("lin@servis.example"),
        "values stay masked: {msg}"
    );
    assert_eq!(export.asked(), 1);

    let applied = run(with("apply", &[&allowed])).await;
    assert_eq!(applied.status.code(), Some(0), "{}", text(&applied));
    let held = Raw::new(&sandbox).admin("GET", "state", None).await;
    let emails: Vec<&str> = held["contacts"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["email"].as_str())
        .collect();
    assert!(emails.contains(&"lin@servis.example"), "{emails:?}");
    assert!(emails.contains(&"omar@servis.example"), "{emails:?}");

    // The headers Secret is the only way the token reaches the source.
    std::fs::write(
        dir.path().join("20-policy.yaml"),
        http_policy(&export.url("/export/people.json")).replace("export-token", "wrong"),
    )
    .unwrap();
    let unauthorized = run(with("plan", &[&allowed])).await;
    let msg = text(&unauthorized);
    assert!(
        msg.contains("answered HTTP 401 (SourceUnavailable)"),
        "{msg}"
    );
    assert!(msg.contains("Plan: 0 to create"), "{msg}");
    assert!(!msg.contains("wrong"), "{msg}");
}

#[tokio::test]
async fn the_demo_converges() {
    let out = run(args(&["demo"])).await;
    let msg = text(&out);
    assert_eq!(out.status.code(), Some(0), "{msg}");
    assert!(msg.contains("adopt existing"), "{msg}");
    assert!(
        msg.contains("servis-ai's export was asked 5 times, 3 of them answered 304"),
        "one request per run, conditional after the first: {msg}"
    );
    assert!(
        msg.contains("ContactSyncPolicy crm/servis-ai-export"),
        "{msg}"
    );
    assert!(
        msg.contains("(changed in GHL)"),
        "the drift is shown: {msg}"
    );
    assert!(msg.contains("GHL matches the declared state"), "{msg}");
}

#[tokio::test]
async fn the_demo_shows_the_consent() {
    let out = run(args(&["demo", "--oauth"])).await;
    let msg = text(&out);
    assert_eq!(out.status.code(), Some(0), "{msg}");
    for step in [
        "reason ConsentRequired",
        "/oauth/chooselocation?response_type=code",
        "→ 200 \"connected crm/acme-oauth",
        "a grant for location ve9EPM428h8vShlRW1KT",
        "The same callback again: 400",
        "GET /contacts/ → 200",
        "GHL matches the declared state",
    ] {
        assert!(msg.contains(step), "{step:?} in {msg}");
    }
    assert!(
        !msg.contains("sbx-at-") && !msg.contains("sbx-rt-"),
        "no token value: {msg}"
    );
}

#[tokio::test]
async fn the_sandbox_binary_serves_its_seed_and_limits() {
    let seed = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/seed.yaml");
    let mut child = bin()
        .args([
            "sandbox",
            "--listen",
            "127.0.0.1:0",
            "--seed",
            &seed.display().to_string(),
            "--rate-limit",
            "2/10s",
            "--search-lag",
            "0s",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        let _ = tx.send(lines.next().unwrap().unwrap());
        // Keep draining, as a terminal would.
        for _ in lines {}
    });
    let first = rx.await.unwrap();
    let url = first.trim().rsplit(' ').next().unwrap().to_owned();
    ghl_operator::tls::install_default_provider();
    let http = reqwest::Client::new();
    let state: Value = http
        .get(format!("{url}/__sandbox/state"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(state["contacts"].as_array().unwrap().len(), 3);
    let call = || {
        http.get(format!("{url}/contacts/?locationId=ve9EPM428h8vShlRW1KT"))
            .bearer_auth("pit-sandbox-token")
            .header("Version", "2021-07-28")
            .send()
    };
    assert_eq!(call().await.unwrap().status(), 200);
    assert_eq!(call().await.unwrap().status(), 200);
    assert_eq!(call().await.unwrap().status(), 429, "--rate-limit 2/10s");
    child.kill().unwrap();
    let _ = child.wait();
}

#[test]
fn as_a_kubectl_plugin_it_offers_only_the_plugins_commands() {
    // kubectl finds plugins by name on PATH: the same binary, called kubectl-ghl.
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("plugin-bin");
    std::fs::create_dir_all(&dir).unwrap();
    let plugin = dir.join("kubectl-ghl");
    let _ = std::fs::remove_file(&plugin);
    std::fs::copy(env!("CARGO_BIN_EXE_ghl-operator"), &plugin).unwrap();
    let help = Command::new(&plugin).arg("--help").output().unwrap();
    assert!(help.status.success());
    let help = text(&help);
    assert!(help.contains("Usage: kubectl ghl"), "{help}");
    for command in ["plan", "apply", "import", "status", "approve", "connect"] {
        assert!(
            help.lines().any(|l| l.trim_start().starts_with(command)),
            "{command} offered: {help}"
        );
    }
    for command in ["run", "sandbox", "demo", "crds"] {
        assert!(
            !help.lines().any(|l| l.trim_start().starts_with(command)),
            "{command} is not a plugin command: {help}"
        );
        let refused = Command::new(&plugin).arg(command).output().unwrap();
        assert!(
            !refused.status.success(),
            "kubectl ghl {command} is refused"
        );
    }
    // Every cluster command takes kubectl's flags.
    for command in ["status", "approve", "connect", "plan"] {
        let help = text(
            &Command::new(&plugin)
                .args([command, "--help"])
                .output()
                .unwrap(),
        );
        for flag in ["--kubeconfig", "--context", "--output", "--namespace"] {
            assert!(help.contains(flag), "kubectl ghl {command} {flag}: {help}");
        }
    }
}

#[tokio::test]
async fn plan_takes_its_namespace_from_the_kubeconfig_context() {
    // No -n: objects that name no namespace go to the context's namespace, as with kubectl.
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("plan-context-ns");
    std::fs::create_dir_all(&dir).unwrap();
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\ncurrent-context: other\n\
         clusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\n\
         users: [{name: u, user: {token: t}}]\n\
         contexts: [{name: other, context: {cluster: c, user: u, namespace: elsewhere}},\n\
                    {name: team, context: {cluster: c, user: u, namespace: crm}}]\n",
    )
    .unwrap();
    let manifests = dir.join("policy.yaml");
    std::fs::write(
        &manifests,
        "apiVersion: ghl.servis.ai/v1alpha1\nkind: ContactSyncPolicy\nmetadata: {name: p}\n\
         spec: {connectionRef: {name: acme}, contacts: [{email: a@example.com}]}\n",
    )
    .unwrap();
    for (extra, namespace) in [(vec![], "elsewhere"), (vec!["-n", "sales"], "sales")] {
        let output = tokio::task::spawn_blocking({
            let (kubeconfig, manifests) = (kubeconfig.clone(), manifests.clone());
            move || {
                bin()
                    .env("KUBECONFIG", &kubeconfig)
                    .args(["plan", "--sandbox", "-o", "json", "-f"])
                    .arg(&manifests)
                    .args(extra)
                    .output()
                    .unwrap()
            }
        })
        .await
        .unwrap();
        let all = text(&output);
        assert!(
            all.contains(&format!("ContactSyncPolicy {namespace}/p")),
            "the policy is planned in {namespace}: {all}"
        );
    }
}

#[test]
fn the_krew_manifest_installs_the_plugin_on_each_platform() {
    // Rendered as krew-release-bot renders it at a tag (URL and sha256 per archive).
    let template =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("plugins/ghl.yaml"))
            .unwrap();
    let tag = format!("v{}", env!("CARGO_PKG_VERSION"));
    let mut rendered = String::new();
    for line in template.lines() {
        let line = line.replace("{{ .TagName }}", &tag);
        match line.trim_start().strip_prefix("{{addURIAndSha \"") {
            Some(rest) => {
                let indent = &line[..line.len() - line.trim_start().len()];
                let uri = rest.split('"').next().unwrap();
                rendered.push_str(&format!(
                    "{indent}uri: {uri}\n{indent}sha256: \"{}\"\n",
                    "ab".repeat(32)
                ));
            }
            None => {
                rendered.push_str(&line);
                rendered.push('\n');
            }
        }
    }
    let manifest: Value = serde_saphyr::from_str(&rendered).unwrap();
    assert_eq!(
        manifest["apiVersion"],
        "krew.googlecontainertools.github.com/v1alpha2"
    );
    assert_eq!(manifest["kind"], "Plugin");
    assert_eq!(manifest["metadata"]["name"], "ghl", "kubectl ghl");
    assert_eq!(manifest["spec"]["version"], tag.as_str());
    let platforms = manifest["spec"]["platforms"].as_array().unwrap();
    let mut seen = Vec::new();
    for platform in platforms {
        let labels = &platform["selector"]["matchLabels"];
        let (os, arch) = (
            labels["os"].as_str().unwrap(),
            labels["arch"].as_str().unwrap(),
        );
        seen.push(format!("{os}/{arch}"));
        assert_eq!(platform["bin"], "kubectl-ghl");
        let uri = platform["uri"].as_str().unwrap();
        assert!(
            uri.ends_with(&format!("/{tag}/kubectl-ghl_{os}_{arch}.tar.gz")),
            "{uri}"
        );
        assert_eq!(platform["sha256"].as_str().unwrap().len(), 64);
        let files: Vec<&str> = platform["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["from"].as_str().unwrap())
            .collect();
        assert_eq!(files, ["kubectl-ghl", "LICENSE"]);
    }
    assert_eq!(
        seen,
        ["linux/amd64", "linux/arm64", "darwin/amd64", "darwin/arm64"]
    );
}

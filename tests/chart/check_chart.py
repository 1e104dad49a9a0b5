#!/usr/bin/env python3
"""Chart checks with Helm's own SDK (helm-python-sdk) and offline Kubernetes schemas.

For each values set (the defaults, and every optional feature on) this lints the chart
strictly, renders it, validates every manifest against the Kubernetes schemas
(kubernetes-validate, strict: unknown fields are errors) and writes the rendered objects as
JSON for the Rust tests, which apply them to a real API server (dry-run, and the RBAC test).

Usage: check_chart.py CHART_DIR OUT_DIR [NAMESPACE...]
With namespaces, also renders `namespaced.json`: a release in the first watching only those
(the least-privilege install the RBAC test runs the operator with: a Role in each).
"""
import json
import pathlib
import sys

import helm_python
import kubernetes_validate
import yaml

K8S_VERSION = "1.33.0"
NAMESPACE = "ghl-system"
# Kinds from CRDs kubernetes-validate has no schema for.
CRD_KINDS = {"ServiceMonitor", "PrometheusRule"}

VALUE_SETS = {
    "default": {},
    "all-features": {
        "replicaCount": 2,
        "watchNamespaces": ["crm", "sales"],
        "allowedBaseUrls": ["https://services.leadconnectorhq.com", "https://ghl-proxy.internal:8443/ghl/"],
        "image": {"digest": "sha256:" + "a" * 64},
        "imagePullSecrets": [{"name": "registry"}],
        "serviceAccount": {"annotations": {"example.com/role": "operator"}},
        "operator": {
            "logLevel": "info,ghl_operator=debug",
            "allowCrossNamespaceRefs": True,
            "extraArgs": ["--deep-resync-every=3"],
            "extraEnv": [{"name": "EXTRA", "value": "1"}],
        },
        "leaderElection": {"enabled": True, "leaseDuration": "20s", "shards": 4},
        "serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}},
        "prometheusRule": {"enabled": True, "labels": {"release": "prometheus"}},
        "grafanaDashboard": {"enabled": True, "namespace": "monitoring"},
        "podDisruptionBudget": {"enabled": True, "minAvailable": 1},
        "networkPolicy": {
            "enabled": True,
            "apiServerPort": 6443,
            "metricsFrom": [{"namespaceSelector": {"matchLabels": {"name": "monitoring"}}}],
        },
        "webhooks": {
            "publicKeysConfigMap": "ghl-webhook-keys",
            "backlog": 500,
            "ingress": {
                "enabled": True,
                "className": "nginx",
                "host": "hooks.example.com",
                "annotations": {"cert-manager.io/cluster-issuer": "letsencrypt"},
                "tls": [{"secretName": "hooks-tls", "hosts": ["hooks.example.com"]}],
            },
            "from": [{"ipBlock": {"cidr": "0.0.0.0/0"}}],
        },
        "export": {"allowedSinkUrls": ["https://servis.example.com/hooks/"]},
        "podAnnotations": {"example.com/a": "b"},
        "podLabels": {"team": "crm"},
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "tolerations": [{"key": "dedicated", "operator": "Exists"}],
        "priorityClassName": "high",
    },
    "no-leader-election": {"leaderElection": {"enabled": False}},
    "no-webhooks": {"webhooks": {"enabled": False}, "networkPolicy": {"enabled": True}},
    "no-approval-webhook": {"approvals": {"webhook": {"enabled": False}}, "networkPolicy": {"enabled": True}},
}


def fail(message):
    print(f"chart check failed: {message}", file=sys.stderr)
    sys.exit(1)


def check_monitoring(chart_dir, name, objects):
    """The PrometheusRule carries files/alerts.yaml and the dashboard ConfigMap
    files/dashboard.json, unchanged (the files are what promtool and the scrape test check)."""
    rules = [o for o in objects if o["kind"] == "PrometheusRule"]
    dashboards = [o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"].endswith("-dashboard")]
    if name == "default" and (rules or dashboards):
        fail("default values render no PrometheusRule and no dashboard")
    alerts = yaml.safe_load((chart_dir / "files" / "alerts.yaml").read_text())
    for rule in rules:
        if rule["spec"] != alerts:
            fail(f"{name}: the PrometheusRule differs from files/alerts.yaml")
    dashboard = json.loads((chart_dir / "files" / "dashboard.json").read_text())
    for config_map in dashboards:
        if json.loads(config_map["data"]["ghl-operator.json"]) != dashboard:
            fail(f"{name}: the dashboard ConfigMap differs from files/dashboard.json")
    if name == "all-features" and not (rules and dashboards):
        fail("all-features renders the PrometheusRule and the dashboard")


def check_forwarding(name, values, objects):
    """Sharded with webhooks: each replica advertises its pod IP, and a NetworkPolicy lets the
    replicas reach each other's webhook port (they forward the webhooks of held shards)."""
    sharded = values.get("leaderElection", {}).get("shards", 1) > 1
    webhooks = values.get("webhooks", {}).get("enabled", True)
    args = [a for o in objects if o["kind"] == "Deployment" for a in o["spec"]["template"]["spec"]["containers"][0]["args"]]
    if ("--advertise-address=$(POD_IP)" in args) != (sharded and webhooks):
        fail(f"{name}: --advertise-address is set exactly when sharded with webhooks: {args}")
    for policy in (o for o in objects if o["kind"] == "NetworkPolicy"):
        peers = {"podSelector": {"matchLabels": policy["spec"]["podSelector"]["matchLabels"]}}
        ingress = any(peers in rule.get("from", []) for rule in policy["spec"]["ingress"])
        egress = any(peers in rule.get("to", []) for rule in policy["spec"]["egress"])
        if (ingress and egress) != (sharded and webhooks):
            fail(f"{name}: the NetworkPolicy opens the replicas' webhook port to each other exactly when sharded")


def check_admission(name, values, objects):
    """The approval webhook: served, reachable through its Service, let in by the
    NetworkPolicy and allowed to register itself exactly when enabled."""
    enabled = values.get("approvals", {}).get("webhook", {}).get("enabled", True)
    args = [a for o in objects if o["kind"] == "Deployment" for a in o["spec"]["template"]["spec"]["containers"][0]["args"]]
    services = [o["metadata"] for o in objects if o["kind"] == "Service" and o["metadata"]["name"].endswith("-admission")]
    service = len(services) == 1
    # The URL names the Service as the API server resolves it: NAME.NAMESPACE.svc.
    urls = [a for a in args for s in services if a.startswith(f"--admission-url=https://{s['name']}.{s['namespace']}.svc:")]
    served = any(a.startswith("--admission-addr=") for a in args) and len(urls) == 1
    role = any(o["kind"] == "ClusterRole" and o["metadata"]["name"].endswith("-admission") for o in objects)
    if not (served == service == role == enabled):
        fail(f"{name}: the admission webhook is served ({served}), has a Service ({service}) and RBAC ({role}) exactly when enabled ({enabled})")
    for policy in (o for o in objects if o["kind"] == "NetworkPolicy"):
        opened = any(p.get("port") == "admission" for rule in policy["spec"]["ingress"] for p in rule.get("ports", []))
        if opened != enabled:
            fail(f"{name}: the NetworkPolicy lets the API server reach the admission port exactly when enabled")


def main():
    chart_dir, out_dir = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
    value_sets = dict(VALUE_SETS)
    namespace = {name: NAMESPACE for name in value_sets}
    if len(sys.argv) > 3:
        watched = sys.argv[3:]
        # Sharded: the RBAC test runs the operator with these flags and only this RBAC.
        value_sets["namespaced"] = {
            "watchNamespaces": watched,
            "fullnameOverride": f"ghl-operator-{watched[0]}",
            "leaderElection": {"shards": 2},
        }
        namespace["namespaced"] = watched[0]
    out_dir.mkdir(parents=True, exist_ok=True)
    chart = helm_python.Chart.load(str(chart_dir))

    for crd_file in sorted((chart_dir / "crds").glob("*.yaml")):
        for crd in yaml.safe_load_all(crd_file.read_text()):
            kubernetes_validate.validate(crd, K8S_VERSION, strict=True)

    # The schema refuses misspelt or mistyped values instead of ignoring them.
    for bad in (
        {"operator": {"concurency": 4}},
        {"replicaCount": "two"},
        {"operator": {"defaultResync": "10 minutes"}},
        {"export": {"allowedSinkUrls": ["servis.example.com"]}},
        {"allowedBaseUrls": ["services.leadconnectorhq.com"]},
        {"watchNamespaces": ["Not A Namespace"]},
        {"webhooks": {"port": 70000}},
        {"leaderElection": {"shards": 0}},
        {"leaderElection": {"enabled": False, "shards": 2}},
        {"prometheusRule": {"enable": True}},
        {"approvals": {"webhook": {"port": 0}}},
    ):
        try:
            chart.render(values=bad, name="ghl-operator", namespace=NAMESPACE)
        except (helm_python.HelmValuesError, helm_python.HelmRenderError):
            continue
        fail(f"values {bad} were accepted")

    for name, values in value_sets.items():
        report = helm_python.lint(str(chart_dir), values=values, strict=True, namespace=namespace[name])
        problems = list(report.get("errors") or [])
        # Helm severities: 1 info, 2 warning, 3 error. Strict lint treats warnings as failures.
        problems += [m for m in report.get("messages") or [] if m.get("severity", 3) >= 2]
        if problems:
            fail(f"lint ({name}): {json.dumps(problems, indent=2)}")

        rendered = chart.render(values=values, name="ghl-operator", namespace=namespace[name], is_install=True)
        objects = []
        for path, text in sorted(rendered.items()):
            if path.endswith("NOTES.txt"):
                continue
            for doc in yaml.safe_load_all(text):
                if not doc:
                    continue
                if doc.get("kind") not in CRD_KINDS:
                    try:
                        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
                    except kubernetes_validate.ValidationError as e:
                        fail(f"{path} ({name}) is not a valid {doc.get('kind')}: {e.message}")
                objects.append(doc)
        if not objects:
            fail(f"{name}: nothing rendered")
        check_monitoring(chart_dir, name, objects)
        check_forwarding(name, values, objects)
        check_admission(name, values, objects)
        (out_dir / f"{name}.json").write_text(json.dumps(objects, indent=1))
        kinds = sorted({o["kind"] for o in objects})
        print(f"{name}: lint clean, {len(objects)} valid objects: {', '.join(kinds)}")


if __name__ == "__main__":
    main()

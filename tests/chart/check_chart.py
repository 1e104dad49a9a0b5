#!/usr/bin/env python3
"""Chart checks with Helm's own SDK (helm-python-sdk) and offline Kubernetes schemas.

For each values set (the defaults, and every optional feature on) this lints the chart
strictly, renders it, validates every manifest against the Kubernetes schemas
(kubernetes-validate, strict: unknown fields are errors; the CRDs too, which are templates so
`helm upgrade` updates them) and writes the rendered objects as JSON for the Rust tests, which
apply them to a real API server (dry-run, and the RBAC test).

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
# The chart's CRDs, each the same as the generated file of that name in the repository's crds/.
CRDS = ("ghlconnections", "contactsyncpolicies", "tagrules")
GROUP = "ghl.servis.ai"
GHL_API = "https://services.leadconnectorhq.com"
SANDBOX_PORT = 8088
# What the Deployments ran with before these were values: the restricted Pod Security Standard.
POD_SECURITY_CONTEXT = {
    "runAsNonRoot": True,
    "runAsUser": 65532,
    "runAsGroup": 65532,
    "seccompProfile": {"type": "RuntimeDefault"},
}
SECURITY_CONTEXT = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "capabilities": {"drop": ["ALL"]},
}

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
        "sources": {"allowedSourceUrls": ["https://servis.example.com/export/", "http://enrich.crm.svc:8080/"]},
        "podAnnotations": {"example.com/a": "b"},
        "podLabels": {"team": "crm"},
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "tolerations": [{"key": "dedicated", "operator": "Exists"}],
        "priorityClassName": "high",
        "sandbox": {"enabled": True, "extraArgs": ["--location-id=ve9EPM428h8vShlRW1KT,L2"]},
        "console": {
            "enabled": True,
            "port": 8091,
            "service": {"annotations": {"example.com/console": "yes"}},
            "ingress": {
                "enabled": True,
                "className": "nginx",
                "host": "console.example.com",
                "annotations": {"nginx.ingress.kubernetes.io/affinity": "cookie"},
                "tls": [{"secretName": "console-tls", "hosts": ["console.example.com"]}],
            },
            "from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}],
        },
    },
    "no-leader-election": {"leaderElection": {"enabled": False}},
    "no-webhooks": {"webhooks": {"enabled": False}, "networkPolicy": {"enabled": True}},
    "no-approval-webhook": {"approvals": {"webhook": {"enabled": False}}, "networkPolicy": {"enabled": True}},
    # CRDs installed and upgraded by someone else; no aggregated roles for tenants.
    "no-crds": {"crds": {"install": False}, "rbac": {"aggregate": False}},
    # The examples' sandbox in the cluster, GHL's API still allowed, the NetworkPolicy opened.
    "sandbox": {"sandbox": {"enabled": True}, "networkPolicy": {"enabled": True}, "crds": {"keep": False}},
    # OpenShift: a UID from the namespace's range, or none so the SCC assigns it (null removes a
    # default key; Helm merges maps, so `{}` would keep them).
    "openshift-uid": {"podSecurityContext": {"runAsUser": 1000680000, "runAsGroup": 1000680000}},
    # The web console with its defaults (one replica, no Ingress), the NetworkPolicy opened to
    # anyone.
    "console": {"console": {"enabled": True}, "networkPolicy": {"enabled": True}},
    "openshift-scc": {"podSecurityContext": {"runAsUser": None, "runAsGroup": None}, "sandbox": {"enabled": True}},
}


def fail(message):
    print(f"chart check failed: {message}", file=sys.stderr)
    sys.exit(1)


RUNBOOKS = "https://github.com/servis-ai/ghl-operator/blob/main/docs/runbooks.md#"


def check_runbooks(chart_dir):
    """Every alert links its runbook: a section of docs/runbooks.md headed by its name."""
    repo = chart_dir.resolve().parent.parent
    headings = {
        line[3:].strip().lower() for line in (repo / "docs" / "runbooks.md").read_text().splitlines() if line.startswith("## ")
    }
    alerts = yaml.safe_load((chart_dir / "files" / "alerts.yaml").read_text())
    for group in alerts["groups"]:
        for rule in group["rules"]:
            if "alert" not in rule:
                continue
            url = rule.get("annotations", {}).get("runbook_url")
            anchor = rule["alert"].lower()
            if url != RUNBOOKS + anchor or anchor not in headings:
                fail(f"alert {rule['alert']}: runbook_url {url!r} must be {RUNBOOKS + anchor}, a section of docs/runbooks.md")


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


def operator_deployment(objects):
    """The operator's Deployment (the sandbox's, when enabled, is another)."""
    found = [o for o in objects if o["kind"] == "Deployment" and o["spec"]["template"]["spec"]["containers"][0]["name"] == "operator"]
    if len(found) != 1:
        fail(f"one operator Deployment, not {len(found)}")
    return found[0]


def operator_args(objects):
    return operator_deployment(objects)["spec"]["template"]["spec"]["containers"][0]["args"]


def merged(default, override):
    """Values as Helm coalesces them: maps merge key by key, null removes a key."""
    if not isinstance(override, dict) or not isinstance(default, dict):
        return override
    result = dict(default)
    for key, value in override.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merged(default.get(key), value)
    return result


def check_crds(chart_dir, name, values, objects):
    """The CRDs are templates (Helm upgrades them, as cert-manager's): exactly the three, each
    the generated one in the repository's crds/, kept on uninstall when crds.keep."""
    crds = values.get("crds", {})
    install, keep = crds.get("install", True), crds.get("keep", True)
    rendered = {o["metadata"]["name"]: o for o in objects if o["kind"] == "CustomResourceDefinition"}
    if not install:
        if rendered:
            fail(f"{name}: crds.install=false renders no CustomResourceDefinition: {sorted(rendered)}")
        return
    expected = {f"{plural}.{GROUP}" for plural in CRDS}
    if set(rendered) != expected:
        fail(f"{name}: the CRDs rendered are {sorted(rendered)}, not {sorted(expected)}")
    repo = chart_dir.resolve().parent.parent
    for plural in CRDS:
        crd = rendered[f"{plural}.{GROUP}"]
        generated = [d for d in yaml.safe_load_all((repo / "crds" / f"{plural}.yaml").read_text()) if d]
        if len(generated) != 1 or crd["spec"] != generated[0]["spec"]:
            fail(f"{name}: the {plural} CRD's spec differs from crds/{plural}.yaml (regenerate the chart's)")
        annotations = crd["metadata"].get("annotations") or {}
        if (annotations.get("helm.sh/resource-policy") == "keep") != keep:
            fail(f"{name}: the {plural} CRD has helm.sh/resource-policy: keep exactly when crds.keep ({keep}): {annotations}")


def check_service_monitor(name, objects):
    """The operator's samples carry their own `namespace` label (the object's); the scrape keeps
    it instead of renaming it exported_namespace."""
    monitors = [o for o in objects if o["kind"] == "ServiceMonitor"]
    for monitor in monitors:
        if not all(e.get("honorLabels") is True for e in monitor["spec"]["endpoints"]):
            fail(f"{name}: the ServiceMonitor scrapes with honorLabels: true")
    if name == "all-features" and not monitors:
        fail("all-features renders the ServiceMonitor")


def check_security_contexts(name, values, objects):
    """Both Deployments run with the values' security contexts: by default exactly the
    restricted ones they always had; an override (OpenShift's UID range, or none) renders."""
    pod = merged(POD_SECURITY_CONTEXT, values.get("podSecurityContext", {}))
    container = merged(SECURITY_CONTEXT, values.get("securityContext", {}))
    for deployment in (o for o in objects if o["kind"] == "Deployment"):
        spec = deployment["spec"]["template"]["spec"]
        if spec.get("securityContext") != pod:
            fail(f"{name}: {deployment['metadata']['name']} runs with pod security context {spec.get('securityContext')}, not {pod}")
        for c in spec["containers"]:
            if c.get("securityContext") != container:
                fail(f"{name}: {deployment['metadata']['name']}/{c['name']} runs with security context {c.get('securityContext')}, not {container}")
    # Whatever the UID, the defaults stay restricted (runAsNonRoot, seccomp, no escalation, no
    # capabilities, read-only root).
    if "securityContext" not in values:
        restricted = pod.get("runAsNonRoot") is True and pod.get("seccompProfile") == {"type": "RuntimeDefault"}
        restricted = restricted and container == SECURITY_CONTEXT
        if not restricted:
            fail(f"{name}: the Deployments meet the restricted Pod Security Standard")


def check_aggregate_roles(name, values, objects):
    """With rbac.aggregate, two ClusterRoles fold the three kinds into the built-in view, edit
    and admin roles: reading, and changing specs; never `approve` (its own grant), never
    status writes, and bound to nobody by the chart."""
    rbac = values.get("rbac", {})
    enabled = rbac.get("create", True) and rbac.get("aggregate", True)
    label = "rbac.authorization.k8s.io/aggregate-to-"
    roles = {
        o["metadata"]["name"]: o
        for o in objects
        if o["kind"] == "ClusterRole" and any(k.startswith(label) for k in (o["metadata"].get("labels") or {}))
    }
    if not enabled:
        if roles:
            fail(f"{name}: no aggregated ClusterRoles without rbac.aggregate: {sorted(roles)}")
        return
    kinds = ["ghlconnections", "contactsyncpolicies", "tagrules"]
    expected = {
        "-view": (
            {f"{label}view": "true"},
            [{"apiGroups": [GROUP], "resources": sorted(kinds + [f"{k}/status" for k in kinds]), "verbs": ["get", "list", "watch"]}],
        ),
        "-edit": (
            {f"{label}edit": "true", f"{label}admin": "true"},
            [{"apiGroups": [GROUP], "resources": sorted(kinds), "verbs": ["create", "delete", "patch", "update"]}],
        ),
    }
    if len(roles) != 2 or not all(any(n.endswith(suffix) for n in roles) for suffix in expected):
        fail(f"{name}: two aggregated ClusterRoles, *-view and *-edit: {sorted(roles)}")
    for role_name, role in roles.items():
        labels_wanted, rules_wanted = next(v for suffix, v in expected.items() if role_name.endswith(suffix))
        labels = {k: v for k, v in role["metadata"]["labels"].items() if k.startswith(label)}
        if labels != labels_wanted:
            fail(f"{name}: {role_name} is labelled {labels}, not {labels_wanted}")
        rules = [
            {"apiGroups": r["apiGroups"], "resources": sorted(r["resources"]), "verbs": sorted(r["verbs"])}
            for r in role["rules"]
        ]
        if rules != rules_wanted:
            fail(f"{name}: {role_name} grants {rules}, not {rules_wanted}")
    bound = [o["metadata"]["name"] for o in objects if o["kind"] in ("ClusterRoleBinding", "RoleBinding") and o["roleRef"]["name"] in roles]
    if bound:
        fail(f"{name}: the chart binds the aggregated roles itself: {bound}")


def check_sandbox(name, values, objects):
    """sandbox.enabled: the embedded sandbox as a Deployment (same image and security contexts,
    `sandbox --listen 0.0.0.0:8088`, ready when its port answers) and a Service
    <fullname>-sandbox:8088; the operator may send tokens to that URL (besides GHL's API, or the
    allowed ones), and its NetworkPolicy lets it reach the sandbox's pods on 8088. Its pods are
    never the operator's (selectors apart)."""
    enabled = values.get("sandbox", {}).get("enabled", False)
    operator = operator_deployment(objects)
    fullname = operator["metadata"]["name"]
    namespace = operator["metadata"]["namespace"]
    url = f"http://{fullname}-sandbox.{namespace}.svc:{SANDBOX_PORT}"
    deployments = [o for o in objects if o["kind"] == "Deployment" and o is not operator]
    services = [o for o in objects if o["kind"] == "Service" and o["metadata"]["name"] == f"{fullname}-sandbox"]
    allowed = [a.split("=", 1)[1] for a in operator_args(objects) if a.startswith("--allowed-base-url=")]
    policies = [o for o in objects if o["kind"] == "NetworkPolicy"]
    if not enabled:
        if deployments or services or url in allowed:
            fail(f"{name}: no sandbox unless sandbox.enabled")
        if allowed != values.get("allowedBaseUrls", []):
            fail(f"{name}: --allowed-base-url is exactly allowedBaseUrls without the sandbox: {allowed}")
        return
    if len(deployments) != 1 or len(services) != 1:
        fail(f"{name}: sandbox.enabled renders one sandbox Deployment and its Service")
    deployment, service = deployments[0], services[0]
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    operator_container = operator["spec"]["template"]["spec"]["containers"][0]
    if container["args"][:3] != ["sandbox", "--listen", f"0.0.0.0:{SANDBOX_PORT}"]:
        fail(f"{name}: the sandbox runs `sandbox --listen 0.0.0.0:{SANDBOX_PORT}`: {container['args']}")
    if container["args"][3:] != values["sandbox"].get("extraArgs", []):
        fail(f"{name}: the sandbox's extra args are sandbox.extraArgs: {container['args'][3:]}")
    if container["image"] != operator_container["image"]:
        fail(f"{name}: the sandbox runs the operator's image")
    if pod.get("securityContext") != operator["spec"]["template"]["spec"].get("securityContext") or container.get(
        "securityContext"
    ) != operator_container.get("securityContext"):
        fail(f"{name}: the sandbox runs with the operator's security contexts")
    port = {p["name"]: p["containerPort"] for p in container["ports"]}
    probe = container.get("readinessProbe", {}).get("tcpSocket", {}).get("port")
    if port.get(probe, probe) != SANDBOX_PORT:
        fail(f"{name}: the sandbox is ready when port {SANDBOX_PORT} answers: {container.get('readinessProbe')}")
    if not container.get("resources", {}).get("limits", {}).get("memory"):
        fail(f"{name}: the sandbox has a memory limit")
    if [(p["port"], port.get(p["targetPort"], p["targetPort"])) for p in service["spec"]["ports"]] != [(SANDBOX_PORT, SANDBOX_PORT)]:
        fail(f"{name}: the sandbox Service serves port {SANDBOX_PORT}: {service['spec']['ports']}")
    sandbox_pods = deployment["spec"]["template"]["metadata"]["labels"]
    operator_pods = operator["spec"]["template"]["metadata"]["labels"]

    def selects(selector, labels):
        return all(labels.get(k) == v for k, v in selector.items())

    if not (selects(service["spec"]["selector"], sandbox_pods) and selects(deployment["spec"]["selector"]["matchLabels"], sandbox_pods)):
        fail(f"{name}: the sandbox's Service and Deployment select its pods")
    for o in objects:
        selector = (o.get("spec") or {}).get("selector")
        selector = (selector or {}).get("matchLabels", selector) if isinstance(selector, dict) else None
        if o is deployment or o is service or not selector:
            continue
        if selects(selector, sandbox_pods):
            fail(f"{name}: {o['kind']} {o['metadata']['name']} selects the sandbox's pods")
    if selects(service["spec"]["selector"], operator_pods) or selects(deployment["spec"]["selector"]["matchLabels"], operator_pods):
        fail(f"{name}: the sandbox's selectors pick the operator's pods")
    wanted = (values.get("allowedBaseUrls") or [GHL_API]) + [url]
    if allowed != wanted:
        fail(f"{name}: with the sandbox the operator may send tokens to {wanted}, not {allowed}")
    for policy in policies:
        peer = {"podSelector": {"matchLabels": deployment["spec"]["selector"]["matchLabels"]}}
        opened = any(
            peer in (rule.get("to") or []) and {"port": SANDBOX_PORT, "protocol": "TCP"} in (rule.get("ports") or [])
            for rule in policy["spec"]["egress"]
        )
        if not opened:
            fail(f"{name}: the NetworkPolicy lets the operator reach the sandbox on {SANDBOX_PORT}")


def check_forwarding(name, values, objects):
    """Sharded with webhooks: each replica advertises its pod IP, and a NetworkPolicy lets the
    replicas reach each other's webhook port (they forward the webhooks of held shards)."""
    sharded = values.get("leaderElection", {}).get("shards", 1) > 1
    webhooks = values.get("webhooks", {}).get("enabled", True)
    args = operator_args(objects)
    if ("--advertise-address=$(POD_IP)" in args) != (sharded and webhooks):
        fail(f"{name}: --advertise-address is set exactly when sharded with webhooks: {args}")
    for policy in (o for o in objects if o["kind"] == "NetworkPolicy"):
        peers = {"podSelector": {"matchLabels": policy["spec"]["podSelector"]["matchLabels"]}}
        ingress = any(peers in rule.get("from", []) for rule in policy["spec"]["ingress"])
        egress = any(peers in rule.get("to", []) for rule in policy["spec"]["egress"])
        if (ingress and egress) != (sharded and webhooks):
            fail(f"{name}: the NetworkPolicy opens the replicas' webhook port to each other exactly when sharded")


def check_allowlists(name, values, objects):
    """Sinks and sources: the operator is given exactly the URLs the values list, in order."""
    args = operator_args(objects)
    for flag, section, key in [
        ("--allowed-sink-url=", "export", "allowedSinkUrls"),
        ("--allowed-source-url=", "sources", "allowedSourceUrls"),
    ]:
        given = [a.split("=", 1)[1] for a in args if a.startswith(flag)]
        if given != values.get(section, {}).get(key, []):
            fail(f"{name}: {flag[:-1]} is exactly {section}.{key}: {given}")


def check_admission(name, values, objects):
    """The approval webhook: served, reachable through its Service, let in by the
    NetworkPolicy and allowed to register itself exactly when enabled."""
    enabled = values.get("approvals", {}).get("webhook", {}).get("enabled", True)
    args = operator_args(objects)
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


CONSOLE_PORT = 8090
CONSOLE_SERVICE_PORT = 80


def check_console(name, values, objects):
    """console.enabled: the operator serves the web console (exactly one
    --console-addr=0.0.0.0:<port>, a containerPort named console) behind a Service
    <fullname>-console whose targetPort is that port, sticky to a replica when there are several
    (login sessions live in one replica's memory); the Ingress when console.ingress.enabled; the
    NetworkPolicy opens the port (to console.from, or anyone). It needs no RBAC: nothing of the
    chart names it. Disabled: none of these."""
    console = values.get("console", {})
    enabled = console.get("enabled", False)
    port = console.get("port", CONSOLE_PORT)
    operator = operator_deployment(objects)
    fullname = operator["metadata"]["name"]
    args = [a for a in operator_args(objects) if a.startswith("--console-addr=")]
    container_ports = [p for p in operator["spec"]["template"]["spec"]["containers"][0].get("ports", []) if p["name"] == "console"]
    services = [o for o in objects if o["kind"] == "Service" and o["metadata"]["name"] == f"{fullname}-console"]
    ingresses = [o for o in objects if o["kind"] == "Ingress" and o["metadata"]["name"] == f"{fullname}-console"]
    policies = [o for o in objects if o["kind"] == "NetworkPolicy"]
    opened = [
        rule for policy in policies for rule in policy["spec"]["ingress"] if any(p.get("port") == "console" for p in rule.get("ports", []))
    ]
    named = [o["metadata"]["name"] for o in objects if o["kind"] in ("Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding") and "console" in o["metadata"]["name"]]
    if named:
        fail(f"{name}: the console needs no RBAC of its own: {named}")
    if not enabled:
        if args or container_ports or services or ingresses or opened:
            fail(f"{name}: no console (arg, port, Service, Ingress, NetworkPolicy rule) unless console.enabled")
        return
    if args != [f"--console-addr=0.0.0.0:{port}"]:
        fail(f"{name}: the operator serves the console with exactly --console-addr=0.0.0.0:{port}: {args}")
    if [(p["containerPort"], p.get("protocol", "TCP")) for p in container_ports] != [(port, "TCP")]:
        fail(f"{name}: the operator's container has one port `console` on {port}: {container_ports}")
    if len(services) != 1:
        fail(f"{name}: console.enabled renders one Service {fullname}-console")
    service = services[0]["spec"]
    service_values = console.get("service", {})
    wanted_ports = [(service_values.get("port", CONSOLE_SERVICE_PORT), "console")]
    if [(p["port"], p["targetPort"]) for p in service["ports"]] != wanted_ports:
        fail(f"{name}: the console Service serves {wanted_ports} (port, targetPort): {service['ports']}")
    if service["type"] != service_values.get("type", "ClusterIP"):
        fail(f"{name}: the console Service is of console.service.type: {service['type']}")
    if (services[0]["metadata"].get("annotations") or {}) != service_values.get("annotations", {}):
        fail(f"{name}: the console Service carries console.service.annotations")
    pods = operator["spec"]["template"]["metadata"]["labels"]
    if not all(pods.get(k) == v for k, v in service["selector"].items()):
        fail(f"{name}: the console Service selects the operator's pods")
    sticky = values.get("replicaCount", 1) > 1
    if (service.get("sessionAffinity") == "ClientIP") != sticky:
        fail(f"{name}: the console Service has sessionAffinity: ClientIP exactly when replicaCount > 1: {service.get('sessionAffinity')}")
    ingress = console.get("ingress", {})
    if len(ingresses) != (1 if ingress.get("enabled", False) else 0):
        fail(f"{name}: the console Ingress is rendered exactly when console.ingress.enabled")
    for o in ingresses:
        spec = o["spec"]
        backends = [
            (p["path"], p["backend"]["service"]["name"], p["backend"]["service"]["port"].get("name"))
            for rule in spec["rules"]
            for p in rule["http"]["paths"]
        ]
        if backends != [("/", f"{fullname}-console", "console")]:
            fail(f"{name}: the console Ingress sends / to the console Service: {backends}")
        hosts = [rule.get("host", "") for rule in spec["rules"]]
        if hosts != [ingress.get("host", "")]:
            fail(f"{name}: the console Ingress serves console.ingress.host: {hosts}")
        if spec.get("ingressClassName", "") != ingress.get("className", ""):
            fail(f"{name}: the console Ingress has console.ingress.className")
        if spec.get("tls", []) != ingress.get("tls", []):
            fail(f"{name}: the console Ingress has console.ingress.tls")
        if (o["metadata"].get("annotations") or {}) != ingress.get("annotations", {}):
            fail(f"{name}: the console Ingress carries console.ingress.annotations")
    if policies:
        if len(opened) != 1 or opened[0].get("from", []) != console.get("from", []):
            fail(f"{name}: the NetworkPolicy opens the console port to console.from (empty: anyone): {opened}")


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
    check_runbooks(chart_dir)

    # The schema refuses misspelt or mistyped values instead of ignoring them.
    for bad in (
        {"operator": {"concurency": 4}},
        {"replicaCount": "two"},
        {"operator": {"defaultResync": "10 minutes"}},
        {"export": {"allowedSinkUrls": ["servis.example.com"]}},
        {"sources": {"allowedSourceUrls": ["servis.example.com/export/"]}},
        {"allowedBaseUrls": ["services.leadconnectorhq.com"]},
        {"watchNamespaces": ["Not A Namespace"]},
        {"webhooks": {"port": 70000}},
        {"leaderElection": {"shards": 0}},
        {"leaderElection": {"enabled": False, "shards": 2}},
        {"prometheusRule": {"enable": True}},
        {"approvals": {"webhook": {"port": 0}}},
        {"crds": {"instal": False}},
        {"crds": {"keep": "yes"}},
        {"rbac": {"aggregate": "yes"}},
        {"sandbox": {"enable": True}},
        {"podSecurityContext": "restricted"},
        {"securityContext": ["ALL"]},
        {"console": {"port": 0}},
        {"console": {"enable": True}},
        {"console": {"service": {"type": "ExternalName"}}},
        {"console": {"ingress": {"host": 1}}},
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
        check_crds(chart_dir, name, values, objects)
        check_monitoring(chart_dir, name, objects)
        check_service_monitor(name, objects)
        check_security_contexts(name, values, objects)
        check_aggregate_roles(name, values, objects)
        check_sandbox(name, values, objects)
        check_forwarding(name, values, objects)
        check_allowlists(name, values, objects)
        check_admission(name, values, objects)
        check_console(name, values, objects)
        (out_dir / f"{name}.json").write_text(json.dumps(objects, indent=1))
        kinds = sorted({o["kind"] for o in objects})
        print(f"{name}: lint clean, {len(objects)} valid objects: {', '.join(kinds)}")


if __name__ == "__main__":
    main()

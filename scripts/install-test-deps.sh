#!/usr/bin/env bash
# Installs what the test suite needs on a fresh machine (idempotent; quick when present).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
  rustup component add rustfmt clippy
fi

# openapi-core validates the sandbox's traffic against GHL's official OpenAPI specs.
if ! python3 -c 'import openapi_core' >/dev/null 2>&1; then
  python3 -m pip install --quiet --disable-pip-version-check 'openapi-core>=0.19,<0.24'
fi

# The official Standard Webhooks library verifies the change feed's signatures as a receiver
# would (examples/feed-receiver.py).
if ! python3 -c 'import standardwebhooks' >/dev/null 2>&1; then
  python3 -m pip install --quiet --disable-pip-version-check 'standardwebhooks>=1.3,<2'
fi

# Helm's SDK and offline Kubernetes schemas check the chart (tests/chart/check_chart.py).
if ! python3 -c 'import helm_python, kubernetes_validate, yaml' >/dev/null 2>&1; then
  python3 -m pip install --quiet --disable-pip-version-check helm-python-sdk kubernetes-validate pyyaml
fi

# Lua 5.1 (the dialect of Argo CD's gopher-lua) runs the chart's Argo CD health check.
if ! command -v lua5.1 >/dev/null 2>&1; then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends lua5.1 >/dev/null
fi

# Debian's Chromium and its WebDriver: the console's tests drive the pages a person sees in a
# real browser (tests/console/).
if ! command -v chromedriver >/dev/null 2>&1 || ! command -v chromium >/dev/null 2>&1; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
fi

# Prometheus' promtool checks and unit-tests the chart's alert rules. Only the binary is taken
# from Debian's package (installing the package would start a Prometheus server).
if ! command -v promtool >/dev/null 2>&1; then
  work="$(mktemp -d)"
  (cd "$work" && apt-get download prometheus >/dev/null 2>&1 || { apt-get update -qq && apt-get download prometheus >/dev/null; })
  dpkg-deb -x "$work"/prometheus_*.deb "$work/root"
  install -m 0755 "$work/root/usr/bin/promtool" /usr/local/bin/promtool
  rm -rf "$work"
fi

# A real kube-apiserver + etcd for the operator tests (cached after the first build).
scripts/k8s-testenv.sh install

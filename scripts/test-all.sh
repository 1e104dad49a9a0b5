#!/usr/bin/env bash
# The whole test suite, as CI runs it: formatting, lints, unit and integration tests, and the
# operator tests on a real Kubernetes API server.
# Works on a fresh machine: it installs what the tests need first.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-test-deps.sh

echo "==> cargo fmt --check"
cargo fmt --check
echo "==> cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets -- -D warnings

echo "==> starting the test Kubernetes API server"
export K8S_RUN="${K8S_RUN:-/tmp/k8s-testenv}"
scripts/k8s-testenv.sh stop >/dev/null 2>&1 || true
scripts/k8s-testenv.sh start
trap 'scripts/k8s-testenv.sh stop' EXIT
# Operator tests fail (rather than skip) without the API server.
export GHL_REQUIRE_K8S=1

echo "==> cargo test"
# Benchmarks (benches/) print figures and are run on their own: cargo bench.
cargo test --lib --bins --tests

#!/usr/bin/env bash
# Installs what the test suite needs on a fresh machine (idempotent; quick when present).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
  rustup component add rustfmt clippy
fi

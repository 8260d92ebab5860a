#!/usr/bin/env bash
# Runs the whole test suite: installs the components the tests need, then every test.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-testbed.sh
export PATH="$PWD/.testbed/bin:$PATH"

if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --no-fail-fast
else
  cargo test --all-targets --no-fail-fast
fi
cargo test --doc

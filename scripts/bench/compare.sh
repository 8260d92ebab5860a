#!/usr/bin/env bash
# Benchmarks readiness-exporter next to blackbox_exporter and a bare client on the same nginx
# targets on 127.0.0.1, and prints the result tables in Markdown.
#
#   bash scripts/bench/compare.sh                  # side by side: about 15 minutes after the build
#   bash scripts/bench/compare.sh scale            # 1,000 and 10,000 checks: about 5 minutes
#   bash scripts/bench/compare.sh all              # both tables, one after the other
#   bash scripts/bench/compare.sh side-by-side --scenarios http tls-ecdsa --repetitions 5
#
# Other arguments go to compare.py; `--help` lists them. Needs nginx with its stream
# module, blackbox_exporter, wrk and openssl (scripts/install-testbed.sh installs them). Builds
# the exporter in release mode and the bench client, the floor, with the `floor` profile
# (opt-level 3). It runs copies of both, because other builds may replace the binaries in the
# target directory during a run. Every process it starts is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/../.."

if [[ " $* " == *" --help "* || " $* " == *" -h "* ]]; then
  sed -n '2,/^set -euo/p' "$0" | sed '$d'
  python3 scripts/bench/compare.py --help | sed 's/--exporter EXPORTER --bench-client BENCH_CLIENT/(--exporter and --bench-client are set by compare.sh)/'
  exit 0
fi

for command in prometheus-blackbox-exporter wrk openssl; do
  command -v "$command" >/dev/null || {
    echo "error: $command not found; run scripts/install-testbed.sh as root" >&2
    exit 1
  }
done

echo "Building the exporter (release profile) and the bare client (floor profile); the first" \
  "build takes about 10 minutes on 2 cores." >&2
cargo build --release --quiet --bin readiness-exporter
cargo build --profile floor --quiet --example bench_client
target_dir=${CARGO_TARGET_DIR:-target}
binaries=$(mktemp -d)
trap 'rm -rf "$binaries"' EXIT
cp "$target_dir/release/readiness-exporter" "$target_dir/floor/examples/bench_client" "$binaries/"

python3 scripts/bench/compare.py "$@" \
  --exporter "$binaries/readiness-exporter" --bench-client "$binaries/bench_client"

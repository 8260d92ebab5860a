#!/usr/bin/env bash
# Runs CHECKS http checks against nginx on 127.0.0.1 for DURATION seconds and reports the
# exporter's CPU time per check (user+sys from /proc) and its peak resident memory (VmHWM).
#
#   bash scripts/bench/http-checks.sh            # 1000 checks, 10 s interval, 60 s
#   CHECKS=5000 INTERVAL=30 DURATION=120 bash scripts/bench/http-checks.sh
#
# Needs nginx (Debian nginx-light) and builds the exporter in release mode. The count of checks
# comes from nginx's access log, so it is exact. Everything started here is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/../.."

CHECKS=${CHECKS:-1000}
INTERVAL=${INTERVAL:-10}
DURATION=${DURATION:-60}
CONCURRENCY=${CONCURRENCY:-32}

NGINX=$(command -v nginx || echo /usr/sbin/nginx)
[ -x "$NGINX" ] || { echo "error: nginx not found; run scripts/install-testbed.sh as root" >&2; exit 1; }

cargo build --release --quiet
BINARY=${CARGO_TARGET_DIR:-target}/release/readiness-exporter

work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
nginx_port=$(free_port)
exporter_port=$(free_port)

mkdir -p "$work/nginx"
cat > "$work/nginx/nginx.conf" <<CONF
daemon off;
worker_processes 1;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log;
events { worker_connections 4096; }
http {
  access_log $work/nginx/access.log;
  client_body_temp_path $work/nginx/body;
  proxy_temp_path $work/nginx/proxy;
  fastcgi_temp_path $work/nginx/fastcgi;
  uwsgi_temp_path $work/nginx/uwsgi;
  scgi_temp_path $work/nginx/scgi;
  server {
    listen 127.0.0.1:$nginx_port;
    location / { return 200 "ok\n"; }
  }
}
CONF
"$NGINX" -c "$work/nginx/nginx.conf" &
pids+=($!)

{
  echo "global:"
  echo "  listen_address: 127.0.0.1:$exporter_port"
  echo "  interval: ${INTERVAL}s"
  echo "  timeout: 5s"
  echo "  max_concurrent_checks: $CONCURRENCY"
  echo "checks:"
  for i in $(seq 1 "$CHECKS"); do
    printf '  - id: check_%05d\n    title: "Service %d"\n    section: Bench\n    severity: critical\n    http:\n      url: http://127.0.0.1:%d/health/%d\n' "$i" "$i" "$nginx_port" "$i"
  done
} > "$work/config.yaml"

"$BINARY" serve --config "$work/config.yaml" --log-level warn &
exporter=$!
pids+=($exporter)

for _ in $(seq 1 200); do
  curl -fsS "http://127.0.0.1:$exporter_port/-/ready" >/dev/null 2>&1 && break
  sleep 0.1
done

cpu_ticks() { awk '{print $14 + $15}' "/proc/$exporter/stat"; }
requests() { wc -l < "$work/nginx/access.log"; }

start_ticks=$(cpu_ticks)
start_requests=$(requests)
sleep "$DURATION"
end_ticks=$(cpu_ticks)
end_requests=$(requests)
peak_kib=$(awk '/VmHWM/ {print $2}' "/proc/$exporter/status")
rss_kib=$(awk '/VmRSS/ {print $2}' "/proc/$exporter/status")
clk=$(getconf CLK_TCK)

python3 - "$CHECKS" "$INTERVAL" "$DURATION" "$start_ticks" "$end_ticks" "$start_requests" "$end_requests" "$peak_kib" "$rss_kib" "$clk" <<'PY'
import sys
checks, interval, duration, t0, t1, r0, r1, peak, rss, clk = map(int, sys.argv[1:])
runs = r1 - r0
cpu = (t1 - t0) / clk
print(f"checks configured      {checks} at a {interval} s interval, measured for {duration} s")
print(f"checks run             {runs} ({runs / duration:.1f}/s)")
print(f"exporter CPU           {cpu:.2f} s user+sys")
print(f"CPU per check          {cpu / max(runs, 1) * 1e6:.0f} µs")
print(f"resident memory        {rss / 1024:.1f} MiB now, {peak / 1024:.1f} MiB peak")
PY

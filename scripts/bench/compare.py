#!/usr/bin/env python3
"""Side-by-side and scale benchmarks of readiness-exporter; run through scripts/bench/compare.sh.

`side-by-side` starts nginx on 127.0.0.1 as the target (plain HTTP, HTTPS and bare TLS, each TLS
port once with an ECDSA P-256 and once with an RSA 2048 certificate made at run time with
openssl), then measures three subjects doing the same checks at the same rate and concurrency:

* blackbox_exporter, probing through `/probe`, driven by `bench_client drive`;
* readiness-exporter, running its own schedule (`http` kind with `ca_file`, and `tls` kind);
* `bench_client bare`, the protocol floor: one new connection and one verified handshake per
  request, with no scheduler or state.

For each subject it reports CPU time per check (user+sys from /proc/PID/stat over a measurement
window, divided by the checks nginx logged in that window), resident memory (median of VmRSS
samples in the window, and VmHWM as the peak) and the ratios between subjects. Each figure is the
median of several repetitions, and /proc/loadavg is recorded beside each run.

`scale` runs readiness-exporter alone with 1,000 and 10,000 http checks at a one-minute interval
and reports resident memory, CPU per minute, the time and size of one /metrics scrape, the scrape
latency under wrk while checks run at full load, and the start-up time to the first served scrape.

Every process this script starts is stopped by its PID when it ends, also on errors and Ctrl-C.
"""

import argparse
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
STREAM_MODULE = "/usr/lib/nginx/modules/ngx_stream_module.so"

# Scenario name -> (nginx listener, blackbox module, certificate algorithm or None).
SCENARIOS = {
    "http": ("http", "http_plain", None),
    "https-ecdsa": ("https-ecdsa", "https_ecdsa", "ecdsa"),
    "https-rsa": ("https-rsa", "https_rsa", "rsa"),
    "tls-ecdsa": ("tls-ecdsa", "tls_ecdsa", "ecdsa"),
    "tls-rsa": ("tls-rsa", "tls_rsa", "rsa"),
}
SUBJECTS = ("blackbox", "exporter", "bare")


class Processes:
    """The processes this script started, stopped by PID in reverse order."""

    def __init__(self, logs: Path):
        self.logs = logs
        self.running: list[subprocess.Popen] = []

    def start(self, name: str, argv: list[str], stdout=None) -> subprocess.Popen:
        log = open(self.logs / f"{name}.log", "ab")
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=stdout if stdout is not None else log,
            stderr=log,
        )
        self.running.append(process)
        return process

    def stop(self, process: subprocess.Popen, timeout: float = 5.0) -> None:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process in self.running:
            self.running.remove(process)

    def stop_all(self) -> None:
        for process in reversed(list(self.running)):
            self.stop(process)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def load_average() -> str:
    return Path("/proc/loadavg").read_text().split(" ")[0]


def cpu_seconds(pid: int) -> float:
    """User plus system time of a process and its finished threads, from /proc/PID/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # Fields 14 and 15 of stat (utime, stime) are the 12th and 13th after the command name.
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def memory_kib(pid: int) -> dict:
    status = Path(f"/proc/{pid}/status").read_text()
    values = dict(re.findall(r"^(VmRSS|VmHWM|RssAnon|RssFile):\s+(\d+) kB", status, re.M))
    return {key: int(value) for key, value in values.items()}


def line_count(path: Path) -> int:
    try:
        with open(path, "rb") as file:
            return sum(1 for _ in file)
    except FileNotFoundError:
        return 0


def http_get(url: str, timeout: float = 2.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read()


def wait_for(url: str, timeout: float = 60.0, interval: float = 0.005) -> float:
    """Polls `url` until it returns 200 and returns the seconds it took."""
    started = time.monotonic()
    while True:
        try:
            http_get(url, timeout=1.0)
            return time.monotonic() - started
        except OSError:
            if time.monotonic() - started > timeout:
                raise RuntimeError(f"{url} did not respond with 200 within {timeout} s; check that the process started")
            time.sleep(interval)


# --- the target -------------------------------------------------------------------------------


def make_certificates(directory: Path) -> None:
    """Makes a CA and a server certificate for localhost and 127.0.0.1 per key algorithm."""
    keys = {
        "ecdsa": ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
        "rsa": ["-newkey", "rsa:2048"],
    }
    extensions = directory / "server.ext"
    extensions.write_text(
        "subjectAltName = DNS:localhost, IP:127.0.0.1\n"
        "basicConstraints = critical, CA:FALSE\n"
        "keyUsage = critical, digitalSignature, keyEncipherment\n"
        "extendedKeyUsage = serverAuth\n"
    )
    for algorithm, key in keys.items():
        prefix = directory / algorithm
        run_quiet(
            ["openssl", "req", "-x509", *key, "-nodes", "-days", "30", "-subj",
             f"/CN=bench {algorithm} CA", "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign",
             "-keyout", f"{prefix}-ca.key", "-out", f"{prefix}-ca.pem"]
        )
        run_quiet(
            ["openssl", "req", *key, "-nodes", "-subj", "/CN=localhost",
             "-keyout", f"{prefix}-server.key", "-out", f"{prefix}-server.csr"]
        )
        run_quiet(
            ["openssl", "x509", "-req", "-in", f"{prefix}-server.csr", "-CA", f"{prefix}-ca.pem",
             "-CAkey", f"{prefix}-ca.key", "-CAcreateserial", "-days", "30",
             "-extfile", str(extensions), "-out", f"{prefix}-server.pem"]
        )


def run_quiet(argv: list[str]) -> None:
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


class Target:
    """nginx on 127.0.0.1 with one listener per scenario, each logging to its own file."""

    def __init__(self, work: Path, processes: Processes):
        self.work = work
        self.dir = work / "nginx"
        self.dir.mkdir()
        self.certs = work / "certs"
        self.certs.mkdir()
        make_certificates(self.certs)
        self.ports = {name: free_port() for name in SCENARIOS}
        # A plain HTTP listener that serves files from `static/`, the floor for a scrape.
        self.static_port = free_port()
        (self.dir / "static").mkdir()
        # Started as root, nginx runs its worker as `nobody`. A temporary directory is private to
        # its owner, so the worker could not reach the file it serves without these modes.
        for directory in (self.work, self.dir, self.dir / "static"):
            directory.chmod(0o755)
        self.process = processes.start("nginx", [nginx_binary(), "-c", str(self.write_config())])
        for name in ("http", "https-ecdsa", "https-rsa"):
            self.wait_listening(self.ports[name])
        self.wait_listening(self.static_port)
        self.wait_listening(self.ports["tls-ecdsa"])

    def write_config(self) -> Path:
        d = self.dir
        http_servers = []
        stream_servers = []
        for name, (listener, _, algorithm) in SCENARIOS.items():
            port = self.ports[name]
            tls = ""
            if algorithm:
                # nginx 1.22 offers only TLS 1.2 by default; both versions, with X25519 first,
                # are what a current server negotiates.
                tls = (f"ssl_certificate {self.certs}/{algorithm}-server.pem; "
                       f"ssl_certificate_key {self.certs}/{algorithm}-server.key; "
                       "ssl_protocols TLSv1.2 TLSv1.3; ssl_ecdh_curve X25519:prime256v1:secp384r1;")
            if name.startswith("tls"):
                stream_servers.append(
                    f"server {{ listen 127.0.0.1:{port} ssl; {tls} "
                    f"access_log {d}/{listener}.log sessions; return \"ok\\n\"; }}"
                )
            else:
                ssl = " ssl" if algorithm else ""
                http_servers.append(
                    f"server {{ listen 127.0.0.1:{port}{ssl}; {tls} "
                    f"access_log {d}/{listener}.log; location / {{ return 200 \"ok\\n\"; }} }}"
                )
        http_servers.append(
            f"server {{ listen 127.0.0.1:{self.static_port}; access_log off; root {d}/static; }}"
        )
        config = f"""
load_module {STREAM_MODULE};
daemon off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log;
events {{ worker_connections 8192; }}
http {{
  client_body_temp_path {d}/body;
  proxy_temp_path {d}/proxy;
  fastcgi_temp_path {d}/fastcgi;
  uwsgi_temp_path {d}/uwsgi;
  scgi_temp_path {d}/scgi;
  {chr(10).join(http_servers)}
}}
stream {{
  log_format sessions '$remote_addr $status $ssl_protocol';
  {chr(10).join(stream_servers)}
}}
"""
        path = d / "nginx.conf"
        path.write_text(config)
        return path

    def wait_listening(self, port: int) -> None:
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"nginx is not listening on 127.0.0.1:{port}; see {self.dir}/error.log")

    def log(self, scenario: str) -> Path:
        return self.dir / f"{SCENARIOS[scenario][0]}.log"

    def url(self, scenario: str, path: str = "/") -> str:
        port = self.ports[scenario]
        if scenario == "http":
            return f"http://127.0.0.1:{port}{path}"
        if scenario.startswith("https"):
            return f"https://127.0.0.1:{port}{path}"
        return f"tls://127.0.0.1:{port}"

    def ca_file(self, scenario: str) -> Path | None:
        algorithm = SCENARIOS[scenario][2]
        return self.certs / f"{algorithm}-ca.pem" if algorithm else None


def nginx_binary() -> str:
    for candidate in ("nginx", "/usr/sbin/nginx"):
        if subprocess.run(["sh", "-c", f"command -v {candidate}"], capture_output=True).returncode == 0:
            return candidate
    raise SystemExit("error: nginx not found; run scripts/install-testbed.sh as root")


# --- subjects ---------------------------------------------------------------------------------


def exporter_config(target: Target, scenario: str, checks: int, interval: int,
                    concurrency: int, port: int, kind_override: dict | None = None) -> str:
    lines = [
        "global:",
        f"  listen_address: 127.0.0.1:{port}",
        f"  interval: {interval}s",
        f"  timeout: {min(5, interval) * 0.9:.1f}s",
        f"  max_concurrent_checks: {concurrency}",
        "checks:",
    ]
    ca = target.ca_file(scenario)
    for i in range(checks):
        lines += [
            f"  - id: check_{i:05d}",
            f"    title: \"Service {i} answers its health endpoint\"",
            f"    section: \"Section {i % 12}\"",
            "    severity: critical",
            f"    runbook_url: https://runbooks.example.com/check-{i}",
        ]
        if scenario.startswith("tls"):
            lines += ["    tls:", f"      address: 127.0.0.1:{target.ports[scenario]}",
                      f"      ca_file: {ca}", "      min_days_left: 1"]
        else:
            lines += ["    http:", f"      url: {target.url(scenario, f'/health/{i}')}"]
            if ca:
                lines.append(f"      ca_file: {ca}")
    return "\n".join(lines) + "\n"


def blackbox_config(target: Target) -> str:
    modules = ["modules:"]
    for name, (_, module, algorithm) in SCENARIOS.items():
        prober = "tcp" if name.startswith("tls") else "http"
        modules += [f"  {module}:", f"    prober: {prober}", "    timeout: 5s",
                    f"    {prober}:", "      preferred_ip_protocol: ip4",
                    "      ip_protocol_fallback: false"]
        if prober == "tcp":
            modules.append("      tls: true")
        if algorithm:
            modules += ["      tls_config:", f"        ca_file: {target.certs}/{algorithm}-ca.pem"]
    return "\n".join(modules) + "\n"


class Run:
    """One subject doing one scenario, measured over a window after a warm-up."""

    def __init__(self, args, target: Target, processes: Processes, subject: str, scenario: str,
                 rate: float | None):
        self.args = args
        self.target = target
        self.processes = processes
        self.subject = subject
        self.scenario = scenario
        self.rate = rate
        self.helpers: list[subprocess.Popen] = []

    def start(self) -> subprocess.Popen:
        a = self.args
        work = a.work
        driven_for = a.warmup + a.window + 5
        rate_args = ["--rate", str(self.rate)] if self.rate else []
        common = [*rate_args, "--concurrency", str(a.concurrency), "--duration", str(driven_for)]
        if self.subject == "bare":
            ca = self.target.ca_file(self.scenario)
            argv = [a.bench_client, "bare", self.target.url(self.scenario, "/health/bare"), *common]
            if ca:
                argv += ["--ca", str(ca)]
            self.result_file = open(work / "bare.out", "w+b")
            return self.processes.start("bare", argv, stdout=self.result_file)
        if self.subject == "blackbox":
            port = free_port()
            config = work / "blackbox.yml"
            config.write_text(blackbox_config(self.target))
            process = self.processes.start("blackbox", [
                a.blackbox, f"--config.file={config}", f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ])
            wait_for(f"http://127.0.0.1:{port}/-/healthy")
            module = SCENARIOS[self.scenario][1]
            probe_target = self.target.url(self.scenario, "/health/blackbox")
            if self.scenario.startswith("tls"):
                probe_target = f"127.0.0.1:{self.target.ports[self.scenario]}"
            url = f"http://127.0.0.1:{port}/probe?module={module}&target={probe_target}"
            self.result_file = open(work / "drive.out", "w+b")
            self.helpers.append(self.processes.start(
                "drive", [a.bench_client, "drive", url, *common], stdout=self.result_file))
            return process
        port = free_port()
        if self.rate:
            interval, checks = a.interval, int(self.rate * a.interval)
        else:
            interval, checks = 1, a.full_load_checks
        config = work / "exporter.yaml"
        config.write_text(exporter_config(self.target, self.scenario, checks, interval,
                                          a.concurrency, port))
        process = self.processes.start("exporter", [
            a.exporter, "serve", "--config", str(config), "--log-level", "warn"])
        self.exporter_port = port
        self.configured_rate = checks / interval
        wait_for(f"http://127.0.0.1:{port}/-/healthy")
        return process

    def measure(self) -> dict:
        a = self.args
        process = self.start()
        try:
            time.sleep(a.warmup)
            pid = process.pid
            log = self.target.log(self.scenario)
            load = load_average()
            cpu_start, lines_start, t_start = cpu_seconds(pid), line_count(log), time.monotonic()
            samples = []
            while time.monotonic() - t_start < a.window:
                samples.append(memory_kib(pid)["VmRSS"])
                time.sleep(0.25)
            cpu_end, lines_end, t_end = cpu_seconds(pid), line_count(log), time.monotonic()
            peak = memory_kib(pid)["VmHWM"]
            self.verify()
        finally:
            for helper in self.helpers:
                self.processes.stop(helper)
            self.processes.stop(process)
        checks = lines_end - lines_start
        elapsed = t_end - t_start
        cpu = cpu_end - cpu_start
        result = {
            "subject": self.subject, "scenario": self.scenario,
            "mode": f"{self.rate:g}/s" if self.rate else "full load",
            "checks": checks, "rate": checks / elapsed, "cpu_s": cpu,
            "cpu_per_check_us": cpu / checks * 1e6 if checks else None,
            "rss_mib": statistics.median(samples) / 1024, "peak_mib": peak / 1024,
            "load": load,
        }
        if self.subject == "exporter" and not self.rate and result["rate"] > 0.9 * self.configured_rate:
            print(f"warning: the exporter kept up with all {self.configured_rate:.0f} checks/s, so "
                  "the full-load run was not saturated; raise --full-load-checks", file=sys.stderr)
        return result

    def verify(self) -> None:
        """Fails the run when the checks did not pass, so broken runs never become figures."""
        if self.subject == "exporter":
            body = http_get(f"http://127.0.0.1:{self.exporter_port}/metrics").decode()
            # Checks that have not run yet are unknown, which is expected at full load; a check
            # that ran must have passed.
            failing = re.findall(
                r'^readiness_check_result\{check="([^"]+)",result="(?:fail|error)"\} 1', body, re.M)
            if failing:
                raise RuntimeError(f"{len(failing)} exporter checks are not passing, such as "
                                   f"{failing[0]}; see {self.args.work}/exporter.log")

    def check_counts(self) -> None:
        if self.subject == "exporter":
            return
        self.result_file.seek(0)
        counts = json.loads(self.result_file.read() or b"{}")
        if counts.get("failed"):
            raise RuntimeError(f"{self.subject} on {self.scenario}: {counts['failed']} requests "
                               f"failed, the first with: {counts.get('first_error')}")


def side_by_side(args, target: Target, processes: Processes) -> list[dict]:
    results = []
    modes = [float(args.rate) if m == "rate" else None for m in args.modes]
    for repetition in range(args.repetitions):
        for scenario in args.scenarios:
            for rate in modes:
                for subject in args.subjects:
                    run = Run(args, target, processes, subject, scenario, rate)
                    result = run.measure()
                    run.check_counts()
                    result["repetition"] = repetition
                    results.append(result)
                    print(f"  {repetition + 1}/{args.repetitions} {scenario:12} {result['mode']:9} "
                          f"{subject:8} {result['checks']:6} checks  "
                          f"{result['cpu_per_check_us'] or 0:7.0f} µs/check  "
                          f"{result['rss_mib']:5.1f} MiB (peak {result['peak_mib']:5.1f})  "
                          f"load {result['load']}", file=sys.stderr, flush=True)
    return results


def summarise(results: list[dict]) -> str:
    groups: dict[tuple, list[dict]] = {}
    for result in results:
        groups.setdefault((result["scenario"], result["mode"], result["subject"]), []).append(result)

    def median(key, scenario, mode, subject):
        values = [r[key] for r in groups.get((scenario, mode, subject), []) if r[key] is not None]
        return statistics.median(values) if values else None

    rows = [
        "| scenario | mode | subject | checks/s | CPU per check (µs) | RSS steady / peak (MiB) "
        "| load | exporter ÷ blackbox | exporter ÷ bare |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    keys = sorted({(s, m) for s, m, _ in groups}, key=lambda k: (list(SCENARIOS).index(k[0]), k[1]))
    for scenario, mode in keys:
        exporter_cpu = median("cpu_per_check_us", scenario, mode, "exporter")
        for subject in SUBJECTS:
            if (scenario, mode, subject) not in groups:
                continue
            cpu = median("cpu_per_check_us", scenario, mode, subject)
            loads = "/".join(r["load"] for r in groups[(scenario, mode, subject)])
            ratios = ["", ""]
            if subject == "exporter":
                for i, other in enumerate(("blackbox", "bare")):
                    other_cpu = median("cpu_per_check_us", scenario, mode, other)
                    if other_cpu and exporter_cpu:
                        ratios[i] = f"{exporter_cpu / other_cpu:.2f}"
            rows.append(
                f"| {scenario} | {mode} | {subject} | {median('rate', scenario, mode, subject):.0f} "
                f"| {cpu:.0f} | {median('rss_mib', scenario, mode, subject):.1f} / "
                f"{median('peak_mib', scenario, mode, subject):.1f} | {loads} | {ratios[0]} | {ratios[1]} |"
            )
    return "\n".join(rows)


# --- scale ------------------------------------------------------------------------------------


def run_wrk(args, url: str) -> str:
    """Scrapes `url` back to back on one connection and returns `p50 / p99 (N scrapes)`."""
    wrk = subprocess.run(
        [args.wrk, "-t1", "-c1", f"-d{args.wrk_seconds}s", "--latency", url],
        capture_output=True, text=True, check=True)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", wrk.stdout)
    if errors:
        raise RuntimeError(f"{url} returned an error status for {errors.group(1)} of wrk's requests")
    latency = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", wrk.stdout, re.M))
    requests = re.search(r"^\s*(\d+) requests in", wrk.stdout, re.M)
    return (f"{latency.get('50')} / {latency.get('99')} "
            f"({requests.group(1) if requests else '?'} scrapes)")


def scale(args, target: Target, processes: Processes) -> str:
    rows = ["| checks | measure | result | load |", "|---|---|---|---|"]
    for checks in args.scale_checks:
        # Steady cost at a one-minute interval: every check runs at start, then once per minute
        # at its phase, so the minute after the first is the steady state.
        port = free_port()
        config = args.work / f"scale-{checks}.yaml"
        config.write_text(exporter_config(target, "http", checks, 60, args.concurrency, port))
        started = time.monotonic()
        process = processes.start(f"exporter-{checks}", [
            args.exporter, "serve", "--config", str(config), "--log-level", "warn"])
        startup = wait_for(f"http://127.0.0.1:{port}/metrics", interval=0.002)
        startup_rss = memory_kib(process.pid)["VmRSS"] / 1024
        rows.append(f"| {checks:,} | start-up to the first served scrape | {startup * 1000:.0f} ms "
                    f"| {load_average()} |")
        time.sleep(max(0.0, 60 - (time.monotonic() - started)))
        cpu_start, lines_start = cpu_seconds(process.pid), line_count(target.log("http"))
        samples, anonymous, file_backed = [], [], []
        window_start = time.monotonic()
        while time.monotonic() - window_start < args.scale_window:
            memory = memory_kib(process.pid)
            samples.append(memory["VmRSS"])
            anonymous.append(memory["RssAnon"])
            file_backed.append(memory["RssFile"])
            time.sleep(0.5)
        elapsed = time.monotonic() - window_start
        cpu = cpu_seconds(process.pid) - cpu_start
        runs = line_count(target.log("http")) - lines_start
        peak = memory_kib(process.pid)["VmHWM"] / 1024
        load = load_average()
        rows.append(f"| {checks:,} | checks run per minute (interval 60 s) | {runs * 60 / elapsed:,.0f} | {load} |")
        rows.append(f"| {checks:,} | CPU per minute | {cpu * 60 / elapsed:.2f} s "
                    f"({cpu / max(runs, 1) * 1e6:.0f} µs per check) | {load} |")
        rows.append(f"| {checks:,} | resident memory: after start-up / steady / peak | "
                    f"{startup_rss:.1f} / {statistics.median(samples) / 1024:.1f} / {peak:.1f} MiB | {load} |")
        # VmRSS counts the pages of the binary that are mapped in (clean, shared with the page
        # cache and reclaimable) next to the process's own anonymous memory; both are shown.
        rows.append(f"| {checks:,} | steady resident memory: anonymous / file-backed | "
                    f"{statistics.median(anonymous) / 1024:.1f} / "
                    f"{statistics.median(file_backed) / 1024:.1f} MiB | {load} |")

        # One scrape, measured by its server: the process's CPU time over ten scrapes in a row,
        # because one scrape may take less than the counters' tick of 10 ms.
        url = f"http://127.0.0.1:{port}/metrics"
        timings = []
        before = cpu_seconds(process.pid)
        for _ in range(10):
            t0 = time.perf_counter()
            body = http_get(url, timeout=10)
            timings.append(time.perf_counter() - t0)
        cpu_per_scrape = (cpu_seconds(process.pid) - before) / 10
        rows.append(f"| {checks:,} | one /metrics scrape: wall time (median of 10) / exporter CPU "
                    f"(mean of 10) | {statistics.median(timings) * 1000:.1f} ms / "
                    f"{cpu_per_scrape * 1000:.1f} ms, {len(body):,} bytes | {load_average()} |")
        processes.stop(process)

        # Scrape latency while every check runs back to back: a one-second interval that the
        # exporter cannot keep up with at this concurrency.
        port = free_port()
        config = args.work / f"scale-{checks}-full.yaml"
        config.write_text(exporter_config(target, "http", checks, 1, args.concurrency, port))
        process = processes.start(f"exporter-{checks}-full", [
            args.exporter, "serve", "--config", str(config), "--log-level", "warn"])
        wait_for(f"http://127.0.0.1:{port}/metrics")
        time.sleep(3)
        lines_start = line_count(target.log("http"))
        wrk = run_wrk(args, f"http://127.0.0.1:{port}/metrics")
        runs = line_count(target.log("http")) - lines_start
        rows.append(f"| {checks:,} | scrape latency p50 / p99 with wrk, checks at full load "
                    f"({runs / args.wrk_seconds:,.0f} checks/s) | {wrk} | {load_average()} |")

        # The floor for the same scrape: nginx sends the same bytes from a file while the
        # exporter goes on running its checks, so both compete for the same cores.
        body = http_get(f"http://127.0.0.1:{port}/metrics", timeout=10)
        static_file = target.dir / "static" / "metrics"
        static_file.write_bytes(body)
        static_file.chmod(0o644)
        lines_start = line_count(target.log("http"))
        wrk = run_wrk(args, f"http://127.0.0.1:{target.static_port}/metrics")
        runs = line_count(target.log("http")) - lines_start
        rows.append(f"| {checks:,} | the same {len(body):,} bytes as a static file from nginx, "
                    f"p50 / p99 with wrk, checks at full load ({runs / args.wrk_seconds:,.0f} "
                    f"checks/s) | {wrk} | {load_average()} |")
        processes.stop(process)
        print("\n".join(rows[-8:]), file=sys.stderr, flush=True)
    return "\n".join(rows)


# --- main -------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("part", choices=["side-by-side", "scale", "all"], nargs="?", default="side-by-side",
                        help="which table to measure: side-by-side (default), scale or both")
    parser.add_argument("--exporter", required=True, help="readiness-exporter binary")
    parser.add_argument("--bench-client", required=True, help="bench_client example binary")
    parser.add_argument("--blackbox", default="prometheus-blackbox-exporter",
                        help="blackbox_exporter binary")
    parser.add_argument("--wrk", default="wrk", help="wrk binary")
    parser.add_argument("--scenarios", nargs="+", default=list(SCENARIOS), choices=list(SCENARIOS))
    parser.add_argument("--subjects", nargs="+", default=list(SUBJECTS), choices=list(SUBJECTS))
    parser.add_argument("--modes", nargs="+", default=["rate", "full"], choices=["rate", "full"],
                        help="rate: the fixed rate of --rate (the 160/s rows); full: full load")
    parser.add_argument("--rate", type=float, default=160, help="checks per second of the fixed-rate mode")
    parser.add_argument("--interval", type=int, default=1,
                        help="the exporter's interval in seconds at the fixed rate; checks = rate × interval")
    parser.add_argument("--concurrency", type=int, default=8, help="checks in flight at most")
    parser.add_argument("--full-load-checks", type=int, default=10000,
                        help="checks the exporter runs at a one-second interval at full load")
    parser.add_argument("--repetitions", type=int, default=3,
                        help="runs of each side-by-side cell; the table shows their medians")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds before each window")
    parser.add_argument("--window", type=float, default=6.0, help="seconds measured per run")
    parser.add_argument("--scale-checks", type=int, nargs="+", default=[1000, 10000],
                        help="configured checks of each scale run")
    parser.add_argument("--scale-window", type=float, default=60.0,
                        help="seconds that the scale run measures after its first minute; "
                             "the per-minute rows are scaled to one minute")
    parser.add_argument("--wrk-seconds", type=int, default=10,
                        help="seconds of each wrk run against /metrics")
    parser.add_argument("--json", type=Path, help="also write every run's figures to this file")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="readiness-bench-") as work:
        args.work = Path(work)
        processes = Processes(args.work)
        # SIGTERM ends the run like Ctrl-C, so the cleanup below always stops the processes.
        signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
        try:
            target = Target(args.work, processes)
            print(f"machine: {os.cpu_count()} CPUs, load {Path('/proc/loadavg').read_text().strip()}",
                  file=sys.stderr)
            if args.part in ("side-by-side", "all"):
                results = side_by_side(args, target, processes)
                if args.json:
                    args.json.write_text(json.dumps(results, indent=1))
                print(summarise(results), flush=True)
            if args.part in ("scale", "all"):
                if args.part == "all":
                    print()
                print(scale(args, target, processes))
        except Exception:
            for log in sorted(args.work.glob("*.log")):
                tail = log.read_text(errors="replace").strip().splitlines()[-5:]
                if tail:
                    print(f"--- {log.name}\n" + "\n".join(tail), file=sys.stderr)
            raise
        finally:
            processes.stop_all()


if __name__ == "__main__":
    main()

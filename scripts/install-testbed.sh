#!/usr/bin/env bash
# Installs the real components the test suite runs against, when they are missing.
# Debian packages need root; Python tools go into a venv under .testbed/ in the repository.
# Safe to run again: it installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages and the command that proves each one is installed: a name looked up on PATH,
# in /usr/sbin and /usr/bin, or an absolute path for binaries outside them.
declare -A DEBIAN_PACKAGES=(
  [nginx-light]=nginx
  [postgresql]=/usr/lib/postgresql/15/bin/initdb
  [prometheus]=promtool
  [prometheus-alertmanager]=prometheus-alertmanager
)

missing=()
for package in "${!DEBIAN_PACKAGES[@]}"; do
  command -v "${DEBIAN_PACKAGES[$package]}" >/dev/null 2>&1 || \
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

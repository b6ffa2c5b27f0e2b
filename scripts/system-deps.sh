#!/usr/bin/env bash
# Installs the Debian packages the test suites run for real: PostgreSQL and
# Redis (relay scale-out, storage), Chromium (browser tests). Idempotent:
# installs only what is missing. Needs root (or passwordless sudo) when it
# has something to install; CI runs as root.
set -euo pipefail

wanted=(postgresql redis-server chromium)
missing=()
for pkg in "${wanted[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=''
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "system-deps: please install as root: apt-get install -y ${missing[*]}" >&2; exit 1; }
  sudo='sudo -n'
fi
echo "system-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
# Debian's packages try to start their services on install; the tests start
# their own servers in temp dirs, so a refused service start is harmless.
$sudo apt-get install -y -qq "${missing[@]}" >/dev/null

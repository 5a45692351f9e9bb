#!/usr/bin/env bash
# Installs the Debian 12 packages voxq needs to build, test and benchmark.
# Idempotent: only packages that are missing are installed.
# --package: also what `make package-test` needs (debootstrap, lintian).
set -euo pipefail
packages=(
  build-essential cmake ninja-build pkg-config git
  libsqlite3-dev sqlite3
  libpq-dev postgresql-15
  libcurl4-openssl-dev libssl-dev libcpp-httplib-dev
  libespeak-ng-dev espeak-ng-data
  libmp3lame-dev libopusenc-dev libopus-dev libogg-dev libflac-dev libsndfile1-dev libopusfile-dev
  nlohmann-json3-dev libcli11-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  clang-format clang-tidy
  chromium python3-websocket wrk curl
  pybind11-dev python3-dev python3-pytest
  libboost-dev python3-jsonschema clang libclang-rt-14-dev
  python3-soundfile python3-numpy python3-venv
)
[ "${1:-}" = --package ] && packages+=(debootstrap lintian)
# Node.js and npm run the test-only interop receivers (tests/interop); a machine
# that already has a Node.js (e.g. from NodeSource, with its own npm) keeps it.
command -v node >/dev/null && command -v npm >/dev/null || packages+=(nodejs npm)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}" >&2
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -qq
  "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# The interop tests' npm packages, exactly as locked (tests/interop/package-lock.json).
interop="$(dirname "$0")/../tests/interop"
if [ ! -f "$interop/node_modules/.package-lock.json" ] ||
   [ "$interop/package-lock.json" -nt "$interop/node_modules/.package-lock.json" ]; then
  (cd "$interop" && npm ci --no-audit --no-fund --loglevel=error)
fi

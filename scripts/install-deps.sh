#!/usr/bin/env bash
# Installs the Debian 12 packages Phantom needs to build, test and run its demo.
# Idempotent: runs apt-get only when a package is missing. Needs root (or sudo).
set -euo pipefail

PKGS=(
  build-essential pkg-config clang libclang-rt-14-dev
  libssl-dev libevent-dev libyaml-dev libjansson-dev libcurl4-openssl-dev
  libpg-query-dev libprotobuf-c-dev libcmocka-dev libp11-kit-dev softhsm2 p11-kit libpq-dev libsqlite3-dev
  postgresql-15 postgresql-client-15 pgbouncer
  python3 python3-psycopg python3-yaml python3-asyncpg valgrind nodejs npm openssl procps iproute2 util-linux
)

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
    missing+=("$p")
  fi
done
# nodejs/npm may come from outside Debian (e.g. a preinstalled Node.js): accept that.
filtered=()
for p in "${missing[@]}"; do
  case "$p" in
    nodejs) command -v node >/dev/null 2>&1 || filtered+=("$p") ;;
    npm) command -v npm >/dev/null 2>&1 || filtered+=("$p") ;;
    *) filtered+=("$p") ;;
  esac
done
[ ${#filtered[@]} -eq 0 ] && exit 0

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "install-deps: installing ${filtered[*]}" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${filtered[@]}" >&2

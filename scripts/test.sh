#!/usr/bin/env bash
# Runs every check and test. Installs the system packages the tests need and starts the local
# PostgreSQL server if it is down; the tests create (and drop) their own databases.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# docker-compose (Debian's package) validates docker-compose.yml; no Docker engine is needed.
if ! command -v docker-compose >/dev/null 2>&1; then
  echo "installing docker-compose (Debian package)"
  as_root apt-get update -qq >/dev/null
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose >/dev/null
fi

# Node.js for the Node client's tests (tests/clients): Debian's package if there is no node,
# then the client's pinned dependencies from its lockfile (again whenever the lockfile changes).
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "installing nodejs and npm (Debian packages)"
  as_root apt-get update -qq >/dev/null
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
fi
NODE_STAMP=clients/node/node_modules/.corral-installed
if [ ! "$NODE_STAMP" -nt clients/node/package-lock.json ]; then
  echo "installing the Node client's dependencies (npm ci)"
  npm ci --prefix clients/node --ignore-scripts --no-audit --no-fund --loglevel=error
  touch "$NODE_STAMP"
fi

# PostgreSQL on 127.0.0.1:5432 with trust auth: start it if it is down.
if ! pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
  echo "starting PostgreSQL"
  for version in $(ls /etc/postgresql 2>/dev/null); do
    as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  done
  for _ in $(seq 1 60); do pg_isready -h 127.0.0.1 -p 5432 -q && break; sleep 0.5; done
  pg_isready -h 127.0.0.1 -p 5432 || { echo "PostgreSQL is not reachable on 127.0.0.1:5432"; exit 1; }
fi

echo "== lint"
$VENV/bin/ruff check .
$VENV/bin/buf lint
$VENV/bin/python scripts/gen_protos.py --check
echo "== tests"
$VENV/bin/pytest -q -p no:cacheprovider "$@"

#!/usr/bin/env bash
# Make sure Debian's PostgreSQL server binaries are present for the dynamic-secret tests.
# The tests start their own throwaway server (initdb + postgres on 127.0.0.1); nothing here
# starts or configures a system-wide PostgreSQL service.
set -euo pipefail
if compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null; then
  exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "PostgreSQL server binaries are missing and cannot be installed here (need root + apt-get);" >&2
  echo "the tests that need PostgreSQL will be skipped with a message." >&2
  exit 0
fi
echo "Installing Debian's postgresql (once)..." >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends postgresql >/dev/null

#!/usr/bin/env bash
# Make sure Debian's chromium is present for the audit HTML test (headless rendering of the
# report page). Nothing here starts a browser; the test runs it headless, offline, with a
# throwaway profile directory.
set -euo pipefail
if command -v chromium >/dev/null || command -v chromium-browser >/dev/null; then
  exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "chromium is missing and cannot be installed here (need root + apt-get);" >&2
  echo "the audit HTML rendering test will be skipped with a message." >&2
  exit 0
fi
echo "Installing Debian's chromium (once)..." >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq chromium >/dev/null

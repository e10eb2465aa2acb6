#!/usr/bin/env bash
# Regenerate the hashed lock files in requirements/ from pyproject.toml (see
# docs/development.md, "Dependencies and the lock"). pyproject.toml keeps ranges; the lock
# pins one exact, hash-checked version of every package, for every supported Python (3.11+).
#
#   scripts/lock-deps.sh                    # re-lock: keep current pins where still allowed
#   scripts/lock-deps.sh --upgrade          # move every package to its newest allowed version
#   scripts/lock-deps.sh --upgrade-package aiohttp
#
# Needs `uv` (from PyPI: `.venv/bin/pip install uv`, or any uv on PATH).
set -euo pipefail
cd "$(dirname "$0")/.."
uv=${UV:-}
if [ -z "$uv" ]; then
  if [ -x .venv/bin/uv ]; then uv=.venv/bin/uv; else uv=$(command -v uv || true); fi
fi
if [ -z "$uv" ]; then
  echo "uv not found: install it with '.venv/bin/pip install uv' (PyPI)" >&2
  exit 1
fi
common=(--generate-hashes --universal --python-version 3.11 --quiet)
# 1. Everything a developer and CI install (runtime + test extra + build backend).
"$uv" pip compile pyproject.toml requirements/build.in --extra test "${common[@]}" "$@" \
  -o requirements/lock.txt
# 2. The image's two subsets, constrained to exactly the pins of lock.txt.
"$uv" pip compile pyproject.toml -c requirements/lock.txt "${common[@]}" -o requirements/runtime.txt
"$uv" pip compile requirements/build.in -c requirements/lock.txt "${common[@]}" \
  -o requirements/build.txt
echo "requirements/lock.txt, runtime.txt and build.txt updated; run 'make .venv/.installed'."

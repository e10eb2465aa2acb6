#!/usr/bin/env bash
# The HashiCorp Vault step of `make test` (docs/development.md, "Both Vault servers"): every
# Vault-facing integration test (marker `vault_facing`, set at collection by tests/conftest.py
# after the mechanical rule of tests/vault_facing.py: all tests that need the dev environment
# or a Vault server of their own, but those marked `kube_only`) runs again against HashiCorp
# Vault CE, in two pytest sessions of their own (the non-fault tests, then the fault tests),
# each in a throwaway dev environment.
#
# The Vault binary is built from its Go module once and cached (~/.cache/vaultbridge); a cold
# build takes ~20 min on 2 idle cores and much longer on a loaded machine. So the build gets a
# budget, VAULT_BUILD_BUDGET seconds (default 1800; 0 = do not build): when the binary is not
# ready within it, the build is stopped (what it compiled stays in the Go build cache, so the
# next `make test` or `make vault-bin` continues from there), this step prints in a box that
# NOTHING ran against HashiCorp Vault, and `make test` still passes: a fresh machine never
# fails or hangs here. A build that fails (not one that runs out of time) fails `make test`.
#
# Usage: scripts/test-hashicorp.sh <venv bin dir> [all|build|main|faults]
#   build: only make sure the binary is there (within the budget); main / faults: only that
#   session, or the NOT TESTED box when there is no binary; all (default): build, then both
#   sessions one after the other. `make test` runs `build` alone, then `main` and `faults`
#   concurrently with each other and with the OpenBao fault session (docs/development.md).
set -uo pipefail
BIN=${1:-.venv/bin}
STEP=${2:-all}
BUDGET=${VAULT_BUILD_BUDGET:-1800}
MARKER=vault_facing

banner() {
  local line="========================================================================================"
  echo "$line"
  for text in "$@"; do echo "== $text"; done
  echo "$line"
}

vault_dir=$("$BIN/python" -c 'from vaultbridge.devenv.vault import vault_dir; print(vault_dir())')
if [ -f "$vault_dir/.complete" ] && [ -x "$vault_dir/vault" ]; then
  echo "HashiCorp Vault: cached at $vault_dir/vault"
elif [ "$STEP" = main ] || [ "$STEP" = faults ]; then
  banner "HashiCorp Vault NOT TESTED: no binary in $vault_dir (its build did not finish within" \
    "VAULT_BUILD_BUDGET, see the build step above). Every test ran against OpenBao only." \
    "Build it: make vault-bin (~20 min cold)."
  exit 0
elif [ "$BUDGET" -le 0 ] 2>/dev/null; then
  banner "HashiCorp Vault NOT TESTED: no binary in $vault_dir and VAULT_BUILD_BUDGET=0." \
    "Every test ran against OpenBao only. Build it: make vault-bin (~20 min cold)."
  exit 0
else
  echo "HashiCorp Vault: not built yet; building it (budget VAULT_BUILD_BUDGET=${BUDGET}s)"
  started=$(date +%s)
  # timeout signals its whole process group: the Python driver and `go build` with it.
  timeout "$BUDGET" "$BIN/python" -m vaultbridge.devenv.vault
  rc=$?
  if [ $rc -eq 124 ]; then
    banner "HashiCorp Vault NOT TESTED: its build did not finish within ${BUDGET} s." \
      "Every test ran against OpenBao only. The packages compiled so far stay in the Go" \
      "build cache: the next \`make test\` (or \`make vault-bin\`) continues the build."
    exit 0
  elif [ $rc -ne 0 ]; then
    banner "HashiCorp Vault build FAILED (exit $rc), see the message above."
    exit $rc
  fi
  echo "HashiCorp Vault: built in $(( ($(date +%s) - started) / 60 )) min"
fi
[ "$STEP" = build ] && exit 0

case $STEP in
  main) markers=("$MARKER and not faults") ;;
  faults) markers=("$MARKER and faults") ;;
  *) markers=("$MARKER and not faults" "$MARKER and faults") ;;
esac
overall=0
for marker in "${markers[@]}"; do
  home=$(mktemp -d "${TMPDIR:-/tmp}/vaultbridge-hashicorp.XXXXXX")
  echo "HashiCorp Vault (-m '$marker'): dev environment in $home"
  started=$(date +%s)
  VAULTBRIDGE_VAULT_SERVER=hashicorp VAULTBRIDGE_DEV_HOME=$home \
    "$BIN/pytest" -m "$marker" tests/integration
  rc=$?
  echo "HashiCorp Vault (-m '$marker'): $(( $(date +%s) - started )) s wall, load: $(cut -d' ' -f1-3 /proc/loadavg)"
  if [ $rc -eq 0 ]; then rm -rf "$home"; else echo "logs kept in $home/logs"; overall=$rc; fi
done
if [ $overall -eq 0 ]; then
  banner "HashiCorp Vault ($STEP): every Vault-facing test passed against HashiCorp Vault too" \
    "(test ids ending in [vault=hashicorp]). Only the tests that never reach Vault (marked" \
    "kube_only, or using no server at all) ran against OpenBao's environment alone."
else
  banner "HashiCorp Vault ($STEP): Vault-facing tests FAILED against HashiCorp Vault (see above)."
fi
exit $overall

#!/usr/bin/env bash
# Static security checks for terraform/ with checkov.
#
# checkov's dependencies conflict with the app's, so it lives in its own virtualenv
# (.venv-checkov, git-ignored through `.venv*/`). Any failed check fails this script:
# waive a check only in place, next to the resource, with `#checkov:skip=CKV_...:<real reason>`.
#
# Usage: bash infra/checkov.sh [extra checkov args]
set -euo pipefail

CHECKOV_VERSION="3.3.30"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${CHECKOV_VENV:-$ROOT/.venv-checkov}"
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3

if [ ! -x "$VENV/bin/checkov" ] || ! "$VENV/bin/checkov" --version 2>/dev/null | grep -qx "$CHECKOV_VERSION"; then
  echo "checkov.sh: installing checkov==$CHECKOV_VERSION into $VENV" >&2
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "checkov==$CHECKOV_VERSION"
fi

cd "$ROOT"
# --download-external-modules false: every module is local; --skip-download: no API key, no
# guideline download; BC_SKIP_MAPPING avoids the network call for severity/guideline mapping.
export BC_SKIP_MAPPING=TRUE
export CHECKOV_RUN_SCA_PACKAGE_SCAN_V2=false
exec "$VENV/bin/checkov" \
  --directory terraform \
  --framework terraform \
  --compact \
  --quiet \
  --skip-download \
  --download-external-modules false \
  "$@"

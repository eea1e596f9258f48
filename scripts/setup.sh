#!/usr/bin/env bash
# Create .venv with the pinned dependencies (idempotent). `setup.sh dev` adds
# the test tools. Needs Python 3.11 on PATH as python3.11 or python3.
set -euo pipefail
cd "$(dirname "$0")/.."
py=$(command -v python3.11 || command -v python3)
[ -x .venv/bin/python ] || "$py" -m venv .venv
extra=""
[ "${1:-}" = "dev" ] && extra="[dev]"
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".${extra}"
# git and DVC need an identity and a repo; a tarball download has neither
git rev-parse --git-dir >/dev/null 2>&1 || git init --quiet

#!/usr/bin/env bash
# Regenerate the lock from pyproject.toml: every transitive dependency pinned,
# with the sha256 of each of its files on PyPI (pip --require-hashes).
#   requirements/lock.txt      the runtime dependencies (Docker, setup.sh)
#   requirements/lock-dev.txt  what the [dev] extra adds (setup.sh dev, CI)
# Versions already locked stay unless pyproject.toml's pins need others;
# `scripts/lock.sh --upgrade` moves everything to the newest allowed.
# One lock for Python 3.11 and 3.12 on any platform (uv's universal mode,
# one version per package).
#
# torch and its CUDA stack are left out: they differ per install path (the
# CPU wheel here and in CI, the CUDA build in the Docker base), so setup.sh
# installs torch by the version pyproject.toml pins and the image keeps its
# base's. The CUDA stack is what PyPI's Linux torch wheel needs beyond its
# Windows (CPU) one; torch's other dependencies are locked.
set -euo pipefail
cd "$(dirname "$0")/.."
uv_version=0.13.8
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 -m venv "$tmp/uv"
"$tmp/uv/bin/python" -m pip install --quiet --disable-pip-version-check "uv==$uv_version"
uv=("$tmp/uv/bin/uv" --quiet)

torch=$(python3 -c "import tomllib
deps = tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']
print(next(d for d in deps if d.startswith('torch==')))")
for platform in x86_64-manylinux_2_28 x86_64-pc-windows-msvc; do  # what PyPI's torch pulls in there
    echo "$torch" | "${uv[@]}" pip compile - --python-version 3.11 --python-platform "$platform" \
        --no-header --no-annotate -o "$tmp/$platform.txt"
    sed -n 's/^\([A-Za-z0-9._-]*\)==.*/\1/p' "$tmp/$platform.txt" | sort > "$tmp/$platform"
done
comm -23 "$tmp/x86_64-manylinux_2_28" "$tmp/x86_64-pc-windows-msvc" > "$tmp/cuda.txt"
[ -s "$tmp/cuda.txt" ] || { echo "lock.sh: found no CUDA stack under $torch" >&2; exit 1; }

mkdir -p requirements
compile=("${uv[@]}" pip compile pyproject.toml --universal --python-version 3.11 --fork-strategy fewest
    --generate-hashes --excludes "$tmp/cuda.txt" --no-emit-package torch
    --custom-compile-command "bash scripts/lock.sh" "$@")
"${compile[@]}" -o requirements/lock.txt
# the dev tools on top of the runtime lock, at its versions, without repeating it
runtime=$(sed -n 's/^\([A-Za-z0-9._-]*\)==.*/--no-emit-package \1/p' requirements/lock.txt)
[ ! -f requirements/lock-dev.txt ] || cp requirements/lock-dev.txt "$tmp/dev.txt"
# shellcheck disable=SC2086  # one word per option
"${compile[@]}" --extra dev -c requirements/lock.txt $runtime -o "$tmp/dev.txt"
{
    sed '/^# The following packages were excluded from the output/,$d' "$tmp/dev.txt"
    echo "# ... on top of requirements/lock.txt, whose packages are not repeated here"
} > requirements/lock-dev.txt
echo "locked: $(grep -c '^[A-Za-z]' requirements/lock.txt) runtime +" \
    "$(grep -c '^[A-Za-z]' requirements/lock-dev.txt) dev packages (torch: $torch, by version only)"

#!/usr/bin/env bash
# Create .venv from the lock (idempotent). `setup.sh dev` adds the test tools.
# Needs Python 3.11 on PATH as python3.11 or python3.
set -euo pipefail
cd "$(dirname "$0")/.."
py=$(command -v python3.11 || command -v python3)
[ -x .venv/bin/python ] || "$py" -m venv .venv
pip=(.venv/bin/python -m pip --quiet --disable-pip-version-check)
# every dependency but torch, each file checked against the lock's sha256
# (regenerate the lock with scripts/lock.sh)
lock=(-r requirements/lock.txt)
[ "${1:-}" = "dev" ] && lock+=(-r requirements/lock-dev.txt)
"${pip[@]}" install --require-hashes "${lock[@]}"
# torch by the version pyproject.toml pins, from TORCH_INDEX (CI: PyTorch's
# CPU wheels) or pip's own sources (here: the local CPU wheel). Its files
# differ per install path, so it has no hash (README, "The lock"); what it
# needs is in the lock, and the lock's versions stay (-c, without hashes,
# which would turn hash checking on for torch).
torch=$(.venv/bin/python -c "import tomllib
deps = tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']
print(next(d for d in deps if d.startswith('torch==')))")
"${pip[@]}" install ${TORCH_INDEX:+--index-url "$TORCH_INDEX"} "$torch" \
    -c <(sed -n 's/^\([A-Za-z].*\) \\$/\1/p' requirements/lock.txt)
# rgf itself, built by the lock's setuptools; nothing else may come in
"${pip[@]}" install --no-deps --no-build-isolation -e .
"${pip[@]}" check
# git and DVC need an identity and a repo; a tarball download has neither
git rev-parse --git-dir >/dev/null 2>&1 || git init --quiet
# The `dvc plots show` page works offline: Vega, Vega-Lite and vega-embed,
# at the versions package-lock.json pins, inlined into .dvc/plots/page.html
# as .dvc/plots/offline.html, the page template .dvc/config names (DVC's own
# page loads them from a CDN). Needs Node.js and npm.
if command -v npm >/dev/null 2>&1; then
  npm ci --no-audit --no-fund --loglevel=error
  node -e '
    const fs = require("fs");
    const inline = (file) => "<script>" + fs.readFileSync("node_modules/" + file, "utf8")
      .replace(/\/\/# sourceMappingURL=\S+\s*$/, "").replace(/<\/script/gi, "<\\/script") + "</script>";
    const scripts = ["vega/build/vega.min.js", "vega-lite/build/vega-lite.min.js", "vega-embed/build/vega-embed.min.js"];
    const page = fs.readFileSync(".dvc/plots/page.html", "utf8");
    if (!page.includes("<!-- VEGA SCRIPTS -->")) throw new Error(".dvc/plots/page.html has no <!-- VEGA SCRIPTS --> line");
    fs.writeFileSync(".dvc/plots/offline.html", page.replace("<!-- VEGA SCRIPTS -->", () => scripts.map(inline).join("\n")));
  '
else
  echo "setup.sh: no npm: \`dvc plots show\` needs Node.js and npm for .dvc/plots/offline.html (README, Plots)" >&2
fi

"""Lint and container checks that need no Docker engine."""

import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "tool, args",
    [("ruff", ["check", "."]), ("hadolint", ["Dockerfile"]), ("actionlint", [])],
)
def test_linters_pass(tool, args):
    exe = shutil.which(tool)
    if exe is None:
        pytest.skip(f"{tool} is not installed (pip install -e '.[dev]')")
    done = subprocess.run([exe, *args], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_dockerfile_copies_existing_files_and_matches_the_python_pin():
    text = (REPO / "Dockerfile").read_text()
    for line in re.findall(r"^COPY (.+)$", text, flags=re.M):
        *sources, _ = line.split()
        for src in sources:
            assert (REPO / src).exists(), f"Dockerfile copies {src}, which does not exist"
    base = re.search(r"^FROM python:(\d+)\.(\d+)", text, flags=re.M)
    requires = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    low = re.search(r">=(\d+)\.(\d+)", requires)
    assert base and low and (int(base[1]), int(base[2])) >= (int(low[1]), int(low[2]))
    # the image installs the project itself, so its torch is the pinned one
    assert "pip install --no-cache-dir -e ." in text


def test_dockerignore_keeps_data_out_of_the_build_context():
    lines = [x.strip() for x in (REPO / ".dockerignore").read_text().splitlines() if x.strip() and x[0] != "#"]
    assert lines[0] == "*" and "!pipeline/" in lines

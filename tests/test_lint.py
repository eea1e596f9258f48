"""Lint and container checks that need no Docker engine."""

import re
import shutil
import subprocess
import tomllib

import pytest
from packaging.specifiers import SpecifierSet

from tests.helpers import REPO


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


def test_dockerfile_copies_existing_files_and_matches_the_pins():
    text = (REPO / "Dockerfile").read_text()
    for line in re.findall(r"^COPY (.+)$", text, flags=re.M):
        *sources, _ = line.split()
        for src in sources:
            assert (REPO / src).exists(), f"Dockerfile copies {src}, which does not exist"
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pins = dict(dep.split("==") for dep in project["dependencies"] if "==" in dep)
    # PyTorch's CUDA image of exactly the pinned torch, fixed by digest
    base = re.search(r"^FROM pytorch/pytorch:([\d.]+)-cuda[\d.]+-cudnn\d+-runtime@sha256:[0-9a-f]{64}$", text, re.M)
    assert base and base[1] == pins["torch"]
    # its CPython 3.12 must satisfy requires-python, or pip refuses the project
    assert SpecifierSet(project["requires-python"]).contains("3.12")
    # the dependencies go in from the lock (tests/test_lock.py), then the project alone, and the
    # build fails if pip swapped the base's CUDA torch
    assert "pip install --no-cache-dir --break-system-packages --require-hashes -r requirements/lock.txt" in text
    assert "pip install --no-cache-dir --break-system-packages --no-deps --no-build-isolation -e ." in text
    assert f"torch.__version__.startswith('{pins['torch']}+cu')" in text


def test_dockerignore_keeps_data_out_of_the_build_context():
    lines = [x.strip() for x in (REPO / ".dockerignore").read_text().splitlines() if x.strip() and x[0] != "#"]
    assert lines[0] == "*" and "!pipeline/" in lines

"""End to end: `dvc exp run -S profile=smoke` in a fresh copy of the repo."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
FACTORS = ["colour", "thin", "thick", "swell", "fracture"]


def _sh(cmd, cwd, env):
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{cmd} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout + done.stderr


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    """A git repo holding the project's files, as a fresh clone would."""
    dest = tmp_path_factory.mktemp("clone")
    files = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    for name in files:
        if (REPO / name).is_file() and not name.startswith("data/"):
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, dest / name)
    env = dict(
        os.environ,
        DVC_NO_ANALYTICS="1",
        GIT_AUTHOR_NAME="t",
        GIT_AUTHOR_EMAIL="t@t",
        GIT_COMMITTER_NAME="t",
        GIT_COMMITTER_EMAIL="t@t",
    )
    # stage commands call `python`: make it this interpreter
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env["PATH"]
    _sh(["git", "init", "-q"], dest, env)
    _sh(["git", "add", "-A"], dest, env)
    _sh(["git", "commit", "-qm", "clone"], dest, env)
    return dest, env


@pytest.mark.slow
def test_smoke_profile_runs_end_to_end_and_then_does_nothing(repo):
    root, env = repo
    dvc = [sys.executable, "-m", "dvc"]
    _sh(dvc + ["exp", "run", "-S", "profile=smoke"], root, env)
    assert yaml.safe_load((root / "params.yaml").read_text())["profile"] == "smoke"
    for factor in FACTORS:
        manifest = json.loads((root / "data" / factor / "manifest.json").read_text())
        assert manifest["datasets"]["balanced"]["size"] == 400
        assert manifest["datasets"]["test"]["size"] == 200
    second = _sh(dvc + ["repro"], root, env)
    assert "Running stage" not in second and "up to date" in second


@pytest.mark.slow
def test_misspelled_override_stops_before_any_work(repo):
    root, env = repo
    dvc = [sys.executable, "-m", "dvc"]
    done = subprocess.run(
        dvc + ["exp", "run", "-S", "+skew.rare_fracton=0.1"], cwd=root, env=env, capture_output=True, text=True
    )
    assert done.returncode != 0
    assert "unknown key 'skew.rare_fracton'" in done.stdout + done.stderr

"""What the tests share: where the repository is, params composed from
conf/ (never the workspace's params.yaml, which an applied experiment may
have changed) into a temporary folder, and a fresh clone of the repository
to run DVC in."""

from __future__ import annotations

import copy
import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path

import yaml

from pipeline.params import Params, parse_params

REPO = Path(__file__).resolve().parents[1]
SHARED_MNIST = REPO.parent / "shared" / "data" / "mnist"


@cache
def _composed(profile: str, overrides: tuple[str, ...]) -> dict:
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from pipeline.registry import register_resolver

    register_resolver()
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base=None):
        cfg = compose(config_name="config", overrides=[f"profile={profile}", *overrides])
        return OmegaConf.to_container(cfg, resolve=True)


def compose(profile: str = "smoke", *overrides: str) -> dict:
    """params.yaml as `dvc exp run -S profile=<profile> -S <override>...` would write it."""
    return copy.deepcopy(_composed(profile, overrides))


def with_key(raw: dict, dotted: str, value) -> dict:
    """A copy of `raw` with one (dotted) key set."""
    raw = copy.deepcopy(raw)
    *parents, key = dotted.split(".")
    node = raw
    for part in parents:
        node = node[part]
    node[key] = value
    return raw


def params(profile: str = "smoke", *overrides: str) -> Params:
    """The validated params of a profile with Hydra overrides (`key=value`)."""
    return parse_params(compose(profile, *overrides))


def write_params(folder: Path, raw: dict) -> Path:
    """`raw` as folder/params.yaml; returns its path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "params.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def load_script(name: str):
    """scripts/<name>.py as a module (the scripts are no package)."""
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def sh(cmd, cwd, env, check=True):
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=1800)
    if check:
        assert done.returncode == 0, f"{cmd} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


OUTPUT_FOLDERS = ("data/", "metrics/", "models/", "plots/", "reports/", "logs/")
# committed files in the output folders that are no output: a clone has them
NOT_OUTPUTS = ("plots/train/README.md",)


# git-ignored files that `scripts/setup.sh` builds in a fresh clone: the
# offline page template of `dvc plots show` (.dvc/config names it)
SETUP_PRODUCTS = (".dvc/plots/offline.html",)


def copy_project(dest: Path) -> None:
    """The project's files (tracked, or untracked and not ignored) without
    its outputs, copied into `dest`, as a fresh clone holds them after
    `scripts/setup.sh` (SETUP_PRODUCTS)."""
    files = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    for name in [*files, *SETUP_PRODUCTS]:
        if (REPO / name).is_file() and (not name.startswith(OUTPUT_FOLDERS) or name in NOT_OUTPUTS):
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, dest / name)


def dvc_env() -> dict:
    """The environment of a test's git and DVC commands."""
    ident = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    env = dict(os.environ, DVC_NO_ANALYTICS="1", **ident)
    # stage commands call `python`: make it this interpreter
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env["PATH"]
    return env


def clone(dest: Path):
    """A git repo holding the project's files, as a fresh clone would; (root, env).
    The default DVC remote's folder exists beside it, as on a team's machine
    (without it the validate stage notes its absence on every run)."""
    copy_project(dest)
    (dest.parent / "rgf-dvc-storage").mkdir(exist_ok=True)
    env = dvc_env()
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "clone"]):
        sh(cmd, dest, env)
    return dest, env


def dvc(root, env, *args, check=True):
    return sh([sys.executable, "-m", "dvc", *args], root, env, check)


def digest(folder: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file under `folder` (links skipped)."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(Path(folder).rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


def one_error(text: str) -> str:
    """The one line of `text`, which must read `error: ...` with no traceback."""
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in text, text
    return lines[0]

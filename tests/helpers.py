"""What the tests share: where the repository is, and params composed from
conf/ (never the workspace's params.yaml, which an applied experiment may
have changed) into a temporary folder."""

from __future__ import annotations

import copy
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

    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base=None):
        cfg = compose(config_name="config", overrides=[f"profile={profile}", *overrides])
        return OmegaConf.to_container(cfg)


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

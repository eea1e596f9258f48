import copy
import re
from pathlib import Path

import pytest
import yaml

from pipeline.config import ParamsError, load_params, parse_params

REPO = Path(__file__).resolve().parents[1]
RAW = yaml.safe_load((REPO / "params.yaml").read_text())


def _compose(profile=None):
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    overrides = [f"profile={profile}"] if profile else []
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base=None):
        return OmegaConf.to_container(compose(config_name="config", overrides=overrides))


def _with(path, value):
    raw = copy.deepcopy(RAW)
    *parents, key = path.split(".")
    node = raw
    for p in parents:
        node = node[p]
    node[key] = value
    return raw


def test_committed_params_are_the_quick_profile():
    assert load_params(REPO / "params.yaml").profile == "quick"
    # `dvc exp run` recomposes params.yaml from conf/: it must not change it
    assert _compose() == RAW


@pytest.mark.parametrize("profile", ["smoke", "quick", "paper", "compcars"])
def test_profiles_validate_and_share_the_same_keys(profile):
    composed = _compose(profile)
    params = parse_params(composed)
    assert params.profile == profile

    def keys(d, prefix=""):
        return {prefix + k for k in d} | {
            x for k, v in d.items() if isinstance(v, dict) for x in keys(v, prefix + k + ".")
        }

    assert keys(composed) == keys(RAW)


@pytest.mark.parametrize(
    "path, value, message",
    [
        ("data.sourse", "mnist", "unknown key 'data.sourse'"),
        ("factors", ["colour", "blur"], "unknown factor(s) ['blur'] for MNIST"),
        ("factors", ["Colour"], "factors.0 = 'Colour'"),
        ("skew.rare_classes", [1, 10], "skew.rare_classes [10] out of range: the source has classes 0..9"),
        ("skew.rare_classes", [-1], "skew.rare_classes.0 = -1"),
        ("data.manifest.classes", ["a"], "data.manifest.classes = ['a']: Value error, must list at least two"),
        ("skew.rare_fraction", 1.5, "skew.rare_fraction = 1.5"),
        ("seed", -1, "seed = -1"),
        ("data.source", "cifar", "data.source = 'cifar'"),
        ("perturb.thin.amount", 0.0, "perturb.thin.amount = 0.0"),
        ("factors", ["thin", "thin"], "each once"),
    ],
)
def test_bad_values_are_named_in_one_line(path, value, message):
    with pytest.raises(ParamsError, match=re.escape(message)):
        parse_params(_with(path, value))


def test_missing_and_broken_files(tmp_path):
    with pytest.raises(ParamsError, match="not found"):
        load_params(tmp_path / "params.yaml")
    (tmp_path / "params.yaml").write_text("seed: [unclosed")
    with pytest.raises(ParamsError, match="not valid YAML"):
        load_params(tmp_path / "params.yaml")


def test_dataset_names_must_follow_the_rare_classes():
    assert parse_params(RAW).datasets == ["balanced"] + [f"skewed_k{k}" for k in RAW["skew"]["rare_classes"]]
    raw = _with("skew.rare_classes", [1, 3])
    with pytest.raises(ParamsError, match=r"datasets must be \['balanced', 'skewed_k1', 'skewed_k3'\]"):
        parse_params(raw)
    raw["datasets"] = ["balanced", "skewed_k1", "skewed_k3"]
    assert parse_params(raw).skew.rare_classes == [1, 3]


def test_a_manifest_source_names_its_factor_and_bounds_its_classes():
    raw = _with("data.source", "manifest")
    raw["skew"]["rare_classes"], raw["datasets"] = [0], ["balanced", "skewed_k0"]
    params = parse_params(raw)
    assert params.data.num_classes == 2 and params.factors == ["colour"]
    raw["factors"] = ["thin"]
    with pytest.raises(ParamsError, match=r"factors must be \[colour\] \(data.manifest.factor_column\)"):
        parse_params(raw)
    raw["factors"] = ["colour"]
    raw["skew"]["rare_classes"], raw["datasets"] = [2], ["balanced", "skewed_k2"]
    with pytest.raises(ParamsError, match=r"skew.rare_classes \[2\] out of range: the source has classes 0..1"):
        parse_params(raw)

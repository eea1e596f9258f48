import re
import shutil
import subprocess

import pytest
import yaml

from pipeline.errors import ParamsError, RgfError
from pipeline.params import load_params, parse_params
from tests.helpers import REPO, compose, params, with_key


def _keys(d, prefix=""):
    return {prefix + k for k in d} | {
        x for k, v in d.items() if isinstance(v, dict) for x in _keys(v, prefix + k + ".")
    }


def test_committed_params_are_the_quick_profile():
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    shown = subprocess.run(["git", "show", "HEAD:params.yaml"], cwd=REPO, capture_output=True, text=True)
    if shown.returncode != 0:
        pytest.skip(f"no committed params.yaml: {shown.stderr.strip()}")
    committed = yaml.safe_load(shown.stdout)
    assert parse_params(committed).profile == "quick"
    # `dvc exp run` recomposes params.yaml from conf/: it must not change it
    assert committed == compose("quick")


@pytest.mark.parametrize("profile", ["smoke", "quick", "paper", "compcars"])
def test_profiles_validate_and_share_the_same_keys(profile):
    composed = compose(profile)
    assert parse_params(composed).profile == profile
    assert _keys(composed) == _keys(compose("quick"))


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
        parse_params(with_key(compose("quick"), path, value))


@pytest.mark.parametrize("path", ["vae.width", "perturb.thin.amount", "data.manifest.root", "seed"])
def test_a_missing_key_is_an_error_naming_it(path):
    raw = compose("smoke")
    *parents, key = path.split(".")
    node = raw
    for part in parents:
        node = node[part]
    del node[key]
    with pytest.raises(ParamsError) as info:
        parse_params(raw)
    assert str(info.value) == f"params: missing key '{path}'"


def test_missing_and_broken_files(tmp_path):
    with pytest.raises(ParamsError, match="not found"):
        load_params(tmp_path / "params.yaml")
    (tmp_path / "params.yaml").write_text("seed: [unclosed")
    with pytest.raises(ParamsError, match="not valid YAML"):
        load_params(tmp_path / "params.yaml")


def test_dataset_names_must_follow_the_rare_classes():
    raw = compose("quick", "skew.rare_classes=[1,2]", "datasets=[balanced,skewed_k1,skewed_k2]")
    assert parse_params(raw).datasets == ["balanced", "skewed_k1", "skewed_k2"]
    raw = with_key(raw, "skew.rare_classes", [1, 3])
    with pytest.raises(ParamsError, match=r"datasets must be \['balanced', 'skewed_k1', 'skewed_k3'\]"):
        parse_params(raw)
    raw["datasets"] = ["balanced", "skewed_k1", "skewed_k3"]
    assert parse_params(raw).skew.rare_classes == [1, 3]


def test_a_manifest_source_names_its_factor_and_bounds_its_classes():
    raw = with_key(compose("quick"), "data.source", "manifest")
    raw["skew"]["rare_classes"], raw["datasets"] = [0], ["balanced", "skewed_k0"]
    parsed = parse_params(raw)
    assert parsed.data.num_classes == 2 and parsed.factors == ["colour"]
    raw["factors"] = ["thin"]
    with pytest.raises(ParamsError, match=r"factors must be \[colour\] \(data.manifest.factor_column\)"):
        parse_params(raw)
    raw["factors"] = ["colour"]
    raw["skew"]["rare_classes"], raw["datasets"] = [2], ["balanced", "skewed_k2"]
    with pytest.raises(ParamsError, match=r"skew.rare_classes \[2\] out of range: the source has classes 0..1"):
        parse_params(raw)


def test_check_factor_refuses_a_factor_the_source_does_not_have():
    mnist = params("smoke")
    mnist.check_factor("fracture")  # an MNIST factor, even one this profile does not study
    with pytest.raises(RgfError, match=r"factor 'blur' does not exist for source mnist-bundled"):
        mnist.check_factor("blur")

    cars = params("compcars")
    cars.check_factor("colour")
    with pytest.raises(
        RgfError, match=re.escape("factor 'thin' does not exist for source manifest; choose from ['colour']")
    ):
        cars.check_factor("thin")

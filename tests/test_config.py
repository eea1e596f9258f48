import re
import shutil
import subprocess

import pytest
import yaml

from pipeline.errors import ParamsError, RgfError
from pipeline.names import parse_skew, skew_label, skewed
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


@pytest.mark.parametrize("profile", ["smoke", "quick", "survey", "paper", "compcars"])
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
        ("skew.rare_fractions", [1.5], "skew.rare_fractions.0 = 1.5"),
        ("skew.rare_fractions", [0.1, 0.1], "skew.rare_fractions = [0.1, 0.1]: Value error, must list at least one"),
        ("skew.rare_fractions", [0.123456789], "[0.123456789]: round each fraction to fewer digits"),
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
    raw = compose("quick", "skew.rare_classes=[1,2]")  # Hydra derives datasets and skews
    assert parse_params(raw).datasets == ["balanced", "skewed_k1", "skewed_k2"]
    assert parse_params(raw).skews == ["k1", "k2"]
    raw = with_key(raw, "skew.rare_classes", [1, 3])
    with pytest.raises(ParamsError, match=r"datasets must be \['balanced', 'skewed_k1', 'skewed_k3'\]"):
        parse_params(raw)
    raw["datasets"], raw["skews"] = ["balanced", "skewed_k1", "skewed_k3"], ["k1", "k3"]
    assert parse_params(raw).skew.rare_classes == [1, 3]


def test_rare_fractions_give_one_skewed_set_per_class_and_fraction_named_in_percent():
    raw = compose("quick", "skew.rare_classes=[1,2]", "skew.rare_fractions=[0,0.025,0.5]")
    parsed = parse_params(raw)
    assert parsed.datasets == [
        "balanced",
        "skewed_k1",
        "skewed_k1_r2p5",
        "skewed_k1_r50",
        "skewed_k2",
        "skewed_k2_r2p5",
        "skewed_k2_r50",
    ]
    assert parsed.skews == ["k1", "k1_r2p5", "k1_r50", "k2", "k2_r2p5", "k2_r50"]


def test_a_manifest_source_names_its_factor_and_bounds_its_classes():
    raw = with_key(compose("quick"), "data.source", "manifest")
    raw["skew"]["rare_classes"], raw["datasets"], raw["skews"] = [0], ["balanced", "skewed_k0"], ["k0"]
    parsed = parse_params(raw)
    assert parsed.data.num_classes == 2 and parsed.factors == ["colour"]
    raw["factors"] = ["thin"]
    with pytest.raises(ParamsError, match=r"factors must be \[colour\] \(data.manifest.factor_column\)"):
        parse_params(raw)
    raw["factors"] = ["colour"]
    raw["skew"]["rare_classes"], raw["datasets"], raw["skews"] = [2], ["balanced", "skewed_k2"], ["k2"]
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


@pytest.mark.parametrize(
    "path, value, message",
    [
        ("vae.epochs", True, "vae.epochs = True: Input should be a valid integer"),
        ("evaluation.num_samples", 1e3, "evaluation.num_samples = 1000.0: Input should be a valid integer"),
        ("seed", "3", "seed = '3': Input should be a valid integer"),
        ("vae.lr", True, "vae.lr = True: Input should be a valid number"),
        ("vae.lr", "0.1", "vae.lr = '0.1': Input should be a valid number"),
        ("data.download", 1, "data.download = 1: Input should be a valid boolean"),
    ],
)
def test_types_are_strict(path, value, message):
    with pytest.raises(ParamsError) as info:
        parse_params(with_key(compose("smoke"), path, value))
    assert str(info.value) == f"params: {message}"


def test_a_float_key_takes_an_int():
    parsed = parse_params(with_key(compose("smoke"), "vae.lr", 1))
    assert parsed.vae.lr == 1.0 and isinstance(parsed.vae.lr, float)


def test_small_floats_as_dvc_writes_them_are_read(tmp_path):
    from dvc.utils.serialize import dumps_yaml

    # DVC writes 1e-05, which YAML 1.1 (PyYAML's safe_load) reads as the string '1e-05'
    raw = with_key(compose("smoke"), "ddpm.beta_start", 0.00001)
    (tmp_path / "params.yaml").write_text(dumps_yaml(raw))
    assert "beta_start: 1e-05" in (tmp_path / "params.yaml").read_text()
    assert load_params(tmp_path / "params.yaml").ddpm.beta_start == 0.00001


@pytest.mark.parametrize(
    "path, value, bound",
    [
        ("evaluation.num_samples", 10**12, 1_000_000),
        ("seed", 2**70, 2**32 - 1),
        ("seed", 2**32, 2**32 - 1),
        ("data.train_size", 10**12, 10_000_000),
        ("data.val_size", 10**12, 10_000_000),
        ("vae.batch_size", 10**9, 16_384),
        ("oracle.batch_size", 10**9, 16_384),
        ("train.sample_batch", 10**9, 16_384),
        ("perturb.chunk_size", 10**9, 16_384),
        ("gan.width", 10**9, 4_096),
        ("ddpm.timesteps", 10**9, 100_000),
        ("workers", 10**6, 256),
    ],
)
def test_sizes_a_typo_blows_up_are_bounded(path, value, bound):
    with pytest.raises(ParamsError) as info:
        parse_params(with_key(compose("smoke"), path, value))
    assert str(info.value) == f"params: {path} = {value!r}: Input should be less than or equal to {bound}"
    node = parse_params(with_key(compose("smoke"), path, bound))
    for part in path.split("."):
        node = getattr(node, part)
    assert node == bound


def test_the_largest_seed_is_usable():
    import torch

    from pipeline.io import rng_for

    seed = parse_params(with_key(compose("smoke"), "seed", 2**32 - 1)).seed
    rng_for(seed, "sample", "x").integers(10)
    torch.manual_seed(seed)


def test_cuda_is_refused_where_torch_sees_none(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ParamsError) as info:
        parse_params(with_key(compose("smoke"), "device", "cuda"))
    assert str(info.value) == (
        "params: device = 'cuda': Value error, no CUDA device on this machine "
        "(torch.cuda.is_available() is False); use auto or cpu"
    )
    assert parse_params(with_key(compose("smoke"), "device", "cpu")).device == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert parse_params(with_key(compose("smoke"), "device", "cuda")).device == "cuda"


@pytest.mark.parametrize(
    ("rare_class", "rare_fraction", "label"),
    [(1, 0.0, "k1"), (2, 0.05, "k2_r5"), (1, 0.5, "k1_r50"), (1, 0.01, "k1_r1"), (0, 0.025, "k0_r2p5")],
)
def test_a_skews_name_gives_back_its_class_and_fraction(rare_class, rare_fraction, label):
    assert skew_label(rare_class, rare_fraction) == label
    assert parse_skew(label) == (rare_class, rare_fraction)
    assert skewed(rare_class, rare_fraction) == f"skewed_{label}"


@pytest.mark.parametrize("label", ["k", "k1_r", "k1_r5.0", "1", "k1-r5", "skewed_k1"])
def test_a_name_that_is_no_skew_is_refused(label):
    with pytest.raises(ValueError, match="is not a skew's name"):
        parse_skew(label)

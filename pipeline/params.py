"""The one typed loader for params.yaml.

DVC silently adds a misspelled `-S` key to params.yaml, so every section
forbids unknown keys, and every value is checked here, before any stage does
work. Errors come out as one line per problem, naming the key.

The values themselves, defaults included, live in conf/ only (conf/config.yaml
and a profile, composed by Hydra into params.yaml): here every key is
required, so a key missing from a profile is an error, never a silent default.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import Field, ValidationError, create_model, field_validator, model_validator

from pipeline import registry
from pipeline.errors import ParamsError, RgfError
from pipeline.names import FACTORS, MNIST_CLASSES, datasets, parse_skew, skew_label, skews

# a factor is one of the MNIST factors or, for a manifest source, the name of
# the manifest's factor column; checked against the source in Params
Factor = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")]
ClassIndex = Annotated[int, Field(ge=0)]  # < the number of classes: checked in Params
Fraction = Annotated[float, Field(ge=0.0, le=1.0)]

from pipeline.schema import (  # noqa: E402  (re-exported: the bounds belong to the params)
    MAX_IMAGES,
    MAX_PROCESSES,
    MAX_SAMPLES,
    MAX_SEED,
    BatchSize,
)
from pipeline.schema import Section as _Section  # noqa: E402


class ManifestParams(_Section):
    """A folder of labelled images described by a CSV manifest (the `manifest`
    source: CompCars, or any user's data). Paths in the CSV are relative to
    `root`; a "class" and a "factor" are two categorical columns."""

    root: str  # absolute paths survive `dvc exp run --queue`
    file: str
    path_column: str
    class_column: str
    factor_column: str
    classes: list[str]  # label order; other values are an error
    factor_values: Annotated[tuple[str, str], Field(strict=False)]  # (absent, present): YAML gives a list
    split_column: str | None  # rows "train"/"test"; None: a seeded stratified split
    test_fraction: Annotated[float, Field(gt=0.0, lt=1.0)]
    image_size: Annotated[int, Field(ge=8, le=256)]  # images are resized to size x size RGB

    @field_validator("classes")
    @classmethod
    def _two_or_more(cls, v: list[str]) -> list[str]:
        if len(v) < 2 or len(set(v)) != len(v):
            raise ValueError("must list at least two distinct class names")
        return v

    @field_validator("factor_values")
    @classmethod
    def _distinct_values(cls, v: tuple[str, str]) -> tuple[str, str]:
        if v[0] == v[1]:
            raise ValueError("the absent and present values must differ")
        return v


class DataParams(_Section):
    source: Literal["mnist", "mnist-bundled", "manifest"]
    mnist_dir: str  # the four published IDX .gz files
    download: bool  # fetch missing MNIST files (needs internet)
    # sizes at most MAX_IMAGES (100x MNIST): a typo's 1e12 must not allocate
    train_size: Annotated[int, Field(gt=0, le=MAX_IMAGES)] | None  # None: all
    test_size: Annotated[int, Field(gt=0, le=MAX_IMAGES)] | None
    bundled_test_fraction: Annotated[float, Field(gt=0.0, lt=1.0)]
    val_size: Annotated[int, Field(ge=0, le=MAX_IMAGES)]
    manifest: ManifestParams

    @property
    def num_classes(self) -> int:
        return len(self.manifest.classes) if self.source == "manifest" else MNIST_CLASSES


class SkewParams(_Section):
    rare_classes: list[ClassIndex]
    # one skewed set per rare class and rare fraction r: 0 = extreme rarity (the
    # paper), 0.5 = no skew; above 0.5 the factor would be common, not rare.
    # Several fractions train the rarity curve's points in one experiment, the
    # balanced run (which no r changes) once.
    rare_fractions: list[Annotated[float, Field(ge=0.0, le=0.5)]]

    @field_validator("rare_classes")
    @classmethod
    def _distinct(cls, v: list[int]) -> list[int]:
        if not v or len(set(v)) != len(v):
            raise ValueError("must list at least one class, each once")
        return v

    @field_validator("rare_fractions")
    @classmethod
    def _distinct_and_named(cls, v: list[float]) -> list[float]:
        if not v or len(set(v)) != len(v):
            raise ValueError("must list at least one fraction, each once")
        if odd := [r for r in v if parse_skew(skew_label(0, r))[1] != r]:
            raise ValueError(
                f"{odd}: round each fraction to fewer digits (its datasets are named by its percent, "
                "6 significant digits: skewed_k1_r5 for 0.05)"
            )
        return v


class ColourParams(_Section):
    pass


class ThinParams(_Section):
    amount: Annotated[float, Field(gt=0.0, lt=1.0)]


class ThickParams(_Section):
    amount: Annotated[float, Field(gt=0.0)]


class SwellParams(_Section):
    strength: Annotated[float, Field(ge=1.0)]
    radius: Annotated[float, Field(gt=0.0)]


class FractureParams(_Section):
    num_fractures: Annotated[int, Field(ge=1, le=100)]
    thickness: Annotated[float, Field(gt=0.0)]  # brush width, px
    prune: Annotated[float, Field(ge=0.0)]  # min distance to tips/forks, px
    window: Annotated[float, Field(gt=0.0)]  # radius for the stroke direction, px


class PerturbParams(_Section):
    scale: Annotated[int, Field(ge=1, le=8)]  # Morpho-MNIST works at 4x
    # f=0 of a morphological factor: `plain`, the digit through the f=1 path with
    # no change (as Morpho-MNIST); `raw`, the source digit as it is
    baseline: Literal["plain", "raw"]
    chunk_size: BatchSize  # images per seeded work unit
    colour: ColourParams
    thin: ThinParams
    thick: ThickParams
    swell: SwellParams
    fracture: FractureParams


class OracleParams(_Section):
    """The two oracle CNNs of section 5.2 (paper: SGD, 8 epochs, batch 64,
    lr 0.01, momentum 0.5)."""

    epochs: Annotated[int, Field(ge=1)]
    batch_size: BatchSize
    lr: Annotated[float, Field(gt=0.0)]
    momentum: Annotated[float, Field(ge=0.0, lt=1.0)]
    min_accuracy: Fraction  # below this, evaluation of the factor stops


# a built-in model (pipeline/registry/) or one listed in `imported`; checked in Params
Model = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]*$")]
ImportedName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")]


class TrainParams(_Section):
    """What every model family shares: the loop, checkpoints, threads."""

    checkpoint_every: Annotated[int, Field(ge=1)]  # epochs
    threads: Annotated[int, Field(ge=1, le=MAX_PROCESSES)]  # torch CPU threads per training process
    log_dir: str  # TensorBoard runs (git-ignored)
    channels_last: bool  # train on NHWC tensors: 1.07-1.29x faster per epoch on 2 EPYC cores (docs/development.md)
    sample_batch: BatchSize  # samples generated per forward pass


class EvaluationParams(_Section):
    num_samples: Annotated[int, Field(ge=1, le=MAX_SAMPLES)]  # M, per trained model
    test: Literal["one_sample", "two_proportion", "fisher"]
    alpha: Annotated[float, Field(gt=0.0, lt=1.0)]
    correction: Literal["none", "holm", "fdr_bh"]
    # a class with fewer samples than this in either run is undefined (low_support)
    min_count: Annotated[int, Field(ge=1)]
    # redraws of the controls' samples that measure each test's false- and true-positive rates (0: off)
    control_resamples: Annotated[int, Field(ge=0, le=100_000)]
    # the data-mixer control's share of samples from the skewed set (its known, partial effect)
    mixer_fraction: Annotated[float, Field(gt=0.0, lt=1.0)]
    # drop samples the factor oracle reads with a lower top probability before counting (0: keep all)
    min_factor_confidence: Annotated[float, Field(ge=0.0, le=1.0)]
    # a comparison whose runs exceed this FD or fall below this precision is marked low-quality (null: off)
    max_fd: Annotated[float, Field(gt=0.0)] | None
    min_precision: Annotated[float, Field(ge=0.0, le=1.0)] | None
    # the filtered verdicts count only the samples this keeps (pipeline/evaluation/judge.py, `kept`)
    sample_filter: Literal["none", "confident", "on_manifold", "both"]
    min_label_confidence: Annotated[float, Field(ge=0.0, le=1.0)]  # "confident": label oracle's p >= this
    # a class whose balanced-run P(f=1) differs from the oracles' reading of real data by more is flagged
    max_oracle_bias: Annotated[float, Field(gt=0.0, le=1.0)]
    # the degraded controls' images are warped, blurred and noised until their FD reaches this
    degraded_fd: Annotated[float, Field(gt=0.0)]


class _Study(_Section):
    """Every section but the families' own, which their registry entries
    define (`Family.schema`, e.g. pipeline/registry/vae.py): `Params` below
    adds one required section per family, named after it."""

    profile: str  # one of conf/profile/*.yaml
    seed: Annotated[int, Field(ge=0, le=MAX_SEED)]  # data, splits, oracles
    # one replicate of every generative run (and control draw) per seed: the
    # train / sample / evaluate matrix of dvc.yaml; the report aggregates them
    seeds: list[Annotated[int, Field(ge=0, le=MAX_SEED)]]
    workers: Annotated[int, Field(ge=1, le=MAX_PROCESSES)]  # processes; results do not depend on it
    data: DataParams
    factors: list[Factor]
    models: list[Model]
    # models trained outside rgf whose samples `rgf import-samples` brought in (imports/<name>/)
    imported: list[ImportedName]
    datasets: list[str]  # for dvc.yaml's matrix: balanced, then skewed_<skew> per skew
    skews: list[str]  # k<k>[_r<percent>] per rare class and fraction (names.skews): the evaluate matrix
    # the factors each model's train and sample stages run on (registry.runs):
    # composed by Hydra from models and factors, for dvc.yaml's per-model groups
    runs: dict[str, list[Factor]]
    skew: SkewParams
    perturb: PerturbParams
    device: Literal["auto", "cpu", "cuda"]  # auto: cuda when present
    oracle: OracleParams
    train: TrainParams
    evaluation: EvaluationParams

    @field_validator("imported")
    @classmethod
    def _new_names(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError("must list each name once")
        if clash := [m for m in v if m in registry.MODELS]:
            raise ValueError(f"{clash} are built-in models' names; give an imported model its own name")
        return v

    @field_validator("factors", "models", "seeds")
    @classmethod
    def _distinct(cls, v: list) -> list:
        if not v or len(set(v)) != len(v):
            raise ValueError("must list at least one name, each once")
        return v

    @field_validator("device")
    @classmethod
    def _cuda_is_here(cls, v: str) -> str:
        if v == "cuda":
            import torch  # here only: loading params stays light for every other device

            if not torch.cuda.is_available():
                raise ValueError("no CUDA device on this machine (torch.cuda.is_available() is False); use auto or cpu")
        return v

    @model_validator(mode="after")
    def _factors_and_classes_fit_the_source(self) -> Params:
        if self.data.source == "manifest":
            column = self.data.manifest.factor_column
            if self.factors != [column]:
                raise ValueError(f"factors must be [{column}] (data.manifest.factor_column) for a manifest source")
        elif unknown := [f for f in self.factors if f not in FACTORS]:
            raise ValueError(f"unknown factor(s) {unknown} for MNIST; choose from {list(FACTORS)}")
        n = self.data.num_classes
        if bad := [k for k in self.skew.rare_classes if k >= n]:
            raise ValueError(f"skew.rare_classes {bad} out of range: the source has classes 0..{n - 1}")
        return self

    @model_validator(mode="after")
    def _datasets_follow_the_skew(self) -> Params:
        # dvc.yaml cannot compute names, so Hydra spells the lists out (conf/config.yaml); keep them honest
        skew = f"skew.rare_classes {self.skew.rare_classes} and skew.rare_fractions {self.skew.rare_fractions}"
        fix = "compose params.yaml again (`dvc exp run -S ...`) or edit it to match"
        for key, expected in (
            ("datasets", datasets(self.skew.rare_classes, self.skew.rare_fractions)),
            ("skews", skews(self.skew.rare_classes, self.skew.rare_fractions)),
        ):
            if getattr(self, key) != expected:
                raise ValueError(f"{key} must be {expected} to match {skew}; {fix}")
        return self

    @model_validator(mode="after")
    def _models_are_known(self) -> Params:
        if unknown := [m for m in self.models if m not in registry.MODELS and m not in self.imported]:
            raise ValueError(
                f"models {unknown} are neither built in ({', '.join(registry.MODELS)}) nor imported "
                f"(imported: {self.imported}); bring an outside model's samples with `rgf import-samples`"
            )
        return self

    @model_validator(mode="after")
    def _runs_follow_models(self) -> Params:
        # composed by Hydra (conf/config.yaml); a hand-edited models or factors must not leave it behind
        expected = registry.runs(self.models, self.factors)
        if self.runs != expected:
            wrong = ", ".join(
                f"runs.{m} should be {expected.get(m)}"
                for m in sorted(set(expected) | set(self.runs))
                if self.runs.get(m) != expected.get(m)
            )
            fix = "compose params.yaml again (`dvc exp run -S models=[...]`) or edit runs to match"
            raise ValueError(f"runs must follow models and factors ({wrong}); {fix}")
        return self

    def check_factor(self, factor: str) -> None:
        """A stage's --factor must exist for the configured source: an MNIST
        factor, or the factor column of a manifest."""
        allowed = [self.data.manifest.factor_column] if self.data.source == "manifest" else list(FACTORS)
        if factor not in allowed:
            raise RgfError(f"factor {factor!r} does not exist for source {self.data.source}; choose from {allowed}")

    def check_seed(self, seed: int) -> None:
        """A stage's --seed must be one of `seeds` (its runs belong to the study)."""
        if seed not in self.seeds:
            fix = "pick one of those or add it (`-S 'seeds=[...]'`)"
            raise RgfError(f"seed {seed} is not in seeds {self.seeds}; {fix}")

    @property
    def image_size(self) -> int:
        """The side of the study's square RGB images."""
        return self.data.manifest.image_size if self.data.source == "manifest" else 28

    def class_names(self) -> list[str]:
        """The classes' names, in label order (the digits for MNIST)."""
        if self.data.source == "manifest":
            return list(self.data.manifest.classes)
        return [str(c) for c in range(self.data.num_classes)]

    def factor_values(self, factor: str) -> tuple[str, str]:
        """The names of f=0 and f=1, for tables."""
        if self.data.source == "manifest":
            return self.data.manifest.factor_values
        return ("red", "green") if factor == "colour" else (self.perturb.baseline, factor)


# the study's sections plus each family's own (`vae`, `gan`, `gan_sd`, `ddpm`, a plugin's)
Params = create_model(
    "Params",
    __base__=_Study,
    __doc__="The params of a study: params.yaml, checked.",
    **{name: (schema, ...) for name, schema in registry.SCHEMAS.items()},
)


PROFILES = Path(__file__).resolve().parents[1] / "conf" / "profile"


def _check_profile(params: Params, source: str) -> None:
    """The profile params.yaml names is one conf/ composes (where conf/ is at hand)."""
    known = sorted(p.stem for p in PROFILES.glob("*.yaml"))
    if known and params.profile not in known:
        raise ParamsError(
            f"{source}: profile = {params.profile!r}: no conf/profile/{params.profile}.yaml; one of {known}"
        )


def _describe(err: ValidationError, source: str) -> str:
    lines = []
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"])
        if not key:  # a check across sections
            lines.append(f"{source}: {e['msg'].removeprefix('Value error, ')}")
        elif e["type"] == "extra_forbidden":
            lines.append(f"{source}: unknown key '{key}' (misspelled? remove it or fix its name)")
        elif e["type"] == "missing":
            lines.append(f"{source}: missing key '{key}'")
        else:
            lines.append(f"{source}: {key} = {e.get('input')!r}: {e['msg']}")
    return "\n".join(lines)


def upgrade(raw: dict) -> dict:
    """Params written by an earlier design, in today's keys, for reading a
    stored study or experiment (never the workspace's params.yaml, which Hydra
    composes): one `skew.rare_fraction` became the list `skew.rare_fractions`
    with the derived `skews`; params from before `runs` get theirs."""
    if not isinstance(raw, dict):
        return raw
    raw = dict(raw)
    skew = raw.get("skew")
    if isinstance(skew, dict) and "rare_fraction" in skew and "rare_fractions" not in skew:
        skew = {**skew, "rare_fractions": [skew["rare_fraction"]]}
        del skew["rare_fraction"]
        raw["skew"] = skew
        classes = skew.get("rare_classes")
        if isinstance(classes, list):
            raw.setdefault("skews", skews(classes, skew["rare_fractions"]))
            raw["datasets"] = datasets(classes, skew["rare_fractions"])
    if "runs" not in raw:  # made before params had runs and imported
        raw["runs"] = registry.runs(raw.get("models") or [], raw.get("factors") or [])
        raw.setdefault("imported", [])
    return raw


def parse_params(raw: dict, source: str = "params") -> Params:
    """Validate a params mapping; raise ParamsError naming every bad key."""
    if not isinstance(raw, dict):
        raise ParamsError(f"{source}: expected a mapping of sections, got {type(raw).__name__}")
    try:
        params = Params.model_validate(raw)
    except ValidationError as err:
        raise ParamsError(_describe(err, source)) from None
    _check_profile(params, source)
    return params


class _Yaml12Floats(yaml.SafeLoader):
    """YAML 1.1 reads `1e-05` (no dot), as DVC writes small floats into
    params.yaml, as a string, which strict float keys would refuse."""


def _unique_keys(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    """A mapping, refusing a key written twice (YAML would keep the last one,
    DVC refuses the file: the two must agree)."""
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"key {key!r} written twice (DVC refuses the file; keep one)", key_node.start_mark
            )
        seen.add(key)
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


_Yaml12Floats.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _unique_keys)
_Yaml12Floats.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+$"), list("-+0123456789.")
)


def load_params(path: str | Path = "params.yaml", stored: bool = False) -> Params:
    """Read and validate params.yaml; `stored`: a study's or experiment's
    params kept from before, read in today's keys when an earlier design
    wrote them (`upgrade`)."""
    path = Path(path)
    try:
        raw = yaml.load(path.read_text(), Loader=_Yaml12Floats)  # a SafeLoader
    except FileNotFoundError:
        raise ParamsError(f"{path}: not found (run from the repository root)") from None
    except IsADirectoryError:
        raise ParamsError(f"{path}: a folder; give the params file (params.yaml)") from None
    except UnicodeDecodeError as err:
        raise ParamsError(f"{path}: not UTF-8 text (byte {err.start}); give the params file (params.yaml)") from None
    except OSError as err:
        raise ParamsError(f"{path}: cannot be read ({err.strerror or err})") from None
    except yaml.MarkedYAMLError as err:
        where = f"line {err.problem_mark.line + 1}" if err.problem_mark else "somewhere"
        raise ParamsError(f"{path}: not valid YAML at {where}: {err.problem or err.context}") from None
    except yaml.YAMLError as err:
        raise ParamsError(f"{path}: not valid YAML: {' '.join(str(err).split())}") from None
    return parse_params(upgrade(raw) if stored else raw, str(path))

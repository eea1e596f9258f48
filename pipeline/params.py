"""The one typed loader for params.yaml.

DVC silently adds a misspelled `-S` key to params.yaml, so every section
forbids unknown keys, and every value is checked here, before any stage does
work. Errors come out as one line per problem, naming the key.

The values themselves, defaults included, live in conf/ only (conf/config.yaml
and a profile, composed by Hydra into params.yaml): here every key is
required, so a key missing from a profile is an error, never a silent default.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pipeline.errors import ParamsError, RgfError
from pipeline.names import CONTROLS, FACTORS, GENERATIVE, MNIST_CLASSES, datasets

# a factor is one of the MNIST factors or, for a manifest source, the name of
# the manifest's factor column; checked against the source in Params
Factor = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")]
ClassIndex = Annotated[int, Field(ge=0)]  # < the number of classes: checked in Params
Fraction = Annotated[float, Field(ge=0.0, le=1.0)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


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
    factor_values: tuple[str, str]  # (absent, present): present is the rare value
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
    train_size: Annotated[int, Field(gt=0)] | None  # None: all
    test_size: Annotated[int, Field(gt=0)] | None
    bundled_test_fraction: Annotated[float, Field(gt=0.0, lt=1.0)]
    val_size: Annotated[int, Field(ge=0)]
    manifest: ManifestParams

    @property
    def num_classes(self) -> int:
        return len(self.manifest.classes) if self.source == "manifest" else MNIST_CLASSES


class SkewParams(_Section):
    rare_classes: list[ClassIndex]
    rare_fraction: Fraction  # 0 = extreme rarity (the paper)

    @field_validator("rare_classes")
    @classmethod
    def _distinct(cls, v: list[int]) -> list[int]:
        if not v or len(set(v)) != len(v):
            raise ValueError("must list at least one class, each once")
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
    num_fractures: Annotated[int, Field(ge=1)]
    thickness: Annotated[float, Field(gt=0.0)]  # brush width, px
    prune: Annotated[float, Field(ge=0.0)]  # min distance to tips/forks, px
    window: Annotated[float, Field(gt=0.0)]  # radius for the stroke direction, px


class PerturbParams(_Section):
    scale: Annotated[int, Field(ge=1, le=8)]  # Morpho-MNIST works at 4x
    chunk_size: Annotated[int, Field(ge=1)]  # images per seeded work unit
    colour: ColourParams
    thin: ThinParams
    thick: ThickParams
    swell: SwellParams
    fracture: FractureParams


class OracleParams(_Section):
    """The two oracle CNNs of section 5.2 (paper: SGD, 8 epochs, batch 64,
    lr 0.01, momentum 0.5)."""

    epochs: Annotated[int, Field(ge=1)]
    batch_size: Annotated[int, Field(ge=1)]
    lr: Annotated[float, Field(gt=0.0)]
    momentum: Annotated[float, Field(ge=0.0, lt=1.0)]
    min_accuracy: Fraction  # below this, evaluation of the factor stops


Model = Literal[GENERATIVE + CONTROLS]


class TrainParams(_Section):
    """What every model family shares: the loop, checkpoints, threads."""

    checkpoint_every: Annotated[int, Field(ge=1)]  # epochs
    threads: Annotated[int, Field(ge=1)]  # torch CPU threads per training process
    log_dir: str  # TensorBoard runs (git-ignored)
    sample_batch: Annotated[int, Field(ge=1)]  # samples generated per forward pass


class VaeParams(_Section):
    epochs: Annotated[int, Field(ge=0)]
    batch_size: Annotated[int, Field(ge=1)]
    lr: Annotated[float, Field(gt=0.0)]
    latent_dim: Annotated[int, Field(ge=1)]
    width: Annotated[int, Field(ge=1)]  # channels of the first conv layer


class GanParams(_Section):
    epochs: Annotated[int, Field(ge=0)]
    batch_size: Annotated[int, Field(ge=1)]
    lr: Annotated[float, Field(gt=0.0)]
    beta1: Annotated[float, Field(ge=0.0, lt=1.0)]
    latent_dim: Annotated[int, Field(ge=1)]
    architecture: Literal["mlp", "conv"]  # mlp: Goodfellow et al. 2014
    width: Annotated[int, Field(ge=1)]  # conv: base channels
    # weight of the mode-seeking term (Mao et al. 2019); 0 is the plain GAN
    mode_seeking: Annotated[float, Field(ge=0.0)]


class GanSdParams(_Section):
    """Spectral decoupling (Pezeshki et al. 2021) on top of `gan` (section 6.3)."""

    sd_lambda: Annotated[float, Field(ge=0.0)]
    sd_epochs: Annotated[int, Field(ge=0)]  # SD active for the first sd_epochs epochs


class DdpmParams(_Section):
    epochs: Annotated[int, Field(ge=0)]
    batch_size: Annotated[int, Field(ge=1)]
    lr: Annotated[float, Field(gt=0.0)]
    timesteps: Annotated[int, Field(ge=2)]
    beta_start: Annotated[float, Field(gt=0.0, lt=1.0)]
    beta_end: Annotated[float, Field(gt=0.0, lt=1.0)]
    target: Literal["eps", "x0", "v"]  # eps: Ho et al. 2020
    channels: list[Annotated[int, Field(ge=1)]]  # U-Net widths per level
    ema_decay: Annotated[float, Field(ge=0.0, lt=1.0)]
    sampler: Literal["ddpm", "ddim"]
    sampling_steps: Annotated[int, Field(ge=1)]  # ddim only


class EvaluationParams(_Section):
    num_samples: Annotated[int, Field(ge=1)]  # M, per trained model
    test: Literal["one_sample", "two_proportion", "fisher"]
    alpha: Annotated[float, Field(gt=0.0, lt=1.0)]
    correction: Literal["none", "holm", "fdr_bh"]


class Params(_Section):
    profile: str
    seed: Annotated[int, Field(ge=0)]
    workers: Annotated[int, Field(ge=1)]  # processes; results do not depend on it
    data: DataParams
    factors: list[Factor]
    models: list[Model]
    datasets: list[str]  # for dvc.yaml's matrix
    skew: SkewParams
    perturb: PerturbParams
    device: Literal["auto", "cpu", "cuda"]  # auto: cuda when present
    oracle: OracleParams
    train: TrainParams
    vae: VaeParams
    gan: GanParams
    gan_sd: GanSdParams
    ddpm: DdpmParams
    evaluation: EvaluationParams

    @field_validator("factors", "models")
    @classmethod
    def _distinct(cls, v: list[str]) -> list[str]:
        if not v or len(set(v)) != len(v):
            raise ValueError("must list at least one name, each once")
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
    def _datasets_follow_rare_classes(self) -> Params:
        # dvc.yaml cannot compute names, so the list is spelled out; keep it honest
        expected = datasets(self.skew.rare_classes)
        if self.datasets != expected:
            raise ValueError(f"datasets must be {expected} to match skew.rare_classes {self.skew.rare_classes}")
        return self

    def check_factor(self, factor: str) -> None:
        """A stage's --factor must exist for the configured source: an MNIST
        factor, or the factor column of a manifest."""
        allowed = [self.data.manifest.factor_column] if self.data.source == "manifest" else list(FACTORS)
        if factor not in allowed:
            raise RgfError(f"factor {factor!r} does not exist for source {self.data.source}; choose from {allowed}")

    def class_names(self) -> list[str]:
        """The classes' names, in label order (the digits for MNIST)."""
        if self.data.source == "manifest":
            return list(self.data.manifest.classes)
        return [str(c) for c in range(self.data.num_classes)]

    def factor_values(self, factor: str) -> tuple[str, str]:
        """The names of f=0 and f=1, for tables."""
        if self.data.source == "manifest":
            return self.data.manifest.factor_values
        return ("red", "green") if factor == "colour" else ("plain", factor)


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


def parse_params(raw: dict, source: str = "params") -> Params:
    """Validate a params mapping; raise ParamsError naming every bad key."""
    if not isinstance(raw, dict):
        raise ParamsError(f"{source}: expected a mapping of sections, got {type(raw).__name__}")
    try:
        return Params.model_validate(raw)
    except ValidationError as err:
        raise ParamsError(_describe(err, source)) from None


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate params.yaml."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ParamsError(f"{path}: not found (run from the repository root)") from None
    except yaml.YAMLError as err:
        raise ParamsError(f"{path}: not valid YAML: {err}") from None
    return parse_params(raw, str(path))

"""The one typed loader for params.yaml.

DVC silently adds a misspelled `-S` key to params.yaml, so every section
forbids unknown keys, and every value is checked here, before any stage does
work. Errors come out as one line per problem, naming the key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pipeline.factors import FACTORS

# a factor is one of the MNIST factors or, for a manifest source, the name of
# the manifest's factor column; checked against the source in Params
Factor = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")]
ClassIndex = Annotated[int, Field(ge=0)]  # < the number of classes: checked in Params
MNIST_CLASSES = 10
Fraction = Annotated[float, Field(ge=0.0, le=1.0)]


class ParamsError(ValueError):
    """params.yaml is missing, unreadable or has invalid values."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ManifestParams(_Section):
    """A folder of labelled images described by a CSV manifest (the `manifest`
    source: CompCars, or any user's data). Paths in the CSV are relative to
    `root`; a "class" and a "factor" are two categorical columns."""

    root: str = "data/raw/images"  # absolute paths survive `dvc exp run --queue`
    file: str = "manifest.csv"
    path_column: str = "path"
    class_column: str = "make"
    factor_column: str = "colour"
    classes: list[str] = ["Volkswagen", "Toyota"]  # label order; other values are an error
    factor_values: tuple[str, str] = ("black", "white")  # (absent, present): present is the rare value
    split_column: str | None = None  # rows "train"/"test"; None: a seeded stratified split
    test_fraction: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.15
    image_size: Annotated[int, Field(ge=8, le=256)] = 64  # images are resized to size x size RGB

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
    mnist_dir: str = "data/raw/mnist"  # the four published IDX .gz files
    download: bool = True  # fetch missing MNIST files (needs internet)
    train_size: Annotated[int, Field(gt=0)] | None = None  # None: all
    test_size: Annotated[int, Field(gt=0)] | None = None
    bundled_test_fraction: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.2
    val_size: Annotated[int, Field(ge=0)] = 2000
    manifest: ManifestParams = ManifestParams()

    @property
    def num_classes(self) -> int:
        return len(self.manifest.classes) if self.source == "manifest" else MNIST_CLASSES


class SkewParams(_Section):
    rare_classes: list[ClassIndex] = [1, 2]
    rare_fraction: Fraction = 0.0  # 0 = extreme rarity (the paper)

    @field_validator("rare_classes")
    @classmethod
    def _distinct(cls, v: list[int]) -> list[int]:
        if not v or len(set(v)) != len(v):
            raise ValueError("must list at least one class, each once")
        return v


class ColourParams(_Section):
    pass


class ThinParams(_Section):
    amount: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.7


class ThickParams(_Section):
    amount: Annotated[float, Field(gt=0.0)] = 1.0


class SwellParams(_Section):
    strength: Annotated[float, Field(ge=1.0)] = 3.0
    radius: Annotated[float, Field(gt=0.0)] = 7.0


class FractureParams(_Section):
    num_fractures: Annotated[int, Field(ge=1)] = 3
    thickness: Annotated[float, Field(gt=0.0)] = 1.5  # brush width, px
    prune: Annotated[float, Field(ge=0.0)] = 2.0  # min distance to tips/forks, px
    window: Annotated[float, Field(gt=0.0)] = 2.0  # radius for the stroke direction, px


class PerturbParams(_Section):
    scale: Annotated[int, Field(ge=1, le=8)] = 4  # Morpho-MNIST works at 4x
    chunk_size: Annotated[int, Field(ge=1)] = 256  # images per seeded work unit
    colour: ColourParams = ColourParams()
    thin: ThinParams = ThinParams()
    thick: ThickParams = ThickParams()
    swell: SwellParams = SwellParams()
    fracture: FractureParams = FractureParams()


class OracleParams(_Section):
    """The two oracle CNNs of section 5.2 (paper: SGD, 8 epochs, batch 64,
    lr 0.01, momentum 0.5)."""

    epochs: Annotated[int, Field(ge=1)] = 8
    batch_size: Annotated[int, Field(ge=1)] = 64
    lr: Annotated[float, Field(gt=0.0)] = 0.01
    momentum: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.5
    min_accuracy: Fraction = 0.92  # below this, evaluation of the factor stops


Model = Literal["vae", "gan", "gan_sd", "ddpm", "data-memorizer", "data-learner"]
GENERATIVE = ("vae", "gan", "gan_sd", "ddpm")
CONTROLS = ("data-memorizer", "data-learner")


class TrainParams(_Section):
    """What every model family shares: the loop, checkpoints, threads."""

    checkpoint_every: Annotated[int, Field(ge=1)] = 5  # epochs
    threads: Annotated[int, Field(ge=1)] = 1  # torch CPU threads per training process
    log_dir: str = "logs"  # TensorBoard runs (git-ignored)
    sample_batch: Annotated[int, Field(ge=1)] = 500  # samples generated per forward pass


class VaeParams(_Section):
    epochs: Annotated[int, Field(ge=0)] = 20
    batch_size: Annotated[int, Field(ge=1)] = 128
    lr: Annotated[float, Field(gt=0.0)] = 1e-3
    latent_dim: Annotated[int, Field(ge=1)] = 16
    width: Annotated[int, Field(ge=1)] = 32  # channels of the first conv layer


class GanParams(_Section):
    epochs: Annotated[int, Field(ge=0)] = 200
    batch_size: Annotated[int, Field(ge=1)] = 64
    lr: Annotated[float, Field(gt=0.0)] = 2e-4
    beta1: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.5
    latent_dim: Annotated[int, Field(ge=1)] = 100
    architecture: Literal["mlp", "conv"] = "mlp"  # mlp: Goodfellow et al. 2014
    width: Annotated[int, Field(ge=1)] = 32  # conv: base channels
    # weight of the mode-seeking term (Mao et al. 2019); 0 is the plain GAN
    mode_seeking: Annotated[float, Field(ge=0.0)] = 0.0


class GanSdParams(_Section):
    """Spectral decoupling (Pezeshki et al. 2021) on top of `gan` (section 6.3)."""

    sd_lambda: Annotated[float, Field(ge=0.0)] = 0.8
    sd_epochs: Annotated[int, Field(ge=0)] = 80  # SD active for the first sd_epochs epochs


class DdpmParams(_Section):
    epochs: Annotated[int, Field(ge=0)] = 50
    batch_size: Annotated[int, Field(ge=1)] = 128
    lr: Annotated[float, Field(gt=0.0)] = 2e-4
    timesteps: Annotated[int, Field(ge=2)] = 1000
    beta_start: Annotated[float, Field(gt=0.0, lt=1.0)] = 1e-4
    beta_end: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.02
    target: Literal["eps", "x0", "v"] = "eps"  # eps: Ho et al. 2020
    channels: list[Annotated[int, Field(ge=1)]] = [32, 64, 128]  # U-Net widths per level
    ema_decay: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.999
    sampler: Literal["ddpm", "ddim"] = "ddpm"
    sampling_steps: Annotated[int, Field(ge=1)] = 1000  # ddim only


class EvaluationParams(_Section):
    num_samples: Annotated[int, Field(ge=1)] = 1000  # M, per trained model
    test: Literal["one_sample", "two_proportion", "fisher"] = "one_sample"
    alpha: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.05
    correction: Literal["none", "holm", "fdr_bh"] = "none"


class Params(_Section):
    profile: str
    seed: Annotated[int, Field(ge=0)]
    workers: Annotated[int, Field(ge=1)] = 2  # processes; results do not depend on it
    data: DataParams
    factors: list[Factor] = list(FACTORS)
    models: list[Model] = list(GENERATIVE + CONTROLS)
    datasets: list[str] = ["balanced", "skewed_k1", "skewed_k2"]  # for dvc.yaml's matrix
    skew: SkewParams = SkewParams()
    perturb: PerturbParams = PerturbParams()
    device: Literal["auto", "cpu", "cuda"] = "auto"  # auto: cuda when present
    oracle: OracleParams = OracleParams()
    train: TrainParams = TrainParams()
    vae: VaeParams = VaeParams()
    gan: GanParams = GanParams()
    gan_sd: GanSdParams = GanSdParams()
    ddpm: DdpmParams = DdpmParams()
    evaluation: EvaluationParams = EvaluationParams()

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
        expected = ["balanced"] + [f"skewed_k{k}" for k in self.skew.rare_classes]
        if self.datasets != expected:
            raise ValueError(f"datasets must be {expected} to match skew.rare_classes {self.skew.rare_classes}")
        return self


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

"""Every model the study can judge, one entry each, and everything derived
from them: the params' model list, display names, which params and code
each model's stages depend on (dvc.yaml, `rgf stages`), how a control's
calibration counts, which runs have a discriminator probe.

Three kinds of entry (method, step 3 and its controls):

- `Family`: a generative model rgf trains, never on f or y: its code
  (a module with a builder returning a `pipeline.generative.base.Method`),
  its params sections and display name.
- `Control`: a "model" that draws its samples from the data, so its answer
  is known (pipeline/generative/controls.py): where it draws from, and what
  a flagged class is in its calibration.
- `Imported`: samples of a model trained outside rgf on the exported
  balanced and skewed sets (`rgf import-samples`), judged like the others.

Each entry lives in its own module of this package (`vae.py`, `gan_sd.py`,
`controls.py`, ...), found at run time: a model's stages depend on its own
entry's file, so adding or editing one entry re-runs no other model's
stages. Adding a family is its code plus one entry module here, which
holds its params section's schema too (docs/extending.md); its train and
sample stages follow from the entry (`rgf stages --write`). No other module
branches on a model's name; they ask its entry.

Nothing heavy is imported here, so the params loader can use it.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, replace
from typing import ClassVar, Literal

from pipeline import names


@dataclass(frozen=True)
class Family:
    """A generative model family rgf trains (method, step 3)."""

    name: str  # the name in params (`models:`), paths, metrics and stage names
    display: str  # the paper's name, in tables
    module: str  # the module defining `builder`
    builder: str  # builder(params, image_size, device) -> Method, its networks on device
    # params sections that shape its weights; the first holds epochs, batch_size and lr
    sections: tuple[str, ...]
    # the schema of its own params section, named after it (a pydantic model
    # on pipeline.schema.Section); None when it has none of its own
    schema: type | None = None
    # keys of the first section that change only how a trained model samples (no retraining)
    sampling: tuple[str, ...] = ()
    probe: bool = False  # has a discriminator, probed on held-out rare-class images (section 6.2)
    rank: int = 50  # its place in tables: the paper's families 10-40, controls 100+
    source: str = ""  # the registry module that holds the entry (set when found)
    kind: ClassVar[str] = "family"

    @property
    def section(self) -> str:
        return self.sections[0]

    @property
    def modules(self) -> tuple[str, ...]:
        """The modules its train and sample stages load by name beside the stage's own: its code and its entry."""
        return (self.module, self.source)


@dataclass(frozen=True)
class Control:
    """A model that draws its samples from data with a known answer
    (pipeline/generative/controls.py)."""

    name: str
    display: str
    # where its samples come from when given a dataset: that dataset, the
    # balanced one whatever it was given, or a share of each (evaluation.mixer_fraction)
    draws: Literal["given", "balanced", "mixed"]
    # what counts as a hit over its redraws: any significant verdict (every one
    # is a false positive), or a memorized class (a true positive)
    hit: Literal["significant", "memorized"]
    measure: str  # what its rate of hits measures, in the calibration table
    rank: int = 100
    source: str = ""
    # its images warped, blurred and noised by the evaluate stage until their FD
    # reaches evaluation.degraded_fd: its verdicts then measure misreading
    degraded: bool = False
    kind: ClassVar[str] = "control"
    module: ClassVar[str] = "pipeline.generative.controls"

    def flags(self, verdict: str) -> bool:
        """Whether a defined class's verdict counts as a hit: `significant`,
        any verdict but learned; `memorized`, memorized only."""
        return verdict != "learned" if self.hit == "significant" else verdict == "memorized"

    @property
    def modules(self) -> tuple[str, ...]:
        """What its sample stage loads by name: the controls' code and its entry."""
        return (self.module, self.source)


@dataclass(frozen=True)
class Imported:
    """Samples of a model trained outside rgf, brought in by `rgf import-samples`."""

    name: str
    display: str = ""
    rank: int = 200
    source: str = ""
    kind: ClassVar[str] = "imported"
    modules: ClassVar[tuple[str, ...]] = ()


Entry = Family | Control | Imported


def _discover() -> tuple[Entry, ...]:
    """The ENTRIES of every module of this package, in rank order (families, then controls)."""
    found = []
    for info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{info.name}")
        found += [(e.rank, e.name, replace(e, source=module.__name__)) for e in module.ENTRIES]
    names = [name for _, name, _ in found]
    if len(set(names)) != len(names):
        raise ValueError(f"pipeline/registry: a model name is registered twice: {sorted(names)}")
    return tuple(e for _, _, e in sorted(found, key=lambda t: t[:2]))


ENTRIES: tuple[Entry, ...] = _discover()
BY_NAME: dict[str, Entry] = {e.name: e for e in ENTRIES}
# params section -> its schema: every family's own section (params.Params adds them)
SCHEMAS: dict[str, type] = {e.name: e.schema for e in ENTRIES if isinstance(e, Family) and e.schema is not None}
if orphans := sorted({s for e in ENTRIES if isinstance(e, Family) for s in e.sections} - set(SCHEMAS)):
    raise ValueError(f"pipeline/registry: no entry defines the params sections {orphans} that a family trains under")
MODELS: tuple[str, ...] = tuple(BY_NAME)
FAMILIES: tuple[str, ...] = tuple(e.name for e in ENTRIES if isinstance(e, Family))
CONTROLS: tuple[str, ...] = tuple(e.name for e in ENTRIES if isinstance(e, Control))
# the control whose every flagged class is a false positive: the null the others are read against
LEARNER: str = next(e.name for e in ENTRIES if isinstance(e, Control) and e.hit == "significant")


SOURCES: tuple[str, ...] = tuple(sorted({e.source for e in ENTRIES}))  # every entry module


def entry(name: str) -> Entry:
    """The entry of model `name`; an imported model's when the name is not built in."""
    return BY_NAME.get(name) or Imported(name, name)


def family(name: str) -> Family:
    found = BY_NAME.get(name)
    if not isinstance(found, Family):
        raise ValueError(f"{name!r} is not a trained model family; choose one of {', '.join(FAMILIES)}")
    return found


def control(name: str) -> Control:
    found = BY_NAME.get(name)
    if not isinstance(found, Control):
        raise ValueError(f"{name!r} is not a control; choose one of {', '.join(CONTROLS)}")
    return found


def display(name: str) -> str:
    """The paper's name of a model (GAN-SD for gan_sd); an unknown name unchanged."""
    found = BY_NAME.get(name)
    return found.display if found else name


def is_control(name: str) -> bool:
    return isinstance(BY_NAME.get(name), Control)


def is_family(name: str) -> bool:
    return isinstance(BY_NAME.get(name), Family)


def has_probe(name: str) -> bool:
    found = BY_NAME.get(name)
    return isinstance(found, Family) and found.probe


def runs(models: list[str], factors: list[str]) -> dict[str, list[str]]:
    """The factors each model's train and sample stages run on: every
    factor for a model in `models`, none for the others. dvc.yaml's
    per-model stage groups iterate over these lists (`runs.<model>`), so a
    model left out of `models` has no stages."""
    return {name: (list(factors) if name in models else []) for name in MODELS}


RESOLVER = "rgf_runs"
# the lists dvc.yaml's matrices need from `skew` (pipeline.names.datasets, skews)
SKEW_RESOLVERS = {"rgf_datasets": names.datasets, "rgf_skews": names.skews}


def register_resolver() -> None:
    """Let Hydra compute the derived keys when it composes params.yaml:
    `runs` from `models` and `factors` (conf/config.yaml:
    `runs: ${rgf_runs:${models},${factors}}`), `datasets` and `skews` from
    `skew.rare_classes` and `skew.rare_fractions`. DVC loads it through
    hydra_plugins/ at the repository's root; the tests and `rgf` call it
    before they compose."""
    from omegaconf import OmegaConf

    def resolve(models, factors):
        return OmegaConf.create(runs(list(models), list(factors)))

    OmegaConf.register_new_resolver(RESOLVER, resolve, replace=True)
    for name, derive in SKEW_RESOLVERS.items():
        OmegaConf.register_new_resolver(
            name,
            lambda classes, fractions, derive=derive: OmegaConf.create(derive(list(classes), list(fractions))),
            replace=True,
        )

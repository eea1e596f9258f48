"""dvc.yaml's per-model stage groups, derived from the registry.

Every model that rgf trains or draws (pipeline/registry.py: the families
and the controls) has its own `train-<model>` and `sample-<model>` group,
each depending on its own code and params only: the stage's code and the
model's module, found by following their imports (pipeline/imports.py),
and the model's params sections. Editing `gan.lr` or gan.py re-runs the
GAN's and GAN-SD's stages and no other model's. A group iterates over
`runs.<model>` (the factors it runs on: all of `factors` when the model is
in `models`, none otherwise; composed by Hydra), `seeds` and, for
sampling, `datasets`.

The groups sit between two marker lines in dvc.yaml; `rgf stages --write`
rewrites them after a registry change, `rgf stages` shows what differs, and
a test fails when dvc.yaml drifts from them.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from pipeline import registry
from pipeline.errors import RgfError
from pipeline.imports import minimal_deps
from pipeline.params import Params

BEGIN = "  # >>> per-model stage groups, written by `rgf stages --write` from pipeline/registry.py; do not edit"
END = "  # <<< per-model stage groups"
TRAIN, SAMPLE = "pipeline.stages.train", "pipeline.stages.sample"
CURVE_PLOT = {"x": "step", "x_label": "epoch"}  # DVCLive's step is the epoch


def _section_params(family: registry.Family) -> list[str]:
    """The params a family's weights depend on: its sections, less the keys
    that change only how it samples (named one by one where some are left out)."""
    out = []
    for name in family.sections:
        left_out = family.sampling if name == family.section else ()
        if left_out:
            fields = Params.model_fields[name].annotation.model_fields
            out += [f"{name}.{key}" for key in fields if key not in left_out]
        else:
            out.append(name)
    return out


def _train(root: Path, entry: registry.Family | registry.Control) -> tuple[list[str], dict]:
    name = entry.name
    run = f"{name}-${{item.factor}}-s${{item.seed}}"
    family = isinstance(entry, registry.Family)
    cmd = [
        f"python -m {TRAIN} --model {name} --factor ${{item.factor}} --seed ${{item.seed}}",
        f"--data data/${{item.factor}} --out models/{run}",
        f"--history plots/train/{run} --resume models/resume" if family else "--resume models/resume",
    ]
    if family:
        params = [
            "device",
            "train.checkpoint_every",
            "train.channels_last",
            *_section_params(entry),
            "datasets",
            "skew.rare_classes",
        ]
    else:  # a control records the datasets it is given
        params = ["datasets", "skew.rare_classes"]
    # a family's train stage loads its code and entry; a control's only its entry
    extra = entry.modules if isinstance(entry, registry.Family) else (entry.source,)
    stage = {
        "matrix": {"factor": f"${{runs.{name}}}", "seed": "${seeds}"},
        "cmd": " ".join(cmd),
        "deps": ["data/${item.factor}", *minimal_deps(root, TRAIN, *extra)],
        "params": params,
        "outs": [f"models/{run}"],
    }
    if family:  # DVCLive's curves of every run, drawn by `dvc plots show` (cached: they travel with the weights)
        stage["plots"] = [{f"plots/train/{run}": CURVE_PLOT}]
    return cmd, stage


def _sample(root: Path, entry: registry.Family | registry.Control) -> tuple[list[str], dict]:
    name = entry.name
    run = f"{name}-${{item.factor}}-${{item.dataset}}-s${{item.seed}}"
    cmd = [
        f"python -m {SAMPLE} --model {name} --factor ${{item.factor}} --dataset ${{item.dataset}}",
        "--seed ${item.seed} --data data/${item.factor}",
        f"--model-dir models/{name}-${{item.factor}}-s${{item.seed}}/${{item.dataset}}",
        f"--out data/samples/{run}",
        f"--grid plots/samples/{run}.png",
    ]
    if isinstance(entry, registry.Family):
        sampling = [f"{entry.section}.{key}" for key in entry.sampling]
        params = ["device", "train.sample_batch", *sampling, "evaluation.num_samples"]
    else:
        params = ["evaluation.num_samples", "evaluation.mixer_fraction"]
    stage = {
        "matrix": {"factor": f"${{runs.{name}}}", "dataset": "${datasets}", "seed": "${seeds}"},
        "cmd": " ".join(cmd),
        "deps": [
            f"models/{name}-${{item.factor}}-s${{item.seed}}",
            "data/${item.factor}",
            *minimal_deps(root, SAMPLE, *entry.modules),
        ],
        "params": params,
        "outs": [f"data/samples/{run}"],
        "plots": [f"plots/samples/{run}.png"],
    }
    return cmd, stage


def _sampled() -> list[registry.Family | registry.Control]:
    return [e for e in registry.ENTRIES if isinstance(e, registry.Family | registry.Control)]


def groups(root: Path) -> dict[str, dict]:
    """Stage name -> its dvc.yaml definition, for every trained or drawn model."""
    out = {}
    for entry in _sampled():
        out[f"train-{entry.name}"] = _train(root, entry)[1]
        out[f"sample-{entry.name}"] = _sample(root, entry)[1]
    return out


def _text(name: str, cmd: list[str], stage: dict) -> str:
    """One group as dvc.yaml text, its command folded over lines (`>-`)."""
    lines = [f"  {name}:", "    matrix:"]
    lines += [f"      {axis}: {values}" for axis, values in stage["matrix"].items()]
    lines += ["    cmd: >-", *(f"      {part}" for part in cmd)]
    for key in ("deps", "params", "outs", "plots"):
        if key in stage:
            lines += [f"    {key}:", *(_item(item) for item in stage[key])]
    return "\n".join(lines)


def _item(item: str | dict) -> str:
    if isinstance(item, str):
        return f"      - {item}"
    ((path, props),) = item.items()  # a plot with its properties
    return "\n".join([f"      - {path}:", *(f"          {k}: {v}" for k, v in props.items())])


def block(root: Path) -> str:
    """The text between (and including) the marker lines."""
    parts = [BEGIN]
    for entry in _sampled():
        for kind, make in (("train", _train), ("sample", _sample)):
            cmd, stage = make(root, entry)
            parts.append(_text(f"{kind}-{entry.name}", cmd, stage))
    return "\n\n".join(parts) + "\n" + END


def _split(text: str, path: Path) -> tuple[str, str]:
    if text.count(BEGIN) != 1 or text.count(END) != 1 or text.index(BEGIN) > text.index(END):
        raise RgfError(f"{path}: expected one pair of the lines {BEGIN.strip()!r} and {END.strip()!r}; restore them")
    before, rest = text.split(BEGIN)
    return before, rest.split(END)[1]


def drift(root: Path) -> list[str]:
    """The per-model groups where dvc.yaml differs from the registry ([] when in step)."""
    path = root / "dvc.yaml"
    stages = yaml.safe_load(path.read_text())["stages"]
    expected = groups(root)
    found = {name: s for name, s in stages.items() if name.startswith(("train-", "sample-"))}
    problems = [f"{name}: missing" for name in expected if name not in found]
    problems += [f"{name}: not a registered model's group" for name in found if name not in expected]
    problems += [f"{name}: differs" for name in expected if name in found and found[name] != expected[name]]
    return problems


def write(root: Path) -> bool:
    """Rewrite the per-model groups of root/dvc.yaml; True when anything changed."""
    path = root / "dvc.yaml"
    text = path.read_text()
    before, after = _split(text, path)
    new = before + block(root) + after
    if new == text:
        return False
    path.write_text(new)
    return True

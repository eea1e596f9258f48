"""DVC experiments as data: the params and metrics files each experiment
committed, read from its git ref (`dvc exp run` commits params.yaml and the
git-tracked metrics/ into refs/exps/...), so a sweep queued with
`dvc exp run --queue -S ...` and run with `dvc queue start` can be collected
without applying any experiment to the workspace.

Only experiments of one design are collected: their params may differ from
the reference params (the workspace's params.yaml) in the keys a sweep
varies (`VARIED`) and nowhere else, so a stray experiment with other epochs
cannot mix into a curve. When two experiments produced the same run (rare
fraction, model, factor, k, seed), the newer one counts.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import yaml

from pipeline import names, registry
from pipeline.errors import MetricsError, RgfError
from pipeline.evaluation.report import in_study
from pipeline.files import MetricsFile
from pipeline.params import Params, load_params, parse_params, upgrade
from pipeline.paths import STUDY, key_of

# what a sweep may vary between its experiments
# (runs, datasets and skews are derived from them)
VARIED = ("skew.rare_fractions", "factors", "models", "imported", "seeds", "workers", "runs", "datasets", "skews")


@dataclass(frozen=True)
class Experiment:
    name: str
    rev: str  # the experiment's commit
    created: int  # its commit time, seconds since the epoch
    params: Params
    metrics: list[dict]  # its metrics/<model>/<factor>/k<k>-s<seed>.json, as plain dicts


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RgfError(f"{repo}: git {' '.join(args)} failed: {done.stderr.strip()}; is it the study's git repository?")
    return done.stdout


def _listing(repo: Path) -> list[tuple[str, str]]:
    """(name, commit) of every experiment of every baseline commit."""
    from dvc.exceptions import NotDvcRepoError
    from dvc.repo import Repo
    from dvc.scm import SCMError

    try:
        with Repo(str(repo)) as dvc_repo:
            listing = dvc_repo.experiments.ls(all_commits=True)
    except NotDvcRepoError:
        raise RgfError(f"{repo}: not a DVC repository; give the study's folder with --repo") from None
    except SCMError:
        raise RgfError(f"{repo}: not a git repository (or one without commits); give the study's folder") from None
    return [(name, rev) for exps in listing.values() for name, rev in exps if rev]


def read_params(repo: Path, name: str, rev: str) -> Params:
    """One experiment's params, from its commit."""
    try:
        raw = yaml.safe_load(_git(repo, "show", f"{rev}:params.yaml"))
        return parse_params(upgrade(raw), f"experiment {name} ({rev[:7]}) params.yaml")
    except RgfError as err:
        raise RgfError(f"{err}; remove the experiment with `dvc exp remove {name}`") from None


def read_experiment(repo: Path, name: str, rev: str, params: Params | None = None) -> Experiment:
    """One experiment's params (read unless given) and metrics files, from its commit."""
    params = params or read_params(repo, name, rev)
    metrics = []
    for path in _git(repo, "ls-tree", "-r", "--name-only", rev, "--", "metrics").splitlines():
        p = PurePosixPath(path)
        if len(p.parts) != 4 or p.parts[1] == "oracles" or not (p.name.startswith("k") and p.suffix == ".json"):
            continue
        try:
            m = MetricsFile.model_validate(json.loads(_git(repo, "show", f"{rev}:{path}"))).dump()
        except ValueError as err:
            raise MetricsError(f"experiment {name} ({rev[:7]}): {path} is not a valid metrics file ({err})") from None
        metrics.append(m)
    created = int(_git(repo, "log", "-1", "--format=%ct", rev).strip() or 0)
    return Experiment(name, rev, created, params, metrics)


def design(params: Params) -> dict:
    """The params with the keys a sweep varies left out."""
    raw = params.model_dump(mode="json")
    for dotted in VARIED:
        *parents, key = dotted.split(".")
        node = raw
        for part in parents:
            node = node[part]
        node.pop(key, None)
    return raw


def _differences(a: dict, b: dict, prefix: str = "") -> list[str]:
    keys = sorted(set(a) | set(b))
    out = []
    for k in keys:
        if isinstance(a.get(k), dict) and isinstance(b.get(k), dict):
            out += _differences(a[k], b[k], f"{prefix}{k}.")
        elif a.get(k) != b.get(k):
            out.append(f"{prefix}{k}")
    return out


def run_key(m: dict) -> tuple:
    """What makes a run one run across experiments: (r, model, factor, k, seed)."""
    return (m["rare_fraction"], m["model"], m["factor"], m["rare_class"], m["seed"])


def merged(kept: list[dict], collected: list[dict]) -> list[dict]:
    """`kept` with `collected` added: a run in both (same r, model, factor, k
    and seed) is the collected one."""
    runs = {run_key(m): m for m in kept}
    runs.update({run_key(m): m for m in collected})
    return [runs[key] for key in sorted(runs)]


def collect(repo: Path, reference: Params) -> tuple[list[dict], int, list[str]]:
    """The metrics files of every experiment whose design is `reference`'s
    (each experiment's own study only: metrics/ also carries files of earlier
    configurations), the newer experiment winning a run two produced, and a
    note per experiment left out (another design); also how many experiments
    were used."""
    runs, used, notes = collect_runs(repo, reference)
    return [m for m, _ in runs], used, notes


def collect_runs(repo: Path, reference: Params) -> tuple[list[tuple[dict, str]], int, list[str]]:
    """`collect`, each metrics file with the commit of the experiment it came from."""
    wanted = design(reference)
    chosen: dict[tuple, tuple[int, dict, str]] = {}
    left_out: dict[str, list[str]] = {}
    used = 0
    for name, rev in _listing(repo):
        params = read_params(repo, name, rev)  # the metrics only of experiments that are kept
        other = _differences(design(params), wanted)
        if other:
            left_out.setdefault(", ".join(other[:3]), []).append(name)
            continue
        exp = read_experiment(repo, name, rev, params)
        used += 1
        for m in in_study(exp.metrics, exp.params)[0]:
            key = run_key(m)
            if key not in chosen or chosen[key][0] < exp.created:
                chosen[key] = (exp.created, m, exp.rev)
    return [(m, rev) for _, m, rev in chosen.values()], used, left_out_notes(left_out)


def left_out_notes(left_out: dict[str, list[str]]) -> list[str]:
    """One note per way experiments differ from the study's design (the
    differing params -> the experiments' names): a study run beside others
    names each group once, not each experiment."""
    notes = []
    for differ, experiments in sorted(left_out.items()):
        if len(experiments) == 1:
            notes.append(f"{experiments[0]}: left out, its params differ in {differ}")
        else:
            listed = ", ".join(sorted(experiments))
            notes.append(f"{len(experiments)} experiments left out, their params differ in {differ}: {listed}")
    return notes


def reads_path(m: dict) -> str:
    """Where the evaluate stage wrote the reads of a run's comparison (`dvc.yaml`), relative to the repo."""
    return f"reads/{key_of(m)}.npz"


def read_reads_file(repo: Path, rev: str, m: dict) -> bytes | None:
    """The reads file of a run's comparison as its experiment committed it;
    None when the commit has none (an experiment from before reads existed)."""
    done = subprocess.run(["git", "show", f"{rev}:{reads_path(m)}"], cwd=repo, capture_output=True, check=False)
    return done.stdout if done.returncode == 0 else None


def check_design(out: Path, reference: Params) -> None:
    """Refuse to write a study into a folder that holds one of another design
    (its params.yaml says which), naming how they differ."""
    held = Path(out) / "params.yaml"
    if not held.is_file():
        return
    try:
        params = load_params(held, stored=True)
    except RgfError as err:  # written under other keys: an earlier design
        raise MetricsError(
            f"{out}: holds a study of an earlier design (its params.yaml: {str(err).splitlines()[0]}); "
            "refusing to mix them: give another --out"
        ) from None
    other = _differences(design(params), design(reference))
    if other:
        raise MetricsError(
            f"{out}: holds a study of another design (its params.yaml differs in {', '.join(other[:3])}); "
            "refusing to mix them: give another --out, or the params or profile that made it"
        )


def in_design(m: dict, reference: Params) -> bool:
    """A run of the study `reference` describes, whatever models, factors and
    seeds its slice ran: a rare fraction, a rare class and the source of the study."""
    return (
        m["rare_fraction"] in reference.skew.rare_fractions
        and m["rare_class"] in reference.skew.rare_classes
        and m.get("source", reference.data.source) == reference.data.source
    )


def spanning(reference: Params, metrics: list[dict]) -> Params:
    """`reference` with the models, factors, seeds and rare fractions its
    slices ran (the keys a slice varies): the params of the study put
    together from them."""
    raw = reference.model_dump(mode="json")
    ran = {key: {m[key] for m in metrics} for key in ("model", "factor", "seed", "rare_fraction")}
    raw["models"] = [name for name in registry.MODELS if name in ran["model"]]
    others = sorted(ran["factor"] - set(reference.factors))
    raw["factors"] = [f for f in reference.factors if f in ran["factor"]] + others
    raw["seeds"] = sorted(ran["seed"])
    raw["runs"] = registry.runs(raw["models"], raw["factors"])
    fractions = sorted(ran["rare_fraction"])
    raw["skew"]["rare_fractions"] = fractions
    raw["datasets"] = names.datasets(reference.skew.rare_classes, fractions)
    raw["skews"] = names.skews(reference.skew.rare_classes, fractions)
    return parse_params(raw, "the assembled study's params")


def _gather_reads(repo: Path, runs: list[tuple[dict, str]], out: Path, tmp: Path) -> None:
    """tmp/reads: the reads `out` holds, with those of the runs collected now
    (from their experiments' commits) in their place."""
    if (out / "reads").is_dir():
        shutil.copytree(out / "reads", tmp / "reads")
    for m, rev in runs:
        content, path = read_reads_file(repo, rev, m), tmp / reads_path(m)
        path.unlink(missing_ok=True)  # an earlier run's reads never stand beside a new run's metrics
        if content is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)


def assemble(repo: Path, reference: Params, out: Path) -> tuple[int, int, list[str]]:
    """A study run in slices (one experiment per factor, say), put together in
    `out`: the metrics files of every experiment of `reference`'s design that
    belong to its study, merged into the ones `out` already holds (slices run
    on other machines or in other sessions; a freshly collected run replaces
    its old file), and the study's report from them:

        out/params.yaml                                   the study's params
        out/metrics/<model>/<factor>/<skew>-s<seed>.json  one per run, committed with git
        out/reads/<model>/<factor>/<skew>-s<seed>.npz     how the oracles read its samples (when committed)
        out/tables/README.md, out/tables/*.csv            the report (Tables 1, 2 and 4, ...)
        out/summary.json                                  its headline numbers

    The study's params are `reference`'s with the models, factors and seeds
    the slices ran (a survey run one seed at a time has every seed's runs).
    Returns (runs collected now, runs in out, notes)."""
    from pipeline.evaluation.report import study_report, write_report
    from pipeline.files import load_metrics
    from pipeline.io import atomic_entries, check_outputs, write_json

    check_outputs({out: STUDY})
    check_design(out, reference)
    runs, _, notes = collect_runs(repo, reference)
    runs = [(m, rev) for m, rev in runs if in_design(m, reference)]
    collected = [m for m, _ in runs]
    kept = load_metrics(out / "metrics") if (out / "metrics").is_dir() else []
    metrics = sorted(merged(kept, collected), key=lambda m: (m["model"], m["factor"], m["rare_class"], m["seed"]))
    if not metrics:
        raise MetricsError(
            f"no experiment of this study's design holds metrics, and {out}/metrics is empty: run a slice first, "
            "e.g. `dvc exp run -S profile=survey -S 'factors=[colour]'`"
        )
    study = spanning(reference, metrics)
    report = study_report(metrics, study, str(out / "metrics"))
    with atomic_entries(out, STUDY) as tmp:
        (tmp / "params.yaml").write_text(yaml.safe_dump(study.model_dump(mode="json"), sort_keys=False))
        for m in metrics:
            write_json(tmp / "metrics" / f"{key_of(m)}.json", m)
        _gather_reads(repo, runs, out, tmp)
        write_report(tmp / "tables", report.readme, report.tables)
        write_json(tmp / "summary.json", report.summary)
    return len(collected), len(metrics), notes

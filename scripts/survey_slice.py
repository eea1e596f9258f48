"""Run one slice of a study as a DVC experiment, time it, and collect it.

    python scripts/survey_slice.py --factor thin --seed 1 --out reports/survey

A survey slice is one factor at one seed, every model of the profile, rare
classes 1 and 2 (`dvc exp run -n survey-<factor>-s<seed> -S profile=survey
-S 'factors=[<factor>]' -S 'seeds=[<seed>]'`), put together with every slice
so far by `rgf assemble --repo <repo> --profile <profile> --out <out>`.

A slice of the rarity curve is one factor at one seed with the curve's rare
fractions (`-S 'skew.rare_fractions=[...]'`: one balanced run and one skewed
run per fraction, trained in one stage per model), collected by
`rgf rarity --repo <repo> --params params.yaml --out <out>` (the curve folder
keeps every run, so slices run in other sessions stay):

    python scripts/survey_slice.py --factor thin --seed 1 --rare-classes 1 \
        --rare-fractions 0,0.01,0.02,0.05,0.1,0.2,0.5 --out reports/rarity

The script streams DVC's output with a time stamp on every line (into
logs/slices/<experiment>.log, which git ignores), collects, and appends one
row to <out>/slices.csv: the slice, the commit it ran on, when it started,
its wall minutes, the minutes of each stage group (train-ddpm, evaluate,
...) and the one that dominated, and the machine (CPU model and cores). It
then writes <out>/slices.md: every slice's wall time, the totals per seed
and in all, and the stages the time went to (`--tabulate` writes it again
from slices.csv alone). A slice that fails records nothing and leaves <out>
as it was.

Running a slice again under its name replaces its experiment (the run cache
gives back whatever it trained). A slice run by hand with time-stamped output (`<epoch seconds> <line>` per
line) is recorded without re-running it:

    python scripts/survey_slice.py --factor colour --seed 0 --out reports/survey \
        --from-log slice.log --commit 3205bb0

Run it from the clone that holds the experiments (`--repo`, default the
current folder); `--out` is written in that clone.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import os
import platform
import re
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path

from pipeline.errors import RgfError
from pipeline.names import percent
from pipeline.stages import exit_with

# a line of `dvc exp run` that begins a stage's work or passes over a stage
STAGE = re.compile(
    r"^(?:Running stage '(?P<run>[^']+)'"
    r"|(?:Stage )?'(?P<skip>[^']+)' didn't change"
    r"|Stage '(?P<cache>[^']+)' is cached - skipping run)"
)
COLUMNS = (
    "profile",
    "factor",
    "seed",
    "rare_fraction",
    "models",
    "experiment",
    "commit",
    "started_utc",
    "wall_minutes",
    "dominant_stage",
    "dominant_minutes",
    "stage_minutes",
    "cpu",
    "cores",
)


def stage_minutes(lines: Iterable[tuple[float, str]]) -> tuple[dict[str, float], float]:
    """Minutes per stage group (the name before '@': train-ddpm, evaluate, ...)
    from (time stamp, line) pairs of DVC's output, and the whole span's
    minutes. A stage runs from its "Running stage" line to the next line
    that begins or passes over a stage (unchanged, or restored from the run
    cache), or to the last line; a stage passed over counts no time."""
    stamped = list(lines)
    if not stamped:
        return {}, 0.0
    groups: dict[str, float] = {}
    current: tuple[str, float] | None = None
    for stamp, text in stamped:
        found = STAGE.match(text)
        if found is None:
            continue
        if current is not None:
            groups[current[0]] = groups.get(current[0], 0.0) + (stamp - current[1]) / 60
        current = (found["run"].split("@")[0], stamp) if found["run"] else None
    end = stamped[-1][0]
    if current is not None:
        groups[current[0]] = groups.get(current[0], 0.0) + (end - current[1]) / 60
    return {k: round(v, 2) for k, v in groups.items()}, round((end - stamped[0][0]) / 60, 2)


def read_log(path: Path) -> list[tuple[float, str]]:
    """A time-stamped log: `<epoch seconds> <line>` per line."""
    out = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        stamp, _, text = line.partition(" ")
        try:
            out.append((float(stamp), text))
        except ValueError:
            raise RgfError(f"{path}:{number}: expected '<epoch seconds> <line>', got {line[:60]!r}") from None
    if not out:
        raise RgfError(f"{path}: empty; give the slice's time-stamped output")
    return out


def cpu() -> str:
    """The CPU's model name, as /proc/cpuinfo gives it (else the platform's)."""
    info = Path("/proc/cpuinfo")
    if info.is_file():
        for line in info.read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    return platform.processor() or platform.machine()


def row(
    profile: str,
    factor: str,
    seed: int,
    experiment: str,
    commit: str,
    lines: list[tuple[float, str]],
    rare_fractions: Iterable[float] = (0.0,),
    models: str = "",
) -> dict:
    """The slices.csv row of one slice from its time-stamped output; `models`
    is the slice's --models ("" for the profile's)."""
    groups, wall = stage_minutes(lines)
    dominant = max(groups, key=groups.get) if groups else ""
    started = datetime.datetime.fromtimestamp(lines[0][0], datetime.UTC)
    return {
        "profile": profile,
        "factor": factor,
        "seed": seed,
        "rare_fraction": fractions_text(rare_fractions),
        "models": models,
        "experiment": experiment,
        "commit": commit,
        "started_utc": started.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "wall_minutes": wall,
        "dominant_stage": dominant,
        "dominant_minutes": groups.get(dominant, 0.0),
        "stage_minutes": json.dumps(groups),
        "cpu": cpu(),
        "cores": os.cpu_count(),
    }


def record(out: Path, new: dict) -> None:
    """Append `new` to out/slices.csv; a slice recorded before (same profile,
    factor, seed, rare fractions and models) is replaced, so a re-run slice
    keeps one row, and slices that split the models keep one each."""
    path = out / "slices.csv"
    rows = read_rows(path) if path.is_file() else []
    same = ("profile", "factor", "seed", "rare_fraction", "models")
    rows = [r for r in rows if tuple(r[k] for k in same) != tuple(str(new[k]) for k in same)]
    rows.append(new)
    out.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    (out / "slices.md").write_text(tabulate([{k: str(v) for k, v in r.items()} for r in rows]))


def read_rows(path: Path) -> list[dict]:
    """slices.csv's rows. Rows written before slices had a rare fraction were
    survey slices (r = 0); rows written before they had models ran the profile's."""
    return [{"rare_fraction": "0", "models": "", **r} for r in csv.DictReader(path.open())]


def retabulate(out: Path) -> None:
    """Write out/slices.md again from out/slices.csv."""
    path = out / "slices.csv"
    if not path.is_file():
        raise RgfError(f"{path}: not found; --tabulate writes slices.md from the slices a study recorded")
    rows = read_rows(path)
    (out / "slices.md").write_text(tabulate(rows))
    print(f"{out / 'slices.md'}: {len(rows)} slices")


def tabulate(rows: list[dict]) -> str:
    """slices.md from slices.csv's rows: every slice's wall time and where it
    went (training, the DDPM's training, sampling, evaluation, the dominant
    stage), the wall time per profile, rare fractions and seed and in total,
    and the stage groups that took the most minutes over all slices."""
    lines = [
        "# The slices' wall time",
        "",
        "Written by `scripts/survey_slice.py` from `slices.csv` (one row per slice; its `stage_minutes` has every",
        "stage group). Minutes are wall minutes on the machine named; training, sampling and evaluation sum the",
        "stage groups `train-*`, `sample-*` and `evaluate`.",
        "",
        "| profile | factor | seed | rare fractions | models | commit | started (UTC) | wall min | training (DDPM) "
        "| sampling | evaluation | dominant stage (min) | CPU, cores |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    totals: dict[tuple[str, str, str], list[dict]] = {}
    stages: dict[str, float] = {}
    for r in rows:
        groups = json.loads(r["stage_minutes"])
        train = sum(v for k, v in groups.items() if k.startswith("train-"))
        sample = sum(v for k, v in groups.items() if k.startswith("sample-"))
        lines.append(
            f"| {r['profile']} | {r['factor']} | {r['seed']} | {r['rare_fraction']} | {r['models'] or 'all'} "
            f"| {r['commit']} "
            f"| {r['started_utc'].replace('T', ' ').rstrip('Z')} | {float(r['wall_minutes']):.1f} "
            f"| {train:.1f} ({groups.get('train-ddpm', 0.0):.1f}) | {sample:.1f} | {groups.get('evaluate', 0.0):.1f} "
            f"| {r['dominant_stage']} ({float(r['dominant_minutes']):.1f}) | {r['cpu']}, {r['cores']} |"
        )
        totals.setdefault((r["profile"], r["rare_fraction"], str(r["seed"])), []).append(r)
        for k, v in groups.items():
            stages[k] = stages.get(k, 0.0) + v
    lines += [
        "",
        "## Totals",
        "",
        "| profile | rare fractions | seed | slices | factors | wall min | wall hours |",
        "|---|---|---|---|---|---|---|",
    ]
    everything = 0.0
    for (profile, fractions, seed), group in sorted(totals.items(), key=lambda kv: (*kv[0][:2], int(kv[0][2]))):
        wall = sum(float(r["wall_minutes"]) for r in group)
        everything += wall
        factors = " ".join(sorted({r["factor"] for r in group}))
        lines.append(f"| {profile} | {fractions} | {seed} | {len(group)} | {factors} | {wall:.1f} | {wall / 60:.2f} |")
    lines.append(f"| all |  |  | {len(rows)} |  | {everything:.1f} | {everything / 60:.2f} |")
    spent = sum(stages.values()) or 1.0  # a log without stage lines: no shares to give
    lines += [
        "",
        "## Where the time went",
        "",
        "The stage groups over all slices, most minutes first (share of the minutes spent in stages):",
        "",
        "| stage group | minutes | share |",
        "|---|---|---|",
    ]
    for k, v in sorted(stages.items(), key=lambda kv: -kv[1])[:8]:
        lines.append(f"| {k} | {v:.1f} | {v / spent:.0%} |")
    rest = sum(sorted(stages.values(), reverse=True)[8:])
    if rest:
        lines.append(f"| every other group | {rest:.1f} | {rest / spent:.0%} |")
    return "\n".join(lines) + "\n"


def fractions_text(rare_fractions: Iterable[float]) -> str:
    """slices.csv's rare_fraction: the slice's rare fractions, space-separated ("0", "0 0.05 0.5")."""
    return " ".join(f"{r:g}" for r in rare_fractions)


def curve_name(rare_fractions: Iterable[float]) -> str:
    """A rarity slice's part of its experiment's name: its fractions in percent
    (r0_5_50 for 0, 0.05, 0.5), so slices of one factor and seed that split the
    fractions keep their own experiments."""
    return "r" + "_".join(percent(r) for r in rare_fractions)


def model_list(text: str | None) -> str:
    """--models as slices.csv keeps it: sorted, without blanks ("" for the profile's)."""
    return ",".join(sorted({m.strip() for m in (text or "").split(",") if m.strip()}))


def slice_name(profile: str, factor: str, seed: int, rare_fractions: list[float] | None, models: str) -> str:
    """A slice's default experiment name: <profile>-<factor>-s<seed>, then a
    rarity slice's fractions (-r0_5_50) and the models of a slice that splits
    them (-ddpm_vae), so that no two slices share an experiment."""
    name = f"{profile}-{factor}-s{seed}"
    if rare_fractions is not None:
        name += f"-{curve_name(rare_fractions)}"
    return name + (f"-{models.replace(',', '_')}" if models else "")


def parse_list(text: str, kind: type, flag: str) -> list:
    """A comma-separated option as a list of `kind`, or one line naming the problem."""
    try:
        return [kind(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise RgfError(f"{flag} {text}: give comma-separated numbers, e.g. {flag} 0,0.05,0.5") from None


def overrides(
    profile: str,
    factor: str,
    seed: int,
    rare_fractions: list[float] | None,
    models: str | None,
    rare_classes: list[int] | None = None,
) -> list[str]:
    """The slice's `-S` overrides of `dvc exp run`."""
    sets = [f"profile={profile}", f"factors=[{factor}]", f"seeds=[{seed}]"]
    if rare_classes is not None:
        sets.append(f"skew.rare_classes=[{','.join(str(k) for k in rare_classes)}]")
    if rare_fractions is not None:
        sets.append(f"skew.rare_fractions=[{','.join(f'{r:g}' for r in rare_fractions)}]")
    if models:
        sets.append(f"models=[{models}]")
    return [a for s in sets for a in ("-S", s)]


def collector(repo: Path, profile: str, out: Path, rarity: bool) -> list[str]:
    """The command that puts the slice together with the others in `out`."""
    if rarity:
        return ["rgf", "rarity", "--repo", str(repo), "--params", str(repo / "params.yaml"), "--out", str(out)]
    return ["rgf", "assemble", "--repo", str(repo), "--profile", profile, "--out", str(out)]


def experiment_names(repo: Path) -> set[str]:
    """The names of the DVC experiments in `repo`, of every baseline commit."""
    from dvc.repo import Repo

    with Repo(str(repo)) as dvc_repo:
        listing = dvc_repo.experiments.ls(all_commits=True)
    return {name for exps in listing.values() for name, _ in exps}


def run_slice(repo: Path, sets: list[str], name: str, log: Path) -> list[tuple[float, str]]:
    """`dvc exp run` of the slice in `repo`, its output echoed and logged with
    time stamps. A slice run before under this name is re-run: its experiment
    is removed first (DVC refuses a second experiment of one name), and what it
    trained comes back from the run cache."""
    if name in experiment_names(repo):
        print(f"{name}: re-running the slice; its earlier experiment is removed (`dvc exp remove {name}`)")
        subprocess.run(["dvc", "exp", "remove", name], cwd=repo, check=True)
    cmd = ["dvc", "exp", "run", "-n", name, *sets]
    log.parent.mkdir(parents=True, exist_ok=True)
    lines = []
    with (
        log.open("w") as sink,
        subprocess.Popen(cmd, cwd=repo, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1) as proc,
    ):
        for text in proc.stdout:
            stamp = time.time()
            lines.append((stamp, text.rstrip("\n")))
            sink.write(f"{stamp:.0f} {text}")
            sink.flush()
            sys.stdout.write(text)
    if proc.returncode != 0:
        raise RgfError(f"the slice failed (dvc exp run exited {proc.returncode}; its output: {log}); nothing recorded")
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--factor")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--profile", default="survey")
    parser.add_argument(
        "--rare-fractions", help="the rarity curve's fractions, comma-separated (0,0.05,0.5): collected by rgf rarity"
    )
    parser.add_argument("--rare-classes", help="the rare classes, comma-separated (default: the profile's)")
    parser.add_argument("--models", help="the models, comma-separated (default: the profile's)")
    parser.add_argument("--out", type=Path, required=True, help="the collected study's folder, e.g. reports/survey")
    parser.add_argument("--repo", type=Path, default=Path("."))
    parser.add_argument("--from-log", type=Path, help="record a slice already run, from its time-stamped output")
    parser.add_argument("--commit", help="with --from-log: the commit the slice ran on")
    parser.add_argument(
        "--name", help="the experiment's name (default: <profile>-<factor>-s<seed>[-r<percents>][-<models>])"
    )
    parser.add_argument("--tabulate", action="store_true", help="only write <out>/slices.md again from its slices.csv")
    args = parser.parse_args(argv)
    args.repo = args.repo.resolve()  # the collector runs in it and is given it
    if args.tabulate:
        retabulate(args.repo / args.out)
        return
    if args.factor is None:
        raise RgfError("--factor: give the slice's factor, e.g. --factor thin")
    rarity = args.rare_fractions is not None
    fractions = parse_list(args.rare_fractions, float, "--rare-fractions") if rarity else None
    classes = parse_list(args.rare_classes, int, "--rare-classes") if args.rare_classes else None
    if rarity and (not fractions or not all(0 <= r <= 0.5 for r in fractions)):
        raise RgfError(f"--rare-fractions {args.rare_fractions}: give fractions from 0 to 0.5")
    if classes is not None and not rarity:
        raise RgfError("--rare-classes goes with --rare-fractions (a rarity slice); a survey slice takes the profile's")
    models = model_list(args.models)
    name = args.name or slice_name(args.profile, args.factor, args.seed, fractions, models)
    if (args.from_log is None) != (args.commit is None):
        raise RgfError("--from-log and --commit go together: give the commit the logged slice ran on")
    commit = (
        args.commit
        or subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=args.repo, capture_output=True, text=True, check=False
        ).stdout.strip()
    )
    if args.from_log is not None:
        lines = read_log(args.from_log)
    else:
        sets = overrides(args.profile, args.factor, args.seed, fractions, models or None, classes)
        lines = run_slice(args.repo, sets, name, args.repo / "logs/slices" / f"{name}.log")
    collected = subprocess.run(collector(args.repo, args.profile, args.out, rarity), cwd=args.repo, check=False)
    if collected.returncode != 0:
        log = args.from_log or args.repo / "logs/slices" / f"{name}.log"
        raise RgfError(
            f"collecting the slice exited {collected.returncode}: the slice ran but is not recorded; fix what it "
            f"printed, then record it without re-running: --from-log {log} --commit {commit}"
        )
    new = row(args.profile, args.factor, args.seed, name, commit, lines, fractions or (0.0,), models)
    record(args.repo / args.out, new)
    print(f"{name}: {new['wall_minutes']} min, most in {new['dominant_stage']} ({new['dominant_minutes']} min)")


if __name__ == "__main__":
    exit_with(main)

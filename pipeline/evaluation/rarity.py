"""The memorization-versus-rarity curve: how rare must a factor be before a
model memorizes it?

A rare fraction r relaxes the skewed set: the rare class k keeps f=1 on
1 - r of its images and every other class gets f=1 on r of its images, so
r = 0 is the paper's extreme skew and r = 0.5 is no skew at all (the skewed
set then asks for what the balanced one does). A sweep lists its fractions in
`skew.rare_fractions`: one experiment trains the balanced run once and one
skewed run per r (`dvc exp run -S 'skew.rare_fractions=[0,0.01,...,0.5]'`),
and experiments split the sweep by factor, seed or fraction as a session
allows. This module turns their metrics into one row per (factor, k, model, r):
memorized classes under the study's test and under the pooled test with
Holm, learned classes, classes tested, mean |z|, and how often the models
give the factor to the classes other than k (`p_skewed_others`, beside the
skewed data's own rate r), each as the mean over seeds with its min-max. At r = 0.5 nothing changed, so any class called
memorized there is a false positive; `null_check` sets the 0.5 point beside
the learner control's measured false-positive rate.

A sweep too long for one session runs in slices (a factor and seed at a
time, on any machine): the curve folder keeps every run's metrics file
(`metrics/<model>/<factor>/<skew>-s<seed>.json`, committed with git; a curve
written before kept them as `metrics/r<r>/.../k<k>-s<seed>.json`), and
each collection merges the experiments found now into them (`experiments.merged`), so a
slice re-run replaces its own runs and leaves the others' files as they were.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from pipeline import registry
from pipeline.errors import MetricsError
from pipeline.evaluation.tables import (
    CORRECTED,
    concentration_of,
    false_positive_table,
    ordered,
    to_markdown,
    verdict_counts,
)
from pipeline.files import MetricsFile, load_metrics, read
from pipeline.io import atomic_entries, write_json
from pipeline.params import Params
from pipeline.paths import RARITY, key_of
from pipeline.registry import MODELS, display

NO_SKEW = 0.5  # the rare fraction at which the skewed set equals the balanced one in distribution
COUNTS = (
    "memorized",
    "memorized_corrected",
    "learned",
    "tested",
    "mean_abs_z",
    "p_balanced_others",
    "p_skewed_others",
    # the concentration test (pipeline/evaluation/stats.py): of the f = 1 samples, the share read as class k
    "concentration_balanced",
    "concentration_skewed",
    "concentration_memorized",
)
# of the classes a count calls memorized, those that moved against the skew (run_rows), per count
OPPOSITE = {"memorized": "opposite", "memorized_corrected": "opposite_corrected"}


def others_rate(metrics: dict, which: str) -> float | None:
    """f=1 among the samples of every class but the rare one, pooled over
    those classes (`which`: "b" for the balanced run, "s" the skewed): the
    skewed data has rate r there, so a model at r copies the data's rarity,
    one below r makes the factor rarer still, one towards 0.5 transfers it."""
    k = str(metrics["rare_class"])
    rows = [r for c, r in metrics["classes"].items() if c not in ("total", k)]
    n = sum(r[f"n_{which}"] for r in rows)
    return sum(r[f"k_{which}"] for r in rows) / n if n else None


def run_rows(metrics: list[dict]) -> pd.DataFrame:
    """One row per metrics file (a dict as `files.read_metrics` gives): the
    counts of one comparison at its rare fraction. A class that moved against
    the skew counts as memorized, as in the paper's Table 4; `opposite`
    counts those classes apart."""
    rows = []
    for m in metrics:
        counts = verdict_counts(m)
        corrected = verdict_counts(m, corrected=True)
        z = [abs(r["z"]) for c, r in m["classes"].items() if c != "total" and r["z"] is not None]
        conc = concentration_of(m)
        rows.append(
            {
                "factor": m["factor"],
                "rare_class": m["rare_class"],
                "model": m["model"],
                "rare_fraction": m["rare_fraction"],
                "seed": m["seed"],
                "test": m["test"],
                "memorized": counts["memorized"] + counts["opposite"],
                "memorized_corrected": corrected["memorized"] + corrected["opposite"],
                "learned": counts["learned"],
                "tested": counts["memorized"] + counts["opposite"] + counts["learned"],
                "mean_abs_z": float(np.mean(z)) if z else None,
                "p_balanced_others": others_rate(m, "b"),
                "p_skewed_others": others_rate(m, "s"),
                "concentration_balanced": conc["share_balanced"],
                "concentration_skewed": conc["share_skewed"],
                "concentration_memorized": int(conc["verdict"] == "memorized"),
                "opposite": counts["opposite"],
                "opposite_corrected": corrected["opposite"],
            }
        )
    columns = ["factor", "rare_class", "model", "rare_fraction", "seed", "test", *COUNTS, *OPPOSITE.values()]
    return pd.DataFrame(rows, columns=columns)


def curve_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Per (factor, rare_class, model, rare_fraction): each count's mean over
    seeds (`<count>`) with its min and max (`<count>_min`, `<count>_max`) and
    the number of seeds, sorted as the paper orders factors and models."""
    keys = ["factor", "rare_class", "model", "rare_fraction"]
    if runs.empty:
        return pd.DataFrame(columns=[*keys, "seeds", *COUNTS])
    grouped = runs.groupby(keys)
    table = grouped[list(COUNTS)].mean()
    for stat in ("min", "max"):
        table = table.join(grouped[list(COUNTS)].agg(stat).add_suffix(f"_{stat}"))
    table.insert(0, "seeds", grouped["seed"].nunique())
    table = table.reset_index()
    model_rank = {m: i for i, m in enumerate(ordered(table["model"].unique(), MODELS))}
    table = table.sort_values(
        ["factor", "rare_class", "model", "rare_fraction"], key=lambda s: s.map(model_rank) if s.name == "model" else s
    )
    return table.reset_index(drop=True)


def null_check(
    runs: pd.DataFrame, learner_fp: dict[str, tuple[float, float, float]] | None, alpha: float = 0.05
) -> pd.DataFrame:
    """At r = 0.5: per model, factor and test, the classes called memorized
    (over k and seeds; with several factors also over all of them, factor
    `all`) beside the learner control's measured false-positive rate of the
    same test (rate, lower, upper of its 95% interval) where one is known.
    `p_value` is the chance of flagging at least that many of the tested
    classes if each were a false positive at the interval's upper end
    (one-sided binomial); `within` says the count is consistent with that
    rate (p_value >= alpha). A share above the rate is no evidence by
    itself: 2 of 10 classes at a rate of 0.12 happen in one study of three.
    `opposite`: of the flagged classes, those that moved against the skew's
    direction; with no skew, noise and run-to-run drift flag both ways."""
    at_null = runs[np.isclose(runs["rare_fraction"], NO_SKEW)]
    rows = []
    for model, group in at_null.groupby("model", sort=False):
        factors = list(group.groupby("factor", sort=False))
        if len(factors) > 1:
            factors.append(("all", group))
        for factor, part in factors:
            rows += _null_rows(display(model), factor, part, learner_fp, alpha)
    columns = ["model", "factor", "test", "flagged", "opposite", "tested", "share"]
    columns += ["learner_fp_rate", "learner_fp_upper", "p_value", "within"]
    return pd.DataFrame(rows, columns=columns)


def _null_rows(model: str, factor: str, group: pd.DataFrame, learner_fp: dict | None, alpha: float) -> list[dict]:
    """null_check's two rows (the study's test, the pooled test with Holm) for one model and factor."""
    from scipy.stats import binom

    tested = int(group["tested"].sum())
    study_test = "/".join(sorted(group["test"].unique()))
    rows = []
    # the pooled test's calibration is measured without Holm: an upper bound for it with Holm
    for column, test, label in (
        ("memorized", study_test, study_test),
        ("memorized_corrected", CORRECTED[0], " + ".join(CORRECTED)),
    ):
        flagged = int(group[column].sum())
        rate = (learner_fp or {}).get(test)
        p_value = None if rate is None or not tested else float(binom.sf(flagged - 1, tested, rate[2]))
        rows.append(
            {
                "model": model,
                "factor": factor,
                "test": label,
                "flagged": flagged,
                "opposite": int(group[OPPOSITE[column]].sum()),
                "tested": tested,
                "share": flagged / tested if tested else None,
                "learner_fp_rate": None if rate is None else rate[0],
                "learner_fp_upper": None if rate is None else rate[2],
                "p_value": p_value,
                "within": None if p_value is None else p_value >= alpha,
            }
        )
    return rows


def _spread(line: pd.DataFrame, column: str) -> tuple[np.ndarray, np.ndarray]:
    """A column's means over seeds and their error bars (down to the min, up to the max)."""
    mean = line[column].to_numpy(dtype=float)
    lo, hi = (line[f"{column}_{stat}"].to_numpy(dtype=float) for stat in ("min", "max"))
    return mean, np.clip(np.nan_to_num([mean - lo, hi - mean]), 0, None)


def draw(table: pd.DataFrame, path: Path) -> None:
    """The curve as one PNG: a column per (factor, k); top row the share of
    tested classes called memorized (the study's test solid, the pooled test
    with Holm dashed), middle row mean |z|, bottom row f=1 among the other
    classes' samples of the skewed model beside the skewed data's rate r (a
    model on that line copies the data's rarity) and, dotted, the same model's
    balanced run (where the oracle puts a model that ignores the skew); one colour per model, error
    bars the seeds' min-max, the x axis symmetric-log so that 0, 0.01 and 0.5
    all show."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = list(table.groupby(["factor", "rare_class"], sort=False).groups)
    fig, axes = plt.subplots(3, max(len(panels), 1), figsize=(4.2 * max(len(panels), 1), 9.6), squeeze=False)
    colours = plt.get_cmap("tab10")
    models = ordered(table["model"].unique(), MODELS)
    for col, (factor, k) in enumerate(panels):
        panel = table[(table["factor"] == factor) & (table["rare_class"] == k)]
        top, bottom, rate = axes[0][col], axes[1][col], axes[2][col]
        for i, model in enumerate(models):
            line = panel[panel["model"] == model].sort_values("rare_fraction")
            if line.empty:
                continue
            x, tested = line["rare_fraction"].to_numpy(), line["tested"].to_numpy().clip(min=1)
            style = {"color": colours(i % 10), "marker": "o", "markersize": 3, "capsize": 2}
            for column, dash in (("memorized", "-"), ("memorized_corrected", "--")):
                share = line[column].to_numpy() / tested
                err = [share - line[f"{column}_min"] / tested, line[f"{column}_max"] / tested - share]
                label = display(model) if dash == "-" else None
                top.errorbar(x, share, yerr=np.clip(err, 0, None), linestyle=dash, label=label, **style)
            bottom.errorbar(x, *_spread(line, "mean_abs_z"), **style)
            rate.errorbar(x, *_spread(line, "p_skewed_others"), **style)
            # the same model trained on the balanced set, as the oracle reads it: the level a
            # model that ignores the skew keeps (0.5 only where the oracle reads its samples so)
            balanced = line["p_balanced_others"].to_numpy(dtype=float)
            rate.plot(x, balanced, color=style["color"], linestyle=":", linewidth=1, marker="x", markersize=3)
        ticks = sorted(panel["rare_fraction"].unique())
        rate.plot(ticks, ticks, color="black", linewidth=1, linestyle="--", label="skewed data (r)")
        rate.plot(
            [], [], color="grey", linestyle=":", linewidth=1, marker="x", markersize=3, label="the model's balanced run"
        )
        rate.set_ylim(-0.02, 1.02)
        rate.legend(fontsize=7, loc="upper left")
        top.set_title(f"{factor}, rare class {k}")
        top.set_ylim(-0.03, 1.03)
        bottom.axhline(1.96, color="grey", linewidth=0.8, linestyle=":")
        for ax in (top, bottom, rate):
            ax.set_xscale("symlog", linthresh=0.01)
            ax.set_xlim(-0.002, 0.6)
            ax.axvline(NO_SKEW, color="grey", linewidth=0.8, linestyle=":")
            ax.set_xlabel("rare fraction r (0.5: no skew)")
            ax.set_xticks(ticks, [f"{t:g}" for t in ticks], fontsize=7, rotation=45)
            ax.minorticks_off()
        if col == 0:
            top.set_ylabel("share of classes memorized\n(solid: study's test, dashed: pooled + Holm)")
            bottom.set_ylabel("mean |z| (dotted: 1.96)")
            rate.set_ylabel("f=1 in the other classes' samples,\nskewed model (p_skewed, c != k)")
    if panels:
        axes[0][0].legend(fontsize=8, loc="center left")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _cell(row: pd.Series, column: str, digits: int = 1) -> str:
    mean, lo, hi = row[column], row[f"{column}_min"], row[f"{column}_max"]
    if mean is None or pd.isna(mean):
        return "–"
    text = f"{mean:.{digits}f}".rstrip("0").rstrip(".") if digits else f"{mean:.0f}"
    return text if lo == hi else f"{text} ({lo:.{digits}f}-{hi:.{digits}f})".replace(".0-", "-").replace(".0)", ")")


def _layout(table: pd.DataFrame, cell) -> pd.DataFrame:
    """Rows (factor, k, model), columns the rare fractions, `cell(row)` in each."""
    records = {}
    for _, row in table.iterrows():
        records.setdefault((row["factor"], f"k={row['rare_class']}", display(row["model"])), {})[
            f"r={row['rare_fraction']:g}"
        ] = cell(row)
    df = pd.DataFrame.from_dict(records, orient="index")
    df.index.names = ["factor", "k", "model"]
    return df[sorted(df.columns, key=lambda c: float(c[2:]))] if not df.empty else df


def grid(table: pd.DataFrame) -> pd.DataFrame:
    """Rows (factor, k, model), columns the rare fractions: 'M/T [M*] |z|'
    (memorized of tested under the study's test, M* under the pooled test
    with Holm, mean |z|), seeds' ranges in brackets."""
    return _layout(
        table,
        lambda row: (
            f"{_cell(row, 'memorized')}/{_cell(row, 'tested')} "
            f"[{_cell(row, 'memorized_corrected')}] {_cell(row, 'mean_abs_z')}"
        ),
    )


def _rate_cell(row: pd.Series) -> str:
    mean, lo, hi = (row[f"p_skewed_others{suffix}"] for suffix in ("", "_min", "_max"))
    if mean is None or pd.isna(mean):
        return "–"
    return f"{mean:.2f}" if lo == hi else f"{mean:.2f} ({lo:.2f}-{hi:.2f})"


def rate_grid(table: pd.DataFrame) -> pd.DataFrame:
    """Rows (factor, k, model), columns the rare fractions: p_skewed_others
    to two decimals (seeds' range in brackets)."""
    return _layout(table, _rate_cell)


def learner_rates(metrics: list[dict]) -> dict[str, tuple[float, float, float]] | None:
    """test -> (rate, 95% low, 95% high) of the learner control among `metrics`; None without it.

    The learner draws from the balanced set whatever it was given, so its
    runs at every r of one (factor, k, seed) are one measurement, repeated:
    counted once (the first), not once per r, which would narrow the
    interval by the square root of the number of fractions."""
    learners: dict[tuple, dict] = {}
    for m in metrics:
        if m["model"] == registry.LEARNER:
            learners.setdefault((m.get("source"), m["factor"], m["rare_class"], m["seed"]), m)
    fp = false_positive_table(list(learners.values()))
    if fp.empty:
        return None
    return {test: (row.rate, row.ci_low, row.ci_high) for test, row in fp.xs(display(registry.LEARNER)).iterrows()}


README = """\
# Memorization against rarity

`rgf rarity` put together {runs} comparisons, one metrics file per run in `metrics/`, from a
sweep of the rare fraction r (`skew.rare_fractions`; r = 0: f=1 exactly on the rare class, r = 0.5: no
skew) run in slices: {experiments} DVC experiments collected this time, the runs of earlier slices kept. A cell reads
`M/T [M*] |z|`: classes memorized (a significant move towards or against the skew) of the classes
tested under the study's test ({test}), memorized under the pooled two-proportion test with Holm's
correction, and mean |z|; with several seeds the mean over seeds, their range in brackets.
Figure: `curve.png`; numbers: `curve.csv` (per factor, k, model and r), `runs.csv` (per seed).

{grid}

## Does the model copy the data's rarity?

f=1 among the samples of the classes other than k, pooled (`p_skewed_others`; the balanced run's
beside it in `curve.csv`). The skewed data has rate r there: a model at r copies the data, one below
r makes the factor rarer still (memorizes it harder than the data asks), one above r transfers it
towards 0.5. Read it beside the same model's balanced run (`p_balanced_others`, dotted in the
figure): where the oracle reads a model's balanced samples far from 0.5 (blurry digits read as thin,
say), that level, not 0.5, is what ignoring the skew looks like.

{rates}

## The null point, r = 0.5

Nothing changed between the balanced and the skewed set, so every class called memorized is a false
positive. The learner control's false-positive rate (same test, 95% upper end) is the yardstick; the
pooled test's rate is measured without Holm, an upper bound for it with Holm. `p_value`: the chance of
flagging at least `flagged` of `tested` classes at that rate (one-sided binomial); `within`: p >= 0.05,
the count is what the test's false positives alone give. Per model and factor over seeds, and over
every factor (`all`); read a single `no` among many rows as one of several checks at 5% each.
`opposite`: of the flagged classes, those that moved against the skew's direction (gained the factor
outside k). A skew's effect moves classes one way; noise, and a drift of the factor's overall rate
between two runs that reverses its sign with the seed, flag both ways.

{null}
{notes}"""


def kept_metrics(out: Path) -> list[dict]:
    """The runs a curve folder holds (metrics/<model>/<factor>/<skew>-s<seed>.json;
    an earlier curve's metrics/r<r>/<model>/<factor>/k<k>-s<seed>.json), as
    plain dicts; none for a new folder or a curve written before curves kept
    their runs."""
    root = Path(out) / "metrics"
    fix = "remove the file, or give another --out"
    legacy = [
        read(MetricsFile, path, fix, MetricsError).dump()
        for folder in sorted(root.glob("r*"))
        if folder.is_dir()
        for path in sorted(folder.glob("*/*/k*-s*.json"))
    ]
    return legacy + load_metrics(root)


def write_curve(
    metrics: list[dict], out: Path, experiments: int, notes: list[str], params: Params | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """curve.csv, runs.csv, null.csv, curve.png, README.md, the runs' metrics
    files (metrics/<model>/<factor>/<skew>-s<seed>.json) and (with
    `params`, the design the experiments share) params.yaml in `out`,
    replaced together; whatever else `out` holds stays. Returns the curve
    table and the null check."""
    runs = run_rows(metrics)
    table = curve_table(runs)
    null = null_check(runs, learner_rates(metrics))
    with atomic_entries(out, RARITY) as tmp:
        if params is not None:
            (tmp / "params.yaml").write_text(yaml.safe_dump(params.model_dump(mode="json"), sort_keys=False))
        for m in metrics:
            write_json(tmp / "metrics" / f"{key_of(m)}.json", m)
        runs.to_csv(tmp / "runs.csv", index=False)
        table.to_csv(tmp / "curve.csv", index=False)
        null.to_csv(tmp / "null.csv", index=False)
        draw(table, tmp / "curve.png")
        null_text = (
            to_markdown(null.set_index(["model", "factor", "test"]))
            if not null.empty
            else "_(no experiment at r = 0.5)_"
        )
        note_text = "\n## Left out\n\n" + "\n".join(f"- {n}" for n in notes) + "\n" if notes else ""
        (tmp / "README.md").write_text(
            README.format(
                runs=len(runs),
                experiments=experiments,
                test="/".join(sorted(runs["test"].unique())),
                grid=to_markdown(grid(table)),
                rates=to_markdown(rate_grid(table)),
                null=null_text,
                notes=note_text,
            )
        )
    return table, null

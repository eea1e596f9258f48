"""The study's report from its metrics files: which files belong to the
study, the tables, reports/tables/README.md (every table, what L/M/O mean,
which test produced them, the test's calibration on the controls and the
runs' quality), the data `dvc plots show` draws, the headline numbers for
`dvc exp show`, and the same tables in the terminal (`rgf report`)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from pipeline import registry
from pipeline.evaluation.figures import loss_rows, probe_figure, probe_rows, run_title
from pipeline.evaluation.tables import (
    CORRECTED,
    bias_table,
    by_run,
    concentration_of,
    concentration_table,
    counts_table,
    effect_table,
    false_positive_table,
    flatten,
    ordered,
    proportions_table,
    quality_table,
    seeds_of,
    summary_table,
    to_markdown,
    verdict_counts,
    z_bars,
    z_table,
)
from pipeline.files import load_metrics, read_curves
from pipeline.io import atomic_dir
from pipeline.names import BALANCED, FACTORS, skewed
from pipeline.params import EvaluationParams, Params
from pipeline.paths import PLOT_DATA, TABLES, key_of, model_of, train_name
from pipeline.registry import MODELS, display

LEGEND = """\
For every class c the skewed model's fraction of samples with the factor, P_c^s, is tested against the
balanced model's, P_c^u:

- **L** learned: no significant difference; the model carried the factor over to this class.
- **M** memorized: a significant difference in the direction the skew pushes (towards f=1 for the rare
  class k, towards f=0 for every other class).
- **O** opposite: a significant difference against the skew.
- **–** undefined, not tested, with the reason beside it: **– none**, no samples of the class in a run;
  **– few**, fewer than `evaluation.min_count` samples in a run (a failure to reject on a handful of
  samples is no evidence of learning); **– 0/1**, P_c^u is 0 or 1 (no variance to test against)."""


FILTERED_TEXT = (
    "**Filtered** counts the same test on the samples `evaluation.sample_filter` keeps: `confident`, "
    "those the label oracle reads with p >= `evaluation.min_label_confidence`; `on_manifold`, those "
    "inside the real test images' k-NN balls of the class they are read as (the balls of improved "
    "precision, drawn per class); `both`. Misread samples (a red 7 read as a 1) dilute class k and can "
    "flip its verdict; a verdict that holds on the kept samples is about the model, not the oracle. "
    "The kept counts per run are in the quality table (`kept_u`, `kept_s`). **Concentration** is the "
    "concentration test (below): its verdict, with the share of f = 1 samples read as class k in the "
    "balanced run → the skewed run."
)
CONCENTRATION_TEXT = (
    "Among the samples that carry the factor (f = 1), the share the label oracle reads as the rare "
    "class k, skewed run against balanced run (pooled two-proportion z-test, alpha as the verdicts). "
    "The per-class test asks how many of class k's samples carry f, so red samples misread as class k "
    "dilute it; this one asks how many samples with f are class k, which samples without f cannot "
    "dilute. A model that ties f to class k raises the share (towards 1 on the skewed data, from "
    "about 1/10); one that learned f as a concept keeps it. Where it says M and the class-k row says "
    "L or O, read the class-k row as misread; where it says L and the class-k row M, the shift is in "
    "which classes the model draws, not in the factor."
)
BIAS_TEXT = (
    "Per class, P(f = 1) as the oracles read the model's *balanced* samples / as they read the real "
    "balanced test images (each digit once with and once without the factor). A model trained on "
    "balanced data should match the data; a gap (marked ! beyond `evaluation.max_oracle_bias`) is the "
    "oracles misreading this model's samples, which a per-class test would take for memorization."
)


def _misread_sections(tables: dict, filtered: bool) -> list[str]:
    """Table 4 (with what its filtered column means when it has one), then the
    concentration test's and the oracles' bias tables with their explanations."""
    out = ["", FILTERED_TEXT] if filtered else []
    out += ["", to_markdown(tables["summary"])]
    if "concentration" in tables:
        out += ["", "## The concentration test", "", CONCENTRATION_TEXT, "", to_markdown(tables["concentration"])]
    if "oracle_bias" in tables:
        out += ["", "## The oracles' bias on each model", "", BIAS_TEXT, "", to_markdown(tables["oracle_bias"])]
    return out


def _rare_classes(metrics: list[dict], wanted: list[int] | None = None) -> list[int]:
    return sorted(set(wanted or ()) | {m["rare_class"] for m in metrics})


def in_study(metrics: list[dict], params: Params) -> tuple[list[dict], list[str]]:
    """The metrics of the study params.yaml describes, and the names of the
    rest: metrics/ keeps files of earlier configurations (a sweep of one model
    inherits the others' results), and they must not mix into this study's
    tables and headline numbers."""
    kept, left_out = [], []
    for m in metrics:
        wanted = (
            m["model"] in params.models
            and m["factor"] in params.factors
            and m["rare_class"] in params.skew.rare_classes
            and m["seed"] in params.seeds
            and m.get("source", params.data.source) == params.data.source
            and m["rare_fraction"] in params.skew.rare_fractions
        )
        if wanted:
            kept.append(m)
        else:
            left_out.append(key_of(m))
    return kept, left_out


def headline(metrics: list[dict], params: Params | None = None) -> tuple[list[dict], int]:
    """The comparisons the report's tables show: one skew per rare class, at
    the study's sharpest rare fraction (the smallest of skew.rare_fractions,
    or without params of the metrics: the paper's r = 0 where it is there).
    The others are points of the rarity curve, which `rgf rarity` draws;
    returns how many those are."""
    if not metrics:
        return [], 0
    sharpest = min(params.skew.rare_fractions) if params else min(m["rare_fraction"] for m in metrics)
    shown = [m for m in metrics if m["rare_fraction"] == sharpest]
    return shown, len(metrics) - len(shown)


def _curve_note(curve: int, metrics: list[dict]) -> str:
    fractions = ", ".join(f"{r:g}" for r in sorted({m["rare_fraction"] for m in metrics})[1:])
    return (
        f"{curve} comparisons at the study's other rare fractions (r = {fractions}) are the rarity curve's "
        "points, not in these tables: `rgf rarity` draws them"
    )


def build_tables(metrics: list[dict], rare_classes: list[int], min_accuracy: float | None = None) -> dict:
    """CSV stem -> DataFrame for every table that has data, in report order."""
    tables = {f"z_k{k}": z_table(metrics, k) for k in rare_classes}
    tables["counts"] = counts_table(metrics)
    tables["summary"] = summary_table(metrics)
    tables.update({f"proportions_k{k}": proportions_table(metrics, k) for k in rare_classes})
    tables.update({f"effect_k{k}": effect_table(metrics, k) for k in rare_classes})
    tables["concentration"] = concentration_table(metrics)
    tables["oracle_bias"] = bias_table(metrics)
    tables["false_positives"] = false_positive_table(metrics)
    tables["quality"] = quality_table(metrics, min_accuracy)
    return {name: df for name, df in tables.items() if not df.empty}


def _settings(metrics: list[dict]) -> list[tuple[str, float, str]]:
    return sorted({(m["test"], float(m["alpha"]), m.get("correction", "none")) for m in metrics})


def _settings_text(settings: list[tuple[str, float, str]]) -> str:
    return "; ".join(f"test `{t}`, alpha = {a:g}, correction `{c}`" for t, a, c in settings)


def _fp_sentence(fp: pd.DataFrame, settings: list[tuple[str, float, str]]) -> str:
    learner = display(registry.LEARNER)
    if learner not in fp.index.get_level_values("control"):
        return f"No {registry.LEARNER} metrics, so the false-positive rate of the test is not measured."
    test, alpha, _ = settings[0]

    def rate(t: str) -> str:
        row = fp.loc[(learner, t)]
        if row["defined"] == 0:
            return "undefined (no defined classes)"
        return (
            f"{row['rate']:.1%} (95% CI {row['ci_low']:.1%}-{row['ci_high']:.1%}; {row['flagged']} of {row['defined']})"
        )

    resamples = int(fp.loc[(learner, test), "resamples"])
    basis = f"over {resamples} redraws of its samples" if resamples else "on its one draw of samples"
    return (
        "The Learner control draws its samples from the balanced set whatever it was trained on, so every M or "
        "O on it is a false positive; its two runs draw from disjoint halves of that set, as two models trained "
        f"apart share no sample. A calibrated test flags about a fraction alpha = {alpha:g} of its classes. "
        f"Measured {basis}: the configured test (`{test}`) flags {rate(test)}; the pooled two-proportion "
        f"test {rate('two_proportion')}; Fisher's exact test {rate('fisher')}. The paper's one-sample test "
        "treats P_c^u as exact although it is estimated from about as many samples, so it runs above alpha. "
        "The Memorizer rows should be near 100%: they show the test can see memorization at all. The Mixer "
        "draws a fraction `evaluation.mixer_fraction` of its skewed run's samples from the skewed set, a "
        "known, partial effect: its rate is each test's power there. These three draw clean images from the "
        "training sets the oracles were trained on, so they check the instrument's wiring and power, not the "
        "oracles' reading of poor samples. The degraded Memorizer and Learner do: their images are blurred and "
        "noised until their FD reaches `evaluation.degraded_fd`, the generative models' quality, so their "
        "rates are the true- and false-positive rates at that quality, and what misreads alone do to a verdict."
    )


def _quality_text(quality: pd.DataFrame, min_accuracy: float | None) -> str:
    text = (
        "`sample_confidence` is the label oracle's mean top probability on the skewed model's samples: low "
        "values mean samples the oracle cannot read, whose per-class counts mean little. The oracle "
        "accuracies are those of the label and factor classifiers on the test set. For both runs (u: trained "
        "on the balanced set, s: on the skewed one), `fd` is the Fréchet distance between the samples and real "
        "test images in the label oracle's penultimate features, `precision` and `recall` the improved "
        "precision and recall of Kynkäänniemi et al. (2019, k = 3) in the same space, and `fd_real` the same "
        "distance between two halves of the real test images (the floor a perfect model would reach at this "
        "sample size). `ambiguity` is the share of samples the factor oracle reads with a top probability "
        "below 0.9 (mixed ink, say); `dropped`, the samples left out of the counts by "
        "`evaluation.min_factor_confidence`. A comparison past `evaluation.max_fd` or under "
        "`evaluation.min_precision` keeps its verdicts, marked [low quality] in Tables 1, 2 and 4."
    )
    if "oracles_ok" in quality.columns:
        weak = int((~quality["oracles_ok"]).sum())
        text += f" {weak} of {len(quality)} runs have an oracle below min_accuracy = {min_accuracy:g}."
    return text


def render_readme(
    metrics: list[dict],
    tables: dict,
    rare_classes: list[int],
    source: str = "metrics",
    evaluation: EvaluationParams | None = None,
    min_accuracy: float | None = None,
) -> str:
    """reports/README.md: every table of `tables` with its explanation."""
    if not metrics:
        return f"# rgf report\n\nNo metrics found under `{source}/`: run the evaluate stage first (`dvc repro`).\n"
    settings = _settings(metrics)
    models = [display(m) for m in ordered((m["model"] for m in metrics), MODELS)]
    factors = ordered((m["factor"] for m in metrics), FACTORS)
    seeds = seeds_of(metrics)
    out = [
        "# rgf report",
        "",
        f"{len(metrics)} metrics files from `{source}/`: models {', '.join(models)}; factors "
        f"{', '.join(factors)}; rare classes k = {', '.join(str(k) for k in rare_classes)}; "
        f"seeds {', '.join(str(s) for s in seeds)}.",
        f"Verdicts from {_settings_text(settings)} (as recorded in the metrics files).",
    ]
    if len(seeds) > 1:
        out += [
            "",
            f"Each model was trained, sampled and judged once per seed ({len(seeds)} seeds; data and oracles "
            "are shared). In the per-class tables a cell is the mean over seeds, z as mean ± sd, with how the "
            "seeds' verdicts fall (`M 3/3`: every seed says memorized; `L 2/3 M 1/3`: they disagree, so read "
            "the verdict as unstable); proportions and effects show the seeds' range instead of one run's "
            "interval. Table 4 gives each count's range over seeds (`7-9/1-3`).",
        ]
    if evaluation is not None and settings != [(evaluation.test, evaluation.alpha, evaluation.correction)]:
        wanted = _settings_text([(evaluation.test, evaluation.alpha, evaluation.correction)])
        out += ["", f"> **Stale metrics:** params.yaml asks for {wanted}; re-run the evaluate stage."]
    out += ["", LEGEND, "", "## Tables 1 and 2: z statistic per class", ""]
    out.append("Rows are classes, columns factor / model; each cell is z with its verdict.")
    for k in rare_classes:
        out += ["", f"### Rare class k = {k}", ""]
        out.append(to_markdown(tables[f"z_k{k}"]) if f"z_k{k}" in tables else f"No metrics for k = {k}.")
    out += ["", "## Table 3: counts by class and factor (CompCars, any manifest source)", ""]
    if "counts" in tables:
        out.append(
            "Oracle counts of the M samples by class x factor value, from the model trained on the "
            "balanced set (D_u) and on the skewed set (D_r); z per class and for all samples on the D_r row."
        )
        out += ["", to_markdown(tables["counts"])]
    else:
        out.append("No metrics from a manifest source (CompCars or your own images): MNIST runs have Tables 1-2.")
    out += ["", "## Table 4: learned / memorized classes", ""]
    out.append(
        "Per factor and k, the number of classes judged L / M (O counted as M, as the paper does; undefined "
        "classes count in neither), under the test the metrics were judged with and, beside it, under the "
        f"pooled two-proportion test with Holm's correction across classes ({'+'.join(CORRECTED)}), recomputed "
        "from the same counts. The paper's one-sample test treats P_c^u as exact and flags classes where "
        "nothing changed (see the calibration below); read a verdict the two columns disagree on as weak."
    )
    out += _misread_sections(tables, any(m.get("classes_filtered") for m in metrics))
    per_k = (
        (
            "proportions",
            "Balanced model's proportions P_c^u",
            "The fraction of the balanced model's samples of class c that carry the factor (ideally 0.50), "
            "with its Wilson 95% interval.",
        ),
        (
            "effect",
            "Effect sizes: P_c^s - P_c^u",
            "The skewed model's shift per class with its Newcombe 95% interval (hybrid score, Newcombe 1998) and "
            "Cohen's h (2 asin sqrt P_c^s - 2 asin sqrt P_c^u; 0.2 small, 0.5 medium, 0.8 large): how much "
            "moved, whatever the test says.",
        ),
    )
    for stem, title, text in per_k:
        out += ["", f"## {title}", "", text]
        for k in rare_classes:
            if f"{stem}_k{k}" in tables:
                out += ["", f"### Rare class k = {k}", "", to_markdown(tables[f"{stem}_k{k}"])]
    out += ["", "## Calibration: the controls under every test", ""]
    out.append(
        "Each test's rate over the controls' redraws (or, without them, recomputed from the stored counts), "
        "with the same alpha, rare class, correction and min_count as the verdicts."
    )
    fp = tables.get("false_positives")
    if fp is None:
        out += [
            "",
            f"No control metrics ({', '.join(registry.CONTROLS)}): the tests' calibration is not measured.",
        ]
    else:
        out += ["", to_markdown(fp), "", _fp_sentence(fp, settings)]
    out += ["", "## Quality", "", _quality_text(tables["quality"], min_accuracy), "", to_markdown(tables["quality"])]
    return "\n".join(out) + "\n"


def _history_dirs(plots: Path | None, runs: set[str] | None, probe_only: bool = False) -> list[Path]:
    """plots/<model>-<factor>-s<seed>/ of every run folder (with `probe_only`,
    of the models with a discriminator probe), those named in `runs` if given."""
    found = sorted(plots.glob("*-*")) if plots and plots.is_dir() else []
    wanted = [d for d in found if d.is_dir() and (runs is None or d.name in runs)]
    return [d for d in wanted if not probe_only or registry.has_probe(model_of(d.name, MODELS) or "")]


def _histories(run_dir: Path) -> dict[str, list[dict]]:
    """dataset -> its per-epoch rows, from the run folder's DVCLive folders."""
    return {d.name: read_curves(d) for d in sorted(run_dir.iterdir()) if d.is_dir()}


def draw_probes(
    plots: Path, rare_classes: list[int], out: Path, runs: set[str] | None = None, rare_fraction: float = 0.0
) -> list[str]:
    """probe_<model>-<factor>_k<k>.png for every GAN run with probe data: its
    balanced run beside its skewed run at `rare_fraction` (the report's)."""
    names = []
    for run_dir in _history_dirs(plots, runs, probe_only=True):
        histories = _histories(run_dir)
        for k in rare_classes:
            wanted = {d: h for d, h in histories.items() if d in (BALANCED, skewed(k, rare_fraction))}
            name = f"probe_{run_dir.name}_k{k}.png"
            if probe_figure(wanted, k, f"{run_dir.name}: discriminator probe, k = {k}", out / name):
                names.append(name)
    return names


def write_report(
    out: Path,
    readme: str,
    tables: dict,
    plots: Path | None = None,
    rare_classes: Iterable[int] = (),
    runs: set[str] | None = None,
    rare_fraction: float = 0.0,
) -> None:
    """README.md, one CSV per table and the probe figures, replacing `out` as a whole."""
    with atomic_dir(out, TABLES) as tmp:
        figures = draw_probes(plots, list(rare_classes), tmp, runs, rare_fraction) if plots else []
        if figures:
            readme += (
                "\n## Discriminator probe (section 6.2)\n\nD's loss w.r.t. the real label on held-out digits of the"
                " rare class, with and without the factor; below log 2 the discriminator calls them real.\n\n"
            )
            readme += "\n".join(f"![{name}]({name})" for name in figures) + "\n"
        (tmp / "README.md").write_text(readme)
        for name, df in tables.items():
            df.to_csv(tmp / f"{name}.csv")


def write_plot_data(
    out: Path,
    metrics: list[dict],
    plots: Path | None,
    rare_classes: list[int],
    runs: set[str] | None = None,
    rare_fraction: float = 0.0,
) -> None:
    """The data of `dvc plots show` (templates: .dvc/plots/), replacing `out`
    as a whole: z/<model>-<factor>-k<k>.csv (z per class, one bar chart each),
    train/<run>.csv (the loss terms of a run folder's balanced and skewed runs,
    overlaid in one chart; none for the controls, which have no losses),
    probe/<run>-k<k>.csv (the discriminator probe of the balanced and the
    skewed_k<k> run, overlaid) and quality.csv (per model and factor: FD,
    precision and mean |z|, to plot one against the other)."""
    with atomic_dir(out, PLOT_DATA) as tmp:
        quality = []
        for factor in sorted({m["factor"] for m in metrics}):  # one point per model and factor
            of_factor = [m for m in metrics if m["factor"] == factor]
            for model, s in summarise(of_factor, None)["models"].items():
                quality.append(
                    {
                        "model": display(model),
                        "factor": factor,
                        "fd": s["fd"],
                        "precision": s["precision"],
                        "mean_abs_z": s["mean_abs_z"],
                    }
                )
        pd.DataFrame(quality, columns=["model", "factor", "fd", "precision", "mean_abs_z"]).to_csv(
            tmp / "quality.csv", index=False
        )
        (tmp / "z").mkdir()
        for name, df in z_bars(metrics).items():
            df.to_csv(tmp / "z" / f"{name}.csv", index=False)
        (tmp / "train").mkdir()
        (tmp / "probe").mkdir()
        for run_dir in _history_dirs(plots, runs):
            histories = _histories(run_dir)
            title = run_title(run_dir.name)
            if rows := loss_rows(histories, title):
                pd.DataFrame(rows).to_csv(tmp / "train" / f"{run_dir.name}.csv", index=False)
            for k in rare_classes:
                if rows := probe_rows(histories, k, f"{title} · k = {k}", rare_fraction):
                    pd.DataFrame(rows).to_csv(tmp / "probe" / f"{run_dir.name}-k{k}.csv", index=False)


def _title(name: str) -> str:
    kind, _, k = name.rpartition("_k")
    titles = {
        "z": f"z per class, rare class k = {k} (L learned, M memorized, O opposite, – undefined)",
        "proportions": f"Balanced model's P_c^u, rare class k = {k}",
        "summary": "Table 4: learned / memorized classes (O counted as M)",
        "counts": "Table 3: sample counts by class x factor, z per class",
        "concentration": "The concentration test: share of f = 1 samples read as class k",
        "oracle_bias": "The oracles' bias: P(f=1) on the model's balanced samples / on real data",
        "false_positives": "Calibration: the controls under every test",
        "quality": "Quality of the runs",
    }
    return titles.get(kind or name, name)


def rich_tables(df: pd.DataFrame, title: str, width: int) -> list[Table]:
    """`df` as rich Tables no wider than `width`: the index columns and as
    many of the others as fit, then the next ones beside the index again, so
    that a narrow terminal or a pipe (80 columns) shows every cell whole
    instead of "…". Headers wrap at their spaces."""
    headers, rows = flatten(df)
    keep = 0 if isinstance(df.index, pd.RangeIndex) and df.index.name is None else df.index.nlevels

    def need(i: int) -> int:  # the widest cell or header word
        return max([len(r[i]) for r in rows] + [len(w) for w in headers[i].split()] + [1])

    index_width = 1 + sum(need(i) + 3 for i in range(keep))
    groups: list[list[int]] = []
    used = width
    for i in range(keep, len(headers)):
        if used + need(i) + 3 > width and (not groups or groups[-1]):
            groups.append([])
            used = index_width
        groups[-1].append(i)
        used += need(i) + 3
    tables = []
    for n, group in enumerate(groups or [[]], 1):
        part = f" (part {n} of {len(groups)})" if len(groups) > 1 else ""
        table = Table(title=title + part, title_justify="left")
        columns = [*range(keep), *group]
        for i in columns:
            table.add_column(escape(headers[i]), width=min(need(i), width))
        for row in rows:  # cells are text, not markup: "[low quality]" stays
            table.add_row(*[escape(row[i]) for i in columns])
        tables.append(table)
    return tables


def print_report(metrics_root: Path, console: Console | None = None, params: Params | None = None) -> None:
    """Print the report's tables as rich Tables (stdout unless `console`); with
    `params`, only the study they describe, as the report stage does."""
    console = console or Console()
    metrics, left_out = load_metrics(Path(metrics_root)), []
    if params is not None:
        metrics, left_out = in_study(metrics, params)
    every = metrics
    metrics, curve = headline(metrics, params)
    if metrics:
        rare = _rare_classes(metrics, params.skew.rare_classes if params else None)
        for name, df in build_tables(metrics, rare).items():
            for table in rich_tables(df, _title(name), console.width):
                console.print(table)
    else:
        console.print(f"No metrics found under {metrics_root}/: run the evaluate stage first.")
    if left_out:
        console.print(f"Left out {len(left_out)} metrics files of other studies: {', '.join(left_out)}")
    if curve:
        console.print(_curve_note(curve, every) + ".")


def _agreement_share(metrics: list[dict]) -> dict[str, float]:
    """Per model, the share of its (factor, k, class) cells on which every
    seed reached the same verdict (1.0 with one seed)."""
    cells: dict[str, list[bool]] = {}
    for (model, _, _), group in by_run(metrics).items():
        for key in {k for m in group for k in m["classes"] if k != "total"}:
            verdicts = [m["classes"][key]["verdict"] for m in group if key in m["classes"]]
            cells.setdefault(model, []).append(len(set(verdicts)) == 1)
    return {model: round(sum(same) / len(same), 4) for model, same in cells.items() if same}


def summarise(metrics: list[dict], fp: pd.DataFrame | None) -> dict:
    """Headline numbers for `dvc exp show`: learned/memorized counts per
    model (over factors, k and classes; with several seeds, the mean of the
    seeds' counts) and mean |z|, the same counts under the pooled
    two-proportion test with Holm's correction, the share of cells on which
    the seeds agree, the counts of the filtered verdicts, how many
    comparisons the concentration test calls memorized, how many are past
    the quality gates (`low_quality`) and how many classes the oracles'
    bias flags, oracle accuracies per factor, the learner control's
    false-positive rate per test and the seeds."""
    models: dict[str, dict] = {}
    seeds = seeds_of(metrics)
    oracles: dict[str, dict] = {}
    corrected = "_".join(CORRECTED)
    for m in metrics:
        rows = [r for c, r in m["classes"].items() if c != "total"]
        entry = models.setdefault(
            m["model"], {"learned": 0, "memorized": 0, "z": [], corrected: {"learned": 0, "memorized": 0}}
        )
        entry["learned"] += sum(r["verdict"] == "learned" for r in rows)
        entry["memorized"] += sum(r["verdict"] in ("memorized", "opposite") for r in rows)
        counts = verdict_counts(m, corrected=True)
        entry[corrected]["learned"] += counts["learned"]
        entry[corrected]["memorized"] += counts["memorized"] + counts["opposite"]
        if m.get("classes_filtered") is not None:
            counts = verdict_counts(m, filtered=True)
            block = entry.setdefault("filtered", {"learned": 0, "memorized": 0})
            block["learned"] += counts["learned"]
            block["memorized"] += counts["memorized"] + counts["opposite"]
        block = entry.setdefault("concentration", {"memorized": 0, "comparisons": 0})
        block["memorized"] += concentration_of(m)["verdict"] == "memorized"
        block["comparisons"] += 1
        entry["low_quality"] = entry.get("low_quality", 0) + bool(m["low_quality"])
        if m.get("oracle_bias"):
            entry["oracle_bias_flagged"] = entry.get("oracle_bias_flagged", 0) + sum(
                b["flagged"] for b in m["oracle_bias"].values()
            )
        entry["z"] += [abs(r["z"]) for r in rows if r["z"] is not None]
        entry.setdefault("quality", []).extend(m["quality"].values())
        oracles[m["factor"]] = {k: round(v, 4) for k, v in m["oracle_accuracy"].items()}
    agree = _agreement_share(metrics)
    for model, entry in models.items():
        for counts in (entry, entry[corrected], *([entry["filtered"]] if "filtered" in entry else [])):
            for key in ("learned", "memorized"):
                mean = counts[key] / len(seeds_of([m for m in metrics if m["model"] == model]))
                counts[key] = int(mean) if mean.is_integer() else round(mean, 2)
        entry["seed_agreement"] = agree.get(model)
        z = entry.pop("z")
        entry["mean_abs_z"] = round(sum(z) / len(z), 3) if z else None
        # the mean over the model's runs (balanced- and skewed-trained) of FD and precision
        blocks = entry.pop("quality", [])
        for key in ("fd", "precision"):
            entry[key] = round(sum(b[key] for b in blocks) / len(blocks), 4) if blocks else None
    # a study without the controls (a sweep of one model, say) has no false-positive table
    has_learner = fp is not None and display(registry.LEARNER) in fp.index.get_level_values(0)
    learner = fp.xs(display(registry.LEARNER), level=0) if has_learner else None
    rates = {} if learner is None else {t: round(float(r), 4) for t, r in learner["rate"].items()}
    return {"models": models, "oracles": oracles, "learner_fp_rate": rates, "seeds": seeds}


@dataclass(frozen=True)
class Report:
    """The report of the study params.yaml describes."""

    metrics: list[dict]  # the study's metrics files
    rare_classes: list[int]
    tables: dict[str, pd.DataFrame]  # CSV stem -> table
    readme: str
    runs: set[str]  # <model>-<factor>-s<seed> of the study, for the probe figures
    rare_fraction: float = 0.0  # the one the tables and the probe figures show (`headline`)

    @property
    def summary(self) -> dict:
        """Headline numbers for `dvc exp show`; {} without metrics."""
        return summarise(self.metrics, self.tables.get("false_positives")) if self.metrics else {}


def study_report(all_metrics: list[dict], params: Params, source: str = "metrics") -> Report:
    """Tables and README of the study in `params`, from every metrics file
    found under `source`; files of other studies are named, not used."""
    metrics, left_out = in_study(all_metrics, params)
    every = metrics
    metrics, curve = headline(metrics, params)
    rare = _rare_classes(metrics, params.skew.rare_classes)
    tables = build_tables(metrics, rare, params.oracle.min_accuracy)
    readme = render_readme(metrics, tables, rare, source, params.evaluation, params.oracle.min_accuracy)
    if left_out:
        readme += (
            f"\n## Left out\n\n{len(left_out)} metrics files under `{source}/` belong to other studies "
            f"(models, factors, rare classes or source not in params.yaml): {', '.join(left_out)}.\n"
        )
    if curve:
        readme += f"\n## The rarity curve\n\n{_curve_note(curve, every)}.\n"
    runs = {train_name(model, factor, s) for model in params.models for factor in params.factors for s in params.seeds}
    return Report(metrics, rare, tables, readme, runs, min(params.skew.rare_fractions))

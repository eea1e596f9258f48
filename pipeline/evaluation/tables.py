"""The paper's tables, built from the evaluate stage's metrics files.

Every function takes the loaded metrics (a list of the JSON dicts written to
metrics/<model>/<factor>/k<k>-s<seed>.json) and returns a pandas DataFrame; a
model or factor without a file simply has no column. With several seeds the
per-class tables show one cell per (model, factor, k) over its seeds
(`combine_seeds`: z as mean ± sd, the seeds' verdicts and how many agree) and
Table 4 the range of each seed's counts. `to_markdown` renders any of them as
a pipe table.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Iterable

import numpy as np
import pandas as pd

from pipeline import registry
from pipeline.evaluation.stats import TESTS, compare, concentration, wilson
from pipeline.names import FACTORS, VERDICTS
from pipeline.registry import MODELS, display

MARKS = {"learned": "L", "memorized": "M", "opposite": "O"}
UNDEFINED = "–"
SEED_MARKS = {**MARKS, "undefined": UNDEFINED}
# why a cell is undefined, beside its "–": no samples, n below min_count, P_c^u of 0 or 1
REASON_TAGS = {"no_samples": "none", "low_support": "few", "degenerate_balanced": "0/1"}
# Table 4's second column: the pooled two-proportion test with Holm's correction across classes
CORRECTED = ("two_proportion", "holm")


def ordered(values: Iterable[str], canonical: tuple[str, ...]) -> list[str]:
    """The distinct `values` in canonical order, unknown names sorted after."""
    values = set(values)
    return [v for v in canonical if v in values] + sorted(values - set(canonical))


def _ordered_index(factor: str) -> tuple[int, str]:
    return (FACTORS.index(factor), "") if factor in FACTORS else (len(FACTORS), factor)


def _class_keys(metrics: list[dict]) -> list[str]:
    keys = {k for m in metrics for k in m["classes"] if k != "total"}
    return sorted(keys, key=int) + ["total"]


def _row_label(key: str, names: list[str] | None = None) -> str:
    if key == "total":
        return "Total"
    return names[int(key)] if names and int(key) < len(names) else key


def _class_names(metrics: list[dict]) -> list[str] | None:
    """The classes' names when every file agrees on them (a manifest source's
    makes, say); None for MNIST's digits or a mix."""
    names = {tuple(m.get("class_names") or ()) for m in metrics}
    if len(names) != 1 or not (only := list(names.pop())) or all(n.isdigit() for n in only):
        return None
    return only


def _columns(metrics: list[dict]) -> list[tuple[str, str]]:
    factors = ordered((m["factor"] for m in metrics), FACTORS)
    models = ordered((m["model"] for m in metrics), MODELS)
    present = {(m["factor"], m["model"]) for m in metrics}
    return [(f, m) for f in factors for m in models if (f, m) in present]


def by_run(metrics: list[dict]) -> dict[tuple[str, str, int], list[dict]]:
    """(model, factor, k) -> its metrics files, in seed order."""
    groups: dict[tuple[str, str, int], list[dict]] = {}
    for m in sorted(metrics, key=lambda m: m.get("seed", 0)):
        groups.setdefault((m["model"], m["factor"], m["rare_class"]), []).append(m)
    return groups


def seeds_of(metrics: list[dict]) -> list[int]:
    return sorted({m.get("seed", 0) for m in metrics})


def _mean(values: list[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return sum(kept) / len(kept) if kept else None


def _combine_rows(rows: list[dict]) -> dict:
    """One class of one (model, factor, k) over its seeds: z as the mean
    (and sample sd) over the seeds where it is defined, the verdict most
    seeds reached (ties: the first in VERDICTS order), every seed's verdict
    in `seed_verdicts`; proportions and effects as means with their range
    over seeds in place of one run's interval; counts summed."""
    verdicts = [r["verdict"] for r in rows]
    tally = Counter(verdicts)
    verdict = min(tally, key=lambda v: (-tally[v], VERDICTS.index(v)))
    zs = [r["z"] for r in rows if r["verdict"] != "undefined" and r.get("z") is not None]
    out = dict(rows[0])
    out.update(
        verdict=verdict,
        reason=Counter(r.get("reason") for r in rows).most_common(1)[0][0] if verdict == "undefined" else None,
        z=sum(zs) / len(zs) if zs and verdict != "undefined" else None,
        z_sd=statistics.stdev(zs) if len(zs) > 1 else None,
        seed_verdicts=verdicts,
        **{key: sum(r[key] for r in rows) for key in ("n_b", "k_b", "n_s", "k_s")},
    )
    for key, ci in (("p_balanced", "ci_balanced"), ("p_skewed", "ci_skewed"), ("difference", "ci_difference")):
        values = [r.get(key) for r in rows if r.get(key) is not None]
        out[key], out[ci] = _mean(values), ([min(values), max(values)] if values else None)
    out["cohen_h"] = _mean([r.get("cohen_h") for r in rows])
    return out


def combine_seeds(metrics: list[dict]) -> list[dict]:
    """One metrics dict per (model, factor, k): the file itself for one seed;
    for several, the first seed's file with `seeds` listed, every class
    combined by `_combine_rows`, and every seed's low-quality reasons."""
    out = []
    for group in by_run(metrics).values():
        if len(group) == 1:
            out.append(group[0])
            continue
        keys = _class_keys(group)
        combined = dict(group[0])
        combined["seeds"] = [m.get("seed", 0) for m in group]
        combined["low_quality"] = sorted({reason for m in group for reason in m["low_quality"]})
        combined["classes"] = {
            key: _combine_rows([m["classes"][key] for m in group if key in m["classes"]]) for key in keys
        }
        out.append(combined)
    return out


def _grid(metrics: list[dict], rare_class: int, cell) -> pd.DataFrame:
    """Classes x (factor, model) of cell(row dict), for one rare class; the
    seeds of a (model, factor) combined into one column (`combine_seeds`)."""
    chosen = combine_seeds([m for m in metrics if m["rare_class"] == rare_class])
    if not chosen:
        return pd.DataFrame()
    by_col = {(m["factor"], m["model"]): m for m in chosen}
    cols = _columns(chosen)
    keys = _class_keys(chosen)
    data = {
        (f, run_label(by_col[f, model])): [
            cell(by_col[f, model]["classes"][k]) if k in by_col[f, model]["classes"] else UNDEFINED for k in keys
        ]
        for f, model in cols
    }
    names = _class_names(chosen)
    df = pd.DataFrame(data, index=pd.Index([_row_label(k, names) for k in keys], name="class"))
    df.columns = pd.MultiIndex.from_tuples(list(data), names=["factor", "model"])
    return df


LOW_QUALITY = " [low quality]"  # beside a model whose samples fall below evaluation.max_fd / min_precision


def run_label(m: dict) -> str:
    """The paper's name of a metrics file's model, marked when its samples are low-quality."""
    return display(m["model"]) + (LOW_QUALITY if m["low_quality"] else "")


def _fmt(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return UNDEFINED
    text = f"{value:.2f}"
    return "0.00" if text == "-0.00" else text


def agreement(verdicts: list[str]) -> str:
    """How the seeds' verdicts fall: 'M 3/3', 'L 2/3 M 1/3' (most first)."""
    tally = Counter(verdicts)
    order = sorted(tally, key=lambda v: (-tally[v], VERDICTS.index(v)))
    return " ".join(f"{SEED_MARKS[v]} {tally[v]}/{len(verdicts)}" for v in order)


def z_cell(row: dict) -> str:
    """'z (L|M|O)' for a defined row, '–' for an undefined one; over several
    seeds 'mean±sd (M 3/3)' with how the seeds' verdicts fall."""
    seeds = row.get("seed_verdicts")
    if row["verdict"] == "undefined" or row.get("z") is None:
        text = undefined_cell(row)
        return f"{text} ({agreement(seeds)})" if seeds and len(set(seeds)) > 1 else text
    if seeds:
        sd = row.get("z_sd")
        return f"{_fmt(row['z'])}±{_fmt(sd) if sd is not None else UNDEFINED} ({agreement(seeds)})"
    return f"{_fmt(row['z'])} ({MARKS[row['verdict']]})"


def undefined_cell(row: dict) -> str:
    """'–' with the reason the row was not tested: '– few', '– none', '– 0/1'."""
    tag = REASON_TAGS.get(row.get("reason") or "")
    return f"{UNDEFINED} {tag}" if tag else UNDEFINED


def _interval(ci: list[float] | None, signed: bool = False) -> str:
    if ci is None:
        return ""
    fmt = "{:+.2f}" if signed else "{:.2f}"
    return f" [{fmt.format(ci[0])}, {fmt.format(ci[1])}]"


def _seed_range(ci: list[float] | None, signed: bool = False) -> str:
    if ci is None:
        return ""
    fmt = "{:+.2f}" if signed else "{:.2f}"
    return f" (seeds {fmt.format(ci[0])}..{fmt.format(ci[1])})"


def proportion_cell(row: dict) -> str:
    """'P_c^u [Wilson 95% interval]'; over seeds, the mean and the seeds' range."""
    if row.get("p_balanced") is None:
        return UNDEFINED
    spread = _seed_range if row.get("seed_verdicts") else _interval
    return _fmt(row["p_balanced"]) + spread(row.get("ci_balanced"))


def effect_cell(row: dict) -> str:
    """'difference [Newcombe 95% interval] h=Cohen's h' of P_c^s - P_c^u;
    over seeds, the means and the seeds' range of the difference."""
    if row.get("difference") is None:
        return UNDEFINED
    spread = _seed_range if row.get("seed_verdicts") else _interval
    return f"{row['difference']:+.2f}{spread(row.get('ci_difference'), signed=True)} h={row['cohen_h']:+.2f}"


def z_table(metrics: list[dict], rare_class: int) -> pd.DataFrame:
    """Tables 1 and 2: z per class (rows 0..9, Total) x (factor, model)."""
    return _grid(metrics, rare_class, z_cell)


def z_bars(metrics: list[dict]) -> dict[str, pd.DataFrame]:
    """`dvc plots` data: for every (model, factor, k), its seeds combined
    (`combine_seeds`: z the mean, verdict the most seeds'), <model>-<factor>-k<k>
    -> one row per class (class, z, verdict, note, critical, title;
    .dvc/plots/z.json draws them). An undefined class keeps its row, with no z
    and why in `note`, rather than vanishing or being drawn as z = 0;
    `critical` is the two-sided normal critical value at the run's alpha
    (1.96 at 0.05). The Total is left out: its scale would hide the classes."""
    why = {"no_samples": "no samples", "low_support": "too few samples", "degenerate_balanced": "P_c^u is 0 or 1"}
    out = {}
    for m in combine_seeds(metrics):
        names = m.get("class_names")
        title = f"{display(m['model'])} · {m['factor']} · k = {m['rare_class']}"
        if m.get("seeds"):
            title += f" · mean of {len(m['seeds'])} seeds"
        critical = round(statistics.NormalDist().inv_cdf(1 - m["alpha"] / 2), 4)
        rows = []
        for k, r in sorted(((k, r) for k, r in m["classes"].items() if k != "total"), key=lambda kr: int(kr[0])):
            defined = r["verdict"] != "undefined" and r.get("z") is not None
            rows.append(
                {
                    "class": _row_label(k, names),
                    "z": round(r["z"], 4) if defined else None,
                    "verdict": r["verdict"] if defined else "undefined",
                    "note": "" if defined else f"undefined: {why.get(r.get('reason') or '', 'not tested')}",
                    "critical": critical,
                    "title": title,
                }
            )
        out[f"{m['model']}-{m['factor']}-k{m['rare_class']}"] = pd.DataFrame(rows)
    return out


def proportions_table(metrics: list[dict], rare_class: int) -> pd.DataFrame:
    """P_c^u, the balanced model's fraction of f=1 samples per class, with its Wilson 95% interval."""
    return _grid(metrics, rare_class, proportion_cell)


def effect_table(metrics: list[dict], rare_class: int) -> pd.DataFrame:
    """P_c^s - P_c^u per class with its Newcombe 95% interval and Cohen's h."""
    return _grid(metrics, rare_class, effect_cell)


def counts_table(metrics: list[dict]) -> pd.DataFrame:
    """Table 3 (CompCars): for every run of a manifest source, the oracle
    counts of samples by class x factor value from the balanced-trained (D_u)
    and the skewed-trained (D_r) model, and on the D_r row z per class and for
    the total, with verdicts (seeds combined, counts summed over them)."""
    chosen = combine_seeds([m for m in metrics if m.get("source") == "manifest"])
    if not chosen:
        return pd.DataFrame()
    order = {m: i for i, m in enumerate(MODELS)}
    records = []
    for m in sorted(chosen, key=lambda m: (m["factor"], m["rare_class"], order.get(m["model"], len(MODELS)))):
        names = m.get("class_names") or []
        values = m.get("factor_values") or ["absent", "present"]
        keys = _class_keys([m])[:-1]
        label = {k: _row_label(k, names) for k in keys}
        rare = _row_label(str(m["rare_class"]), names)
        for trained_on, n, k_present in (("D_u", "n_b", "k_b"), (f"D_r ({rare} rare)", "n_s", "k_s")):
            record = {"factor": m["factor"], "model": display(m["model"]), "trained on": trained_on}
            for key in keys:
                row = m["classes"][key]
                record[f"{label[key]} {values[0]}"] = row[n] - row[k_present]
                record[f"{label[key]} {values[1]}"] = row[k_present]
            for key in keys + ["total"]:
                record[f"z {_row_label(key, names)}"] = z_cell(m["classes"][key]) if n == "n_s" else ""
            records.append(record)
    return pd.DataFrame.from_records(records).set_index(["factor", "model", "trained on"])


def verdict_counts(m: dict, corrected: bool = False, filtered: bool = False) -> dict[str, int]:
    """Classes per verdict; with `corrected`, under CORRECTED recomputed from
    the counts; with `filtered`, of the samples the sample filter kept
    (`classes_filtered`; all zeros for a file without them)."""
    counts = dict.fromkeys(VERDICTS, 0)
    if corrected:
        rows = {k: r.verdict for k, r in _recompute(m, *CORRECTED).items()}
    elif filtered:
        rows = {k: r["verdict"] for k, r in (m.get("classes_filtered") or {}).items()}
    else:
        rows = {k: r["verdict"] for k, r in m["classes"].items()}
    for key, verdict in rows.items():
        if key != "total":
            counts[verdict] += 1
    return counts


def _lm_numbers(counts: dict[str, int], paper_style: bool) -> tuple[int, ...]:
    if paper_style:
        # The paper counts a significant move against the skew as memorized.
        return counts["learned"], counts["memorized"] + counts["opposite"]
    return counts["learned"], counts["memorized"], counts["opposite"]


def _lm(per_seed: list[dict[str, int]], paper_style: bool) -> str:
    """'L/M' of one seed's counts; over several seeds each number as its
    range, 'min-max' ('7-9/1-3'), or one number where the seeds agree."""
    numbers = list(zip(*(_lm_numbers(c, paper_style) for c in per_seed), strict=True))
    return "/".join(str(lo) if lo == hi else f"{lo}-{hi}" for lo, hi in ((min(n), max(n)) for n in numbers))


def _filter_label(metrics: list[dict]) -> str | None:
    """'filtered: confident' when some file has filtered verdicts, else None."""
    filters = sorted({m["sample_filter"] for m in metrics if m.get("classes_filtered") is not None})
    return "filtered: " + " / ".join(filters) if filters else None


def concentration_of(m: dict) -> dict:
    """The concentration test of a metrics file: as the evaluate stage stored
    it, or, for a file written before it existed, computed from the per-class
    counts it holds (the same counts, so the same answer)."""
    if m.get("concentration"):
        return m["concentration"]
    balanced, skewed = _count_tables(m)
    return concentration(balanced, skewed, int(m["rare_class"]), float(m["alpha"]))


def concentration_cell(files: list[dict]) -> str:
    """The concentration test of one (model, factor, k): 'M 0.10→0.70' (share of
    f = 1 samples read as class k, balanced run → skewed run); over seeds the
    seeds' verdicts ('M 3/3'); '' without the test in the files."""
    rows = [concentration_of(m) for m in files]
    if not rows:
        return ""
    if len(rows) > 1:
        return agreement([r["verdict"] for r in rows])
    r = rows[0]
    if r["verdict"] == "undefined":
        return UNDEFINED
    return f"{MARKS[r['verdict']]} {_fmt(r['share_balanced'])}→{_fmt(r['share_skewed'])}"


def summary_table(metrics: list[dict], paper_style: bool = True) -> pd.DataFrame:
    """Table 4: per (factor, k) and model, 'L/M' class counts (opposite
    counted as M; 'L/M/O' without paper_style) under the test the metrics
    were judged with; beside it, under the pooled two-proportion test with
    Holm's correction (CORRECTED), recomputed from the same counts; the same
    test on the samples the sample filter kept ("filtered"); and the
    concentration test's verdict with its two shares ("concentration"). A
    last row sums each count column. With several seeds every number is the
    range of the seeds' counts (the Total row: of each seed's sum).
    Comparisons past the quality gates are marked [low quality]."""
    if not metrics:
        return pd.DataFrame()
    models = ordered((m["model"] for m in metrics), MODELS)
    seeds = seeds_of(metrics)
    tests = [_settings_label(metrics), "+".join(CORRECTED)]
    if filtered := _filter_label(metrics):
        tests.append(filtered)
    by_key = {
        (m["factor"], m["rare_class"], m["model"], m.get("seed", 0)): [
            verdict_counts(m),
            verdict_counts(m, corrected=True),
            verdict_counts(m, filtered=True) if m.get("classes_filtered") is not None else None,
        ][: len(tests)]
        for m in metrics
    }
    files = by_run(metrics)
    low = {(m["factor"], m["rare_class"], m["model"]) for m in metrics if m["low_quality"]}
    rows = sorted({(m["factor"], m["rare_class"]) for m in metrics}, key=lambda r: (_ordered_index(r[0]), r[1]))
    totals = {(model, i, s): dict.fromkeys(VERDICTS, 0) for model in models for i in range(len(tests)) for s in seeds}
    data = []
    for factor, k in rows:
        line = []
        for model in models:
            per_seed = {s: by_key[factor, k, model, s] for s in seeds if (factor, k, model, s) in by_key}
            for i in range(len(tests)):
                if not per_seed or any(both[i] is None for both in per_seed.values()):
                    line.append("")  # no such model here, or files written before the filter existed
                    continue
                for s, both in per_seed.items():
                    for v in VERDICTS:
                        totals[model, i, s][v] += both[i][v]
                cell = _lm([both[i] for both in per_seed.values()], paper_style)
                line.append(cell + (LOW_QUALITY if (factor, k, model) in low else ""))
            line.append(concentration_cell(files.get((model, factor, k), [])))
        data.append(line)
    total = []
    for model in models:
        total += [_lm([totals[model, i, s] for s in seeds], paper_style) for i in range(len(tests))]
        marks = [concentration_cell([m]) for m in metrics if m["model"] == model]
        total.append(f"M {sum(c.startswith('M') for c in marks)}/{len(marks)}")
    data.append(total)
    index = pd.MultiIndex.from_tuples([(f, f"k={k}") for f, k in rows] + [("Total", "")], names=["factor", "k"])
    heads = [*tests, "concentration"]
    columns = pd.MultiIndex.from_tuples([(display(m), t) for m in models for t in heads], names=["model", "test"])
    return pd.DataFrame(data, index=index, columns=columns)


def bias_table(metrics: list[dict]) -> pd.DataFrame:
    """The oracles' bias on each model: per (model, factor) and class, the
    share of f = 1 they read on the model's balanced samples against their
    reading of the real balanced test images ('0.77/0.53'), with '!' where
    the gap exceeds evaluation.max_oracle_bias. One row per balanced run (its
    k = 1 and k = 2 files read the same samples; the first is shown)."""
    records = {}
    order = {m: i for i, m in enumerate(ordered((m["model"] for m in metrics), MODELS))}
    for m in sorted(metrics, key=lambda m: (order[m["model"]], _ordered_index(m["factor"]), m.get("seed", 0))):
        bias = m.get("oracle_bias")
        key = (display(m["model"]), m["factor"], m.get("seed", 0))
        if not bias or key in records:
            continue
        record = {}
        for c, b in sorted(bias.items(), key=lambda t: int(t[0])):
            cell = f"{_fmt(b['p_model'])}/{_fmt(b['p_data'])}"
            record[_row_label(c, m.get("class_names"))] = cell + (" !" if b["flagged"] else "")
        record["flagged"] = sum(b["flagged"] for b in bias.values())
        records[key] = record
    if not records:
        return pd.DataFrame()
    df = pd.DataFrame.from_dict(records, orient="index")
    df.index = pd.MultiIndex.from_tuples(df.index, names=["model", "factor", "seed"])
    return df


def concentration_table(metrics: list[dict]) -> pd.DataFrame:
    """The concentration test per (model, factor, k, seed), on all samples and
    on the filtered ones: samples with f = 1 (n) and the share read as class k
    in each run, z, p and the verdict; beside it the per-class test's verdict
    on class k, so where the two disagree is visible."""
    records = []
    order = {m: i for i, m in enumerate(ordered((m["model"] for m in metrics), MODELS))}
    key = lambda m: (order[m["model"]], _ordered_index(m["factor"]), m["rare_class"], m.get("seed", 0))  # noqa: E731
    for m in sorted(metrics, key=key):
        c = concentration_of(m)
        f = m.get("concentration_filtered") or {}
        records.append(
            {
                "model": display(m["model"]),
                "factor": m["factor"],
                "k": m["rare_class"],
                "seed": m.get("seed", 0),
                "n_b": c["n_b"],
                "share_balanced": c["share_balanced"],
                "n_s": c["n_s"],
                "share_skewed": c["share_skewed"],
                "z": c["z"],
                "verdict": c["verdict"],
                "verdict_filtered": f.get("verdict"),
                "class_k_verdict": m["classes"][str(m["rare_class"])]["verdict"],
            }
        )
    if not records:
        return pd.DataFrame()
    return pd.DataFrame.from_records(records).set_index(["model", "factor", "k", "seed"])


def _settings_label(metrics: list[dict]) -> str:
    """The test (and correction) the metrics files were judged with, e.g. 'one_sample'."""
    labels = sorted({m["test"] + ("" if m["correction"] == "none" else "+" + m["correction"]) for m in metrics})
    return " / ".join(labels)


def _count_tables(m: dict) -> tuple[np.ndarray, np.ndarray]:
    keys = _class_keys([m])[:-1]
    rows = [m["classes"][k] for k in keys]
    balanced = np.array([[r["n_b"] - r["k_b"], r["k_b"]] for r in rows], dtype=np.int64)
    skewed = np.array([[r["n_s"] - r["k_s"], r["k_s"]] for r in rows], dtype=np.int64)
    return balanced, skewed


def _recompute(m: dict, test: str, correction: str | None = None) -> dict:
    """Every class of one metrics file judged again from its counts under
    `test` (and `correction`, default the file's)."""
    balanced, skewed = _count_tables(m)
    return compare(
        balanced,
        skewed,
        rare_class=int(m["rare_class"]),
        test=test,
        alpha=float(m["alpha"]),
        correction=m["correction"] if correction is None else correction,
        num_classes=len(balanced),
        min_count=m["min_count"],
    )


def _flags(control: str, results: list[dict]) -> tuple[int, int]:
    """(flagged, defined) classes of one control's recomputed results; what
    is flagged is the control's hit (pipeline/registry.py)."""
    rows = [r for res in results for k, r in res.items() if k != "total" and r.verdict != "undefined"]
    return sum(registry.control(control).flags(r.verdict) for r in rows), len(rows)


CONCENTRATION_ROW = "concentration"  # the concentration test's row in the calibration table


def _rate(flagged: int, defined: int, suffix: str = "") -> dict:
    ci = wilson(flagged, defined) or (float("nan"), float("nan"))
    return {
        f"rate{suffix}": flagged / defined if defined else float("nan"),
        f"ci_low{suffix}": ci[0],
        f"ci_high{suffix}": ci[1],
    }


def _calibration_counts(control: str, files: list[dict], test: str) -> tuple[int, int, dict] | None:
    """(flagged, defined, filtered rate columns) of one control under `test`:
    summed over the files' redraws, or recomputed from each file's one draw
    when some file has none; None when no file measured `test` (the
    concentration row of files written before it existed)."""
    if all(m["calibration"] for m in files):
        have = [m for m in files if test in m["calibration"]]
        if not have:
            return None
        flagged = sum(m["calibration"][test]["flagged"] for m in have)
        defined = sum(m["calibration"][test]["defined"] for m in have)
        filtered = {}
        if all(test in (m.get("calibration_filtered") or {}) for m in have):
            f_flagged = sum(m["calibration_filtered"][test]["flagged"] for m in have)
            f_defined = sum(m["calibration_filtered"][test]["defined"] for m in have)
            filtered = _rate(f_flagged, f_defined, "_filtered")
        return flagged, defined, filtered
    if test == CONCENTRATION_ROW:
        verdicts = [concentration_of(m)["verdict"] for m in files]
        defined_ = [v for v in verdicts if v != "undefined"]
        return sum(registry.control(control).flags(v) for v in defined_), len(defined_), {}
    return (*_flags(control, [_recompute(m, test) for m in files]), {})


def false_positive_table(metrics: list[dict]) -> pd.DataFrame:
    """Calibration on the controls under every test, with Wilson 95% intervals.

    data-learner: each memorized/opposite class is a false positive by
    construction, so flagged/defined is the test's false-positive rate.
    data-memorizer: flagged counts memorized classes, the true-positive rate.
    data-mixer: memorized classes at a known, partial effect: the test's power.
    The degraded memorizer and learner: the same rates at the generative
    models' FD (evaluation.degraded_fd). Counted over the `control_resamples`
    redraws the evaluate stage made of each control's samples, or, for files
    without them, recomputed from the one draw's stored counts (`resamples`
    0); `rate_filtered` counts the same redraws after the sample filter. The
    `concentration` row: the concentration test, one comparison a redraw.
    """
    records = []
    for control, measure in ((c, registry.control(c).measure) for c in registry.CONTROLS):
        files = [m for m in metrics if m["model"] == control]
        if not files:
            continue
        resampled = all(m["calibration"] for m in files)
        for test in (*TESTS, CONCENTRATION_ROW):
            counted = _calibration_counts(control, files, test)
            if counted is None:
                continue
            flagged, defined, filtered = counted
            records.append(
                {
                    "control": display(control),
                    "test": test,
                    "measure": measure,
                    "files": len(files),
                    "resamples": min(m["control_resamples"] for m in files) if resampled else 0,
                    "defined": defined,
                    "flagged": flagged,
                    **_rate(flagged, defined),
                    **filtered,
                }
            )
    if not records:
        return pd.DataFrame()
    return pd.DataFrame.from_records(records).set_index(["control", "test"])


def quality_table(metrics: list[dict], min_accuracy: float | None = None) -> pd.DataFrame:
    """Per (model, factor, k, seed): sample count, sample_confidence, the oracles'
    accuracies and the defined classes; with min_accuracy, whether both
    oracles reach it; for both runs (u: balanced-trained, s: skewed-trained)
    FD, precision, recall and the factor oracle's ambiguity, the real-vs-real
    FD beside them, the samples dropped as ambiguous, and whether the
    comparison is low-quality."""
    if not metrics:
        return pd.DataFrame()
    order = {m: i for i, m in enumerate(ordered((m["model"] for m in metrics), MODELS))}
    records = []
    key = lambda m: (order[m["model"]], _ordered_index(m["factor"]), m["rare_class"], m.get("seed", 0))  # noqa: E731
    for m in sorted(metrics, key=key):
        oracle = m.get("oracle_accuracy") or {}
        record = {
            "model": display(m["model"]),
            "factor": m["factor"],
            "k": m["rare_class"],
            "seed": m.get("seed", 0),
            "num_samples": m.get("num_samples"),
            "sample_confidence": m.get("sample_confidence"),
            "label_oracle": oracle.get("label"),
            "factor_oracle": oracle.get("factor"),
            "defined_classes": len(_class_keys([m])) - 1 - verdict_counts(m)["undefined"],
        }
        if min_accuracy is not None:
            accs = (record["label_oracle"], record["factor_oracle"])
            record["oracles_ok"] = all(a is not None and a >= min_accuracy for a in accs)
        record.update(_quality_columns(m))
        records.append(record)
    return pd.DataFrame.from_records(records).set_index(["model", "factor", "k", "seed"])


def _quality_columns(m: dict) -> dict:
    q = m["quality"]
    out = {}
    for key in ("fd", "precision", "recall", "ambiguity"):
        for run, tag in (("balanced", "u"), ("skewed", "s")):
            out[f"{key}_{tag}"] = q[run][key] if run in q else None
    out["fd_real"] = q["skewed"]["baseline"]["fd"] if "skewed" in q else None
    out["dropped"] = sum(m["dropped"].values())
    kept = m.get("kept") or {}
    out["kept_u"], out["kept_s"] = kept.get("balanced"), kept.get("skewed")
    out["low_quality"] = bool(m["low_quality"])
    return out


def cell_text(value: object) -> str:
    """A table cell as text: floats to 3 decimals, missing values as '–'."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return UNDEFINED
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if isinstance(value, float | np.floating):
        return f"{value:.3f}"
    return str(value)


def flatten(df: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    """Headers and text rows of `df`: index levels become leading columns,
    MultiIndex column levels are joined with ' / '."""
    if isinstance(df.index, pd.RangeIndex) and df.index.name is None:
        flat = df
    else:
        flat = df.reset_index()
    headers = [" / ".join(str(p) for p in c if p != "") if isinstance(c, tuple) else str(c) for c in flat.columns]
    rows = [[cell_text(v) for v in row] for row in flat.itertuples(index=False, name=None)]
    return headers, rows


def to_markdown(df: pd.DataFrame) -> str:
    """A GitHub pipe table, columns padded so the raw text reads as a table."""
    headers, rows = flatten(df)
    if not headers:
        return "_(empty)_"
    rows = [[c.replace("|", "\\|") for c in row] for row in rows]
    widths = [max(3, len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)])

"""The paper's tables, built from the evaluate stage's metrics files.

Every function takes the loaded metrics (a list of the JSON dicts written to
metrics/<model>/<factor>/k<k>.json) and returns a pandas DataFrame; a model
or factor without a file simply has no column. `to_markdown` renders any of
them as a pipe table.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import pandas as pd

from pipeline.evaluation.stats import TESTS, compare, false_positive_rate, wilson
from pipeline.names import FACTORS, MODELS, VERDICTS, display

MARKS = {"learned": "L", "memorized": "M", "opposite": "O"}
UNDEFINED = "–"
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


def _grid(metrics: list[dict], rare_class: int, cell) -> pd.DataFrame:
    """Classes x (factor, model) of cell(row dict), for one rare class."""
    chosen = [m for m in metrics if m["rare_class"] == rare_class]
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


def z_cell(row: dict) -> str:
    """'z (L|M|O)' for a defined row, '–' for an undefined one."""
    if row["verdict"] == "undefined" or row.get("z") is None:
        return undefined_cell(row)
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


def proportion_cell(row: dict) -> str:
    """'P_c^u [Wilson 95% interval]'."""
    if row.get("p_balanced") is None:
        return UNDEFINED
    return _fmt(row["p_balanced"]) + _interval(row.get("ci_balanced"))


def effect_cell(row: dict) -> str:
    """'difference [Newcombe 95% interval] h=Cohen's h' of P_c^s - P_c^u."""
    if row.get("difference") is None:
        return UNDEFINED
    return f"{row['difference']:+.2f}{_interval(row.get('ci_difference'), signed=True)} h={row['cohen_h']:+.2f}"


def z_table(metrics: list[dict], rare_class: int) -> pd.DataFrame:
    """Tables 1 and 2: z per class (rows 0..9, Total) x (factor, model)."""
    return _grid(metrics, rare_class, z_cell)


def z_bars(metrics: list[dict]) -> dict[str, pd.DataFrame]:
    """`dvc plots` data: for every metrics file, <model>-<factor>-k<k> -> one
    row per defined class (class, z, verdict). Undefined classes are left out
    rather than drawn as z = 0, and so is the Total, whose scale would hide
    the classes."""
    out = {}
    for m in metrics:
        names = m.get("class_names")
        rows = [
            {"class": _row_label(k, names), "z": round(r["z"], 4), "verdict": r["verdict"]}
            for k, r in sorted(((k, r) for k, r in m["classes"].items() if k != "total"), key=lambda kr: int(kr[0]))
            if r["verdict"] != "undefined" and r.get("z") is not None
        ]
        out[f"{m['model']}-{m['factor']}-k{m['rare_class']}"] = pd.DataFrame(rows, columns=["class", "z", "verdict"])
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
    the total, with verdicts."""
    chosen = [m for m in metrics if m.get("source") == "manifest"]
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


def verdict_counts(m: dict, corrected: bool = False) -> dict[str, int]:
    """Classes per verdict; with `corrected`, under CORRECTED recomputed from the counts."""
    counts = dict.fromkeys(VERDICTS, 0)
    if corrected:
        rows = {k: r.verdict for k, r in _recompute(m, *CORRECTED).items()}
    else:
        rows = {k: r["verdict"] for k, r in m["classes"].items()}
    for key, verdict in rows.items():
        if key != "total":
            counts[verdict] += 1
    return counts


def _lm(counts: dict[str, int], paper_style: bool) -> str:
    if paper_style:
        # The paper counts a significant move against the skew as memorized.
        return f"{counts['learned']}/{counts['memorized'] + counts['opposite']}"
    return f"{counts['learned']}/{counts['memorized']}/{counts['opposite']}"


def summary_table(metrics: list[dict], paper_style: bool = True) -> pd.DataFrame:
    """Table 4: per (factor, k) and model, 'L/M' class counts (opposite
    counted as M; 'L/M/O' without paper_style) under the test the metrics
    were judged with and, beside it, under the pooled two-proportion test
    with Holm's correction (CORRECTED), recomputed from the same counts. A
    last row sums each column."""
    if not metrics:
        return pd.DataFrame()
    models = ordered((m["model"] for m in metrics), MODELS)
    tests = [_settings_label(metrics), "+".join(CORRECTED)]
    by_key = {
        (m["factor"], m["rare_class"], m["model"]): [verdict_counts(m), verdict_counts(m, corrected=True)]
        for m in metrics
    }
    low = {(m["factor"], m["rare_class"], m["model"]) for m in metrics if m["low_quality"]}
    rows = sorted({(m["factor"], m["rare_class"]) for m in metrics}, key=lambda r: (_ordered_index(r[0]), r[1]))
    totals = {(model, i): dict.fromkeys(VERDICTS, 0) for model in models for i in range(len(tests))}
    data = []
    for factor, k in rows:
        line = []
        for model in models:
            both = by_key.get((factor, k, model))
            for i in range(len(tests)):
                if both is None:
                    line.append("")
                    continue
                for v in VERDICTS:
                    totals[model, i][v] += both[i][v]
                line.append(_lm(both[i], paper_style) + (LOW_QUALITY if (factor, k, model) in low else ""))
        data.append(line)
    data.append([_lm(totals[model, i], paper_style) for model in models for i in range(len(tests))])
    index = pd.MultiIndex.from_tuples([(f, f"k={k}") for f, k in rows] + [("Total", "")], names=["factor", "k"])
    columns = pd.MultiIndex.from_tuples([(display(m), t) for m in models for t in tests], names=["model", "test"])
    return pd.DataFrame(data, index=index, columns=columns)


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


CALIBRATION = {
    "data-learner": "false-positive rate",
    "data-memorizer": "true-positive rate",
    "data-mixer": "power at mixer_fraction",
}


def _flags(control: str, results: list[dict]) -> tuple[int, int]:
    """(flagged, defined) classes of one control's recomputed results."""
    if control == "data-learner":
        return false_positive_rate(results)
    rows = [r for res in results for k, r in res.items() if k != "total" and r.verdict != "undefined"]
    return sum(r.verdict == "memorized" for r in rows), len(rows)


def false_positive_table(metrics: list[dict]) -> pd.DataFrame:
    """Calibration on the controls under every test, with Wilson 95% intervals.

    data-learner: each memorized/opposite class is a false positive by
    construction, so flagged/defined is the test's false-positive rate.
    data-memorizer: flagged counts memorized classes, the true-positive rate.
    data-mixer: memorized classes at a known, partial effect: the test's power.
    Counted over the `control_resamples` redraws the evaluate stage made of
    each control's samples, or, for files without them, recomputed from the
    one draw's stored counts (`resamples` 0).
    """
    records = []
    for control, measure in CALIBRATION.items():
        files = [m for m in metrics if m["model"] == control]
        if not files:
            continue
        resampled = all(m["calibration"] for m in files)
        for test in TESTS:
            if resampled:
                flagged = sum(m["calibration"][test]["flagged"] for m in files)
                defined = sum(m["calibration"][test]["defined"] for m in files)
            else:
                flagged, defined = _flags(control, [_recompute(m, test) for m in files])
            ci = wilson(flagged, defined) or (float("nan"), float("nan"))
            records.append(
                {
                    "control": display(control),
                    "test": test,
                    "measure": measure,
                    "files": len(files),
                    "resamples": min(m["control_resamples"] for m in files) if resampled else 0,
                    "defined": defined,
                    "flagged": flagged,
                    "rate": flagged / defined if defined else float("nan"),
                    "ci_low": ci[0],
                    "ci_high": ci[1],
                }
            )
    if not records:
        return pd.DataFrame()
    return pd.DataFrame.from_records(records).set_index(["control", "test"])


def quality_table(metrics: list[dict], min_accuracy: float | None = None) -> pd.DataFrame:
    """Per (model, factor, k): sample count, sample_confidence, the oracles'
    accuracies and the defined classes; with min_accuracy, whether both
    oracles reach it; for both runs (u: balanced-trained, s: skewed-trained)
    FD, precision, recall and the factor oracle's ambiguity, the real-vs-real
    FD beside them, the samples dropped as ambiguous, and whether the
    comparison is low-quality."""
    if not metrics:
        return pd.DataFrame()
    order = {m: i for i, m in enumerate(ordered((m["model"] for m in metrics), MODELS))}
    records = []
    for m in sorted(metrics, key=lambda m: (order[m["model"]], _ordered_index(m["factor"]), m["rare_class"])):
        oracle = m.get("oracle_accuracy") or {}
        record = {
            "model": display(m["model"]),
            "factor": m["factor"],
            "k": m["rare_class"],
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
    return pd.DataFrame.from_records(records).set_index(["model", "factor", "k"])


def _quality_columns(m: dict) -> dict:
    q = m["quality"]
    out = {}
    for key in ("fd", "precision", "recall", "ambiguity"):
        for run, tag in (("balanced", "u"), ("skewed", "s")):
            out[f"{key}_{tag}"] = q[run][key] if run in q else None
    out["fd_real"] = q["skewed"]["baseline"]["fd"] if "skewed" in q else None
    out["dropped"] = sum(m["dropped"].values())
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

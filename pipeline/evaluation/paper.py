"""A study against the paper's published tables, cell by cell (Haider,
Moroshko, Xue and Tsaftaris 2025; Tables 1, 2 and 4, as transcribed in
references/haider2025/).

A cell is one (model, factor, rare class k, digit) of Table 4, the digits
0-9 and its summary row (the paper's "all", our "total"). The study's
verdict of a cell is read from its metrics file (the class rows of
`classes` and their `verdict` by default; `classes_filtered`, another key
or a function of the row: `join`) and turned into the paper's
marks as Table 4 does (`tables.summary_table`, `rarity.run_rows`): learned
is L, memorized is M, and opposite (a significant move against the skew)
is M too. An undefined cell has no mark: it is left out of every share and
of kappa, and counted apart. Controls and anything the paper has no cell
for (another model, factor or k, a manifest source) are left out, counted
by files. With several seeds a cell has a row per seed and one for the
seeds' majority; the statistics count each cell once.

Each cell that disagrees is put down to the first cause that applies (`why`,
WHY): the seeds disagree, a run failed the quality gates, the filtered
samples give the paper's mark (misreads), another recorded test does, the
study's shift is towards the skew but not significant (power), or none of
these (stable), read from the evidence each metrics file holds.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

# scikit-learn is locked (requirements/lock.txt, through mlxtend), so kappa and the
# confusion table come from it rather than from a formula of our own
from sklearn.metrics import cohen_kappa_score, confusion_matrix

from pipeline import registry
from pipeline.errors import RgfError
from pipeline.evaluation.tables import MARKS, ordered, to_markdown
from pipeline.io import atomic_entries, check_outputs, write_json
from pipeline.names import FACTORS, VERDICTS
from pipeline.paths import PAPER, key_of
from pipeline.registry import MODELS, display

TABLE_4 = "table_4_verdicts.csv"
TABLES_1_2 = "tables_1_2_z.csv"
SIGNATURE = "comparison.json"  # the file every paper-comparison output holds
TOTAL = "total"
DIGITS = tuple(str(d) for d in range(10))
LM = ("L", "M")
# the paper's marks of our verdicts: opposite counts as M, as in Table 4; undefined has none
MARK = {**MARKS, "opposite": MARKS["memorized"], "undefined": ""}
ROWS = {"rare": "rare class", "other": "other classes", TOTAL: "total"}
FIX = "give --paper the folder with the paper's tables as published (references/haider2025)"

Selector = str | Callable[[dict], str]
# the groups agreement is broken down by: the rare class's own row, the other digits and the total, per k
BY = {"model": ["model"], "factor": ["factor"], "k": ["rare_class"], "row": ["row", "rare_class"]}


@dataclass(frozen=True)
class Paper:
    """Tables 1, 2 and 4 as one frame: rare_class, factor, model, digit ("0".."9", "total"),
    verdict (L/M), z (NaN where the paper prints none), bold (the paper prints z bold)."""

    cells: pd.DataFrame
    folder: str


def _read(path: Path, columns: list[str]) -> pd.DataFrame:
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except FileNotFoundError:
        raise RgfError(f"{path}: missing; {FIX}") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise RgfError(f"{path}: not a readable CSV ({str(err).strip()}); {FIX}") from None
    if list(table.columns) != columns:
        raise RgfError(f"{path}: columns {list(table.columns)}, expected {columns}; {FIX}")
    if table.empty:
        raise RgfError(f"{path}: no rows; {FIX}")
    table = table.apply(lambda column: column.str.strip())
    _check(path, table, "rare_class", table["rare_class"].str.fullmatch(r"\d+"), "a class number")
    _check(path, table, "model", table["model"].isin(MODELS), f"one of {', '.join(MODELS)}")
    _check(path, table, "factor", table["factor"].isin(FACTORS), f"one of {', '.join(FACTORS)}")
    return table.astype({"rare_class": int})


def _check(path: Path, table: pd.DataFrame, column: str, ok: pd.Series, expected: str) -> None:
    if not ok.all():
        line = int(np.flatnonzero(~ok.to_numpy())[0])
        raise RgfError(f"{path}, line {line + 2}: {column} {table[column].iloc[line]!r}, expected {expected}; {FIX}")


def _grid(path: Path, table: pd.DataFrame, digits: tuple[str, ...]) -> None:
    """Every (k, factor, model) column has each of `digits` once."""
    keys = ["rare_class", "factor", "model"]
    counts = table.groupby(keys)["digit"].agg(lambda d: sorted(d) == sorted(digits))
    if not counts.all():
        k, factor, model = counts.index[~counts.to_numpy()][0]
        raise RgfError(
            f"{path}: k={k} {factor} {model} lacks a digit or repeats one (needs {', '.join(digits)}); {FIX}"
        )


def load_paper(folder: Path) -> Paper:
    """The paper's Table 4 (L/M per digit and its "all" row; its "count" row must
    equal the column's L) and Tables 1-2 (z, blank where none is printed)."""
    folder = Path(folder)
    path4, path12 = folder / TABLE_4, folder / TABLES_1_2
    t4 = _read(path4, ["rare_class", "factor", "digit", "model", "verdict"])
    _check(path4, t4, "digit", t4["digit"].isin([*DIGITS, "all", "count"]), "0-9, all or count")
    _grid(path4, t4, (*DIGITS, "all", "count"))
    marks = t4["digit"] != "count"
    _check(path4, t4, "verdict", t4["verdict"].isin(LM) | ~marks, "L or M")
    _check(path4, t4, "verdict", t4["verdict"].str.fullmatch(r"\d+") | marks, "a count of L")
    learned = t4[marks].groupby(["rare_class", "factor", "model"])["verdict"].agg(lambda v: str((v == "L").sum()))
    stated = t4[~marks].set_index(["rare_class", "factor", "model"])["verdict"]
    if (wrong := stated[stated != learned.reindex(stated.index)]).size:
        (k, factor, model), n = wrong.index[0], wrong.iloc[0]
        raise RgfError(f"{path4}: k={k} {factor} {model}: count {n}, its digits hold {learned[k, factor, model]} L")
    t4 = t4[marks].replace({"digit": {"all": TOTAL}})
    t12 = _read(path12, ["rare_class", "factor", "digit", "model", "z", "marked_learned"])
    _check(path12, t12, "digit", t12["digit"].isin([*DIGITS, TOTAL]), "0-9 or total")
    _grid(path12, t12, (*DIGITS, TOTAL))
    z = pd.to_numeric(t12["z"].replace("", "nan"), errors="coerce")
    _check(path12, t12, "z", z.notna() | (t12["z"] == ""), "a number or blank")
    _check(path12, t12, "marked_learned", t12["marked_learned"].isin(["", "bold"]), "blank or bold")
    t12 = t12.assign(z=z, bold=t12["marked_learned"] == "bold").drop(columns="marked_learned")
    keys = ["rare_class", "factor", "model", "digit"]
    cells = t4.merge(t12, on=keys, how="outer", indicator=True)
    if (cells["_merge"] != "both").any():
        raise RgfError(f"{folder}: {TABLE_4} and {TABLES_1_2} cover different cells; {FIX}")
    return Paper(_sorted(cells.drop(columns="_merge"))[[*keys, "verdict", "z", "bold"]], str(folder))


def _sorted(cells: pd.DataFrame) -> pd.DataFrame:
    """In the paper's order: k, factor, model, digit 0-9 then total, seeds then their majority."""
    rank = {"model": MODELS, "factor": FACTORS, "digit": (*DIGITS, TOTAL)}

    def key(column: pd.Series) -> pd.Series:
        if column.name == "seed":
            return column.map(lambda s: int(s) if s.isdigit() else np.inf)
        return column.map({v: i for i, v in enumerate(rank[column.name])}) if column.name in rank else column

    by = [c for c in ("rare_class", "factor", "model", "digit", "seed") if c in cells]
    return cells.sort_values(by, key=key).reset_index(drop=True)


def _select(verdict: Selector) -> tuple[Callable[[dict], str], str]:
    """A class row -> its verdict: a key (dotted into nested dicts: `verdicts.two_proportion`) or a function."""
    if callable(verdict):
        return verdict, getattr(verdict, "__name__", "custom")

    def pick(row: dict) -> str:
        value = row
        for part in verdict.split("."):
            if not isinstance(value, dict) or part not in value:
                raise KeyError(verdict)
            value = value[part]
        return value

    return pick, verdict


def _study_rows(m: dict, classes: str, pick: Callable[[dict], str], label: str) -> list[dict]:
    run = key_of(m)
    if not isinstance(m.get(classes), dict):
        raise RgfError(
            f"{run}: no {classes!r} (written before it existed?); rerun its evaluate stage or compare `classes`"
        )
    rows = []
    for key, row in m[classes].items():
        name = f"{run}, class {key}"
        try:
            verdict = pick(row)
        except KeyError:
            raise RgfError(
                f"{name}: no {label!r}; choose a verdict every class row has (verdict, verdicts.<test>)"
            ) from None
        if verdict not in VERDICTS:
            raise RgfError(f"{name}: {label} is {verdict!r}, expected one of {', '.join(VERDICTS)}")
        z = row.get("z") if verdict != "undefined" else None
        digit = TOTAL if key == "total" else key
        rows.append(
            {
                **{"rare_class": m["rare_class"], "factor": m["factor"], "model": m["model"], "digit": digit},
                **{"seed": str(m["seed"]), "study_verdict": verdict, "study": MARK[verdict]},
                "study_z": np.nan if z is None else float(z),
                **_evidence(m, classes, key, verdict, pick),
            }
        )
    return rows


def _evidence(m: dict, classes: str, key: str, verdict: str, pick: Callable[[dict], str]) -> dict:
    """What a cell's disagreement may come from (`why`), read from its file:
    whether a run failed the quality gates, the mark the compared verdict
    (`pick`) gives on the samples the filter kept (when `classes` is all
    samples), every recorded test's mark, and why an undefined verdict is
    undefined (`unknown` in a file that does not say)."""
    row = m[classes][key]
    filtered = (m.get("classes_filtered") or {}).get(key) if classes == "classes" else None
    try:
        filtered_mark = MARK.get(pick(filtered), "") if isinstance(filtered, dict) else ""
    except KeyError:
        filtered_mark = ""
    tests = row.get("verdicts") or {}
    return {
        "low_quality": bool(m.get("low_quality")),
        "filtered": filtered_mark,
        "tests": " ".join(f"{t}:{MARK.get(v, '')}" for t, v in sorted(tests.items())),
        "undefined_reason": (row.get("reason") or "unknown") if MARK[verdict] == "" else "",
    }


def _majority(group: pd.DataFrame) -> dict:
    """One cell over its seeds: the mark most defined seeds give (none on a tie or
    when no seed is defined), every seed's verdict, z the defined seeds' mean;
    the evidence (EVIDENCE) every seed's, in seed order (`,`; the tests `;`)."""
    mark = _most(group["study"])
    return {
        **group.iloc[0].to_dict(),
        **{"seed": "majority", "counted": True, "study": mark, "study_verdict": ",".join(group["study_verdict"])},
        "study_z": group.loc[group["study"] != "", "study_z"].mean() if mark else np.nan,
        "low_quality": ",".join(str(bool(q)) for q in group["low_quality"]),
        "filtered": ",".join(group["filtered"]),
        "tests": ";".join(group["tests"]),
        "undefined_reason": "" if mark else _undefined_reasons(group),
    }


def _undefined_reasons(group: pd.DataFrame) -> str:
    """Why a cell's majority is undefined: its undefined seeds' reasons, and
    `tied_seeds` where defined seeds give L and M equally often."""
    reasons = [r for r in group["undefined_reason"] if r]
    return ",".join(reasons + (["tied_seeds"] if (group["study"] != "").any() else []))


def _most(marks) -> str:
    """The mark most of `marks` give, undefined ("") ones aside; "" on a tie or when none is defined."""
    top = Counter(m for m in marks if m).most_common(2)
    return top[0][0] if top and (len(top) == 1 or top[0][1] > top[1][1]) else ""


def join(
    metrics: list[dict], paper: Paper, verdict: Selector = "verdict", classes: str = "classes"
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Every cell of the study that Table 4 has, beside the paper's verdict and z.

    `metrics`: loaded metrics files (`files.load_metrics`); `classes`: which of
    a file's maps of class rows to read (`classes`; `classes_filtered`, judged
    from the samples the filter kept; any later one); `verdict`: the row's key
    to compare (default the configured `verdict`; `verdicts.<test>`; any later
    field) or a function of the row returning one of VERDICTS; z is the row's.
    Returns the cells (rare_class, factor, model, digit, row, seed, counted,
    paper, paper_z, paper_bold, study_verdict, study, study_z, agree; `counted`
    marks the one row per cell the statistics use: the seeds' majority, or the
    only seed's row) and what was left out: files of controls, files and cells
    the paper has no cell for (a relaxed skew, r > 0, among them), paper cells
    the study lacks."""
    pick, label = _select(verdict)
    left_out = {"control_files": 0, "files_not_in_paper": 0, "cells_not_in_paper": 0}
    keys = ["rare_class", "factor", "model"]
    columns = set(map(tuple, paper.cells[keys].to_numpy()))
    rows = []
    for m in metrics:
        if not registry.is_family(m["model"]):
            left_out["control_files"] += 1
        elif (
            m.get("source") == "manifest"
            or m.get("rare_fraction", 0.0) != 0  # a relaxed skew: the paper's tables are r = 0's
            or (m["rare_class"], m["factor"], m["model"]) not in columns
        ):
            left_out["files_not_in_paper"] += 1
        else:
            rows += _study_rows(m, classes, pick, label)
    if not rows:
        raise RgfError(
            f"no metrics file of a generative model has a cell in the paper's tables (MNIST; models "
            f"{', '.join(ordered(paper.cells['model'], MODELS))}; k {sorted(set(paper.cells['rare_class']))})"
        )
    study = pd.DataFrame(rows)
    ours = paper.cells.rename(columns={"verdict": "paper", "z": "paper_z", "bold": "paper_bold"})
    cells = study.merge(ours, on=[*keys, "digit"], how="left", indicator=True)
    left_out["cells_not_in_paper"] = int((cells["_merge"] == "left_only").sum())
    cells = cells[cells["_merge"] == "both"].drop(columns="_merge")
    seeds = cells.groupby([*keys, "digit"])["seed"].transform("size")
    cells = cells.assign(counted=seeds == 1)
    majority = [_majority(g) for _, g in cells[seeds > 1].groupby([*keys, "digit"])]
    cells = pd.concat([cells, pd.DataFrame(majority, columns=cells.columns)], ignore_index=True)
    left_out["paper_cells_missing"] = len(ours) - cells[[*keys, "digit"]].drop_duplicates().shape[0]
    row = np.where(
        cells["digit"] == TOTAL, TOTAL, np.where(cells["digit"] == cells["rare_class"].astype(str), "rare", "other")
    )
    agree = (cells["paper"] == cells["study"]).astype("boolean").mask(cells["study"] == "")
    cells = cells.assign(row=row, agree=agree)
    cells = cells.assign(why=why(cells))
    order = ["rare_class", "factor", "model", "digit", "row", "seed", "counted", "paper", "paper_z", "paper_bold"]
    study = ["study_verdict", "study", "study_z", "agree", "why", *EVIDENCE]
    return _sorted(cells[[*order, *study]]), left_out


# --- why a cell disagrees -------------------------------------------------------

EVIDENCE = ("low_quality", "filtered", "tests", "undefined_reason")
POWER_Z = 1.0  # a shift of at least one standard error towards the skew: a shift, short of significance
# what a disagreement may come from, in the order `why` tries them: the first that applies is the cell's
WHY = {
    "seeds": "the seeds disagree: some seed gives the paper's mark (three or more seeds: at two a split is a tie)",
    "quality": "every run giving the study's mark failed the quality gates (FD or precision)",
    "misread": "on the samples the filter keeps (read confidently, on the manifold) some seed gives the paper's mark",
    "test": "another recorded test gives the paper's mark at some seed",
    "power": f"the paper's M; the study's shift is towards the skew at every seed giving L, |z| >= {POWER_Z:g}",
    "stable": "none of these",
}


def why(cells: pd.DataFrame) -> pd.Series:
    """Per row where the study and the paper disagree, the first of WHY that
    applies; "" for the others. A seed's own row is judged on its own file's
    evidence; a cell's majority row (the one counted) on all its seeds'. The
    study's shift is towards the skew when z is positive on the rare class's
    row and negative elsewhere, the total row too (at r = 0, the only skew
    compared with the paper, the skew takes f = 1 from every class but one)."""
    keys = ["rare_class", "factor", "model", "digit"]
    seeds = dict(iter(cells[cells["seed"] != "majority"].groupby(keys)))
    out = pd.Series("", index=cells.index, dtype=object)
    for i, row in cells[cells["agree"].eq(False).fillna(False).astype(bool)].iterrows():
        own = seeds[tuple(row[k] for k in keys)] if row["seed"] == "majority" else cells.loc[[i]]
        out[i] = _cause(row["paper"], row["study"], row["row"] == "rare", own)
    return out


def _cause(paper: str, study: str, rare: bool, seeds: pd.DataFrame) -> str:
    """The first of WHY that applies to a cell the study marks `study` and the
    paper `paper`, given its seeds' rows (one row: a seed judged alone)."""
    giving = seeds[seeds["study"] == study]
    z = giving["study_z"]
    towards = (z > 0) if rare else (z < 0)
    if (seeds["study"] == paper).any():
        return "seeds"
    if giving["low_quality"].astype(bool).all():
        return "quality"
    if (seeds["filtered"] == paper).any():
        return "misread"
    if any(paper in {item.partition(":")[2] for item in t.split()} for t in seeds["tests"]):
        return "test"
    if paper == "M" and (towards & (z.abs() >= POWER_Z)).all():
        return "power"
    return "stable"


def disagreements(cells: pd.DataFrame) -> dict:
    """The counted cells that disagree, by what they may come from (WHY) and
    which way (paper M, study L; paper L, study M), and per model; the counted
    undefined cells by why they are undefined."""
    counted = cells[cells["counted"]]
    off = counted[counted["why"] != ""]
    ways = {"paper_M_study_L": ("M", "L"), "paper_L_study_M": ("L", "M")}
    by_why = {
        name: {
            "meaning": meaning,
            **{
                way: int(((off["why"] == name) & (off["paper"] == p) & (off["study"] == q)).sum())
                for way, (p, q) in ways.items()
            },
            **{
                model: int(((off["why"] == name) & (off["model"] == model)).sum())
                for model in ordered(set(cells["model"]), MODELS)
            },
        }
        for name, meaning in WHY.items()
    }
    undefined = counted[counted["study"] == ""]["undefined_reason"].str.split(",").explode()
    reasons = Counter(r for r in undefined if isinstance(r, str) and r)
    return {"cells": len(off), "by_why": by_why, "undefined_reasons": dict(sorted(reasons.items()))}


# --- agreement with Table 4 -------------------------------------------------


def kappa(paper: list[str], study: list[str]) -> float | None:
    """Cohen's kappa of two L/M ratings of the same cells; None where it is
    undefined: no cells, or both give one and the same mark everywhere."""
    if not paper or len(set(paper) | set(study)) == 1:
        return None
    return float(cohen_kappa_score(paper, study, labels=list(LM)))


def agreement(cells: pd.DataFrame) -> dict:
    """The counted cells with a study mark: how many agree, their share, Cohen's
    kappa, the share that calling every cell M scores (`baseline_m`) and the
    confusion table (`confusion[paper][study]`); undefined cells counted apart."""
    counted = cells[cells["counted"]]
    defined = counted[counted["study"] != ""]
    paper, study = defined["paper"].tolist(), defined["study"].tolist()
    table = confusion_matrix(paper, study, labels=list(LM)) if paper else np.zeros((2, 2), dtype=int)
    n, agree = len(defined), int(np.trace(table))
    return {
        "cells": len(counted),
        "compared": n,
        "undefined": len(counted) - n,
        "agree": agree,
        "agreement": agree / n if n else None,
        "kappa": kappa(paper, study),
        "baseline_m": paper.count("M") / n if n else None,
        "confusion": {p: {s: int(table[i, j]) for j, s in enumerate(LM)} for i, p in enumerate(LM)},
    }


def _agreement_row(cells: pd.DataFrame) -> dict:
    """`agreement` as one table row: its confusion table as paper_<L|M>_study_<L|M>."""
    a = agreement(cells)
    confusion = a.pop("confusion")
    return {**a, **{f"paper_{p}_study_{s}": confusion[p][s] for p in LM for s in LM}}


def agreement_by(cells: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """`agreement` per group of `columns` (["model"], ["row", "rare_class"], ...),
    one row each, in the paper's order; the confusion table as paper_<L|M>_study_<L|M>."""
    rank = {"model": MODELS, "factor": FACTORS, "row": tuple(ROWS)}
    records = []
    for values, group in cells.groupby(columns):
        records.append({**dict(zip(columns, values, strict=True)), **_agreement_row(group)})
    table = pd.DataFrame(records)
    order = [table[c].map({v: i for i, v in enumerate(rank[c])}) if c in rank else table[c] for c in columns]
    return table.iloc[np.lexsort(order[::-1])].set_index(columns)


def seeds_of(cells: pd.DataFrame) -> list[str]:
    """The cells' seeds in order, then "majority" where several seeds were combined."""
    seeds = sorted(set(cells["seed"]) - {"majority"}, key=int)
    return seeds + (["majority"] if (cells["seed"] == "majority").any() else [])


def by_seed(cells: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, dict]]:
    """Each seed alone, and the seeds' majority (the row the other tables
    count): `agreement` per seed as `agreement_by` gives it, and the
    paper's claims on that seed's marks."""
    records, held = [], {}
    for seed in seeds_of(cells):
        one = cells[cells["seed"] == seed].assign(counted=True)
        records.append({"seed": seed, **_agreement_row(one)})
        held[seed] = claims(study_marks(one))
    return pd.DataFrame(records).set_index("seed"), held


def seed_agreement(cells: pd.DataFrame) -> list[dict]:
    """How often the seeds agree with each other: of the digit cells at least
    two seeds judge (`judged`), those every judging seed gives one mark
    (`unanimous`), per factor and model, per factor and per model over the
    rest ("all"), and over everything; [] with one seed."""
    keys = ["rare_class", "factor", "model", "digit"]
    seeds = cells[(cells["seed"] != "majority") & (cells["study"] != "") & (cells["digit"] != TOTAL)]
    marks = seeds.groupby(keys)["study"].agg(["nunique", "size"]).reset_index()
    marks = marks[marks["size"] >= 2].assign(one=lambda t: t["nunique"] == 1)
    if marks.empty:
        return []
    rows = []
    for factor in [*ordered(marks["factor"].unique(), FACTORS), "all"]:
        for model in [*ordered(marks["model"].unique(), MODELS), "all"]:
            group = marks[
                ((marks["factor"] == factor) | (factor == "all")) & ((marks["model"] == model) | (model == "all"))
            ]
            if len(group):
                rows.append(
                    {"factor": factor, "model": model, "judged": len(group), "unanimous": int(group["one"].sum())}
                )
    return rows


def z_agreement(cells: pd.DataFrame) -> dict:
    """Tables 1-2 against the study's z over the counted cells where both have
    one: sign agreement and Spearman's rho; how often each side's z is
    positive on the rare class's row (its z where the paper and we have one)."""
    counted = cells[cells["counted"]]
    both = counted.dropna(subset=["paper_z", "study_z"])
    rho = spearmanr(both["paper_z"], both["study_z"]) if len(both) > 2 else None
    same = int((np.sign(both["paper_z"]) == np.sign(both["study_z"])).sum())
    rare = counted[counted["row"] == "rare"]
    return {
        "cells": len(both),
        "same_sign": same,
        "sign_agreement": same / len(both) if len(both) else None,
        "spearman_rho": None if rho is None or np.isnan(rho.statistic) else float(rho.statistic),
        "spearman_p": None if rho is None or np.isnan(rho.pvalue) else float(rho.pvalue),
        "rare_paper_positive": int((rare["paper_z"] > 0).sum()),
        "rare_paper_with_z": int(rare["paper_z"].notna().sum()),
        "rare_study_positive": int((rare["study_z"] > 0).sum()),
        "rare_study_with_z": int(rare["study_z"].notna().sum()),
    }


# --- the paper's qualitative claims ----------------------------------------

CLAIMS = {
    "a": ("colour is memorized by every model", "no model has an L cell on colour"),
    "b": ("DDPM memorizes most", "the DDPM's share of M cells is above every other model's"),
    "c": ("spectral decoupling lowers GAN memorization", "GAN-SD's share of M cells is below the GAN's"),
    "d": ("fracture is learned most often", "fracture's share of L cells is above every other factor's"),
}


def _shares(marks: pd.DataFrame, column: str, mark: str) -> pd.DataFrame:
    grouped = marks.groupby(column)["mark"]
    table = pd.DataFrame({"marked": grouped.agg(lambda m: int((m == mark).sum())), "cells": grouped.size()})
    return table.assign(share=table["marked"] / table["cells"])


def _numbers(table: pd.DataFrame, mark: str, names: Callable[[str], str] = str) -> str:
    return ", ".join(f"{names(r.Index)} {r.marked}/{r.cells} {mark}" for r in table.itertuples())


def _highest(table: pd.DataFrame, name: str) -> bool | None:
    if name not in table.index or len(table) < 2:
        return None
    return bool((table.loc[name, "share"] > table.drop(index=name)["share"]).all())


def claims(marks: pd.DataFrame) -> dict[str, dict]:
    """The paper's four claims (CLAIMS) on one side's marks (columns model,
    factor, digit, mark L/M; undefined cells absent), over the digits 0-9 as
    Table 4's counts are: claim -> holds (None: a model or factor it needs
    is absent) and the numbers behind it. Shares rather than counts, so that a
    model with fewer undefined cells is not called the bigger memorizer."""
    digits = marks[marks["digit"] != TOTAL]
    models = _shares(digits, "model", "M").loc[lambda t: ordered(t.index, MODELS)]
    factors = _shares(digits, "factor", "L").loc[lambda t: ordered(t.index, FACTORS)]
    colour = _shares(digits[digits["factor"] == "colour"], "model", "L").loc[lambda t: ordered(t.index, MODELS)]
    gan = models.reindex(["gan", "gan_sd"])["share"]
    return {
        "a": {
            "holds": bool((colour["marked"] == 0).all()) if len(colour) else None,
            "numbers": _numbers(colour, "L", display),
        },
        "b": {"holds": _highest(models, "ddpm"), "numbers": _numbers(models, "M", display)},
        "c": {
            "holds": None if gan.isna().any() else bool(gan["gan_sd"] < gan["gan"]),
            "numbers": _numbers(models.reindex(["gan", "gan_sd"]).dropna(), "M", display),
        },
        "d": {"holds": _highest(factors, "fracture"), "numbers": _numbers(factors, "L")},
    }


def paper_marks(paper: Paper) -> pd.DataFrame:
    return paper.cells.rename(columns={"verdict": "mark"})[["rare_class", "factor", "model", "digit", "mark"]]


def study_marks(cells: pd.DataFrame) -> pd.DataFrame:
    defined = cells[cells["counted"] & (cells["study"] != "")]
    return defined.rename(columns={"study": "mark"})[["rare_class", "factor", "model", "digit", "mark"]]


# --- the comparison and its files -------------------------------------------


def compare(
    metrics: list[dict], paper: Paper, verdict: Selector = "verdict", classes: str = "classes", source: str = ""
) -> tuple[dict, pd.DataFrame]:
    """The study's metrics (from `source`) against the paper, as `join` reads
    them: (summary for comparison.json, the joined cells)."""
    cells, left_out = join(metrics, paper, verdict, classes)
    overall = agreement(cells)
    counted = cells[cells["counted"]]
    # the earlier count over every cell (an undefined one as a disagreement), and the paper's own
    # convention for its "–" cells, an undefined one counted as M
    overall["agreement_of_all"] = overall["agree"] / overall["cells"]
    overall["agree_undefined_as_m"] = int((counted["paper"] == counted["study"].replace("", "M")).sum())
    by = {name: agreement_by(cells, columns) for name, columns in BY.items()}
    by["seed"], seed_claims = by_seed(cells)
    ours, theirs = claims(study_marks(cells)), claims(paper_marks(paper))
    summary = {
        "metrics": source,
        "paper": paper.folder,
        "classes": classes,
        "verdict": _select(verdict)[1],
        "seeds": [seed for seed in seeds_of(cells) if seed != "majority"],
        "left_out": left_out,
        "agreement": overall,
        "by": {name: _records(table) for name, table in by.items()},
        "z": z_agreement(cells),
        "disagreements": disagreements(cells),
        "disagreements_by_seed": {
            seed: disagreements(cells[cells["seed"] == seed].assign(counted=True)) for seed in seeds_of(cells)
        },
        "claims": {
            key: {"claim": text, "rule": rule, "paper": theirs[key], "study": ours[key]}
            for key, (text, rule) in CLAIMS.items()
        },
        "claims_by_seed": {seed: {key: held[key] for key in CLAIMS} for seed, held in seed_claims.items()},
        "seed_agreement": seed_agreement(cells),
        # agreement per model, factor and k for each seed alone and for the majority (confusion tables included)
        "by_seed": {
            seed: {
                name: _records(agreement_by(cells[cells["seed"] == seed].assign(counted=True), BY[name]))
                for name in SEED_BY
            }
            for seed in seeds_of(cells)
        },
    }
    return summary, cells


def _records(table: pd.DataFrame) -> dict[str, dict]:
    """A table as JSON-ready rows keyed by its index ("rare k=1" for two levels), NaN as None."""
    rows = table.to_dict("index")
    key = (lambda i: f"{i[0]} k={i[1]}") if table.index.nlevels == 2 else str
    return {key(i): {k: None if pd.isna(v) else v for k, v in row.items()} for i, row in rows.items()}


def check_out(out: Path) -> None:
    """Refuse, before any work, an output folder that holds something else:
    the repository's root, a file, a folder with files but no comparison.json."""
    check_outputs({Path(out): PAPER})


def _pct(n: int, d: int) -> str:
    return f"{n / d:.0%} ({n}/{d})" if d else "–"


def _num(x: float | None) -> str:
    return "–" if x is None else f"{x:.2f}"


def _table(by: dict[str, dict], name: str, label: Callable[[str], str] = str) -> str:
    rows = [
        {
            name: label(key),
            "agree": _pct(a["agree"], a["compared"]),
            "kappa": _num(a["kappa"]),
            "all M would score": _pct(a["paper_M_study_L"] + a["paper_M_study_M"], a["compared"]),
            "undefined": str(a["undefined"]),
        }
        for key, a in by.items()
    ]
    return to_markdown(pd.DataFrame(rows).set_index(name))


def _row_label(key: str) -> str:
    row, k = key.split(" k=")
    return f"{ROWS[row]}, k = {k}"


README = """\
# The study against the paper, cell by cell

`rgf paper` set the study's verdicts (`{metrics}`, `{classes}.<class>.{verdict}`, seeds {seeds}) beside
the paper's Table 4 and its z beside Tables 1-2 (Haider, Moroshko, Xue and Tsaftaris 2025, as
transcribed in `{paper}`). A cell is one model, factor, rare class k and digit 0-9, or the paper's
total row. The study's opposite counts as M, as in Table 4; an undefined cell (no or too few samples,
P_c^u of 0 or 1) has no verdict and counts in no share and no kappa. Every cell: `cells.csv`; every
number: `comparison.json`.

Of the {compared} cells both sides judged, **{agree} agree**, Cohen's kappa **{kappa}**; answering M
everywhere would score {baseline}. {undefined} more cells are undefined in the study: over all {cells}
cells, an undefined one counted as disagreeing, {agree_of_all} agree; counting it as M instead (the
paper's own convention for its "–" cells), {as_m}.

| paper \\ study | L | M |
| --- | --- | --- |
| L | {LL} | {LM} |
| M | {ML} | {MM} |

{tables}

## Why cells disagree

Each of the {off} counted cells where the study and the paper disagree, under the first of these that applies
(its `why` in `cells.csv`; with several seeds, the cell's majority row):

{why}

{why_by_seed}

The {undefined} undefined cells, by reason (a cell counts once for each seed that gives it one):
{undefined_reasons}.

## z against Tables 1-2

Over the {z_cells} cells where both print a z: the same sign in {sign}, Spearman's rho {rho}. On the
rare class's own row the paper's z is positive in {rare_paper} cells, the study's in {rare_study}.

## The paper's claims

Each rule counts the digits 0-9 (as Table 4's counts do), on the paper's own table and on the study's
judged cells.

{claims}

{seed_claims}

{seeds_agree}

## Left out

- {control_files} metrics files of controls (the paper has none)
- {files_not_in_paper} files of a model, factor, k, rare fraction (r > 0) or source the paper has no column for
- {cells_not_in_paper} classes the paper has no row for
- {paper_cells_missing} of the paper's cells the study has no metrics file for
"""
SECTIONS = (
    ("model", "By model", display),
    ("factor", "By factor", str),
    ("k", "By rare class k", str),
    ("row", "By row: the rare class's own, the other digits, the total", _row_label),
    ("seed", "By seed: each seed alone, then the seeds' majority (the cells counted above)", str),
)
SEED_BY = ("model", "factor", "k")  # the breakdowns given for each seed alone too
HOLDS = {True: "holds", False: "does not hold", None: "not assessable"}
REPRODUCED = {True: "reproduced", False: "not reproduced", None: "not assessable"}


def _seed_label(seed: str) -> str:
    return seed if seed == "majority" else f"seed {seed}"


def _seed_claims(summary: dict) -> str:
    """The claims reproduced or not by each seed alone and by the seeds' majority."""
    by = summary["claims_by_seed"]
    rows = [
        {"claim": f"({key}) {text}", **{_seed_label(seed): REPRODUCED[by[seed][key]["holds"]] for seed in by}}
        for key, (text, _) in CLAIMS.items()
    ]
    return "By seed:\n\n" + to_markdown(pd.DataFrame(rows).set_index("claim"))


UNDEFINED = {
    "low_support": "fewer than `evaluation.min_count` samples of the class in a run",
    "degenerate_balanced": "P_c^u is 0 or 1",
    "no_samples": "no samples of the class in a run",
    "tied_seeds": "the seeds' L and M tie",
    "unknown": "a file that does not say why (written before it recorded reasons)",
}


def _causes(classes: str) -> list[str]:
    """The causes a comparison can assess: `misread` needs the filtered view beside all samples."""
    return [name for name in WHY if name != "misread" or classes == "classes"]


def _why_table(found: dict, classes: str) -> str:
    rows = []
    for name in _causes(classes):
        c = found["by_why"][name]
        models = {display(k): v for k, v in c.items() if k in MODELS}
        rows.append(
            {
                "why": name,
                "meaning": c["meaning"],
                "paper M, study L": c["paper_M_study_L"],
                "paper L, study M": c["paper_L_study_M"],
                **models,
            }
        )
    return to_markdown(pd.DataFrame(rows).set_index("why"))


def _why_by_seed(by: dict[str, dict], classes: str) -> str:
    """The disagreeing cells of each seed alone and of the seeds' majority, by cause."""
    if len(by) < 2:
        return ""
    rows = [
        {
            "why": name,
            **{
                _seed_label(seed): found["by_why"][name]["paper_M_study_L"] + found["by_why"][name]["paper_L_study_M"]
                for seed, found in by.items()
            },
        }
        for name in _causes(classes)
    ]
    rows.append({"why": "all", **{_seed_label(seed): found["cells"] for seed, found in by.items()}})
    caption = "By seed (each seed's cells alone; `majority`: the cells several seeds judged, by their majority)"
    return caption + ":\n\n" + to_markdown(pd.DataFrame(rows).set_index("why"))


def _undefined_text(reasons: dict[str, int]) -> str:
    """The undefined cells' reasons as a sentence: a count and its meaning each."""
    if not reasons:
        return "none"
    return "; ".join(f"{n} {UNDEFINED.get(r, r)} (`{r}`)" for r, n in reasons.items())


def _seeds_agree(rows: list[dict]) -> str:
    """The seeds beside each other: a factor per row, a model per column."""
    if not rows:
        return ""
    table = pd.DataFrame(
        [{"factor": r["factor"], "model": r["model"], "agree": _pct(r["unanimous"], r["judged"])} for r in rows]
    )
    grid = table.pivot(index="factor", columns="model", values="agree").fillna("–")
    factors = [f for f in (*FACTORS, "all") if f in grid.index]
    models = [m for m in (*MODELS, "all") if m in grid.columns]
    grid = grid.loc[factors, models].rename(columns=lambda m: display(m) if m != "all" else "all")
    text = "Of the digit cells two or more seeds judge, those every seed marks alike:"
    return f"## The seeds beside each other\n\n{text}\n\n" + to_markdown(grid)


def _per_seed(by_seed: dict[str, dict]) -> str:
    """Agreement and kappa per model, factor and k, a column per seed and one for the majority."""
    if len(by_seed) < 2:
        return ""
    parts = []
    for name, _, label in SECTIONS:
        if name not in SEED_BY:
            continue
        keys = list(dict.fromkeys(k for tables in by_seed.values() for k in tables[name]))
        rows = [
            {
                name: label(key),
                **{
                    _seed_label(seed): (
                        f"{_pct(a['agree'], a['compared'])}, {_num(a['kappa'])}"
                        if (a := tables[name].get(key))
                        else "–"
                    )
                    for seed, tables in by_seed.items()
                },
            }
            for key in keys
        ]
        parts.append(to_markdown(pd.DataFrame(rows).set_index(name)))
    return (
        "By model, factor and k, each seed alone and the majority (agreement, kappa; the confusion tables are in "
        "`comparison.json`, `by_seed`):\n\n" + "\n\n".join(parts)
    )


def readme(summary: dict) -> str:
    """README.md of a comparison: its numbers as Markdown tables."""
    a, z = summary["agreement"], summary["z"]
    tables = [f"## {title}\n\n{_table(summary['by'][name], name, label)}" for name, title, label in SECTIONS]
    if per_seed := _per_seed(summary.get("by_seed", {})):
        tables.append(per_seed)
    claims_rows = [
        {
            "claim (rule)": f"({key}) {c['claim']} ({c['rule']})",
            "paper": f"{HOLDS[c['paper']['holds']]}: {c['paper']['numbers']}",
            "study": f"**{REPRODUCED[c['study']['holds']]}**: {c['study']['numbers']}",
        }
        for key, c in summary["claims"].items()
    ]
    return README.format(
        metrics=summary["metrics"] or "metrics",
        classes=summary["classes"],
        verdict=summary["verdict"],
        seeds=", ".join(summary["seeds"]),
        paper=summary["paper"],
        compared=a["compared"],
        agree=_pct(a["agree"], a["compared"]),
        kappa=_num(a["kappa"]),
        baseline=_pct(a["confusion"]["M"]["L"] + a["confusion"]["M"]["M"], a["compared"]),
        undefined=a["undefined"],
        cells=a["cells"],
        agree_of_all=_pct(a["agree"], a["cells"]),
        as_m=_pct(a["agree_undefined_as_m"], a["cells"]),
        **{f"{p}{s}": a["confusion"][p][s] for p in LM for s in LM},
        tables="\n\n".join(tables),
        z_cells=z["cells"],
        sign=_pct(z["same_sign"], z["cells"]),
        rho=_num(z["spearman_rho"]),
        rare_paper=f"{z['rare_paper_positive']} of {z['rare_paper_with_z']}",
        rare_study=f"{z['rare_study_positive']} of {z['rare_study_with_z']}",
        off=summary["disagreements"]["cells"],
        why=_why_table(summary["disagreements"], summary["classes"]),
        why_by_seed=_why_by_seed(summary["disagreements_by_seed"], summary["classes"]),
        undefined_reasons=_undefined_text(summary["disagreements"]["undefined_reasons"]),
        claims=to_markdown(pd.DataFrame(claims_rows).set_index("claim (rule)")),
        seed_claims=_seed_claims(summary),
        seeds_agree=_seeds_agree(summary["seed_agreement"]),
        **summary["left_out"],
    )


def write_comparison(out: Path, summary: dict, cells: pd.DataFrame) -> None:
    """comparison.json, cells.csv and README.md in `out`, replaced together."""
    with atomic_entries(out, PAPER) as tmp:
        write_json(tmp / SIGNATURE, summary)
        cells.to_csv(tmp / "cells.csv", index=False)
        (tmp / "README.md").write_text(readme(summary))

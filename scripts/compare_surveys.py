"""Two assembled studies side by side: sample quality, verdicts and agreement with the paper.

    python scripts/compare_surveys.py reports/survey/earlier reports/survey

Each folder is what `rgf assemble` and `rgf paper` wrote: `tables/quality.csv`,
`paper/cells.csv` and `paper/comparison.json`. Printed as Markdown tables
(before -> after), per model and per factor:

- quality, means over the runs: the balanced run's FD and precision, the skewed runs' FD,
  the label oracle's mean confidence on the skewed samples (`sample_confidence`);
- verdicts: the generative cells (model, factor, k, class) called memorized
  (the seeds' majority where there are several), and how many cells changed
  verdict between the two studies (cells judged in both);
- the paper: judged cells that agree with its Table 4, and Cohen's kappa.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from pipeline.errors import RgfError
from pipeline.stages import exit_with

MODELS = {"vae": "VAE", "gan": "GAN", "gan_sd": "GAN-SD", "ddpm": "DM"}
NEEDED = ("tables/quality.csv", "paper/cells.csv", "paper/comparison.json")


def load(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """A study's quality table, its cells beside the paper and the comparison."""
    missing = [name for name in NEEDED if not (folder / name).is_file()]
    if missing:
        raise RgfError(f"{folder}: no {', '.join(missing)}; run `rgf assemble` and `rgf paper` for it first")
    quality = pd.read_csv(folder / "tables/quality.csv")
    cells = pd.read_csv(folder / "paper/cells.csv")
    return quality, cells, json.loads((folder / "paper/comparison.json").read_text())


def quality_table(before: pd.DataFrame, after: pd.DataFrame) -> pd.DataFrame:
    """Per generative model, the mean over its runs (factor, k, seed), before -> after."""
    columns = {
        "fd_u": "FD balanced",
        "fd_s": "FD skewed",
        "precision_u": "precision",
        "sample_confidence": "confidence",
    }
    rows = {}
    for label in MODELS.values():
        b, a = before[before.model == label], after[after.model == label]
        if a.empty or b.empty:
            continue
        # the balanced run is shared by k = 1 and 2: one value per factor and seed
        means = {
            name: tuple(
                (d.groupby(["factor", "seed"])[col].first() if col.endswith("_u") else d[col]).mean() for d in (b, a)
            )
            for col, name in columns.items()
        }
        rows[label] = {name: f"{x:.2f} → {y:.2f}" for name, (x, y) in means.items()}
    return pd.DataFrame.from_dict(rows, orient="index")


def verdict_table(before: pd.DataFrame, after: pd.DataFrame) -> pd.DataFrame:
    """Per generative model, memorized cells before -> after and the cells that changed."""
    key = ["rare_class", "factor", "model", "digit"]
    # a class's cell (not Table 4's total row), one per seed or the seeds' majority
    before, after = (c[c["counted"] & (c["row"] != "total")] for c in (before, after))
    both = before.merge(after, on=key, suffixes=("_b", "_a"))
    judged = both[both.study_b.isin(["L", "M"]) & both.study_a.isin(["L", "M"])]
    rows = {}
    for model, label in MODELS.items():
        b, a, j = before[before.model == model], after[after.model == model], judged[judged.model == model]
        if a.empty or b.empty:
            continue
        rows[label] = {
            "memorized": f"{(b.study == 'M').sum()}/{b.study.isin(['L', 'M']).sum()} → "
            f"{(a.study == 'M').sum()}/{a.study.isin(['L', 'M']).sum()}",
            "changed": f"{(j.study_b != j.study_a).sum()} of {len(j)}",
            "L → M": int(((j.study_b == "L") & (j.study_a == "M")).sum()),
            "M → L": int(((j.study_b == "M") & (j.study_a == "L")).sum()),
        }
    return pd.DataFrame.from_dict(rows, orient="index")


def agreement_table(before: dict, after: dict) -> pd.DataFrame:
    """Per factor and overall, judged cells that agree with the paper and kappa, before -> after."""

    def cell(entry: dict | None) -> tuple[str, str]:
        if entry is None:
            return "–", "–"
        kappa = entry.get("kappa")
        return f"{entry['agree']}/{entry['compared']}", "–" if kappa is None else f"{kappa:.2f}"

    rows = {}
    factors = sorted(set(before["by"]["factor"]) | set(after["by"]["factor"]))
    for name, b, a in [
        *((f, before["by"]["factor"].get(f), after["by"]["factor"].get(f)) for f in factors),
        ("all", before["agreement"], after["agreement"]),
    ]:
        (agree_b, kappa_b), (agree_a, kappa_a) = cell(b), cell(a)
        rows[name] = {"agree": f"{agree_b} → {agree_a}", "kappa": f"{kappa_b} → {kappa_a}"}
    return pd.DataFrame.from_dict(rows, orient="index")


def claims_table(before: dict, after: dict) -> pd.DataFrame:
    """The paper's four claims, reproduced or not, before -> after, with the after study's numbers."""
    word = {True: "reproduced", False: "not reproduced", None: "not judged"}
    rows = {}
    for key, claim in after["claims"].items():
        was = before["claims"].get(key, {}).get("study", {}).get("holds")
        now = claim["study"]["holds"]
        rows[claim["claim"]] = {
            "before": word[was],
            "after": word[now],
            "after's numbers": claim["study"]["numbers"],
        }
    return pd.DataFrame.from_dict(rows, orient="index")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    args = parser.parse_args(argv)
    (q_b, c_b, p_b), (q_a, c_a, p_a) = load(args.before), load(args.after)
    for title, table in (
        ("Sample quality (mean over factors and k)", quality_table(q_b, q_a)),
        ("Generative verdicts (all samples; cells judged in both studies)", verdict_table(c_b, c_a)),
        ("Agreement with the paper's Table 4 (judged cells)", agreement_table(p_b, p_a)),
        ("The paper's claims", claims_table(p_b, p_a)),
    ):
        print(f"**{title}** ({args.before} → {args.after})\n")
        print(table.to_markdown() + "\n")


if __name__ == "__main__":
    exit_with(main)

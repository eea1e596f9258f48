"""`rgf compare` (issue 25): two experiments on one screen, read from DVC's
own `dvc exp show --json`: the params that differ, per model the classes
learned / memorized and FD, and the learner's false-positive rate."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml

from pipeline.errors import RgfError
from pipeline.evaluation.compare import compare, entries
from tests.helpers import REPO, compose, dvc_env, sh, with_key, write_params

SUMMARY = json.loads((REPO / "reports" / "summary.json").read_text())


def _exp(name: str, params: dict, summary: dict) -> dict:
    data = {
        "params": {"params.yaml": {"data": params}},
        "metrics": {"reports/summary.json": {"data": summary}},
    }
    return {"revs": [{"rev": "f" * 40, "name": name, "data": data}], "name": name}


def _show(*experiments: dict) -> list[dict]:
    """What `dvc exp show --json` gives: the workspace, a baseline commit and its experiments."""
    base = compose("smoke")
    data = {"params": {"params.yaml": {"data": base}}, "metrics": {"reports/summary.json": {"data": SUMMARY}}}
    return [
        {"rev": "workspace", "name": None, "data": data, "experiments": None},
        {"rev": "a" * 40, "name": "main", "data": data, "experiments": list(experiments)},
    ]


def test_the_rows_name_the_workspace_the_branch_and_each_experiment():
    show = _show(_exp("lr-high", compose("smoke"), SUMMARY))
    assert [name for name, _ in entries(show)] == ["workspace", "main", "lr-high"]


def test_only_the_params_that_differ_are_shown_with_their_values():
    base = compose("smoke")
    changed = with_key(with_key(base, "vae.lr", 0.01), "gan.epochs", base["gan"]["epochs"] + 4)
    table = compare(_show(_exp("mine", changed, SUMMARY)), ["main", "mine"])
    assert table.loc["main", "changed params"] == f"gan.epochs={base['gan']['epochs']}, vae.lr={base['vae']['lr']:g}"
    assert table.loc["mine", "changed params"] == f"gan.epochs={base['gan']['epochs'] + 4}, vae.lr=0.01"


def test_each_model_shows_its_learned_and_memorized_classes_and_fd():
    table = compare(_show(), ["main"])
    vae = SUMMARY["models"]["vae"]
    assert table.loc["main", "VAE"] == f"{vae['learned']}/{vae['memorized']} {vae['fd']:.0f}"
    assert table.loc["main", "learner FP"] == f"{SUMMARY['learner_fp_rate']['one_sample']:.0%}"


def test_an_unknown_experiment_is_one_line_naming_the_known_ones():
    with pytest.raises(RgfError, match=r"no experiment nope; `dvc exp list` names them \(here: workspace, main\)"):
        compare(_show(), ["nope"])


@pytest.fixture(scope="module")
def two_experiments(tmp_path_factory):
    """A DVC repo with two saved experiments that differ in one param and in the VAE's verdicts."""
    root = tmp_path_factory.mktemp("compare")
    env = dvc_env()
    sh(["git", "init", "-q"], root, env)
    sh([sys.executable, "-m", "dvc", "init", "-q"], root, env)
    write_params(root, compose("smoke"))
    (root / "reports").mkdir()
    (root / "reports" / "summary.json").write_text(json.dumps(SUMMARY))
    stage = {"cmd": "echo", "params": [{"params.yaml": None}], "metrics": [{"reports/summary.json": {"cache": False}}]}
    (root / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"report": stage}}))
    sh(["git", "add", "-A"], root, env)
    sh(["git", "commit", "-qm", "base"], root, env)
    sh([sys.executable, "-m", "dvc", "exp", "save", "-n", "one"], root, env)
    write_params(root, with_key(compose("smoke"), "vae.lr", 0.5))
    other = json.loads(json.dumps(SUMMARY))
    other["models"]["vae"].update(learned=5, memorized=4)
    (root / "reports" / "summary.json").write_text(json.dumps(other))
    sh([sys.executable, "-m", "dvc", "exp", "save", "-n", "two"], root, env)
    return root, env


def test_rgf_compare_of_two_experiments_fits_160_characters_and_30_columns(two_experiments):
    root, env = two_experiments
    rgf = [sys.executable, "-m", "pipeline.cli", "compare", "one", "two", "--repo", str(root)]
    done = subprocess.run(
        rgf, cwd=REPO, env={**env, "COLUMNS": "160"}, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert max(len(line) for line in lines) <= 160
    header = next(line for line in lines if line.startswith("┏"))
    assert header.count("┳") + 1 <= 30
    rows = {line.split("│")[1].strip(): line for line in lines if line.startswith("│")}
    assert set(rows) == {"one", "two"}
    assert "lr=0.5" in rows["two"] and "5/4" in rows["two"] and "5/4" not in rows["one"]
    assert "part 1 of" not in done.stdout, "one table, not parts"

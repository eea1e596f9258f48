"""Every `rgf` subcommand against bad paths (issue 24): each path argument
in turn is missing, a folder, an empty file, random bytes or non-UTF-8
text (inputs), or the project's root, a folder nobody may write or an
existing file (outputs). Every case must end in one line on stderr and a
non-zero exit, with nothing in the project deleted or changed."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import REPO, compose, digest, write_params
from tests.test_report import write_metrics

INPUT_KINDS = ("missing", "folder", "empty", "random", "not-utf8")
OUTPUT_KINDS = ("root", "unwritable", "file")

# subcommand -> (its arguments with good paths, {argument: "in" | "out" | "out-file"})
COMMANDS = {
    "perturb": (
        ["--factor", "thin", "--input", "digits.npy", "--output", "out/thin.npy", "--params", "params.yaml"],
        {"--input": "in", "--output": "out-file", "--params": "in"},
    ),
    "download": (["--dest", "raw", "--mirror", "file:///nonexistent/"], {"--dest": "out"}),
    "check-params": (["params.yaml"], {0: "in"}),
    "report": (["--metrics", "metrics", "--params", "params.yaml"], {"--metrics": "in", "--params": "in"}),
    "rarity": (
        ["--repo", ".", "--params", "params.yaml", "--out", "out/rarity"],
        {"--repo": "in", "--params": "in", "--out": "out"},
    ),
    "paper": (
        ["--metrics", "metrics", "--paper", "paper", "--out", "out/paper"],
        {"--metrics": "in", "--paper": "in", "--out": "out"},
    ),
    "assemble": (
        ["--repo", ".", "--params", "params.yaml", "--out", "out/study"],
        {"--repo": "in", "--params": "in", "--out": "out"},
    ),
    "compcars-manifest": (["sv_data", "--out", "out/manifest.csv"], {0: "in", "--out": "out-file"}),
    "standin-cars": (["out/cars", "--per-cell", "1"], {0: "out"}),
    "export-data": (
        ["--factor", "colour", "--data", "data/colour", "--out", "out/export", "--params", "params.yaml"],
        {"--data": "in", "--out": "out", "--params": "in"},
    ),
    "import-samples": (
        ["samples.npz", "--model", "mine", "--factor", "colour", "--dataset", "balanced", "--seed", "0"]
        + ["--into", "imports", "--params", "params.yaml"],
        {0: "in", "--into": "out", "--params": "in"},
    ),
    "stages": (["--repo", "."], {"--repo": "in"}),
}


def _cases():
    for command, (_, paths) in COMMANDS.items():
        for arg, role in paths.items():
            kinds = INPUT_KINDS if role == "in" else OUTPUT_KINDS[:2] if role == "out-file" else OUTPUT_KINDS
            for kind in kinds:
                yield pytest.param(command, arg, kind, id=f"{command}-{arg}-{kind}")


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A project root with good inputs for every subcommand, as the working directory."""
    root = tmp_path / "project"
    for folder in (".git", ".dvc", "pipeline", "raw"):
        (root / folder).mkdir(parents=True)
    (root / "pipeline" / "code.py").write_text("# the code\n")
    (root / "dvc.yaml").write_text("stages: {}\n")
    write_params(root, compose("smoke"))
    np.save(root / "digits.npy", np.zeros((2, 28, 28), np.uint8))
    np.savez(root / "samples.npz", images=np.zeros((2, 28, 28, 3), np.uint8))
    write_metrics(root / "metrics", "gan", "colour", 1)
    shutil.copytree(REPO / "references" / "haider2025", root / "paper")
    (root / "sv_data").mkdir()
    monkeypatch.chdir(root)
    return root


def _unwritable(tmp_path: Path) -> Path:
    """A folder nobody may create files in (root ignores permissions; /sys refuses even root)."""
    if os.geteuid() == 0:
        return Path("/sys/rgf-cannot-write")
    folder = tmp_path / "read-only"
    folder.mkdir(mode=0o500)
    return folder / "out"


def _bad(kind: str, root: Path, tmp_path: Path) -> str:
    bad = tmp_path / "bad"
    if kind == "missing":
        return str(bad / "missing")
    if kind == "folder":
        bad.mkdir()
        return str(bad)
    if kind == "root":
        return "."
    if kind == "unwritable":
        return str(_unwritable(tmp_path))
    path = tmp_path / f"bad-{kind}.npy"
    data = {"empty": b"", "random": np.random.default_rng(0).bytes(300), "not-utf8": b"seed: 0\n\xff\xfe\xfd\n"}
    path.write_bytes(data.get(kind, b"x"))
    return str(path)


@pytest.mark.parametrize(("command", "arg", "kind"), list(_cases()))
def test_a_bad_path_is_one_line_and_a_non_zero_exit_with_nothing_deleted(project, tmp_path, capsys, command, arg, kind):
    from pipeline.cli import main

    argv, _ = COMMANDS[command]
    argv = list(argv)
    bad = _bad(kind, project, tmp_path)
    if isinstance(arg, int):
        argv[arg] = bad
    else:
        argv[argv.index(arg) + 1] = bad
    before = digest(project)
    try:
        code = main([command, *argv])
    except SystemExit as exit_:  # argparse: usage and one error line
        code = exit_.code
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith("usage:")]
    assert code not in (0, None), f"{command} {arg}={kind} exited 0:\n{err}"
    assert len(lines) == 1 and "error:" in lines[0] and "Traceback" not in err, err
    after = digest(project)
    assert {k: v for k, v in after.items() if k in before} == before, "a file of the project changed or went"
    assert set(before) <= set(after)

"""Sharing and scaling out the DVC way (README, "Sharing and scaling out"):
a fresh clone names the default DVC remote and works without reaching it;
two machines each compute half a study and push it (`dvc exp push
--run-cache`), and a third assembles the whole report with `dvc exp run
--pull`, restoring every computed stage from the run cache instead of
running it."""

import json
import re
import time
from pathlib import Path

import pytest

from pipeline.files import read_curves
from tests.helpers import copy_project, dvc, dvc_env, sh


def _origin(base: Path, env: dict) -> Path:
    """A bare git repo holding the project's files (no outputs), as the team's
    git server would."""
    seed = base / "seed"
    copy_project(seed)
    for cmd in (["git", "init", "-q", "-b", "main"], ["git", "add", "-A"], ["git", "commit", "-qm", "seed"]):
        sh(cmd, seed, env)
    sh(["git", "clone", "-q", "--bare", str(seed), str(base / "origin.git")], base, env)
    return base / "origin.git"


def _git_clone(origin: Path, dest: Path, env: dict, dvc_remote: Path | None = None) -> Path:
    """`git clone` of the team's repo; with dvc_remote, the default remote
    pointed there the way the README says (config.local, never committed)."""
    sh(["git", "clone", "-q", str(origin), str(dest)], origin.parent, env)
    if dvc_remote is not None:
        dvc(dest, env, "remote", "modify", "--local", "storage", "url", str(dvc_remote))
    return dest


def test_a_fresh_clone_names_the_default_remote_and_works_without_it(tmp_path):
    env = dvc_env()
    clone = _git_clone(_origin(tmp_path, env), tmp_path / "clone", env)
    assert dvc(clone, env, "remote", "default").stdout.strip() == "storage"
    listed = dvc(clone, env, "remote", "list").stdout.split()
    # the committed url is relative to .dvc/: a folder beside the checkout
    assert listed[:2] == ["storage", str(tmp_path / "rgf-dvc-storage")] and listed[2:] == ["(default)"]
    # nothing reaches for the remote until a push or pull: `dvc status` works
    # without it, and creates no folder
    dvc(clone, env, "status")
    assert not (tmp_path / "rgf-dvc-storage").exists()
    # the first stage of a run says so in one line, naming the fix, before any work
    done = dvc(clone, env, "repro", "validate")
    notes = [line for line in done.stderr.splitlines() if line.startswith("note:")]
    assert notes == [
        f"note: the DVC remote 'storage' is {tmp_path / 'rgf-dvc-storage'}, which does not exist: `dvc pull` and "
        "`--pull` find nothing there and every stage is computed here; point this clone at the team's storage "
        "with `dvc remote modify --local storage url <path or URL>` (docs/sharing.md)"
    ]


# the smoke profile on the VAE only: each half trains one factor
HALF = ["-S", "profile=smoke", "-S", "models=[vae]"]


def _stages(out: str) -> tuple[set[str], set[str]]:
    ran = set(re.findall(r"^Running stage '([^']+)'", out, flags=re.M))
    restored = set(re.findall(r"^Stage '([^']+)' is cached - skipping run", out, flags=re.M))
    return ran, restored


def _computed(factor: str) -> set[str]:
    """Every stage of one factor's VAE study but the report."""
    return {
        f"prepare@{factor}",
        f"oracle@{factor}",
        f"train-vae@{factor}-0",
        *(f"sample-vae@{factor}-{d}-0" for d in ("balanced", "skewed_k1")),
        f"evaluate@vae-{factor}-k1-0",
    }


@pytest.mark.slow
def test_two_machines_compute_halves_and_a_third_assembles_the_report_from_the_run_cache(tmp_path):
    """DVC saves (and pushes, and restores) a stage's run only if no output is
    `persist: true`, and an uncached output is never pushed, so a stage with
    one cannot be restored on another machine. dvc.yaml keeps every output of
    oracle, train and sample cached: nothing is trained or sampled twice. The
    per-class metrics and the report live in git (persisted, so a failure
    keeps the last good ones), so evaluate and report run again, in seconds."""
    env = dvc_env()
    origin = _origin(tmp_path, env)
    storage = tmp_path / "dvc-storage"
    started = time.monotonic()
    halves = {}
    for factor in ("colour", "thick"):
        clone = _git_clone(origin, tmp_path / factor, env, storage)
        out = dvc(clone, env, "exp", "run", "-n", f"{factor}-half", *HALF, "-S", f"factors=[{factor}]").stdout
        ran, _ = _stages(out)
        assert ran == {"validate", "source", "report"} | _computed(factor), out
        dvc(clone, env, "exp", "push", "--run-cache", "origin", f"{factor}-half")
        halves[factor] = clone
    halves_done = time.monotonic()

    assembler = _git_clone(origin, tmp_path / "assembler", env, storage)
    listed = dvc(assembler, env, "exp", "list", "--all-commits", "--name-only", "origin").stdout.split()
    assert sorted(listed) == ["colour-half", "thick-half"]
    out = dvc(assembler, env, "exp", "run", "--pull", *HALF, "-S", "factors=[colour,thick]").stdout
    ran, restored = _stages(out)
    # what trains, samples or prepares data comes back from the machine that
    # computed it; the params check, the evaluations and the report run
    evaluations = {"evaluate@vae-colour-k1-0", "evaluate@vae-thick-k1-0"}
    assert ran == {"validate", "report"} | evaluations, out
    assert restored == {"source"} | (_computed("colour") | _computed("thick")) - evaluations, out
    for factor, half in halves.items():
        for path in (f"metrics/vae/{factor}/k1-s0.json", f"metrics/oracles/{factor}.json"):
            assert (assembler / path).read_bytes() == (half / path).read_bytes(), path
        for dataset in ("balanced", "skewed_k1"):
            assert (assembler / f"models/vae-{factor}-s0/{dataset}/model.pt").is_file()
            assert read_curves(assembler / f"plots/train/vae-{factor}-s0/{dataset}") == read_curves(
                half / f"plots/train/vae-{factor}-s0/{dataset}"
            )
    z_header = (assembler / "reports/tables/z_k1.csv").read_text().splitlines()[0].split(",")
    assert z_header[0] == "factor" and set(z_header[1:]) == {"colour", "thick"}
    print(f"\nhalves: {halves_done - started:.0f} s, assembly: {time.monotonic() - halves_done:.0f} s")

    # a colleague pulls one pushed experiment: its training curves (DVCLive,
    # cached plots of the train stage) come with it and `dvc plots show` draws them
    colleague = _git_clone(origin, tmp_path / "colleague", env, storage)
    dvc(colleague, env, "exp", "pull", "origin", "colour-half")
    dvc(colleague, env, "exp", "apply", "colour-half")
    shown = json.loads(dvc(colleague, env, "plots", "show", "--json").stdout)["data"]
    for dataset in ("balanced", "skewed_k1"):
        curve = f"plots/train/vae-colour-s0/{dataset}/plots/metrics/loss.tsv"
        ((chart,),) = [shown[curve]]
        drawn = [(int(v["step"]), float(v["loss"])) for v in chart["content"]["data"]["values"]]
        rows = read_curves(halves["colour"] / f"plots/train/vae-colour-s0/{dataset}")
        logged = [(int(r["epoch"]), r["loss"]) for r in rows]
        assert drawn == logged and drawn, curve
        assert chart["content"]["encoding"]["x"]["title"] == "epoch"
    oracle = "plots/oracles/colour/label/plots/metrics/accuracy.tsv"
    assert shown[oracle][0]["content"]["data"]["values"], oracle

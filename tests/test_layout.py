"""The package's layout keeps its promises: no import cycles, no stage
importing another, dvc.yaml deps equal to what each stage's code imports, the
train stage's params equal to what shapes a run's weights, and a params
loader that imports nothing heavy."""

import subprocess
import sys

import pytest
import yaml

from pipeline import runs
from pipeline.params import Params
from tests.helpers import REPO
from tests.layout import closure, cycles, deps_problems, graph, stage_module

DVC = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
STAGES = sorted(DVC)


def test_no_import_cycles_function_level_imports_included():
    assert cycles(REPO) == []


def test_every_stage_runs_a_stage_module_and_no_stage_imports_another():
    modules = {name: stage_module(DVC[name]["cmd"]) for name in STAGES}
    assert modules == {name: f"pipeline.stages.{name}" for name in STAGES}
    for module in modules.values():
        others = set(modules.values()) - {module}
        assert not closure(REPO, module) & others, f"{module} imports another stage"


def test_the_library_never_imports_a_stage():
    for module, imported in graph(REPO).items():
        if not module.startswith("pipeline.stages") and module != "pipeline.cli":
            assert not {m for m in imported if m.startswith("pipeline.stages")}, module


@pytest.mark.parametrize("stage", STAGES)
def test_dvc_deps_are_the_stages_import_closure(stage):
    assert deps_problems(REPO, DVC[stage]["cmd"], DVC[stage]["deps"]) == []


def test_the_deps_check_fails_when_an_import_is_missing_or_a_dep_is_extra():
    cmd, deps = DVC["train"]["cmd"], DVC["train"]["deps"]
    assert "pipeline/runs.py" in deps
    without = [d for d in deps if d != "pipeline/runs.py"]
    assert deps_problems(REPO, cmd, without) == ["imports pipeline/runs.py but does not list it"]
    extra = [*deps, "pipeline/evaluation/tables.py"]
    assert deps_problems(REPO, cmd, extra) == ["lists pipeline/evaluation/tables.py but never imports it"]


def test_train_params_are_what_shapes_the_weights_and_sample_params_the_sampler():
    train, sample = DVC["train"]["params"], DVC["sample"]["params"]
    expected = set()
    for section in set(runs.SECTION.values()) | {s for extra in runs.EXTRA_SECTIONS.values() for s in extra}:
        sampling = {k for model, keys in runs.SAMPLING.items() if runs.SECTION[model] == section for k in keys}
        if sampling:
            fields = Params.model_fields[section].annotation.model_fields
            expected |= {f"{section}.{key}" for key in fields if key not in sampling}
        else:
            expected.add(section)
    assert expected <= set(train), sorted(expected - set(train))
    sampler_keys = {f"{runs.SECTION[m]}.{k}" for m, keys in runs.SAMPLING.items() for k in keys}
    assert sampler_keys <= set(sample) and not sampler_keys & set(train)
    assert {"ddpm.sampler", "ddpm.sampling_steps"} == sampler_keys  # the one family that samples in several ways


def test_loading_params_imports_nothing_heavy():
    code = "import sys, pipeline.params, pipeline.names, pipeline.errors; print(sorted(sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    heavy = {"torch", "scipy", "skimage", "pandas", "matplotlib"} & set(eval(loaded.stdout))
    assert heavy == set()

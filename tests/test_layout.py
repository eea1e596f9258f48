"""The package's layout keeps its promises: no import cycles, no stage
importing another, dvc.yaml deps equal to what each stage's code imports
(for a model's own train and sample groups, its own module's too, and no
other model's), a family's train params equal to what shapes its weights,
and a params loader that imports nothing heavy."""

import subprocess
import sys

import pytest
import yaml

from pipeline import dvcstages, registry
from pipeline.generative.build import NOT_SHAPING
from pipeline.imports import closure, cycles, deps_problems, graph, stage_module
from pipeline.params import Params
from tests.helpers import REPO

DVC = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
STAGES = sorted(DVC)


def test_no_import_cycles_function_level_imports_included():
    assert cycles(REPO) == []


def _kind(stage: str) -> str:
    """train for train-vae: the stage module a per-model group runs."""
    return stage.split("-", 1)[0]


# stages that read every registry entry (names, display names, what a control's hit is)
READ_EVERY_ENTRY = {"validate", "evaluate", "report"}


def _extra(stage: str) -> tuple[str, ...]:
    """The modules a stage loads by name: a model's group, its code and entry
    (a control's train stage only its entry); the stages that read every
    entry, all of them."""
    if stage in READ_EVERY_ENTRY:
        return registry.SOURCES
    kind, _, model = stage.partition("-")
    if not model:
        return ()
    entry = registry.entry(model)
    return entry.modules if kind == "sample" or isinstance(entry, registry.Family) else (entry.source,)


def test_every_stage_runs_a_stage_module_and_no_stage_imports_another():
    modules = {name: stage_module(DVC[name]["cmd"]) for name in STAGES}
    assert modules == {name: f"pipeline.stages.{_kind(name)}" for name in STAGES}
    for module in modules.values():
        others = set(modules.values()) - {module}
        assert not closure(REPO, module) & others, f"{module} imports another stage"


def test_the_library_never_imports_a_stage():
    for module, imported in graph(REPO).items():
        if not module.startswith("pipeline.stages") and module != "pipeline.cli":
            assert not {m for m in imported if m.startswith("pipeline.stages")}, module


@pytest.mark.parametrize("stage", STAGES)
def test_dvc_deps_are_the_stages_import_closure(stage):
    assert deps_problems(REPO, DVC[stage]["cmd"], DVC[stage]["deps"], _extra(stage)) == []


def test_the_deps_check_fails_when_an_import_is_missing_or_a_dep_is_extra():
    cmd, deps = DVC["train-vae"]["cmd"], DVC["train-vae"]["deps"]
    assert "pipeline/generative/vae.py" in deps
    without = [d for d in deps if d != "pipeline/generative/vae.py"]
    problem = ["imports pipeline/generative/vae.py but does not list it"]
    assert deps_problems(REPO, cmd, without, registry.entry("vae").modules) == problem
    extra = [*deps, "pipeline/generative/gan.py"]
    assert deps_problems(REPO, cmd, extra, registry.entry("vae").modules) == [
        "lists pipeline/generative/gan.py but never imports it"
    ]


def test_dvc_yaml_has_the_registrys_groups_and_no_others():
    assert dvcstages.drift(REPO) == []
    sampled = registry.FAMILIES + registry.CONTROLS
    assert {s for s in STAGES if s.startswith(("train-", "sample-"))} == {
        f"{kind}-{m}" for m in sampled for kind in ("train", "sample")
    }
    assert "train" not in DVC and "sample" not in DVC  # no stage group shared by every model


def test_the_drift_check_names_a_group_that_differs(tmp_path):
    text = (REPO / "dvc.yaml").read_text().replace("      - vae\n", "      - vae\n      - gan\n", 1)
    (tmp_path / "dvc.yaml").write_text(text)
    (tmp_path / "pipeline").symlink_to(REPO / "pipeline")
    assert dvcstages.drift(tmp_path) == ["train-vae: differs"]
    assert dvcstages.write(tmp_path) and dvcstages.drift(tmp_path) == []


@pytest.mark.parametrize("model", registry.FAMILIES + registry.CONTROLS)
def test_a_models_stages_depend_on_no_other_models_code_or_params(model):
    mine = registry.entry(model)
    # the models with other code (GAN-SD is the GAN's code: it may list the GAN's entry, which holds its section)
    entries = [
        e for e in registry.ENTRIES if isinstance(e, registry.Family | registry.Control) and e.module != mine.module
    ]
    others = {m.replace(".", "/") + ".py" for e in entries for m in e.modules}
    sections = {s for e in registry.ENTRIES if isinstance(e, registry.Family) for s in e.sections}
    own_sections = set(mine.sections) if isinstance(mine, registry.Family) else set()
    for kind in ("train", "sample"):
        stage = DVC[f"{kind}-{model}"]
        assert not set(stage["deps"]) & others, (kind, set(stage["deps"]) & others)
        used = {p.split(".")[0] for p in stage["params"]}
        assert not used & (sections - own_sections), (kind, used & (sections - own_sections))


@pytest.mark.parametrize("model", registry.FAMILIES)
def test_train_params_are_what_shapes_the_weights_and_sample_params_the_sampler(model):
    family = registry.family(model)
    train, sample = set(DVC[f"train-{model}"]["params"]), set(DVC[f"sample-{model}"]["params"])
    expected = set()
    for section in family.sections:
        fields = Params.model_fields[section].annotation.model_fields
        left_out = family.sampling if section == family.section else ()
        if left_out:
            expected |= {f"{section}.{key}" for key in fields if key not in left_out}
        else:
            expected.add(section)
    assert expected <= train, sorted(expected - train)
    sampler_keys = {f"{family.section}.{key}" for key in family.sampling}
    assert sampler_keys <= sample and not sampler_keys & train
    assert "epochs" in NOT_SHAPING  # trained longer, a run extends rather than retrains


def test_only_the_ddpm_samples_in_several_ways():
    assert {m: registry.family(m).sampling for m in registry.FAMILIES if registry.family(m).sampling} == {
        "ddpm": ("sampler", "sampling_steps")
    }


def test_loading_params_imports_nothing_heavy():
    code = "import sys, pipeline.params, pipeline.names, pipeline.errors; print(sorted(sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    heavy = {"torch", "scipy", "skimage", "pandas", "matplotlib"} & set(eval(loaded.stdout))
    assert heavy == set()

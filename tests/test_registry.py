"""The model registry: every kind of entry, what is derived from it, and no
model's name spelled anywhere else in the code."""

import ast
import subprocess
import sys

import pytest

from pipeline import registry
from pipeline.errors import ParamsError
from pipeline.params import parse_params
from tests.helpers import REPO, compose


def test_the_registry_lists_every_kind_in_table_order():
    kinds = {e.name: (e.kind, e.display) for e in registry.ENTRIES}
    assert kinds == {
        "vae": ("family", "VAE"),
        "gan": ("family", "GAN"),
        "gan_sd": ("family", "GAN-SD"),
        "ddpm": ("family", "DM"),
        "data-memorizer": ("control", "Memorizer"),
        "data-learner": ("control", "Learner"),
        "data-mixer": ("control", "Mixer"),
        "degraded-memorizer": ("control", "Memorizer (degraded)"),
        "degraded-learner": ("control", "Learner (degraded)"),
    }
    assert registry.MODELS == tuple(kinds)  # families in the paper's order, then the controls
    assert registry.FAMILIES == ("vae", "gan", "gan_sd", "ddpm")
    assert registry.CONTROLS == (
        "data-memorizer",
        "data-learner",
        "data-mixer",
        "degraded-memorizer",
        "degraded-learner",
    )
    assert registry.LEARNER == "data-learner"  # the first whose every hit is a false positive
    assert [registry.control(c).degraded for c in registry.CONTROLS] == [False, False, False, True, True]
    # an unknown name is an imported model's, shown as it is
    assert registry.entry("stylegan2").kind == "imported" and registry.display("stylegan2") == "stylegan2"


def test_each_entry_says_its_code_params_and_probe():
    gan_sd = registry.family("gan_sd")
    assert (gan_sd.module, gan_sd.builder, gan_sd.sections) == (
        "pipeline.generative.gan",
        "build_sd",
        ("gan", "gan_sd"),
    )
    assert gan_sd.source == "pipeline.registry.gan_sd"
    assert [m for m in registry.FAMILIES if registry.has_probe(m)] == ["gan", "gan_sd"]
    assert registry.family("ddpm").sampling == ("sampler", "sampling_steps")
    with pytest.raises(ValueError, match="'data-learner' is not a trained model family"):
        registry.family("data-learner")


@pytest.mark.parametrize(
    ("control", "verdicts", "hits"),
    [
        (
            "data-learner",
            ["learned", "memorized", "opposite"],
            [False, True, True],
        ),  # any significant: a false positive
        ("data-memorizer", ["learned", "memorized", "opposite"], [False, True, False]),
        ("data-mixer", ["learned", "memorized", "opposite"], [False, True, False]),
    ],
)
def test_a_controls_hit_is_what_its_entry_says(control, verdicts, hits):
    assert [registry.control(control).flags(v) for v in verdicts] == hits


def test_runs_gives_every_factor_to_a_chosen_model_and_none_to_the_rest():
    runs = registry.runs(["vae", "data-learner"], ["colour", "thin"])
    assert runs == {m: (["colour", "thin"] if m in ("vae", "data-learner") else []) for m in registry.MODELS}


def test_hydra_composes_runs_and_params_refuse_a_stale_one():
    raw = compose("smoke", "models=[vae,ddpm]", "factors=[thin]")
    assert raw["runs"]["vae"] == ["thin"] and raw["runs"]["gan"] == [] and raw["runs"]["ddpm"] == ["thin"]
    assert parse_params(raw).runs == raw["runs"]
    raw["models"] = ["vae"]  # edited by hand, runs left behind
    with pytest.raises(ParamsError, match=r"runs must follow models and factors \(runs.ddpm should be \[\]\)"):
        parse_params(raw)


def test_dvc_composes_runs_through_the_hydra_plugin(tmp_path):
    """`dvc exp run -S models=[...]` composes params.yaml in DVC's own process,
    which loads hydra_plugins/ from the repository's root."""
    code = (
        "import sys; from pathlib import Path; from dvc.utils.hydra import compose_and_dump;"
        f"compose_and_dump(Path(sys.argv[1]), {str(REPO / 'conf')!r}, None, 'config', {str(REPO)!r},"
        " ['profile=smoke', 'models=[gan]'])"
    )
    out = tmp_path / "params.yaml"
    subprocess.run([sys.executable, "-c", code, str(out)], check=True, cwd=tmp_path, capture_output=True)
    assert "runs:\n  vae: []\n  gan:\n  - colour\n  - thick\n" in out.read_text()


def test_models_are_the_registrys_or_imported_ones():
    assert parse_params(compose("smoke", "models=[gan,data-mixer]")).models == ["gan", "data-mixer"]
    raw = compose("smoke", "imported=[ppca]", "models=[ppca,data-learner]")
    assert parse_params(raw).imported == ["ppca"]
    with pytest.raises(ParamsError, match=r"models \['vea'\] are neither built in \(vae, gan, .*\) nor imported"):
        parse_params(compose("smoke", "models=[vea]"))
    with pytest.raises(ParamsError, match=r"\['gan'\] are built-in models' names"):
        parse_params(compose("smoke", "imported=[gan]"))


def _names_spelled(path):
    """String constants equal to a built-in model's name in a module, docstrings left out."""
    tree = ast.parse(path.read_text())
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.FunctionDef | ast.ClassDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    names = set(registry.MODELS)
    return sorted(
        {
            node.value
            for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and node.value in names and id(node) not in docstrings
        }
    )


def test_no_code_outside_the_registry_spells_a_models_name():
    spelled = {}
    for path in sorted((REPO / "pipeline").rglob("*.py")):
        if path.parent.name == "registry":
            continue
        if found := _names_spelled(path):
            spelled[str(path.relative_to(REPO))] = found
    # the sampler called "ddpm" (ancestral sampling, Ho et al.; ddpm.sampler) and the VAE's optimizer key are
    # not model names; the paper's claims name the paper's models (its tables' names, references/haider2025)
    assert spelled == {
        "pipeline/generative/ddpm.py": ["ddpm"],
        "pipeline/generative/vae.py": ["vae"],
        "pipeline/evaluation/paper.py": ["ddpm", "gan", "gan_sd"],
    }

"""The lock (requirements/, written by scripts/lock.sh) agrees with pyproject.toml's pins, every
entry carries its sha256, torch and its CUDA stack stay out of it, and every install path uses it."""

import re
import tomllib

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.helpers import REPO

PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
# installed by version from the right place per install path, never hashed (README, "The lock")
UNLOCKED = {"torch"}
# nvidia-ml-py (DVCLive's GPU monitor) is pure Python, NVML's bindings, no CUDA library: it is locked
CUDA_STACK = re.compile(r"^(torch|triton|nvidia-(?!ml-py$).*|cuda-.*)$")


def read_lock(name):
    """{name: (Requirement, [sha256, ...])} from a pip requirements file with hashes."""
    text = re.sub(r"\\\n", " ", (REPO / "requirements" / name).read_text())
    entries = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        spec, *hashes = line.split(" --hash=")
        req = Requirement(spec)
        assert canonicalize_name(req.name) not in entries, f"{req.name} twice in {name}"
        entries[canonicalize_name(req.name)] = (req, [h.strip() for h in hashes])
    return entries


LOCKS = {"lock.txt": read_lock("lock.txt"), "lock-dev.txt": read_lock("lock-dev.txt")}
DIRECT = {"lock.txt": PROJECT["dependencies"], "lock-dev.txt": PROJECT["optional-dependencies"]["dev"]}


def pinned(req):
    (spec,) = req.specifier
    assert spec.operator == "==", f"{req} is not pinned to one version"
    return spec.version


@pytest.mark.parametrize("lock", sorted(LOCKS))
def test_every_entry_is_pinned_and_hashed(lock):
    assert len(LOCKS[lock]) >= 5
    for name, (req, hashes) in LOCKS[lock].items():
        pinned(req)
        assert hashes, f"{name} has no hash in {lock}"
        assert all(re.fullmatch(r"sha256:[0-9a-f]{64}", h) for h in hashes), f"{name}: {hashes}"


@pytest.mark.parametrize("lock", sorted(LOCKS))
def test_every_direct_dependency_is_locked_as_pyproject_pins_it(lock):
    for dep in map(Requirement, DIRECT[lock]):
        name = canonicalize_name(dep.name)
        if name in UNLOCKED:
            continue
        assert name in LOCKS[lock], f"{dep} is in pyproject.toml but not in {lock}: bash scripts/lock.sh"
        version = pinned(LOCKS[lock][name][0])
        assert dep.specifier.contains(version), (
            f"pyproject.toml wants {dep}, {lock} has {version}: bash scripts/lock.sh"
        )


def test_the_dev_lock_adds_to_the_runtime_lock_without_repeating_it():
    assert not set(LOCKS["lock.txt"]) & set(LOCKS["lock-dev.txt"])


def test_torch_is_pinned_by_version_and_neither_it_nor_its_cuda_stack_is_locked():
    (torch,) = [Requirement(d) for d in PROJECT["dependencies"] if Requirement(d).name in UNLOCKED]
    assert re.fullmatch(r"==\d+\.\d+\.\d+", str(torch.specifier))
    for lock, entries in LOCKS.items():
        assert not [name for name in entries if CUDA_STACK.match(name)], lock
    # torch's own dependencies are locked: whatever torch build goes in, they come from the lock
    for name in ["filelock", "fsspec", "jinja2", "networkx", "setuptools", "sympy", "typing-extensions"]:
        assert name in LOCKS["lock.txt"], name


def test_every_install_path_installs_from_the_lock_with_hashes():
    setup = (REPO / "scripts" / "setup.sh").read_text()
    assert "install --require-hashes" in setup and "requirements/lock.txt" in setup
    assert "requirements/lock-dev.txt" in setup
    assert "install --no-deps --no-build-isolation -e ." in setup
    docker = (REPO / "Dockerfile").read_text()
    assert "--require-hashes -r requirements/lock.txt" in docker
    ci = (REPO / ".github" / "workflows" / "ci.yml").read_text()
    assert "pip install" not in ci  # every job installs through scripts/setup.sh
    assert "bash scripts/setup.sh dev" in ci

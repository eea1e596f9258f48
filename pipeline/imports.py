"""The package's import graph, read from the code (function-level imports
included, TYPE_CHECKING-only ones left out), and what dvc.yaml says about it:
a stage depends on exactly the files its code can import. A module loaded by
name at run time (a family's, from its registry entry) is not in the graph:
the stages that load one list it as an extra module."""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

PACKAGE = "pipeline"


def module_files(root: Path) -> dict[str, Path]:
    """Module name -> file for every module of the package under `root`."""
    out = {}
    for path in sorted((root / PACKAGE).rglob("*.py")):
        name = ".".join(path.relative_to(root).with_suffix("").parts)
        out[name.removesuffix(".__init__")] = path
    return out


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    skip = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip |= {id(n) for n in ast.walk(node)}
    return skip


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The package's modules that `name` imports anywhere in its code."""
    tree = ast.parse(path.read_text())
    skip = _type_checking_nodes(tree)
    is_package = path.name == "__init__.py"
    found = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            targets = [module] + [f"{module}.{alias.name}" for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target.split(".")[0] == PACKAGE and target != name:
                found.add(target)
    return found


def parents(name: str) -> list[str]:
    """The packages Python runs before `name`: pipeline, pipeline.x, ..."""
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


@cache
def graph(root: Path) -> dict[str, set[str]]:
    """Module -> the modules importing it runs: its imports and its parent packages'."""
    modules = module_files(root)
    return {name: imports_of(name, path, modules) | set(parents(name)) for name, path in modules.items()}


def closure(root: Path, module: str) -> set[str]:
    """Every module of the package that running `module` can import."""
    return {module} | _reach(graph(root), module)


def cycles(root: Path) -> list[set[str]]:
    """Strongly connected groups of modules (import cycles), parent links left out."""
    modules = module_files(root)
    g = {name: imports_of(name, path, modules) - set(parents(name)) for name, path in modules.items()}
    reach = {m: _reach(g, m) for m in g}
    groups = {frozenset(n for n in reach[m] if m in reach[n]) | {m} for m in g}
    return [set(group) for group in groups if len(group) > 1]


def _reach(g: dict[str, set[str]], start: str) -> set[str]:
    """The modules reachable from `start` in one or more steps."""
    seen, todo = set(), list(g[start])
    while todo:
        m = todo.pop()
        if m not in seen:
            seen.add(m)
            todo.extend(g[m])
    return seen


def has_code(path: Path) -> bool:
    """False for a module of nothing but a docstring (an empty package __init__)."""
    body = ast.parse(path.read_text()).body
    return any(not (isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant)) for n in body)


def needed_files(root: Path, module: str, *extra: str) -> set[Path]:
    """The files with code that running `module` (and loading the `extra`
    modules by name) can import, relative to `root`."""
    modules = module_files(root)
    reached = set().union(*(closure(root, m) for m in (module, *extra)))
    return {modules[m].relative_to(root) for m in reached if has_code(modules[m])}


def stage_module(cmd: str) -> str:
    """The module a dvc.yaml command runs: `python -m pipeline.stages.train ...`."""
    words = cmd.split()
    return words[words.index("-m") + 1]


def files_of_deps(root: Path, deps: list[str]) -> set[Path]:
    """The package's .py files a stage's deps name (folders expanded)."""
    out = set()
    for dep in deps:
        path = root / dep
        if not dep.startswith(PACKAGE + "/"):
            continue
        out |= set(path.rglob("*.py")) if path.is_dir() else {path}
    return {p.relative_to(root) for p in out if not p.exists() or has_code(p)}


def deps_problems(root: Path, cmd: str, deps: list[str], extra: tuple[str, ...] = ()) -> list[str]:
    """What a stage's deps miss of its imports (and the `extra` modules'),
    and what they list beyond them."""
    needed = needed_files(root, stage_module(cmd), *extra)
    listed = files_of_deps(root, deps)
    problems = [f"imports {p} but does not list it" for p in sorted(needed - listed)]
    problems += [f"lists {p} but never imports it" for p in sorted(listed - needed)]
    return problems


def minimal_deps(root: Path, module: str, *extra: str) -> list[str]:
    """The shortest deps list covering the closure of `module` and `extra`: a
    folder where all of its files are needed, else the files (to write dvc.yaml with)."""
    needed = needed_files(root, module, *extra)
    out: list[str] = []
    covered: set[Path] = set()
    folders = sorted({p.parent for p in needed}, key=lambda d: len(d.parts))
    for folder in folders:
        if folder == Path(PACKAGE) or any(folder.is_relative_to(c) for c in map(Path, out)):
            continue
        files = {p.relative_to(root) for p in (root / folder).rglob("*.py") if has_code(p)}
        if files <= needed:
            out.append(str(folder))
            covered |= files
    out += sorted(str(p) for p in needed - covered)
    return out

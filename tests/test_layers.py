"""The house is one-way: each package imports only the layers below it, no module imports itself back
through others, and every package installs under the one name ``dcim`` (docs/architecture.md)."""

from __future__ import annotations

import ast
import tomllib
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Where each installed package lives in the checkout (pyproject.toml's package-dir says the same).
FOLDERS = {
    "dcim": "dcim",
    "dcim.simulators": "simulators",
    "dcim.agents": "agents",
    "dcim.alerts": "alerts",
    "dcim.collector": "collector",
    "dcim.dashboards": "dashboards",
    "dcim.app": "app",
}

# A module may import its own package and any package of a lower rank; never a higher one, and
# never a sibling of the same rank. `dcim` (rank 0) is the core every part shares: config, schema,
# records, the line-protocol codec, errors, the site generator. Simulators stand in for devices and
# device libraries, so they sit just above it. The application (the CLI, the assembled pipeline, the
# demo) is the only place that knows every part.
RANKS = {
    "dcim": 0,
    "dcim.simulators": 1,
    "dcim.agents": 2,
    "dcim.alerts": 2,
    "dcim.collector": 3,
    "dcim.dashboards": 3,
    "dcim.app": 4,
}

# The top-level names the folders would have without the mapping; nothing may import them.
BARE = {folder for name, folder in FOLDERS.items() if name != "dcim"}


def _modules() -> dict[str, Path]:
    out: dict[str, Path] = {}
    for package, folder in FOLDERS.items():
        base = ROOT / folder
        for path in sorted(base.rglob("*.py")):
            rel = path.relative_to(base).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            if package == "dcim" and parts and parts[0] in BARE:
                continue
            out[".".join([package, *parts])] = path
    return out


def _package_of(module: str) -> str:
    best = "dcim"
    for package in FOLDERS:
        if (module == package or module.startswith(package + ".")) and len(package) > len(best):
            best = package
    return best


def _type_only(tree: ast.AST) -> set[ast.AST]:
    """Imports under ``if TYPE_CHECKING:``: they name types for annotations and never run."""
    nodes: set[ast.AST] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                nodes.update(ast.walk(child))
    return nodes


def _imports(path: Path, module: str, *, typing: bool = True) -> list[tuple[int, str]]:
    """Every import in the file, at module level or inside a function (a hidden import is still an
    arrow); with ``typing=False``, not those only a type checker runs."""
    tree = ast.parse(path.read_text(), filename=str(path))
    is_package = path.name == "__init__.py"
    skip = set() if typing else _type_only(tree)
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if node in skip:
            continue
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            found.append((node.lineno, target))
            # `from dcim.alerts import engine` imports the module dcim.alerts.engine.
            found.extend((node.lineno, f"{target}.{alias.name}") for alias in node.names)
    return found


def _graph(*, typing: bool = True) -> tuple[dict[str, set[str]], list[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = defaultdict(set)
    bare: list[str] = []
    for module, path in modules.items():
        for lineno, target in _imports(path, module, typing=typing):
            top = target.split(".")[0]
            if top in BARE:
                bare.append(f"{path.relative_to(ROOT)}:{lineno} imports {target} (use dcim.{target})")
            if target in modules and target != module:
                graph[module].add(target)
    return graph, bare


def test_no_module_imports_a_bare_folder_name():
    _, bare = _graph()
    assert not bare, "\n".join(bare)


def test_every_import_points_down():
    graph, _ = _graph()
    upward = []
    for module, targets in sorted(graph.items()):
        src = _package_of(module)
        for target in sorted(targets):
            dst = _package_of(target)
            if dst != src and RANKS[dst] >= RANKS[src]:
                upward.append(f"{module} -> {target} ({src} rank {RANKS[src]}, {dst} rank {RANKS[dst]})")
    assert not upward, "imports that do not point down:\n" + "\n".join(upward)


def test_no_import_cycles():
    # Layers are checked on every import; cycles on those that run (a TYPE_CHECKING import of a
    # sibling's type for an annotation is not an arrow at run time).
    graph, _ = _graph(typing=False)
    # Tarjan's strongly connected components; a component of more than one module is a cycle.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(set(graph) | {t for ts in graph.values() for t in ts}):
        if v not in index:
            visit(v)
    # A package's __init__ importing its own modules is how a package exposes them, not a cycle.
    cycles = [c for c in cycles if not (len(c) == 2 and any(c[0] == m.rsplit(".", 1)[0] for m in c[1:]))]
    assert not cycles, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in cycles)


def test_pyproject_installs_every_folder_under_dcim():
    tool = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    package_dir = tool["package-dir"]
    assert {k: v for k, v in package_dir.items()} == FOLDERS, "pyproject package-dir and FOLDERS disagree"
    listed = set(tool["packages"])
    expected = set()
    for package, folder in FOLDERS.items():
        base = ROOT / folder
        for d in [base, *sorted(p for p in base.rglob("*") if p.is_dir())]:
            rel = d.relative_to(base)
            if "__pycache__" in rel.parts or (package == "dcim" and rel.parts and rel.parts[0] in BARE):
                continue
            if any(f.is_file() for f in d.iterdir()):
                expected.add(".".join([package, *rel.parts]))
    assert listed == expected, (
        f"pyproject.toml packages: missing {sorted(expected - listed)}, not folders {sorted(listed - expected)}")
    assert all(p == "dcim" or p.startswith("dcim.") for p in listed)


def test_installed_dcim_reaches_every_part():
    import importlib

    for package in FOLDERS:
        module = importlib.import_module(package)
        assert Path(module.__file__).resolve().parent == (ROOT / FOLDERS[package]).resolve(), package
    with pytest.raises(ImportError):
        importlib.import_module("dcim.tests")


@pytest.mark.slow
def test_wheel_installs_only_dcim(tmp_path):
    """A built wheel holds one top-level package, ``dcim``, with its data, and runs from there."""
    import subprocess
    import sys
    import zipfile

    import shutil

    had_build = (ROOT / "build").exists()
    try:
        built = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), str(ROOT)],
                               capture_output=True, text=True, timeout=600)
    finally:
        if not had_build:  # pip builds in the tree: leave the checkout as it was
            shutil.rmtree(ROOT / "build", ignore_errors=True)
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = tmp_path.glob("dcim-*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        z.extractall(tmp_path / "site")
    tops = {n.split("/")[0] for n in names}
    assert tops == {"dcim", f"{wheel.name.split('-py3')[0]}.dist-info"}, tops
    for data in ("dcim/data/sites/ai-factory-pod.yaml", "dcim/alerts/rules/gpu.yaml",
                 "dcim/agents/snmp/profiles/apc_epdu.yaml", "dcim/simulators/scenarios/pump-degradation.yaml"):
        assert data in names, f"{data} is not in the wheel"
    # From the unpacked wheel alone (first on the path), every part imports and the CLI runs.
    probe = ("import sys, dcim, dcim.app.cli, dcim.agents.gpu.reader, dcim.collector.app, dcim.dashboards.build;"
             "assert dcim.__file__.startswith(sys.argv[1]), dcim.__file__;"
             "sys.argv = ['dcim', '--help']; dcim.app.cli.main()")
    ran = subprocess.run([sys.executable, "-c", probe, str(tmp_path / "site")], capture_output=True, text=True,
                         cwd=tmp_path, env={**__import__("os").environ, "PYTHONPATH": str(tmp_path / "site")},
                         timeout=120)
    assert ran.returncode == 0, ran.stderr[-2000:]
    assert "Usage: dcim" in ran.stdout

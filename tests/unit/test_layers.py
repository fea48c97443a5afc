"""Dependencies point one way: no module imports from a layer above its own, and nothing imports the CLI.

Every ``import`` of every .py file is read with ``ast`` (function-level imports included), so a lazy
import inside a function counts like one at the top of the file.
"""

from __future__ import annotations

import ast
import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# Lowest first. A module may import its own layer and those below it. A name is a package or a module;
# the longest name that matches decides.
LAYERS: tuple[tuple[str, ...], ...] = (
    # Stdlib-only ground floor: the event contracts, and the SQL-file reader the job, the SQL client and the
    # warehouse's analyst queries share (it runs in the Flink client's Python, so it stays in jobs/).
    ("contracts", "jobs.sqlfiles"),
    # Settings, errors, lake, object store and serving database access: what every room stands on.
    ("loanrisk",),
    # The rooms: each does one thing with the floor below.
    ("ingestion", "udfs", "models", "warehouse", "stack", "grafana"),
    # The risk job (its parameters, submission, SQL client) runs on the stack; erasure spans every sink; the
    # scoring API scores as the job does, from the contracts, the serving database and the stream's scorer.
    ("jobs", "erasure", "scoring_api"),
    ("prefect_flows",),
    ("riskctl",),
)
# Benchmarks and tests drive every layer. Only test modules may import the CLI (to test it): the benchmarks and
# the tests' fixtures and helpers call the layers below it, as any other caller would.
DRIVERS = ("bench", "tests")


def layer_of(module: str) -> int | None:
    """The layer index of a dotted module name, or None for a module that is not ours (stdlib, PyPI)."""
    best: tuple[int, int] | None = None
    for index, names in enumerate(LAYERS):
        for name in names:
            if module == name or module.startswith(name + "."):
                if best is None or len(name) > best[0]:
                    best = (len(name), index)
    return None if best is None else best[1]


def module_name(path: Path) -> str:
    """``jobs/params.py`` -> ``jobs.params``; a package's ``__init__`` is the package."""
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every absolute import in the file; ``from a import b`` counts as ``a.b``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return found


def python_files() -> list[Path]:
    """Every .py file of the repository, outside hidden folders (environments, state, git)."""
    found = []
    for folder, dirs, files in os.walk(REPO):
        dirs[:] = [d for d in dirs if not d.startswith(".") and d not in {"node_modules", "__pycache__"}]
        found += [Path(folder) / f for f in files if f.endswith(".py")]
    return sorted(found)


def upward_imports() -> list[str]:
    """One line per import that points up (or into the CLI from outside it)."""
    bad = []
    for path in python_files():
        importer = module_name(path)
        top = importer.split(".")[0]
        own = layer_of(importer)
        for line, target in imported_modules(path):
            target_layer = layer_of(target)
            if target_layer is None:
                continue  # not ours (stdlib, PyPI) or a driver's own helpers
            if own is None:  # a driver: bench/ or tests/
                cli_test = top == "tests" and path.name.startswith("test_")
                if target.split(".")[0] == "riskctl" and not cli_test:
                    bad.append(f"{path.relative_to(REPO)}:{line} imports {target} (only test modules use the CLI)")
                continue
            if target_layer > own:
                bad.append(f"{path.relative_to(REPO)}:{line} imports {target} "
                           f"(layer {', '.join(LAYERS[target_layer])} is above {', '.join(LAYERS[own])})")
    return bad


def test_every_top_level_folder_with_python_is_in_a_layer_or_drives_them() -> None:
    """A new room must be placed in LAYERS (or DRIVERS), or the check would silently skip it."""
    tops = {module_name(p).split(".")[0] for p in python_files() if len(p.relative_to(REPO).parts) > 1}
    placed = {name.split(".")[0] for names in LAYERS for name in names} | set(DRIVERS)
    assert tops <= placed, f"place these folders in tests/unit/test_layers.py LAYERS: {sorted(tops - placed)}"


def test_no_module_imports_from_a_layer_above_its_own() -> None:
    bad = upward_imports()
    assert not bad, "imports that point up the layers:\n" + "\n".join(bad)


def test_the_check_sees_function_level_imports(tmp_path: Path) -> None:
    """A lazy import inside a function is an import all the same."""
    path = tmp_path / "lazy.py"
    path.write_text("def f():\n    from riskctl.commands.job import job\n    return job\n")
    assert imported_modules(path) == [(2, "riskctl.commands.job.job")]


def test_layer_of_takes_the_longest_name() -> None:
    modules = ("jobs.sqlfiles", "loanrisk.settings", "stack.flink_client", "jobs.params", "riskctl.main")
    order = [layer_of(m) for m in modules]
    assert order == [0, 1, 2, 3, 5]
    assert layer_of("pandas") is None

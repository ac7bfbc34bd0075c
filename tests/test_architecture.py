"""The import structure of `delcli`: one order of layers, no circles (docs/architecture.md).

Every module's imports are read with `ast` — at the top, inside functions, under
`TYPE_CHECKING` — and so is every string that names a `delcli` module (the
extractor registry imports its modules by name). A lazy import is still a
dependency: it may make an import cheaper, never a circle legal.
"""

from __future__ import annotations

import ast
import os
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "delcli"
ARCHITECTURE = ROOT / "docs" / "architecture.md"

# Bottom first. A module may import modules of its own unit and of units listed
# before it, nothing after it; `delcli` alone is the package's `__init__` (the version).
LAYERS = (
    "errors",
    "delcli",
    "files",
    "settings",
    "device",
    "resources",
    "zoo",
    "hub",
    "model",
    "recipe",
    "weights",
    "export",
    "data",
    "synth",
    "io",
    "features",
    "extract",
    "inference",
    "evaluation",
    "train",
    "cli",
)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    """Every module of the package as installed (`delcli/zoo` is a link to `zoo/`)."""
    paths = [
        Path(folder) / name
        for folder, _, names in os.walk(PACKAGE, followlinks=True)
        for name in names
        if name.endswith(".py")
    ]
    return {module_name(path): path for path in sorted(paths)}


def unit(module: str) -> str:
    """`delcli.cli.app` → `cli`, `delcli.errors` → `errors`, `delcli` → `delcli`."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def imports(module: str, path: Path, known: dict[str, Path]) -> list[tuple[str, int]]:
    """(imported delcli module, line) for every import and module-naming string in `path`."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[tuple[str, int]] = []

    def add(name: str, line: int) -> None:
        while name not in known and "." in name:  # `from delcli.io import probe` → delcli.io
            name = name.rpartition(".")[0]
        if name in known:
            found.append((name, line))

    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:  # `from delcli.cli import app`: the module delcli.cli.app
                add(
                    f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base, node.lineno
                )
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in known:
            add(node.value, node.lineno)
    return [(name, line) for name, line in found if name != module]


def import_graph() -> dict[str, list[tuple[str, int]]]:
    known = modules()
    return {name: imports(name, path, known) for name, path in known.items()}


def test_every_unit_of_the_package_has_a_layer():
    units = {unit(name) for name in modules()}
    assert units - set(LAYERS) == set(), "place the new package in LAYERS and the docs"
    assert set(LAYERS) - units == set(), "LAYERS names a unit the package no longer has"


def test_no_module_imports_a_layer_above_its_own():
    rank = {name: index for index, name in enumerate(LAYERS)}
    wrong = [
        f"{module} (line {line}) imports {target}: {unit(target)} is above {unit(module)}"
        for module, targets in import_graph().items()
        for target, line in targets
        if rank[unit(target)] > rank[unit(module)]
    ]
    assert not wrong, "imports against the layer order:\n" + "\n".join(wrong)


def test_no_import_circles_between_modules():
    graph = {
        module: {target for target, _ in targets} for module, targets in import_graph().items()
    }
    circles = []
    state: dict[str, str] = {}  # module → "open" while on the path, "done" after

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for target in sorted(graph[module]):
            if state.get(target) == "open":
                circles.append(" → ".join([*path[path.index(target) :], target]))
            elif target not in state:
                visit(target, [*path, target])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert not circles, "import circles:\n" + "\n".join(circles)


def test_the_layers_are_those_docs_architecture_md_lists():
    """The table of docs/architecture.md § Layers (layer 1, the bottom, first) is LAYERS."""
    text = ARCHITECTURE.read_text(encoding="utf-8")
    section = text.split("## Layers", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\|\s*\d+\s*\|\s*`([\w.]+)`", section, flags=re.MULTILINE)
    assert [name.removeprefix("delcli.") for name in rows] == list(LAYERS)


def test_the_checker_sees_function_level_imports_and_registry_strings():
    graph = {m: {t for t, _ in targets} for m, targets in import_graph().items()}
    assert "delcli.cli.data_cmd" in graph["delcli.cli.app"]  # inside a function
    assert "delcli.features.basic" in graph["delcli.features"]  # a registry string

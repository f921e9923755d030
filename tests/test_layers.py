"""The house rules: every module imports, and no import runs back up the layers.

Layers, lowest first (a module may import its own layer and the ones below):

0. ``errors``, then ``sample``, then ``taxonomies`` and ``seeding`` — shared vocabulary;
1. ``data`` (readers, writers, I/O) and ``engine`` (the run engine below every family; the two
   share atomic writes and progress);
2. ``events`` — pure: masks in, masks out;
3. ``viz`` — pictures of masks, events and samples;
4. ``metrics``, ``synthesis``, ``detectors`` — the model families (no family imports another,
   except detectors using metrics to score);
5. ``generation`` — whole datasets (and their exports);
5.5 ``protocol`` — transfer experiments: generation, then detectors trained and scored;
6. ``cli`` — the only place that draws with rich.
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

import pytest

import changen

LAYER = {
    "errors": 0.0,
    "sample": 0.1,
    "taxonomies": 0.2,
    "seeding": 0.2,
    "data": 1,
    "engine": 1,
    "events": 2,
    "viz": 3,
    "metrics": 4,
    "synthesis": 4,
    "detectors": 4,
    "generation": 5,
    "protocol": 5.5,
    "cli": 6,
}
SIBLINGS_ALLOWED = {("detectors", "metrics"), ("data", "engine"), ("engine", "data")}
"""Same-layer imports that are allowed: (importer, imported)."""
ROOT = Path(changen.__file__).parent
MODULES = sorted(m.name for m in pkgutil.walk_packages([str(ROOT)], prefix="changen."))


def _package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _imports(path: Path) -> set[str]:
    """Absolute module names imported anywhere in a file (function-local imports included)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def _file(module: str) -> Path:
    rel = Path(*module.split(".")[1:])
    package = ROOT / rel / "__init__.py"
    return package if package.is_file() else (ROOT / rel).with_suffix(".py")


@pytest.mark.parametrize("module", MODULES)
def test_every_module_imports(module: str) -> None:
    importlib.import_module(module)


def test_every_package_has_a_layer() -> None:
    packages = {_package(m) for m in MODULES} - {"__init__"}
    assert packages <= set(LAYER), f"give these packages a layer: {packages - set(LAYER)}"


@pytest.mark.parametrize("module", MODULES)
def test_no_import_runs_up_the_layers(module: str) -> None:
    own = _package(module)
    if own == "__init__":
        return
    for name in sorted(_imports(_file(module))):
        top = name.split(".")[0]
        assert top != "rich" or LAYER[own] == LAYER["cli"], f"{module} draws with rich ({name})"
        if top != "changen" or name == "changen":
            continue
        other = _package(name)
        assert other != "training", f"{module} imports the removed training package"
        if other == own or other == "__init__":
            continue
        allowed = LAYER[other] < LAYER[own] or (own, other) in SIBLINGS_ALLOWED
        assert allowed, f"{module} (layer {LAYER[own]}) imports {name} (layer {LAYER[other]})"

"""Light imports (issue 16, items 7 and 9): what importing a package pulls in, measured in a
fresh interpreter, and the names and help a newcomer looks for."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import changen

SRC = Path(changen.__file__).parent


def loaded_after(code: str, *modules: str) -> dict[str, bool]:
    """Which of ``modules`` are imported once ``code`` has run in a fresh interpreter."""
    probe = (
        f"{code}\nimport json, sys\nprint(json.dumps({{m: m in sys.modules for m in {modules!r}}}))"
    )
    run = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True
    )
    return json.loads(run.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    ("code", "absent"),
    [
        ("import changen.metrics", ("torch", "torchvision", "torchmetrics")),
        ("import changen.events", ("torch", "skimage")),
        ("import changen.cli.app", ("torch", "torchvision", "skimage")),
        ("import changen.data.readers.pooled", ("torch",)),
    ],
)
def test_import_pulls_no_heavy_module(code: str, absent: tuple[str, ...]) -> None:
    loaded = loaded_after(code, *absent)
    assert not any(loaded.values()), f"{code} imports {[m for m, on in loaded.items() if on]}"


def test_lazy_names_resolve() -> None:
    from changen.events import OBJECT_TAXONOMY, contour_map, propose_instances, unlabeled
    from changen.metrics import BinaryChangeMetric, change

    assert propose_instances is unlabeled.propose_instances
    assert contour_map is unlabeled.contour_map and OBJECT_TAXONOMY is unlabeled.OBJECT_TAXONOMY
    assert BinaryChangeMetric is change.BinaryChangeMetric
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = changen.events.nope


def test_only_lightning_fabric_is_used() -> None:
    """The package depends on lightning-fabric, not all of lightning: no module imports it."""
    umbrella = []
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            umbrella += [f"{path.name}: {n}" for n in names if n.split(".")[0] == "lightning"]
    assert not umbrella


def test_package_help_says_what_it_is() -> None:
    doc = changen.__doc__ or ""
    for needed in ("changen generate", "open_dataset", "generate_dataset", "changen.events"):
        assert needed in doc

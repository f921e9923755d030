"""The reference implementations the benchmarks compare against, loaded by file path.

torchange 0.0.4 (``pip install --no-deps torchange==0.0.4``) is imported file by file: its
package ``__init__`` pulls in dependencies (``ever``, ``datasets``…) the compared files do not
need.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType


def load_torchange_file(relative: str) -> ModuleType:
    """torchange's module at ``relative`` (e.g. ``models/changen2/rsdit.py``), by path."""
    spec = importlib.util.find_spec("torchange")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("torchange is not installed: pip install --no-deps torchange==0.0.4")
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    name = "torchange_" + path.stem
    file_spec = importlib.util.spec_from_file_location(name, path)
    assert file_spec is not None and file_spec.loader is not None
    module = importlib.util.module_from_spec(file_spec)
    file_spec.loader.exec_module(module)
    return module

"""What makes a generated dataset re-runnable and citable: the run's request as JSON (so
``changen generate --config generation.json`` makes the same bytes again) and the environment
that made it (changen and library versions, the command line).

``generation.json`` holds three records: ``config`` (what the run made, checked by
``--resume``), ``request`` (:func:`request_record`: the :class:`GenerationConfig` itself, with
absolute source paths, read back by :func:`config_from_request`) and ``environment``
(:func:`environment`).
"""

from __future__ import annotations

import json
import platform
import sys
from dataclasses import asdict, fields
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from changen import __version__
from changen.errors import ConfigError, DataError

if TYPE_CHECKING:
    from changen.generation import GenerationConfig

#: Libraries whose version is recorded (those installed; ``None`` for the others).
LIBRARIES = ("numpy", "torch", "rasterio", "opencv-python-headless", "opencv-python", "diffusers")

#: The ``request`` keys that hold plain JSON values, copied as they are.
_PLAIN = (
    "layout",
    "per_image",
    "seed",
    "crop",
    "empty",
    "limit",
    "shard_size",
    "synthesizer_options",
    "donors",
    "negatives",
    "gsd",
    "unlabeled",
)


def environment() -> dict[str, Any]:
    """changen's, Python's, GDAL's and :data:`LIBRARIES`' versions, and ``sys.argv``."""
    import rasterio

    versions: dict[str, str | None] = {"changen": __version__, "python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    versions["gdal"] = rasterio.__gdal_version__
    return {"versions": versions, "command": list(sys.argv), "platform": platform.platform()}


def request_record(config: GenerationConfig, synthesizer: str) -> dict[str, Any]:
    """``config`` as JSON (sources with absolute paths, ``synthesizer`` the resolved spec)."""
    from changen.sample import Taxonomy

    taxonomy: str | dict[str, Any] | None = None
    if isinstance(config.taxonomy, Taxonomy):
        taxonomy = config.taxonomy.to_dict()
    elif config.taxonomy is not None:
        given = Path(config.taxonomy)
        taxonomy = str(given.resolve()) if given.is_file() else config.taxonomy
    return {
        "source": [asdict(e) for e in config.entries()],
        "synthesizer": synthesizer,
        "process": config.process.to_dict(),
        "taxonomy": taxonomy,
        "nuisance": None if config.nuisance is None else asdict(config.nuisance),
        "splits": None if config.splits is None else config.splits.to_dict(),
        **{key: getattr(config, key) for key in _PLAIN},
    }


def read_request(path: Path) -> dict[str, Any]:
    """The ``request`` record of a ``generation.json`` file (one-line errors naming the file)."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: no such file; give the generation.json of a generated dataset"
        ) from None
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise DataError(f"{path}: not a readable generation.json ({e})") from None
    request = doc.get("request") if isinstance(doc, dict) else None
    if not isinstance(request, dict):
        raise DataError(
            f"{path}: no 'request' record (written by an older changen, or not a "
            f"generation.json); rerun that generate command by hand"
        )
    return request


def config_from_request(request: dict[str, Any], path: Path) -> GenerationConfig:
    """The :class:`GenerationConfig` a ``request`` record describes."""
    from changen.data.readers.pooled import SourceEntry
    from changen.events import ChangeProcess
    from changen.generation import GenerationConfig
    from changen.generation.plan import SplitSpec
    from changen.sample import Taxonomy
    from changen.synthesis.nuisance import NuisanceConfig

    try:
        taxonomy = request["taxonomy"]
        return GenerationConfig(
            source=tuple(SourceEntry(**e) for e in request["source"]),
            synthesizer=request["synthesizer"],
            process=ChangeProcess.from_dict(request["process"]),
            taxonomy=Taxonomy.from_dict(taxonomy) if isinstance(taxonomy, dict) else taxonomy,
            nuisance=None if request["nuisance"] is None else NuisanceConfig(**request["nuisance"]),
            splits=None if request["splits"] is None else SplitSpec.from_dict(request["splits"]),
            **{key: request[key] for key in _PLAIN},
        )
    except (KeyError, TypeError, ValueError) as e:
        known = ", ".join(f.name for f in fields(GenerationConfig))
        raise DataError(
            f"{path}: damaged 'request' record ({type(e).__name__}: {e}); it holds {known}"
        ) from None

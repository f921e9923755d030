"""Shared helpers of the generation tests (no tests here): a trivial random synthesizer,
seeded sources and a file-by-file comparison of generated datasets."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from changen.data.world import write_sample_world
from changen.errors import ConfigError
from changen.events import ChangeProcess
from changen.generation import GenerationConfig
from changen.synthesis import SYNTHESIZERS
from changen.synthesis.base import SynthesisBatch, check_rngs

FOREGROUND_ON = (1, 2, 3, 7)


class NoiseFill:
    """Changed pixels get noise from the sample's generator; the rest is t1 (so any mix-up of
    generators between samples changes the bytes)."""

    name = "noise_fill"

    def config(self) -> dict[str, Any]:
        return {"name": self.name}

    def __call__(self, batch: SynthesisBatch, rngs: Any) -> np.ndarray:
        check_rngs(batch, rngs)
        out = batch.t1_image.copy()
        for b, rng in enumerate(rngs):
            changed = batch.t1_mask[b] != batch.t2_mask[b]
            out[b][changed] = rng.integers(0, 256, (int(changed.sum()), 3), dtype=np.uint8)
        return out


class Picky(NoiseFill):
    """A synthesizer whose checkpoint fits no source (like a GAN trained on other classes)."""

    def check_taxonomy(self, taxonomy: Any) -> None:
        raise ConfigError(f"checkpoint has 3 classes but taxonomy {taxonomy.name!r} has more")


def register_fakes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(SYNTHESIZERS, "noise_fill", f"{__name__}:NoiseFill")
    monkeypatch.setitem(SYNTHESIZERS, "picky", f"{__name__}:Picky")


def world_source(root: Path, n: int = 4, size: int = 64, seed: int = 0) -> Path:
    return write_sample_world(root, n, seed, size=size)


def small_process(steps: int = 1) -> ChangeProcess:
    """Create on open land, remove and re-class, sized for 64² scenes."""
    return ChangeProcess.from_flags(
        "create,remove,reclass",
        count=(1, 3),
        placement="within",
        within_classes=FOREGROUND_ON,
        fill="surrounding",
        min_area=16,
        steps=steps,
    )


def config(source: Path, **kw: Any) -> GenerationConfig:
    base: dict[str, Any] = {
        "source": str(source),
        "synthesizer": "noise_fill",
        "process": small_process(kw.pop("steps", 1)),
        "per_image": 2,
        "shard_size": 3,
    }
    return GenerationConfig(**{**base, **kw})


def dataset_files(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (gallery excluded), manifest rows without their timings, and
    ``generation.json`` and the card without the command line each run records."""
    out: dict[str, bytes] = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if not path.is_file() or rel.startswith("gallery"):
            continue
        data = path.read_bytes()
        if rel.startswith("manifest/"):
            rows = [json.loads(line) for line in data.decode().splitlines()]
            for row in rows:
                row.pop("timing")
            data = json.dumps(rows).encode()
        elif rel == "generation.json":
            doc = json.loads(data)
            doc.get("environment", {}).pop("command", None)
            data = json.dumps(doc).encode()
        elif rel == "README.md":
            data = re.sub(r"by:\n\n```\n.*\n```", "by: COMMAND", data.decode()).encode()
        out[rel] = data
    return out

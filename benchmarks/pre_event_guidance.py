"""Does a Changen GAN checkpoint follow its pre-event image? Mean |Δ| when only I_t changes.

Usage: ``python benchmarks/pre_event_guidance.py --checkpoint CKPT [--checkpoint CKPT2 …]
--source DIR [--events process.json] [--limit N] [--seed 0] [--out DIR]``. Prints one JSON
object.

The held-out crops and their simulated events come from :func:`changen.generation.
generate_dataset` with the copy-paste synthesizer (same seed, so the same crops and events
whatever the checkpoint). Each checkpoint then synthesizes every pair twice with the same
masks and the same noise: once from its own I_t, once from the I_t of the next pair (another
scene). ``unchanged_delta`` / ``changed_delta`` are the mean absolute difference (0–255, over
RGB) between the two outputs on unchanged / changed pixels. A generator that ignores I_t
scores 0 everywhere; one guided by I_t where the scene stays the same scores high on
``unchanged_delta``, and ``changed_delta`` shows how much I_t still reaches changed regions.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from changen.data.readers import open_dataset
from changen.events import ChangeProcess
from changen.generation import GenerationConfig, RunOptions, generate_dataset
from changen.sample import ChangeSample
from changen.synthesis.base import SynthesisBatch
from changen.synthesis.gan.synthesizer import GanSynthesizer

BATCH = 8


def held_out_pairs(args: argparse.Namespace, process: ChangeProcess) -> list[ChangeSample]:
    """The crops, masks and change labels every checkpoint is measured on."""
    config = GenerationConfig(
        source=args.source,
        synthesizer="copy_paste",
        process=process,
        per_image=1,
        seed=args.seed,
        crop=args.crop,
        limit=args.limit,
    )
    folder = args.out / "pairs"
    generate_dataset(config, folder, RunOptions(workers=0, overwrite=True))
    reader = open_dataset(folder)
    return [reader[i] for i in range(len(reader))]


def synthesize(syn: GanSynthesizer, images: np.ndarray, pairs: list[ChangeSample]) -> np.ndarray:
    """Post-event images from ``images`` as I_t and the pairs' masks; noise from pair index."""
    outs = []
    for start in range(0, len(pairs), BATCH):
        part = pairs[start : start + BATCH]
        batch = SynthesisBatch(
            images[start : start + BATCH],
            np.stack([p.t1_mask for p in part]),
            np.stack([p.t2_mask for p in part]),
        )
        rngs = [np.random.default_rng([7, start + i]) for i in range(len(part))]
        outs.append(syn(batch, rngs))
    return np.concatenate(outs)


def guidance(checkpoint: str, pairs: list[ChangeSample]) -> dict[str, Any]:
    """``unchanged_delta`` and ``changed_delta`` of one checkpoint (see the module docstring)."""
    syn = GanSynthesizer.from_checkpoint(checkpoint, device="cpu")
    own = np.stack([p.t1_image for p in pairs])
    other = np.roll(own, 1, axis=0)
    delta = np.abs(
        synthesize(syn, own, pairs).astype(np.float64)
        - synthesize(syn, other, pairs).astype(np.float64)
    ).mean(-1)
    changed = np.stack([p.change_mask == 1 for p in pairs])
    return {
        "unchanged_delta": float(delta[~changed].mean()),
        "changed_delta": float(delta[changed].mean()) if changed.any() else None,
        "masking": syn.generator.config.masking,
        "object_classes": list(syn.generator.config.object_classes),
        "step": syn.step,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", action="append", required=True)
    parser.add_argument("--source", required=True, help="Held-out single-temporal dataset.")
    parser.add_argument("--events", type=Path, default=None, help="ChangeProcess JSON.")
    parser.add_argument("--crop", type=int, default=None)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("pre-event-guidance"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    process = (
        ChangeProcess.from_dict(json.loads(args.events.read_text()))
        if args.events
        else ChangeProcess.from_flags("create,remove", count=(1, 5))
    )
    pairs = held_out_pairs(args, process)
    result = {
        "setup": {"source": args.source, "samples": len(pairs), "seed": args.seed},
        "checkpoints": {c: guidance(c, pairs) for c in args.checkpoint},
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

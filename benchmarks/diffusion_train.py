"""CPU training step time of the diffusion trainer (``changen train diffusion``).

Usage: ``python benchmarks/diffusion_train.py [--presets tiny S/2] [--size 64] [--batch 4]
[--repeats 3] [--threads 2] [--out result.json]``. Prints one JSON object.

Each case builds the real :class:`~changen.synthesis.diffusion.train.DiffusionTrainer` on a
seeded sample world (OpenEarthMap classes, one-hot labels) in pixel space and times
:meth:`~changen.synthesis.diffusion.train.DiffusionTrainer.update` — data, forward, ε-MSE + VB
loss, backward, AdamW, EMA — as the median seconds per step. At ``--size 64`` in pixel space
the RS-DiT sees a 32×32 token grid, the grid of a 256² image in an f = 8 latent space (the
paper's setting, without the autoencoder's encode).
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
from pathlib import Path
from typing import Any

import torch
from lightning_fabric import Fabric

from changen.data.atomic import write_text_atomic
from changen.data.world import write_sample_world
from changen.engine.config import RunConfig
from changen.synthesis.diffusion.rsdit import parameter_count
from changen.synthesis.diffusion.train import DiffusionTrainer
from changen.synthesis.diffusion.train_config import DiffusionTrainConfig
from timing import median_seconds


def case(world: Path, preset: str, size: int, batch: int, repeats: int) -> dict[str, Any]:
    config = DiffusionTrainConfig(
        data=str(world),
        preset=preset,
        size=size,
        batch_size=batch,
        holdout=0.0,
        run=RunConfig(accelerator="cpu"),
    )
    trainer = DiffusionTrainer(config, Fabric(accelerator="cpu", devices=1))
    seconds = median_seconds(trainer.update, repeats)
    return {
        "preset": preset,
        "parameters_M": round(parameter_count(trainer.ema) / 1e6, 3),
        "image_size": size,
        "token_grid": size // 2,
        "batch": batch,
        "s_per_step": round(seconds, 4),
        "images_per_s": round(batch / seconds, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["tiny", "S/2"])
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        world = write_sample_world(Path(tmp) / "world", 8, 0, size=max(args.size, 64))
        cases = [case(world, p, args.size, args.batch, args.repeats) for p in args.presets]
    result = {
        "benchmark": "diffusion_train",
        "cpu": platform.processor() or platform.machine(),
        "threads": args.threads,
        "torch": torch.__version__,
        "cases": cases,
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out is not None:
        write_text_atomic(args.out, text + "\n")


if __name__ == "__main__":
    main()

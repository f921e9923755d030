"""Latent autoencoders: encode/decode throughput and training step time on CPU.

Usage: ``python benchmarks/autoencoder.py [--size 256] [--batch 1] [--repeats 2]
[--threads 2] [--presets tiny full] [--train-size 64] [--train-batch 4] [--out r.json]``.
Prints one JSON object.

For each kind (``kl``: AutoencoderKL f=8; ``vq``: VQModel f=4) and preset, with random
weights: images/s of ``encode`` (the latent space's: posterior mean / pre-quantisation
features) and of ``decode`` (VQ: with quantisation) at ``size``², in fp32 and in bf16 autocast
(CPU), median of ``repeats`` calls after one warm-up; and, for the ``tiny`` presets, the wall
seconds of one :class:`~changen.synthesis.diffusion.autoencoder_train.AutoencoderTrainer`
step (``train_size``² crops, ``train_batch`` per step) without and with the patch-GAN term.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import tempfile
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import torch

from changen.data.atomic import write_text_atomic
from changen.data.world import write_sample_world
from changen.engine.config import RunConfig
from changen.synthesis.diffusion.autoencoder import PRESETS, build_autoencoder, raw_latents
from timing import median_seconds


def autocast(precision: str) -> contextlib.AbstractContextManager[Any]:
    if precision == "bf16":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def throughput(kind: str, name: str, size: int, batch: int, repeats: int) -> dict[str, Any]:
    """Encode and decode images/s of one preset in fp32 and bf16."""
    torch.manual_seed(0)
    model: Any = build_autoencoder(PRESETS[kind][name]).eval()
    x = torch.rand(batch, 3, size, size) * 2 - 1
    out: dict[str, Any] = {"params_m": sum(p.numel() for p in model.parameters()) / 1e6}
    with torch.no_grad():
        z = raw_latents(model, x)
        out["latent"] = list(z.shape[1:])
        for precision in ("fp32", "bf16"):
            steps = (("encode", partial(raw_latents, model), x), ("decode", model.decode, z))
            for what, fn, data in steps:
                seconds = median_seconds(partial(timed, fn, data, precision), repeats)
                out[f"{what}_{precision}_img_s"] = round(batch / seconds, 3)
    return out


def timed(fn: Callable[..., Any], data: torch.Tensor, precision: str) -> None:
    """``fn(data)`` in ``precision``."""
    with autocast(precision):
        fn(data)


def train_step(kind: str, world: Path, size: int, batch: int, repeats: int) -> dict[str, float]:
    """Seconds per training step of the tiny preset, without and with the GAN term."""
    from lightning_fabric import Fabric

    from changen.synthesis.diffusion.autoencoder_train import (
        AutoencoderTrainConfig,
        AutoencoderTrainer,
    )

    out = {}
    for label, start in (("s_per_step", 10**9), ("s_per_step_gan", 0)):
        config = AutoencoderTrainConfig(
            data=str(world), kind=kind, preset="tiny", size=size, batch_size=batch,
            holdout=0.0, disc_start=start, run=RunConfig(accelerator="cpu"),
        )  # fmt: skip
        trainer = AutoencoderTrainer(config, Fabric(accelerator="cpu", devices=1))
        step = partial(trainer.train_step, trainer.eval_images(batch))
        out[label] = round(median_seconds(step, repeats), 4)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--presets", nargs="+", default=["tiny", "full"])
    parser.add_argument("--train-size", type=int, default=64)
    parser.add_argument("--train-batch", type=int, default=4)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    result: dict[str, Any] = {
        "machine": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "threads": args.threads,
        "size": args.size,
        "batch": args.batch,
        "throughput": {},
        "train_step": {"size": args.train_size, "batch": args.train_batch},
    }
    for kind in PRESETS:
        for name in args.presets:
            result["throughput"][f"{kind}/{name}"] = throughput(
                kind, name, args.size, args.batch, args.repeats
            )
    with tempfile.TemporaryDirectory() as tmp:
        world = write_sample_world(Path(tmp) / "w", 4, 0, size=args.train_size)
        for kind in PRESETS:
            result["train_step"][f"{kind}/tiny"] = train_step(
                kind, world, args.train_size, args.train_batch, args.repeats + 1
            )
    text = json.dumps(result, indent=2)
    print(text)
    if args.out is not None:
        write_text_atomic(args.out, text + "\n")


if __name__ == "__main__":
    main()

"""Changen GAN on CPU: parameter counts, generator throughput, one G+D training step, peak RSS.

Usage: ``python benchmarks/gan.py [--preset changen] [--repeats 3] [--out result.json]``.
Prints one JSON object. Paper widths, random weights, 2 threads.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
from pathlib import Path

import torch
from torch import nn

from changen.data.atomic import write_text_atomic
from changen.synthesis.gan import (
    PRESETS,
    ChangenGenerator,
    SegDiscriminator,
    d_loss,
    g_loss,
    preset,
)
from timing import median_seconds

THREADS = 2
BATCH = 4


def params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def inputs(size: int, num_classes: int, seed: int = 0) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    image = torch.rand(BATCH, 3, size, size, generator=g) * 2 - 1
    t1 = torch.randint(0, num_classes, (BATCH, size, size), generator=g)
    t2 = torch.randint(0, num_classes, (BATCH, size, size), generator=g)
    return image, t1, t2


def inference(gen: ChangenGenerator, repeats: int, fast: bool) -> float:
    """Generator images/s at 256² (fp32 eager, or bf16 autocast + channels_last)."""
    image, t1, t2 = inputs(256, gen.config.num_classes)
    if fast:
        gen = gen.to(memory_format=torch.channels_last)
        image = image.contiguous(memory_format=torch.channels_last)

    @torch.inference_mode()
    def run() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=fast):
            gen(image, t1, t2, generator=torch.Generator().manual_seed(0))

    seconds = median_seconds(run, repeats)
    gen.to(memory_format=torch.contiguous_format)
    return BATCH / seconds


def train_step_seconds(gen: ChangenGenerator, disc: SegDiscriminator, repeats: int) -> float:
    """One generator update then one discriminator update (Algorithm 1) at 128²."""
    gen.train()
    disc.train()
    opt_g = torch.optim.Adam(gen.parameters(), lr=1e-4, betas=(0.0, 0.999))
    opt_d = torch.optim.Adam(disc.parameters(), lr=4e-4, betas=(0.0, 0.999))
    image, t1, t2 = inputs(128, gen.config.num_classes)
    noise = torch.Generator().manual_seed(0)

    def step() -> None:
        fake = gen(image, t1, t2, generator=noise)
        opt_g.zero_grad(set_to_none=True)
        g_loss(disc, fake, t2).backward()
        opt_g.step()
        opt_d.zero_grad(set_to_none=True)
        d_loss(disc, image, t1, fake, t2).backward()
        opt_d.step()

    return median_seconds(step, repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--preset", default="changen", choices=sorted(PRESETS))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(THREADS)
    torch.manual_seed(0)

    config = preset(args.preset)
    gen = ChangenGenerator(config.generator).eval()
    disc = SegDiscriminator(config.discriminator)
    result = {
        "preset": args.preset,
        "num_classes": config.num_classes,
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
        "threads": THREADS,
        "load_average_1m_at_start": round(os.getloadavg()[0], 2),
        "batch": BATCH,
        "params": {
            "generator": params(gen),
            "generator_encoder": params(gen.encoder) if gen.encoder is not None else 0,
            "generator_transitions": params(gen.transitions),
            "discriminator": params(disc),
            **{
                f"generator[{name}]": params(ChangenGenerator(preset(name).generator))
                for name in ("changen_no_destyle", "oasis_gpcm", "spade_gpcm")
            },
        },
        "generator_256_images_per_s": {
            "fp32_eager": round(inference(gen, args.repeats, fast=False), 3),
            "bf16_autocast_channels_last": round(inference(gen, args.repeats, fast=True), 3),
        },
        "train_step_128_s": round(train_step_seconds(gen, disc, args.repeats), 3),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out is not None:
        write_text_atomic(args.out, text + "\n")


if __name__ == "__main__":
    main()

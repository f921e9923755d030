"""GanSynthesizer inference on CPU: images/s per preset and precision, 1024² forward time.

Usage: ``python benchmarks/gan_inference.py [--presets tiny changen] [--size 256] [--batch 4]
[--big 1024] [--repeats 3] [--threads 2] [--out result.json]``. Prints one JSON object.

Cases, random weights, OpenEarthMap's 9 classes:

- ``images_per_s``: :class:`GanSynthesizer` on a batch of ``--batch`` ``--size``² uint8 inputs
  (the whole call: conversion, padding, noise, forward, uint8 output), ``fp32`` eager vs
  ``bf16_channels_last`` (bf16 autocast + channels-last); ``bf16_mean_abs_diff`` is the mean
  absolute uint8 difference between the two outputs.
- ``forward_<big>_s``: the paper preset on one ``--big``² image: the bare generator forward
  (batch 1) per precision, and the batch-invariant synthesizer call, which runs a lone image
  twice on the CPU (see ``changen.synthesis.gan.synthesizer.forward_chunks``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
from pathlib import Path
from typing import Any

import numpy as np
import torch

from changen.data.atomic import write_text_atomic
from changen.synthesis.base import SynthesisBatch
from changen.synthesis.gan import PRESETS, ChangenGenerator, preset
from changen.synthesis.gan.synthesizer import GanSynthesizer
from changen.taxonomies import OPENEARTHMAP
from timing import median_seconds

MODES = {"fp32": ("fp32", False), "bf16_channels_last": ("bf16", True)}


def make_batch(batch: int, size: int, seed: int = 0) -> SynthesisBatch:
    r = np.random.default_rng(seed)
    n = OPENEARTHMAP.num_classes
    cells = r.integers(0, n, (2, batch, size // 16, size // 16), dtype=np.uint8)
    masks = np.ascontiguousarray(cells.repeat(16, axis=2).repeat(16, axis=3))
    image = r.integers(0, 256, (batch, size, size, 3), dtype=np.uint8)
    return SynthesisBatch(image, masks[0], masks[1])


def rngs(batch: int) -> list[np.random.Generator]:
    return [np.random.default_rng([0, i]) for i in range(batch)]


def throughput(gen: ChangenGenerator, args: argparse.Namespace) -> dict[str, Any]:
    batch = make_batch(args.batch, args.size)
    result: dict[str, Any] = {"images_per_s": {}}
    outputs = {}
    for mode, (precision, channels_last) in MODES.items():
        syn = GanSynthesizer(gen, OPENEARTHMAP, precision=precision, channels_last=channels_last)
        outputs[mode] = syn(batch, rngs(args.batch))
        seconds = median_seconds(lambda s=syn: s(batch, rngs(args.batch)), args.repeats)
        result["images_per_s"][mode] = round(args.batch / seconds, 3)
    diff = np.abs(outputs["fp32"].astype(np.int16) - outputs["bf16_channels_last"])
    result["bf16_mean_abs_diff"] = round(float(diff.mean()), 3)
    return result


def big_forward(gen: ChangenGenerator, size: int, repeats: int) -> dict[str, float]:
    """Seconds for one ``size``² image: bare forward per precision, and the synthesizer."""
    n = OPENEARTHMAP.num_classes
    g = torch.Generator().manual_seed(0)
    image = torch.rand(1, 3, size, size, generator=g) * 2 - 1
    t1 = torch.randint(0, n, (1, size, size), generator=g)
    t2 = torch.randint(0, n, (1, size, size), generator=g)
    noise = torch.randn(1, gen.config.z_dim, generator=g)
    result = {}
    for mode, (precision, channels_last) in MODES.items():
        syn = GanSynthesizer(gen, OPENEARTHMAP, precision=precision, channels_last=channels_last)
        x = image.contiguous(memory_format=torch.channels_last) if channels_last else image

        @torch.inference_mode()
        def run(syn: GanSynthesizer = syn, x: torch.Tensor = x, bf16: bool = precision == "bf16"):
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                syn.generator(x, t1, t2, noise=noise)

        result[f"generator_{mode}"] = round(median_seconds(run, repeats), 3)
    syn = GanSynthesizer(gen, OPENEARTHMAP, precision="bf16", channels_last=True)
    batch = make_batch(1, size)
    seconds = median_seconds(lambda: syn(batch, rngs(1)), repeats)
    result["synthesizer_bf16_channels_last"] = round(seconds, 3)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--presets", nargs="+", default=["tiny", "changen"], choices=PRESETS)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--big", type=int, default=1024, help="0 skips the large forward")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    result: dict[str, Any] = {
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
        "threads": args.threads,
        "load_average_1m_at_start": round(os.getloadavg()[0], 2),
        "size": args.size,
        "batch": args.batch,
        "num_classes": OPENEARTHMAP.num_classes,
        "presets": {},
    }
    gens = {}
    for name in args.presets:
        gens[name] = ChangenGenerator(preset(name, num_classes=OPENEARTHMAP.num_classes).generator)
        result["presets"][name] = {
            "generator_params": sum(p.numel() for p in gens[name].parameters()),
            **throughput(gens[name], args),
        }
    if args.big:
        paper = gens.get("changen") or ChangenGenerator(
            preset("changen", num_classes=OPENEARTHMAP.num_classes).generator
        )
        result[f"changen_forward_{args.big}_s"] = big_forward(paper, args.big, args.repeats)
    result["load_average_1m_at_end"] = round(os.getloadavg()[0], 2)
    result["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out is not None:
        write_text_atomic(args.out, text + "\n")


if __name__ == "__main__":
    main()

"""RS-DiT forward: changen's network against torchange 0.0.4's, with the same weights.

Usage: ``python benchmarks/rsdit.py [--preset S/2] [--sizes 256 1024] [--repeats 2]
[--threads 2] [--out result.json]``. Prints one JSON object.

For each image size (latent = size / 8, 4 channels; label map at the image size, 1 channel as
Changen2's building model): torchange's ``RSDiT`` in fp32 (its only mode that runs on CPU
unchanged), ours in fp32 — the same random weights copied through
:func:`changen.synthesis.diffusion.official.convert_state_dict` — and ours in bf16 autocast
with channels-last, and ours with the label embedding computed once (:meth:`RSDiT.embed_labels`,
as the sampler does over its steps). Reports median seconds, ``speedup`` (torchange / ours)
and the largest absolute output difference (fp32: must be ≤ 1e-5; bf16: its rounding).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
from pathlib import Path
from typing import Any

import torch

from changen.data.atomic import write_text_atomic
from changen.synthesis.diffusion.official import convert_state_dict, infer_config
from changen.synthesis.diffusion.rsdit import RSDiT
from reference import load_torchange_file
from timing import median_seconds

TORCHANGE_PRESETS = {"S/2": "RSDiT_S_2", "B/2": "RSDiT_B_2", "L/2": "RSDiT_L_2"}


def randomised(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Random weights everywhere (DiT zero-initialises its output layers)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.02)
    return model.eval()


def case(theirs: torch.nn.Module, ours: RSDiT, size: int, repeats: int) -> dict[str, Any]:
    latent = size // 8
    x, t = torch.randn(1, 4, latent, latent), torch.tensor([500])
    labels = torch.rand(1, 1, size, size)
    ours_cl = copy.deepcopy(ours).to(memory_format=torch.channels_last)
    x_cl = x.to(memory_format=torch.channels_last)

    def bf16() -> torch.Tensor:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return ours_cl(x_cl, t, labels).float()

    with torch.inference_mode():
        expected, got = theirs(x, t, labels), ours(x, t, labels)
        tokens = ours.embed_labels(labels, ours.token_grid(x))
        seconds = {
            "torchange_fp32": median_seconds(lambda: theirs(x, t, labels), repeats),
            "ours_fp32": median_seconds(lambda: ours(x, t, labels), repeats),
            "ours_fp32_cached_labels": median_seconds(
                lambda: ours(x, t, label_tokens=tokens), repeats
            ),
            "ours_bf16_channels_last": median_seconds(bf16, repeats),
        }
        bf16_diff = float((expected - bf16()).abs().max())
    base = seconds["torchange_fp32"]
    return {
        "latent": latent,
        "seconds": {k: round(v, 3) for k, v in seconds.items()},
        "speedup": {k: round(base / v, 2) for k, v in seconds.items() if k != "torchange_fp32"},
        "max_abs_diff_fp32": float((expected - got).abs().max()),
        "max_abs_diff_bf16": bf16_diff,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="S/2", choices=sorted(TORCHANGE_PRESETS))
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 1024])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    module = load_torchange_file("models/changen2/rsdit.py")
    torch.manual_seed(0)
    theirs = randomised(getattr(module, TORCHANGE_PRESETS[args.preset])())
    state = convert_state_dict(theirs.state_dict())
    ours = RSDiT(infer_config(state)).eval()
    ours.load_state_dict(state)
    result = {
        "preset": args.preset,
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(),
            "threads": args.threads,
            "torch": torch.__version__,
        },
        "sizes": {str(size): case(theirs, ours, size, args.repeats) for size in args.sizes},
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out is not None:
        write_text_atomic(args.out, text + "\n")


if __name__ == "__main__":
    main()

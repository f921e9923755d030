"""Benchmark: ChangeStar 1×96 (ResNet-18) training step and inference speed on CPU.

Cases, on seeded random 256² image pairs:

* ``train``: one SGD step (lr 0.03, momentum 0.9, weight decay 1e-4, as Changen's
  pre-training) on a batch of 4 pairs: forward, BCE on the change logits, backward, update.
  Median seconds per step after warm-up steps.
* ``infer_fp32``: eval-mode forward of batches of 4 pairs without autograd; pairs per second.
* ``infer_bf16_channels_last``: the same under ``torch.autocast("cpu", bfloat16)`` with the
  model and inputs in channels-last memory format; also the largest absolute difference of
  its change probabilities from fp32.

Run: ``.venv/bin/python benchmarks/detectors.py [--threads 2] [--size 256] [--batch 4]
[--steps 5] [--out result.json]``; prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from changen.detectors import build_detector
from timing import median_seconds


def run(threads: int, size: int, batch: int, steps: int, warmup: int) -> dict[str, Any]:
    torch.set_num_threads(threads)
    g = torch.Generator().manual_seed(0)
    t1 = torch.randn(batch, 3, size, size, generator=g)
    t2 = torch.randn(batch, 3, size, size, generator=g)
    target = (torch.rand(batch, 1, size, size, generator=g) > 0.9).float()
    torch.manual_seed(0)
    model = build_detector("changestar_1x96", backbone="resnet18")
    params = sum(p.numel() for p in model.parameters())

    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.03, momentum=0.9, weight_decay=1e-4)

    def train_step() -> None:
        opt.zero_grad(set_to_none=True)
        loss = F.binary_cross_entropy_with_logits(model(t1, t2).change, target)
        loss.backward()
        opt.step()

    train_s = median_seconds(train_step, steps, warmup)

    model.eval()
    with torch.inference_mode():
        fp32_s = median_seconds(lambda: model(t1, t2), steps, warmup)
        reference = torch.sigmoid(model(t1, t2).change)
        model_cl = model.to(memory_format=torch.channels_last)
        c1 = t1.contiguous(memory_format=torch.channels_last)
        c2 = t2.contiguous(memory_format=torch.channels_last)

        def bf16() -> torch.Tensor:
            with torch.autocast("cpu", dtype=torch.bfloat16):
                return model_cl(c1, c2).change

        bf16_s = median_seconds(bf16, steps, warmup)
        diff = (torch.sigmoid(bf16().float()) - reference).abs().max()

    return {
        "setup": {
            "model": "changestar_1x96",
            "backbone": "resnet18",
            "params": params,
            "size": size,
            "batch": batch,
            "threads": threads,
            "steps": steps,
            "warmup": warmup,
            "torch": torch.__version__,
            "cpu_count": os.cpu_count(),
            "machine": platform.machine(),
        },
        "train": {"step_s": round(train_s, 4), "pairs_per_s": round(batch / train_s, 2)},
        "infer_fp32": {"batch_s": round(fp32_s, 4), "pairs_per_s": round(batch / fp32_s, 2)},
        "infer_bf16_channels_last": {
            "batch_s": round(bf16_s, 4),
            "pairs_per_s": round(batch / bf16_s, 2),
            "speedup_vs_fp32": round(fp32_s / bf16_s, 2),
            "max_abs_prob_diff": round(float(diff), 4),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    result = run(args.threads, args.size, args.batch, args.steps, args.warmup)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()

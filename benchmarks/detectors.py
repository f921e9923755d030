"""Benchmark: every change detector's training step and inference speed on CPU, side by side.

For each detector (default: ChangeStar 1×96 R-18, FC-Siam-diff and the comparison detectors
SNUNet-CD, BiT, ChangerEx, ChangeFormer, LightCDNet) at its default width, on seeded random
image pairs (256² by default), in two numeric modes:

* ``fp32``: float32, contiguous tensors;
* ``bf16_channels_last``: ``torch.autocast("cpu", bfloat16)`` with the model and inputs in
  channels-last memory format.

Cases per mode: ``train`` — one step (forward, BCE on the change logits, backward, AdamW
update) on a batch of pairs, median seconds after warm-up, and pairs/s; ``infer`` — eval-mode
forward without autograd, pairs/s. bf16 also reports the largest absolute difference of its
change probabilities from fp32. torchgeo's ``ChangeStarFarSeg`` / ``FCSiamDiff`` are measured
as peers when torchgeo is installed; otherwise ``"peer": "torchgeo not installed"``.

Run: ``.venv/bin/python benchmarks/detectors.py [--models bit changer] [--threads 2]
[--size 256] [--batch 2] [--steps 3] [--out result.json]``; prints one JSON object.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from changen.detectors import build_detector
from timing import median_seconds

MODELS = (
    "changestar_1x96",
    "fc_siam_diff",
    "snunet",
    "bit",
    "changer",
    "changeformer",
    "lightcdnet",
)


def _autocast(bf16: bool) -> AbstractContextManager[Any]:
    return torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else nullcontext()


Forward = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]


def _one_mode(
    model: nn.Module,
    forward: Forward,
    pair: tuple[torch.Tensor, torch.Tensor],
    target: torch.Tensor,
    bf16: bool,
    steps: int,
    warmup: int,
) -> tuple[dict[str, float], torch.Tensor]:
    """Train-step and inference figures in one numeric mode, and the change probabilities."""
    fmt = torch.channels_last if bf16 else torch.contiguous_format
    net = model.to(memory_format=fmt)
    t1, t2 = (t.contiguous(memory_format=fmt) for t in pair)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4)

    def train_step() -> None:
        opt.zero_grad(set_to_none=True)
        with _autocast(bf16):
            logits = forward(net, t1, t2)
        F.binary_cross_entropy_with_logits(logits.float(), target).backward()
        opt.step()

    net.train()
    train_s = median_seconds(train_step, steps, warmup)
    net.eval()
    with torch.inference_mode(), _autocast(bf16):
        infer_s = median_seconds(lambda: forward(net, t1, t2), steps, warmup)
        prob = torch.sigmoid(forward(net, t1, t2).float())
    batch = pair[0].shape[0]
    row = {
        "train_step_s": round(train_s, 4),
        "train_pairs_per_s": round(batch / train_s, 2),
        "infer_pairs_per_s": round(batch / infer_s, 2),
    }
    return row, prob


def measure(
    model: nn.Module,
    forward: Forward,
    pair: tuple[torch.Tensor, torch.Tensor],
    target: torch.Tensor,
    steps: int,
    warmup: int,
) -> dict[str, Any]:
    """Parameters, and train/inference figures of ``model`` in fp32 and bf16 + channels-last
    (``forward(model, t1, t2)`` returns (B, 1, H, W) change logits)."""
    fp32, reference = _one_mode(model, forward, pair, target, False, steps, warmup)
    bf16, prob = _one_mode(model, forward, pair, target, True, steps, warmup)
    bf16["max_abs_prob_diff"] = round(float((prob - reference).abs().max()), 4)
    params = sum(p.numel() for p in model.parameters())
    return {"params": params, "fp32": fp32, "bf16_channels_last": bf16}


def _changen(name: str) -> tuple[nn.Module, Forward]:
    torch.manual_seed(0)
    return build_detector(name), lambda net, t1, t2: net(t1, t2).change


def _torchgeo_star_logit(net: nn.Module, t1: torch.Tensor, t2: torch.Tensor) -> torch.Tensor:
    """torchgeo's ChangeStar returns both directions' change logits in training and the
    t1→t2 probability in eval (its default ``inference_mode``)."""
    out = net(torch.stack([t1, t2], dim=1))
    if net.training:
        return out["bi_change_logit"][:, 0]
    return out["change_prob"].logit(1e-6)


def _torchgeo_peers() -> dict[str, tuple[nn.Module, Forward]]:
    from torchgeo.models import ChangeStarFarSeg, FCSiamDiff

    torch.manual_seed(0)
    star = ChangeStarFarSeg(backbone="resnet18", classes=1, backbone_pretrained=False)
    siam = FCSiamDiff(in_channels=3, classes=1, encoder_weights=None)
    return {
        "torchgeo_changestar_farseg": (star, _torchgeo_star_logit),
        "torchgeo_fcsiamdiff": (siam, lambda net, t1, t2: net(torch.stack([t1, t2], dim=1))),
    }


def run(
    models: list[str], threads: int, size: int, batch: int, steps: int, warmup: int
) -> dict[str, Any]:
    torch.set_num_threads(threads)
    g = torch.Generator().manual_seed(0)
    pair = (
        torch.randn(batch, 3, size, size, generator=g),
        torch.randn(batch, 3, size, size, generator=g),
    )
    target = (torch.rand(batch, 1, size, size, generator=g) > 0.9).float()
    results: dict[str, Any] = {}
    for name in models:
        model, forward = _changen(name)
        results[name] = measure(model, forward, pair, target, steps, warmup)
    peers: dict[str, Any] | str = "torchgeo not installed"
    if importlib.util.find_spec("torchgeo") is not None:
        peers = {
            name: measure(model, forward, pair, target, steps, warmup)
            for name, (model, forward) in _torchgeo_peers().items()
        }
    return {
        "setup": {
            "size": size,
            "batch": batch,
            "threads": threads,
            "steps": steps,
            "warmup": warmup,
            "optimizer": "adamw",
            "torch": torch.__version__,
            "cpu_count": os.cpu_count(),
            "machine": platform.machine(),
        },
        "detectors": results,
        "peer": peers,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    result = run(args.models, args.threads, args.size, args.batch, args.steps, args.warmup)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()

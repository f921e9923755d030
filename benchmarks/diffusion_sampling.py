"""Diffusion sampling: ``DiffusionSynthesizer`` against a bare loop over the same diffusers
scheduler and model, and the peak memory of a 1024² sample.

Usage: ``.venv/bin/python benchmarks/diffusion_sampling.py [--presets tiny S/2] [--size 256]
[--images 2] [--steps 50] [--repeats 2] [--threads 2] [--memory-size 1024]
[--out result.json]``. Prints
one JSON object.

Both sides work in the latent space of a random diffusers ``AutoencoderKL`` (f = 8, 4 latent
channels, small widths, saved to a temporary folder; its weights do not change the cost), so
a 256² image is a 32² latent and 1024² a 128² one; the RS-DiT has random weights and a
one-hot condition of the 9 OpenEarthMap classes.

- **throughput** (images/s, ``--steps`` DDIM steps, a batch of ``--images``): the synthesizer
  (uint8 in and out, label encoding, pre-event encoding, change mask, masked sampling with
  ``switch = 1``, decoding) against the same algorithm written inline: encode the pre-event
  image, DDIM steps of diffusers' ``DDIMScheduler`` on the model with its label tokens
  embedded once, the unchanged region replaced by ``scheduler.add_noise`` of the pre-event
  latent after each step, decode. Both give the same bytes (``max_abs_diff_uint8``). The two
  sides alternate ``--repeats`` times after a 2-step warm-up. Images per CPU second and
  ``overhead`` = synthesizer / bare − 1 (goal ≤ 5 %) use the median **process CPU time**,
  which other jobs on a shared machine disturb far less than wall time (with one thread it is
  the wall time of an idle machine); every run's CPU and wall seconds are listed.
- **memory**: peak RSS of a fresh process that loads the S/2 synthesizer and samples one
  ``--memory-size``² image (batch invariance off, so one pass) with **one** step: a step's
  activations are freed before the next, so 50 steps peak at the same RSS (the RSS after
  loading is reported beside it).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from changen.data.atomic import write_text_atomic
from changen.engine.checkpoint import save_checkpoint
from changen.synthesis.base import SynthesisBatch, torch_seed
from changen.synthesis.classes import model_class_ids
from changen.synthesis.diffusion.labels import LabelSpec
from changen.synthesis.diffusion.model import (
    DiffusionModelConfig,
    build_denoiser,
    checkpoint_config,
    conditioned,
)
from changen.synthesis.diffusion.rsdit import preset_config
from changen.synthesis.diffusion.sampling import latent_change
from changen.synthesis.diffusion.synthesizer import DiffusionSynthesizer
from changen.taxonomies import OPENEARTHMAP


def random_autoencoder(folder: Path) -> Path:
    """A random f = 8 ``AutoencoderKL`` with 4 latent channels, saved with save_pretrained."""
    from diffusers import AutoencoderKL

    torch.manual_seed(0)
    AutoencoderKL(
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(16, 32, 32, 64),
        latent_channels=4,
        layers_per_block=1,
        norm_num_groups=8,
        mid_block_add_attention=False,
    ).save_pretrained(folder)
    return folder


def checkpoint(folder: Path, preset: str, autoencoder: Path) -> Path:
    """A random RS-DiT checkpoint of ``preset`` in the autoencoder's latent space."""
    labels = LabelSpec("onehot", OPENEARTHMAP.num_classes)
    network = preset_config(preset, in_channels=4, label_channels=labels.channels)
    config = DiffusionModelConfig(
        family="rsdit",
        network=network.to_dict(),
        labels=labels,
        latent=str(autoencoder),
        image_size=256,
        class_ids=model_class_ids(OPENEARTHMAP),
        taxonomy=OPENEARTHMAP.to_dict(),
    )
    torch.manual_seed(0)
    net = build_denoiser(config)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    return save_checkpoint(folder, {"denoiser_ema": net}, checkpoint_config(config))


def pairs(n: int, size: int) -> SynthesisBatch:
    """Random images and blocky masks with one changed square each."""
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    t1 = np.repeat(np.repeat(rng.integers(1, 9, (n, size // 32, size // 32)), 32, 1), 32, 2)
    t1 = t1.astype(np.uint8)
    t2 = t1.copy()
    t2[:, size // 4 : size // 2, size // 4 : size // 2] = 8
    return SynthesisBatch(t1_image=image, t1_mask=t1, t2_mask=t2)


def bare_loop(synth: DiffusionSynthesizer, batch: SynthesisBatch, seeds: list[int]) -> np.ndarray:
    """The synthesizer's algorithm written inline over diffusers' DDIMScheduler."""
    scheduler = synth.model.schedule.sampler("ddim", synth.sampling.steps)
    image = torch.from_numpy(batch.t1_image).permute(0, 3, 1, 2).float() / 127.5 - 1
    labels = synth.model.labels.encode(batch.t2_mask)
    with torch.inference_mode():
        pre = synth.latent.encode(image)
        keep = 1 - latent_change(torch.from_numpy(batch.t1_mask != batch.t2_mask), pre.shape[-2:])
        gens = [torch.Generator().manual_seed(s) for s in seeds]
        x = torch.stack([torch.randn(pre.shape[1:], generator=g) for g in gens])
        noise = torch.stack([torch.randn(pre.shape[1:], generator=g) for g in gens])
        x = keep * scheduler.add_noise(pre, noise, scheduler.timesteps[:1]) + (1 - keep) * x
        denoise = conditioned(synth.network, labels)
        c = pre.shape[1]
        for i, t in enumerate(scheduler.timesteps):
            eps = denoise(x, torch.full((len(seeds),), int(t)))[:, :c]
            x = scheduler.step(eps, t, x).prev_sample
            if i + 1 < len(scheduler.timesteps):
                noise = torch.stack([torch.randn(pre.shape[1:], generator=g) for g in gens])
                known = scheduler.add_noise(pre, noise, scheduler.timesteps[i + 1 : i + 2])
            else:
                known = pre
            x = keep * known + (1 - keep) * x
        out = synth.latent.decode(x)
    return ((out + 1) * 127.5).round().clamp(0, 255).byte().permute(0, 2, 3, 1).numpy()


def timed(fn: Any) -> tuple[float, float]:
    """(wall, process CPU) seconds of ``fn()``."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def throughput(
    ckpt: Path, preset: str, size: int, images: int, steps: int, repeats: int
) -> dict[str, Any]:
    batch = pairs(images, size)
    seeds = [torch_seed(np.random.default_rng(i)) for i in range(images)]
    warm = DiffusionSynthesizer.from_checkpoint(ckpt, device="cpu", steps=2)
    warm(batch, [np.random.default_rng(i) for i in range(images)]), bare_loop(warm, batch, seeds)
    synth = DiffusionSynthesizer.from_checkpoint(ckpt, device="cpu", steps=steps)
    out: dict[str, np.ndarray] = {}
    runs: dict[str, Any] = {
        "ours": lambda: out.update(
            ours=synth(batch, [np.random.default_rng(i) for i in range(images)])
        ),
        "bare": lambda: out.update(bare=bare_loop(synth, batch, seeds)),
    }
    wall: dict[str, list[float]] = {"ours": [], "bare": []}
    cpu: dict[str, list[float]] = {"ours": [], "bare": []}
    for _ in range(repeats):  # alternating, so both sides see the same machine load
        for side, run in runs.items():
            w, c = timed(run)
            wall[side].append(w)
            cpu[side].append(c)
    ours, bare = statistics.median(cpu["ours"]), statistics.median(cpu["bare"])
    return {
        "preset": preset,
        "image": size,
        "latent": size // 8,
        "images": images,
        "steps": steps,
        "synthesizer_images_per_cpu_s": round(images / ours, 4),
        "bare_loop_images_per_cpu_s": round(images / bare, 4),
        "overhead": round(ours / bare - 1, 4),
        "cpu_s": {k: [round(t, 3) for t in v] for k, v in cpu.items()},
        "wall_s": {k: [round(t, 3) for t in v] for k, v in wall.items()},
        "max_abs_diff_uint8": int(np.abs(out["ours"].astype(int) - out["bare"]).max()),
    }


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def memory_child(ckpt: Path, size: int) -> None:
    """In a fresh process: peak RSS of one ``size``² sample with one step."""
    synth = DiffusionSynthesizer.from_checkpoint(ckpt, device="cpu", steps=1, batch_invariant=False)
    loaded = rss_mib()
    seconds, _ = timed(lambda: synth(pairs(1, size), [np.random.default_rng(0)]))
    print(json.dumps({"rss_after_load_mib": round(loaded, 1), "peak_rss_mib": round(rss_mib(), 1),
                      "seconds_one_step": round(seconds, 2)}))  # fmt: skip


def memory(ckpt: Path, size: int, threads: int) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--memory-child", str(ckpt), "--memory-size", str(size),
           "--threads", str(threads)]  # fmt: skip
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return {"preset": "S/2", "image": size, "latent": size // 8, **json.loads(out)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["tiny", "S/2"])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--images", type=int, default=2)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--memory-size", type=int, default=1024)
    parser.add_argument("--memory-child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.memory_child is not None:
        memory_child(args.memory_child, args.memory_size)
        return
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        autoencoder = random_autoencoder(root / "vae")
        ckpts = {p: checkpoint(root / p.replace("/", "_"), p, autoencoder) for p in args.presets}
        ckpts.setdefault("S/2", checkpoint(root / "S_2", "S/2", autoencoder))
        result = {
            "machine": {
                "cpu": platform.processor() or platform.machine(),
                "cores": os.cpu_count(),
                "threads": args.threads,
                "torch": torch.__version__,
            },
            "throughput": [
                throughput(ckpts[p], p, args.size, args.images, args.steps, args.repeats)
                for p in args.presets
            ],
            "memory": memory(ckpts["S/2"], args.memory_size, args.threads),
        }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out is not None:
        write_text_atomic(args.out, text + "\n")


if __name__ == "__main__":
    main()

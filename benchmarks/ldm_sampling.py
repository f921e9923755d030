"""ChangeAnywhere sampling speed: the semantic UNet family under two-phase DDIM.

Usage: ``python benchmarks/ldm_sampling.py [--preset tiny] [--size 256] [--steps 50]
[--n-min 10] [--batch 1] [--repeats 3] [--threads 1] [--latent vq|pixel] [--out r.json]``.
Prints one JSON object.

A random ``--preset`` UNet (one-hot labels of 9 classes, OpenEarthMap's) works in the latent
space of a random tiny diffusers ``VQModel`` with f = 4 (saved with ``save_pretrained`` to a
temporary folder and opened as a checkpoint's latent space is; ``--latent pixel`` skips it).
Cases, each the median wall and CPU seconds of a whole batch over ``--repeats`` runs; the
cases take turns within each repeat, so a busy machine slows them alike (with ``--threads 1``
CPU seconds are the figure to compare there):

- ``plain_ddim`` — a bare diffusers loop with the same UNet: ``DDIMScheduler`` respaced to
  ``--steps``, the label map resampled once and concatenated, ``scheduler.step`` per step, no
  masking, one global generator;
- ``two_phase_fp32`` — :func:`changen.synthesis.diffusion.sampling.sample` with
  ``SamplingConfig.from_two_phase(steps, n_min=…)``: per-sample generators, Eq. 6 blending in
  phase 1, the sampler's call of ``network(x, t, labels)``; ``overhead`` is its time over
  ``plain_ddim`` (goal ≤ 5 %);
- ``two_phase_bf16_channels_last`` — the same under bf16 autocast, model and latents
  channels-last;
- ``pipeline_fp32`` — encode the pre-event image, two-phase sampling, decode (images/s of a
  synthesizer's whole diffusion part).

Whole-run times on a shared machine are noisy, so the overhead is also measured without the
network: both loops over a network that returns zeros (ours still conditioning x_t as the UNet
family does), ``loop_cpu_ms_per_step``; ``overhead_of_the_loop`` is the CPU time two-phase
sampling adds, over the plain loop's CPU time with the real UNet.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from diffusers import VQModel
from diffusers.schedulers.scheduling_ddim import DDIMScheduler

from changen.data.atomic import write_text_atomic
from changen.synthesis.diffusion.labels import LabelSpec
from changen.synthesis.diffusion.latent import LatentSpace, open_latent_space
from changen.synthesis.diffusion.model import conditioned
from changen.synthesis.diffusion.sampling import SamplingConfig, latent_change, sample
from changen.synthesis.diffusion.unet import (
    PAPER_SCHEDULE,
    SemanticUNet,
    build_unet,
    preset_config,
    resample_labels,
)

LABELS = LabelSpec("onehot", 9)
VQ_F4 = {
    "block_out_channels": (32, 32, 64),
    "down_block_types": ("DownEncoderBlock2D",) * 3,
    "up_block_types": ("UpDecoderBlock2D",) * 3,
    "layers_per_block": 1,
    "norm_num_groups": 8,
    "latent_channels": 3,
    "num_vq_embeddings": 256,
}
"""A tiny random VQ autoencoder with f = 4 and 3 latent channels (LDM-VQ-f4's shape)."""


def latent_space(kind: str, folder: Path) -> LatentSpace:
    """``pixel``, or a random tiny VQ f4 saved to ``folder`` and opened from there."""
    if kind == "pixel":
        return open_latent_space("pixel")
    torch.manual_seed(0)
    VQModel(**VQ_F4).save_pretrained(folder)
    return open_latent_space(str(folder))


Network = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""``unet(x_t with the labels concatenated, t)`` → ε̂."""


def stub(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """A network that costs nothing: ε̂ = 0 (what is left is the loop's own time)."""
    return torch.zeros_like(x[:, :3])


def plain_ddim(
    net: SemanticUNet, unet: Network, labels: torch.Tensor, shape: tuple[int, ...], steps: int
) -> Callable[[], torch.Tensor]:
    """A bare diffusers DDIM loop calling ``unet`` on x_t with ``net``'s label map (the
    reference for the overhead)."""
    scheduler = DDIMScheduler(
        num_train_timesteps=PAPER_SCHEDULE.train_steps,
        beta_start=PAPER_SCHEDULE.beta_start,
        beta_end=PAPER_SCHEDULE.beta_end,
        beta_schedule=PAPER_SCHEDULE.beta_schedule,
        clip_sample=False,
        timestep_spacing="trailing",
    )
    scheduler.set_timesteps(steps)
    cond = resample_labels(labels, shape[-2:], net.label_resample)

    def run() -> torch.Tensor:
        x = torch.randn(shape, generator=torch.Generator().manual_seed(0))
        for t in scheduler.timesteps:
            eps = unet(torch.cat([x, cond], dim=1), t)
            x = scheduler.step(eps, t, x).prev_sample
        return x

    return run


def two_phase(
    net: SemanticUNet,
    labels: torch.Tensor,
    pre: torch.Tensor,
    change: torch.Tensor,
    config: SamplingConfig,
    bf16: bool = False,
    unet: Network | None = None,
) -> Callable[[], torch.Tensor]:
    """``sampling.sample`` with the two-phase config (optionally bf16 + channels-last), over
    ``net``, or over ``unet`` fed by ``net``'s conditioning when given."""
    if bf16:
        net = copy.deepcopy(net).to(memory_format=torch.channels_last)
        pre = pre.contiguous(memory_format=torch.channels_last)
    denoise = conditioned(net, labels)
    if unet is not None:
        network = unet
        denoise = lambda x, t: network(net.condition(x, labels), t)  # noqa: E731

    def run() -> torch.Tensor:
        generators = [torch.Generator().manual_seed(i) for i in range(pre.shape[0])]
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            return sample(
                denoise,
                PAPER_SCHEDULE,
                pre.shape,
                generators,
                config,
                pre_latent=pre,
                change=change,
            )

    return run


def interleaved(
    cases: dict[str, Callable[[], object]], repeats: int
) -> dict[str, dict[str, float]]:
    """Median wall and CPU seconds of each case, the cases run in turn in every repeat (after
    one untimed round)."""
    for fn in cases.values():
        fn()
    wall: dict[str, list[float]] = {name: [] for name in cases}
    cpu: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(repeats):
        for name, fn in cases.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            fn()
            wall[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - start_cpu)
    return {
        name: {"wall": statistics.median(wall[name]), "cpu": statistics.median(cpu[name])}
        for name in cases
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--n-min", type=int, default=10)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--latent", choices=("vq", "pixel"), default="vq")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        space = latent_space(args.latent, Path(tmp) / "vq")
        torch.manual_seed(0)
        net = build_unet(preset_config(args.preset, LABELS, in_channels=space.channels)).eval()
        n, side = args.batch, args.size
        gen = torch.Generator().manual_seed(1)
        images = torch.rand(n, 3, side, side, generator=gen) * 2 - 1
        masks = (torch.rand(n, side // 32, side // 32, generator=gen) * 9).long()
        labels = LABELS.encode(masks.repeat_interleave(32, 1).repeat_interleave(32, 2))
        change_pixels = torch.zeros(n, side, side)
        change_pixels[:, : side // 2, : side // 2] = 1
        config = SamplingConfig.from_two_phase(args.steps, n_min=args.n_min)
        with torch.inference_mode():
            pre = space.encode(images)
            change = latent_change(change_pixels, (pre.shape[-2], pre.shape[-1]))

            def pipeline() -> torch.Tensor:
                latents = two_phase(net, labels, space.encode(images), change, config)()
                return space.decode(latents)

            real: Network = lambda z, t: net.unet(z, t).sample  # noqa: E731
            loops = {
                "plain_ddim": plain_ddim(net, stub, labels, tuple(pre.shape), args.steps),
                "two_phase": two_phase(net, labels, pre, change, config, unet=stub),
            }
            loop = interleaved(loops, 10 * args.repeats)
            cases = {
                "plain_ddim": plain_ddim(net, real, labels, tuple(pre.shape), args.steps),
                "two_phase_fp32": two_phase(net, labels, pre, change, config),
                "two_phase_bf16_channels_last": two_phase(
                    net, labels, pre, change, config, bf16=True
                ),
                "pipeline_fp32": pipeline,
            }
            seconds = interleaved(cases, args.repeats)
    result: dict[str, Any] = {
        "preset": args.preset,
        "parameters": sum(p.numel() for p in net.parameters()),
        "image": args.size,
        "latent": {"kind": args.latent, "shape": list(pre.shape[1:])},
        "sampling": config.to_dict(),
        "batch": n,
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(),
            "threads": args.threads,
            "torch": torch.__version__,
        },
        "seconds": {k: {m: round(v, 4) for m, v in t.items()} for k, t in seconds.items()},
        "images_per_s": {k: round(n / t["wall"], 3) for k, t in seconds.items()},
        "images_per_cpu_s": {k: round(n / t["cpu"], 3) for k, t in seconds.items()},
        "overhead_vs_plain_ddim": {
            m: round(seconds["two_phase_fp32"][m] / seconds["plain_ddim"][m] - 1, 4)
            for m in ("wall", "cpu")
        },
        "loop_cpu_ms_per_step": {k: round(1e3 * t["cpu"] / args.steps, 3) for k, t in loop.items()},
        "overhead_of_the_loop": round(
            (loop["two_phase"]["cpu"] - loop["plain_ddim"]["cpu"]) / seconds["plain_ddim"]["cpu"],
            4,
        ),
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out is not None:
        write_text_atomic(args.out, text + "\n")


if __name__ == "__main__":
    main()

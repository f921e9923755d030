"""Quality of post-event synthesis: synthesizers side by side on the same held-out crops and events.

Usage: ``python benchmarks/synthesis_quality.py --source DIR --synth copy_paste --synth inpaint
--synth changen=CKPT [--synth "no masking"=CKPT] [--events process.json] [--crop 128]
[--limit N] [--per-image 1] [--seed 0] [--sampling-steps N] [--switch F | --n-min N] [--n-max N]
--out DIR``. Prints one
JSON object (also written to ``OUT/quality.json``) and writes ``OUT/grid.png``; ``--out`` is
required so that no stray result folder lands in the working directory.

Every synthesizer runs :func:`changen.generation.generate_dataset` on the same source with the
same seed, so all of them see identical crops and identical simulated events (the plan and
the events do not depend on the synthesizer); only the post-event images differ.
``--sampling-steps``, ``--switch``, ``--n-max`` and ``--n-min`` go to the synthesizers that
sample in steps (diffusion checkpoints) only, so one command can mix them with the
learning-free baselines and the GAN; ``LABEL=CKPT?n_min=2&steps=20`` overrides them for one
checkpoint (e.g. the same model at several N_min side by side).
Per synthesizer:

- ``fid``, ``kid_mean``, ``kid_std``: the post-event images (``B/``) against the real
  pre-event crops (``A/``) of the same held-out items, with the standard TF-Inception
  features (:mod:`changen.metrics.fidelity`). Unchanged pixels are copied by the
  learning-free baselines, which favours them here; with fewer than 2048 samples FID is
  biased upwards, so compare values between runs of the same setup only.
- ``changed_l1`` / ``unchanged_l1``: mean absolute difference (0–255, over RGB) between the
  post- and the pre-event image on changed and on unchanged pixels. A generator whose
  transition layers leak the pre-event features into changed regions (the paper's "trivial
  solution" without Masking) keeps ``changed_l1`` low.
- ``class_colour_error``: on changed pixels whose new class is c, the distance (RGB, 0–255)
  between their mean colour and the mean colour of class c in the real pre-event crops,
  averaged over classes weighted by pixel count: does a changed region take the look of its
  new class?
- ``seconds``: wall time of the whole generation.

The grid shows, per sample, the pre-event image, both masks, the change label and every
synthesizer's post-event image.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from changen.cli.options import sampling_options
from changen.data.readers import open_dataset
from changen.engine.checkpoint import checkpoint_kind
from changen.engine.run import resolve_checkpoint
from changen.events import ChangeProcess
from changen.generation import GenerationConfig, RunOptions, generate_dataset
from changen.metrics.fidelity import (
    FidelityConfig,
    extract_features,
    fidelity_from_features,
    open_image_set,
)
from changen.metrics.inception import load_inception
from changen.sample import ChangeSample
from changen.viz.grid import make_grid, save_png

SAMPLING_TYPES = {"steps": int, "sampler": str, "switch": float, "n_max": int, "n_min": int}
"""Sampling options a ``?key=value`` suffix of ``--synth`` may override, and their types."""


def parse_synth(text: str) -> tuple[str, str, dict[str, Any]]:
    """``label=spec[?key=value&...]`` or a bare name (label = name): the label, the spec and
    the sampling options the suffix overrides (keys of :data:`SAMPLING_TYPES`)."""
    label, _, rest = text.partition("=")
    spec, _, query = (rest or text).partition("?")
    overrides: dict[str, Any] = {}
    for item in filter(None, query.split("&")):
        key, _, value = item.partition("=")
        if key not in SAMPLING_TYPES or not value:
            raise SystemExit(
                f"--synth {text!r}: {item!r} is not KEY=VALUE with KEY one of "
                f"{', '.join(SAMPLING_TYPES)}"
            )
        overrides[key] = SAMPLING_TYPES[key](value)
    return (label if rest else text), spec, overrides


def merged_sampling(sampling: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """The command's sampling options with one synthesizer's overrides; an overriding
    ``n_min`` replaces a global ``switch`` and the reverse, since they say the same thing."""
    base = dict(sampling)
    if "n_min" in overrides:
        base.pop("switch", None)
    if "switch" in overrides:
        base.pop("n_min", None)
    merged = {**base, **overrides}
    keys = ("steps", "sampler", "switch", "n_max", "n_min")
    return sampling_options(*(merged.get(k) for k in keys))


STEPPED_KINDS = ("changen_diffusion",)
"""Checkpoint kinds whose synthesizer takes the sampling options."""


def synth_options(spec: str, sampling: dict[str, Any]) -> dict[str, Any]:
    """``sampling`` for a diffusion checkpoint, nothing for any other synthesizer (the
    learning-free ones and the GAN refuse sampling options)."""
    if not Path(spec).is_dir():
        return {}
    return sampling if checkpoint_kind(resolve_checkpoint(spec)) in STEPPED_KINDS else {}


def load_pairs(root: Path) -> list[ChangeSample]:
    """Every sample of a generated LEVIR-CD-layout dataset, masks included."""
    reader = open_dataset(root)
    return [reader[i] for i in range(len(reader))]


def pixel_measures(pairs: list[ChangeSample], class_colours: dict[int, np.ndarray]) -> dict:
    """``changed_l1``, ``unchanged_l1`` and ``class_colour_error`` over a set of pairs."""
    sums = {"changed": [0.0, 0], "unchanged": [0.0, 0]}
    colour_sum: dict[int, np.ndarray] = {}
    colour_n: dict[int, int] = {}
    for p in pairs:
        diff = np.abs(p.t2_image.astype(np.float64) - p.t1_image.astype(np.float64)).mean(-1)
        for name, where in (("changed", p.change_mask == 1), ("unchanged", p.change_mask == 0)):
            sums[name][0] += float(diff[where].sum())
            sums[name][1] += int(where.sum())
        assert p.t2_mask is not None  # generated datasets carry both masks
        for c in np.unique(p.t2_mask[p.change_mask == 1]):
            where = (p.change_mask == 1) & (p.t2_mask == c)
            colour_sum[int(c)] = colour_sum.get(int(c), 0) + p.t2_image[where].sum(0)
            colour_n[int(c)] = colour_n.get(int(c), 0) + int(where.sum())
    errors = [
        (np.linalg.norm(colour_sum[c] / colour_n[c] - class_colours[c]), colour_n[c])
        for c in colour_sum
        if c in class_colours
    ]
    weight = sum(n for _, n in errors)
    return {
        "changed_l1": sums["changed"][0] / max(sums["changed"][1], 1),
        "unchanged_l1": sums["unchanged"][0] / max(sums["unchanged"][1], 1),
        "changed_pixels": sums["changed"][1],
        "class_colour_error": sum(e * n for e, n in errors) / weight if weight else None,
    }


def mean_class_colours(pairs: list[ChangeSample]) -> dict[int, np.ndarray]:
    """Mean RGB of every class in the pre-event images."""
    sums: dict[int, np.ndarray] = {}
    counts: dict[int, int] = {}
    for p in pairs:
        assert p.t1_mask is not None  # generated datasets carry both masks
        for c in np.unique(p.t1_mask):
            where = p.t1_mask == c
            sums[int(c)] = sums.get(int(c), 0) + p.t1_image[where].sum(0).astype(np.float64)
            counts[int(c)] = counts.get(int(c), 0) + int(where.sum())
    return {c: sums[c] / counts[c] for c in sums}


def grid(results: dict[str, list[ChangeSample]], rows: int) -> np.ndarray:
    """Pre-event image, masks, change label, then each synthesizer's post-event image."""
    first = next(iter(results.values()))
    changed = [i for i, p in enumerate(first) if (p.change_mask == 1).any()][:rows]
    titles = ["I_t", "S_t", "S_t+1", "change", *results]
    body = []
    for i in changed:
        p = first[i]
        body.append(
            [p.t1_image, p.t1_mask, p.t2_mask, p.change_mask == 1]
            + [pairs[i].t2_image for pairs in results.values()]
        )
    return make_grid(body, titles=titles, taxonomy=first[0].taxonomy, cell=160)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--source", required=True, help="Held-out single-temporal dataset.")
    parser.add_argument("--format", default=None)
    parser.add_argument("--synth", action="append", required=True, help="NAME or LABEL=SPEC.")
    parser.add_argument("--events", type=Path, default=None, help="ChangeProcess JSON.")
    parser.add_argument("--crop", type=int, default=None)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--per-image", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rows", type=int, default=6)
    parser.add_argument("--sampling-steps", type=int, default=None, help="Diffusion steps.")
    parser.add_argument("--switch", type=float, default=None, help="Diffusion switch point.")
    parser.add_argument("--n-max", type=int, default=None, help="Diffusion N_max.")
    parser.add_argument("--n-min", type=int, default=None, help="Diffusion N_min (not --switch).")
    parser.add_argument("--out", type=Path, required=True, help="Result folder.")
    args = parser.parse_args()
    sampling = sampling_options(args.sampling_steps, None, args.switch, args.n_max, args.n_min)

    process = (
        ChangeProcess.from_dict(json.loads(args.events.read_text()))
        if args.events
        else ChangeProcess.from_flags("create,remove", count=(1, 5))
    )
    samples: dict[str, list[ChangeSample]] = {}
    report: dict[str, Any] = {}
    for label, spec, overrides in map(parse_synth, args.synth):
        config = GenerationConfig(
            source=args.source,
            synthesizer=spec,
            process=process,
            per_image=args.per_image,
            seed=args.seed,
            crop=args.crop,
            format=args.format,
            limit=args.limit,
            synthesizer_options=synth_options(spec, merged_sampling(sampling, overrides)),
        )
        folder = args.out / label.replace(" ", "_")
        start = time.perf_counter()
        generate_dataset(config, folder, RunOptions(workers=0, overwrite=True))
        report[label] = {
            "spec": spec,
            "options": config.synthesizer_options,
            "seconds": time.perf_counter() - start,
        }
        samples[label] = load_pairs(folder)
    first = next(iter(samples.values()))
    colours = mean_class_colours(first)
    inception, fid_config = load_inception(), FidelityConfig()

    def features(images: list[np.ndarray], side: str) -> torch.Tensor:
        return extract_features(open_image_set(images, side), inception, fid_config)[0]

    real = features([p.t1_image for p in first], "real")
    for label, pairs in samples.items():
        fid = fidelity_from_features(real, features([p.t2_image for p in pairs], "fake"))
        report[label].update(
            fid=fid["fid"], kid_mean=fid["kid_mean"], kid_std=fid["kid_std"], n=len(pairs)
        )
        report[label].update(pixel_measures(pairs, colours))
    save_png(args.out / "grid.png", grid(samples, args.rows))
    result = {
        "setup": {
            "source": args.source,
            "crop": args.crop,
            "limit": args.limit,
            "per_image": args.per_image,
            "seed": args.seed,
            "sampling": sampling,
            "samples": len(first),
            "process": process.to_dict(),
            "torch": torch.__version__,
            "machine": platform.machine(),
        },
        "synthesizers": report,
        "grid": str(args.out / "grid.png"),
    }
    text = json.dumps(result, indent=2, default=float)
    (args.out / "quality.json").write_text(text)
    print(text)


if __name__ == "__main__":
    main()

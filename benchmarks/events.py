"""Benchmark: changen's change-event simulation against torchange 0.0.4's, on the same masks.

Both run in this process on identical seeded 1024² building-like masks (~300 objects, 4 damage
classes as in xView2). torchange is loaded from its single ``change_event_simulation.py`` file,
without importing the package (its ``__init__`` pulls heavy extras); install it with
``pip install --no-deps torchange==0.0.4``. Its module imports only numpy and scikit-image, so
nothing is stubbed.

Cases (median ms per mask after a warm-up; both sides start from the mask alone, so object
extraction is timed on both):

* ``remove``: 1-5 objects removed.
* ``create``: 1-5 object copies placed without overlap; ours with translation only (scale 1, no
  rotation, no flip), like torchange.
* ``chain6``: a 6-step chain; torchange ``generate_mask_seq(mode='mix', seq_len=7)`` (each step
  removes 1-5 then adds 1-5 objects), ours a 6-step "sequence" process of the same two events
  (like for like).
* ``chain6_mixture``: the same torchange chain against ours as a 6-step "mixture" process (one
  of remove / create per step, probability 1/2 each): ours does about half the edits here.
* ``create_scale_rotate``: ours with scale 0.5-1.5, any angle and flips; torchange cannot do
  this, so its translation-only ``add_object`` runs alongside as the reference.

``classes_preserved`` says whether the output still carries the input's class ids (torchange's
``add_object`` returns a binary mask).

Both sides run on one core: torchange's numpy/scikit-image code is single-threaded, and OpenCV
is set to one thread (``--threads``) because its pool only spins a second core on calls this
small (CPU time up by half, wall time unchanged). Timings are medians of wall and of process CPU
time; on a shared machine compare the CPU figures and run it more than once.

Run: ``.venv/bin/python benchmarks/events.py [--reps 20] [--size 1024] [--objects 300]
[--masks 3] [--seed 0] [--threads 1] [--out result.json]``; prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from changen.events import (
    ChangeProcess,
    CreateConfig,
    EventSpec,
    RemoveConfig,
    State,
    create_objects,
    remove_objects,
    simulate,
)
from reference import load_torchange_file

CLASSES = (1, 2, 3, 4)
CLASS_PROBS = (0.55, 0.2, 0.15, 0.1)
COUNT = (1, 5)


def building_mask(rng: np.random.Generator, size: int = 1024, n_objects: int = 300) -> np.ndarray:
    """A uint8 mask of ``n_objects`` separate rotated rectangles ("buildings") of 4 classes."""
    mask = np.zeros((size, size), np.uint8)
    taken = np.zeros((size, size), np.uint8)
    placed = 0
    while placed < n_objects:
        w, h = rng.uniform(10, 44, 2)
        cy, cx = rng.uniform(25, size - 25, 2)
        box = cv2.boxPoints(((cx, cy), (w, h), rng.uniform(0, 180))).round().astype(np.int32)
        shape = np.zeros_like(taken)
        cv2.fillPoly(shape, [box], 1)
        if (shape & taken).any():
            continue
        cls = rng.choice(CLASSES, p=CLASS_PROBS)
        mask[shape > 0] = cls
        cv2.fillPoly(taken, [box], 1)
        cv2.polylines(taken, [box], True, 1, 5)  # keep a 2-px gap so objects never touch
        placed += 1
    return mask


def classes_preserved(before: np.ndarray, after: np.ndarray) -> bool:
    """True if ``after`` uses only ``before``'s class ids and still more than one of them."""
    fg_before = set(np.unique(before[before > 0]).tolist())
    fg_after = set(np.unique(after[after > 0]).tolist())
    return fg_after <= fg_before and (len(fg_after) > 1 or len(fg_before) <= 1)


def timed(fn: Callable[[int], Any], i: int) -> tuple[float, float]:
    """Wall and CPU milliseconds of one call ``fn(i)``."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn(i)
    return (time.perf_counter() - wall) * 1000, (time.process_time() - cpu) * 1000


def compare(fns: dict[str, Callable[[int], Any]], masks: int, reps: int) -> dict[str, float]:
    """Median wall and CPU ms per mask of each function, after one warm-up call per mask.

    The functions run interleaved (a, b, a, b, ...) so that load from other processes on the
    machine affects both sides alike.
    """
    for fn in fns.values():
        for i in range(masks):
            fn(i)
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in fns}
    for r in range(reps):
        for name, fn in fns.items():
            samples[name].append(timed(fn, r % masks))
    out = {}
    for name, values in samples.items():
        out[f"{name}_ms"] = round(statistics.median(v[0] for v in values), 2)
        out[f"{name}_cpu_ms"] = round(statistics.median(v[1] for v in values), 2)
    return out


def ours_create(scale: tuple[float, float], rotation: str, flip: bool) -> CreateConfig:
    return CreateConfig(count=COUNT, scale=scale, rotation=rotation, flip=flip)


def ours_chain(steps: int, mode: str) -> ChangeProcess:
    """Remove 1-5 and create 1-5 (translation only): both per step ("sequence", torchange's
    'mix') or one of them per step, drawn with probability 1/2 each ("mixture")."""
    events = (
        EventSpec("remove", RemoveConfig(count=COUNT), 1.0),
        EventSpec("create", ours_create((1.0, 1.0), "none", False), 1.0),
    )
    return ChangeProcess(events=events, mode=mode, steps=steps)  # type: ignore[arg-type]


def run(size: int, n_objects: int, n_masks: int, reps: int, seed: int) -> dict[str, Any]:
    tc = load_torchange_file("models/changen2/change_event_simulation.py")
    rng = np.random.default_rng(seed)
    masks = [building_mask(rng, size, n_objects) for _ in range(n_masks)]
    random.seed(seed)
    np.random.seed(seed)  # torchange draws offsets from the global numpy RNG
    gens = [np.random.default_rng([seed, i]) for i in range(n_masks)]

    def ours_remove(i: int) -> np.ndarray:
        state = State.from_mask(masks[i])
        return remove_objects(state, RemoveConfig(count=COUNT), gens[i])[0].mask

    def ours_create_with(config: CreateConfig) -> Callable[[int], np.ndarray]:
        def fn(i: int) -> np.ndarray:
            return create_objects(State.from_mask(masks[i]), config, gens[i])[0].mask

        return fn

    sequence, mixture = ours_chain(6, "sequence"), ours_chain(6, "mixture")

    def theirs_chain(i: int) -> np.ndarray:
        return tc.generate_mask_seq(
            masks[i], seq_len=7, max_change_num_per_frame=COUNT[1], mode="mix"
        )[-1]

    def theirs_add(i: int) -> np.ndarray:
        return tc.add_object(masks[i], COUNT[1], COUNT[0])

    cases: dict[str, tuple[Callable[[int], np.ndarray], Callable[[int], np.ndarray]]] = {
        "remove": (ours_remove, lambda i: tc.remove_object(masks[i], COUNT[1], COUNT[0])),
        "create": (ours_create_with(ours_create((1.0, 1.0), "none", False)), theirs_add),
        "chain6": (lambda i: simulate(masks[i], sequence, gens[i]).masks[-1], theirs_chain),
        "chain6_mixture": (lambda i: simulate(masks[i], mixture, gens[i]).masks[-1], theirs_chain),
        "create_scale_rotate": (ours_create_with(ours_create((0.5, 1.5), "any", True)), theirs_add),
    }
    results: dict[str, Any] = {}
    for name, (ours, theirs) in cases.items():
        entry: dict[str, Any] = compare({"ours": ours, "torchange": theirs}, n_masks, reps)
        entry["speedup"] = round(entry["torchange_ms"] / entry["ours_ms"], 2)
        entry["speedup_cpu"] = round(entry["torchange_cpu_ms"] / entry["ours_cpu_ms"], 2)
        entry["ours_classes_preserved"] = classes_preserved(masks[0], ours(0))
        entry["torchange_classes_preserved"] = classes_preserved(masks[0], theirs(0))
        results[name] = entry
    n_obj = [
        int(cv2.connectedComponents((m > 0).astype(np.uint8), connectivity=8)[0] - 1) for m in masks
    ]
    return {
        "setup": {
            "size": size,
            "objects_per_mask": n_obj,
            "masks": n_masks,
            "reps": reps,
            "seed": seed,
            "count": list(COUNT),
            "cpus": os.cpu_count(),
            "opencv_threads": cv2.getNumThreads(),
            "numpy": np.__version__,
            "opencv": cv2.__version__,
        },
        "results": results,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--objects", type=int, default=300)
    parser.add_argument("--masks", type=int, default=3)
    parser.add_argument("--reps", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="OpenCV threads (default 1: single-threaded like torchange's numpy/scikit-image)",
    )
    parser.add_argument("--out", type=Path, help="also write the JSON to this file")
    args = parser.parse_args()
    cv2.setNumThreads(args.threads)
    text = json.dumps(run(args.size, args.objects, args.masks, args.reps, args.seed), indent=2)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()

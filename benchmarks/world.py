"""Rendering speed of the procedural sample world on one CPU thread.

Renders N scenes per size (256² is the target size: at least 20 scenes/s; 512² and 1024² are
for information) and prints one JSON object: scenes/s and wall ms/scene per size, CPU ms/scene
(less sensitive to a busy machine), change pairs/s at 256², and the ratio of the 256² speed to
the target.

    python benchmarks/world.py [--scenes 100] [--sizes 256 512 1024]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import cv2
import numpy as np

from changen.data.world import WorldConfig, render_change_pair, render_scene

TARGET_SCENES_PER_S = 20.0


def _rate(fn, n: int, size: int) -> dict[str, float]:
    config = WorldConfig(size=size)
    fn(np.random.default_rng(10**6), config)  # warm-up
    start, cpu_start = time.perf_counter(), time.process_time()
    for i in range(n):
        fn(np.random.default_rng(np.random.SeedSequence([0, i])), config)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    return {
        "n": n,
        "per_s": round(n / elapsed, 2),
        "ms_each": round(elapsed / n * 1e3, 2),
        "cpu_ms_each": round(cpu / n * 1e3, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=100, help="scenes rendered at 256²")
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024])
    args = parser.parse_args()
    cv2.setNumThreads(1)
    result: dict[str, object] = {
        "threads": 1,
        "machine": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "target_scenes_per_s_256": TARGET_SCENES_PER_S,
    }
    for size in args.sizes:
        n = max(3, args.scenes * 256**2 // size**2)
        result[f"scene_{size}"] = _rate(render_scene, n, size)
    result["pair_256"] = _rate(render_change_pair, max(3, args.scenes // 2), 256)
    if 256 in args.sizes:
        rate = result["scene_256"]["per_s"]  # type: ignore[index]
        result["ratio_to_target_256"] = round(rate / TARGET_SCENES_PER_S, 2)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

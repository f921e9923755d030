"""The nuisance model: cost of each component per image, and a grid of examples.

For ``--n`` crops of ``--size``² (the most built-up window of each Ida-BD pre-event tile of the
shared real samples and a LoveDA land-cover crop, else the procedural sample world), each
component of :data:`changen.synthesis.nuisance.COMPONENTS` is applied alone at strength 1, then
all together (preset ``default``), timed against the bare uint8 → float → uint8 round trip.
Prints one JSON object (ms per image per component, and the mean absolute pixel change each
causes) and writes ``--grid`` (one row per crop: the image, each component alone, all of them;
shadows are cast for the crop's largest object as if it were new).

    .venv/bin/python benchmarks/nuisance.py [--grid docs/images/nuisance-examples.jpg]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from changen.data.readers import open_dataset
from changen.data.world import write_sample_world
from changen.sample import Taxonomy
from changen.synthesis.nuisance import COMPONENTS, PRESETS, DonorBank, Nuisance, NuisanceConfig
from changen.viz.grid import make_grid, save_png

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real"


def crops(n: int, size: int) -> list[tuple[np.ndarray, np.ndarray, Taxonomy]]:
    """``n`` (image, mask, taxonomy) crops of ``size``²: the most built-up window of each real
    building tile and one LoveDA land-cover crop (seasonal change), else the sample world."""
    readers = []
    if (REAL / "idabd_pre").is_dir():
        readers.append(open_dataset(REAL / "idabd_pre", binary_threshold=127))
    if (REAL / "loveda").is_dir():
        readers.append(open_dataset(REAL / "loveda"))
    if not readers:
        readers.append(open_dataset(write_sample_world(Path(tempfile.mkdtemp()), n, 0, size=size)))
    out = []
    for k in range(n):
        reader = readers[0] if k < n - 1 or len(readers) == 1 else readers[-1]
        item = reader[k % len(reader)]
        image, mask = item.image[..., :3], item.mask
        fg = (mask != reader.taxonomy.background) & (mask != reader.taxonomy.ignore)
        windows = [
            (r, c)
            for r in range(0, image.shape[0] - size + 1, size // 2)
            for c in range(0, image.shape[1] - size + 1, size // 2)
        ]
        r, c = max(windows, key=lambda w: fg[w[0] : w[0] + size, w[1] : w[1] + size].sum())
        window = (slice(r, r + size), slice(c, c + size))
        out.append(
            (
                np.ascontiguousarray(image[window]),
                np.ascontiguousarray(mask[window]),
                reader.taxonomy,
            )
        )
    return out


def largest_object(mask: np.ndarray, taxonomy: Taxonomy) -> np.ndarray:
    """The largest object of the mask's first foreground class (a stand-in for a new one)."""
    cls = taxonomy.foreground_ids[0]
    count, labels, stats, _ = cv2.connectedComponentsWithStats(
        (mask == cls).astype(np.uint8), connectivity=8
    )
    if count < 2:
        return np.zeros(mask.shape, bool)
    return labels == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=4)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--grid", type=Path, default=None, help="Write the example grid here.")
    args = parser.parse_args()
    samples = crops(args.n, args.size)
    images = [im for im, _, _ in samples]
    donors = DonorBank.from_images(images[::-1])
    configs = {c: NuisanceConfig(**{k: float(k == c) for k in COMPONENTS}) for c in COMPONENTS}
    configs["all (default)"] = PRESETS["default"]
    ms: dict[str, float] = {}
    change: dict[str, float] = {}
    start = time.perf_counter()
    for _ in range(args.repeats):
        for image in images:
            _ = (image.astype(np.float32) / 255.0 * 255.0).astype(np.uint8)
    round_trip = (time.perf_counter() - start) / (args.repeats * len(images))
    rows = [[im] for im in images]
    for name, config in configs.items():
        start = time.perf_counter()
        diffs = []
        for rep in range(args.repeats):
            for k, (image, mask, taxonomy) in enumerate(samples):
                model = Nuisance.for_taxonomy(config, taxonomy, donors)
                rng = np.random.default_rng([rep, k])
                out, _ = model.apply(image, mask, rng, created=largest_object(mask, taxonomy))
                diffs.append(float(np.abs(out.astype(np.int16) - image).mean()))
                if rep == 0:
                    rows[k].append(out)
        ms[name] = round(1000 * (time.perf_counter() - start) / (args.repeats * len(images)), 2)
        change[name] = round(float(np.mean(diffs)), 2)
    report = {
        "size": args.size,
        "images": len(images),
        "ms_per_image": ms,
        "round_trip_ms": round(1000 * round_trip, 3),
        "mean_abs_change_0_255": change,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
    }
    if args.grid is not None:
        grid = make_grid(rows, titles=["image", *configs], cell=160)
        args.grid.parent.mkdir(parents=True, exist_ok=True)
        if args.grid.suffix.lower() in (".jpg", ".jpeg"):
            cv2.imwrite(str(args.grid), grid[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 70])
        else:
            save_png(args.grid, grid)
        report["grid"] = str(args.grid)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

"""Benchmark: ``detect predict`` on large GeoTIFF pairs, the streaming path vs the old one.

For each size N (``--sizes``, default 2000 4000 8000) the script writes a seeded synthetic
N×N RGB uint8 GeoTIFF pair (tiled, deflated, georeferenced; changed squares in t2), then runs,
each in its own subprocess so that peak memory is that case's alone:

* ``old``: the whole-image code this change replaced (``predict_files`` of
  ``src/changen/detectors/inference.py`` at ``--old-rev``, loaded from git): both images and
  float64 stitching buffers in memory, fp32. Only for N <= ``--old-max`` (default 4000).
* ``new_fp32``: the streaming path at fp32 (channels-last). Only for N <= ``--fp32-max``.
* ``new``: the streaming path with its defaults (precision ``auto``: bf16 on a CPU with native
  bf16).

Every case is ChangeStar 1×96 with ResNet-18, random init (seed 0; speed and memory do not
depend on the weights), or the checkpoint ``--ckpt``; tiles, overlap and batch are the CLI
defaults (512, 64, 4) unless given. Each case reports the wall seconds of ``predict_files``
alone (``predict_s``), of the whole subprocess (``process_s``, with imports and model build),
and its peak RSS (``resource.getrusage(RUSAGE_SELF).ru_maxrss`` in the subprocess, MiB;
``rss_before_predict_mib`` is the same high-water mark once torch and the model are loaded).
``ratios`` divide the old figures by the new ones, and ``agreement`` compares the written
change maps of the cases run on one pair (fraction of pixels that differ).

``--pair T1 T2`` runs the cases on a given pair instead of synthetic ones (e.g. a real pair
with ``--ckpt`` of a trained detector, to measure how often bf16 changes the binary map).

Run: ``.venv/bin/python benchmarks/predict_large.py [--sizes 2000 4000 8000] [--old-max 4000]
[--fp32-max 2000] [--threads 1] [--ckpt RUN] [--pair T1 T2] [--work DIR] [--out r.json]``;
prints one JSON object.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OLD_REV = "1d14ede"  # the last commit with the whole-image predict_files
STRIP = 512


def write_pair(folder: Path, size: int, seed: int = 0) -> tuple[Path, Path]:
    """A synthetic N×N pair written strip by strip (never whole): smooth texture plus noise;
    t2 inverts one square in seven of a 300-px grid."""
    import rasterio
    from affine import Affine

    profile = {
        "driver": "GTiff",
        "width": size,
        "height": size,
        "count": 3,
        "dtype": "uint8",
        "crs": "EPSG:32616",
        "transform": Affine(0.5, 0.0, 740000.0, 0.0, -0.5, 3730000.0),
        "compress": "deflate",
        "predictor": 2,
        "tiled": True,
        "blockxsize": 256,
        "blockysize": 256,
    }
    paths = folder / f"t1_{size}.tif", folder / f"t2_{size}.tif"
    if all(p.exists() for p in paths):
        return paths
    with (
        rasterio.open(paths[0], "w", **profile) as d1,
        rasterio.open(paths[1], "w", **profile) as d2,
    ):
        for top in range(0, size, STRIP):
            rows = min(STRIP, size - top)
            yy, xx = np.mgrid[top : top + rows, 0:size]
            rng = np.random.default_rng(np.random.SeedSequence([seed, top]))
            base = 128 + 60 * np.sin(xx / 37.0) * np.cos(yy / 53.0)
            t1 = np.stack([base + 15 * k for k in range(3)]) + rng.normal(0, 12, (3, rows, size))
            t1 = np.clip(t1, 0, 255).astype(np.uint8)
            changed = (yy // 300 + 3 * (xx // 300)) % 7 == 0
            t2 = np.where(changed, 255 - t1, t1).astype(np.uint8)
            window = rasterio.windows.Window(0, top, size, rows)
            d1.write(t1, window=window)
            d2.write(t2, window=window)
    return paths


def build_model(ckpt: str | None) -> Any:
    import torch

    from changen.detectors import build_detector, load_detector

    if ckpt:
        return load_detector(Path(ckpt))[0]
    torch.manual_seed(0)
    return build_detector("changestar_1x96", backbone="resnet18")


def old_module(rev: str, work: Path) -> Any:
    """``changen.detectors.inference`` as it was at ``rev`` (from git)."""
    source = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{rev}:src/changen/detectors/inference.py"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    path = work / f"old_inference_{rev}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("old_inference", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def child(case: dict[str, Any]) -> None:
    """Run one case in this process and print its JSON figures."""
    import torch

    torch.set_num_threads(case["threads"])
    model = build_model(case["ckpt"])
    settings = {"tile": case["tile"], "overlap": case["overlap"], "batch_size": case["batch"]}
    if case["kind"] == "old":
        predict = old_module(case["old_rev"], Path(case["work"])).predict_files
        settings["precision"] = "fp32"
    else:
        from changen.detectors.inference import predict_files as predict

        if case["kind"] == "new_fp32":
            settings["precision"] = "fp32"
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.perf_counter()
    result = predict(model, case["t1"], case["t2"], case["out"], overwrite=True, **settings)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "predict_s": round(seconds, 2),
                "peak_rss_mib": round(peak, 1),
                "rss_before_predict_mib": round(before, 1),
                "changed_fraction": round(result.changed_fraction, 6),
            }
        )
    )


def run_case(case: dict[str, Any]) -> dict[str, Any]:
    start = time.perf_counter()
    env = os.environ | {"OMP_NUM_THREADS": str(case["threads"])}
    done = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(case)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
    )
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr else "failed"}
    figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures | {"process_s": round(time.perf_counter() - start, 2)}


def agreement(outs: dict[str, Path]) -> dict[str, float]:
    """Fraction of pixels whose binary change differs, for each pair of written maps."""
    from changen.data.raster import read_raster

    maps = {k: read_raster(p)[0][..., 0] > 0 for k, p in outs.items() if p.exists()}
    names = sorted(maps)
    return {
        f"{a}_vs_{b}": float((maps[a] != maps[b]).mean())
        for i, a in enumerate(names)
        for b in names[i + 1 :]
    }


def bench(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    pairs: list[tuple[str, Path, Path, int]] = []
    if args.pair:
        from changen.data.raster import raster_info

        t1, t2 = (Path(p).resolve() for p in args.pair)
        pairs.append((t1.stem, t1, t2, max(raster_info(t1)["width"], raster_info(t1)["height"])))
    else:
        for size in args.sizes:
            t1, t2 = write_pair(work, size)
            pairs.append((str(size), t1, t2, size))
    results: dict[str, Any] = {}
    for name, t1, t2, size in pairs:
        kinds = ["new"]
        if size <= args.fp32_max:
            kinds.insert(0, "new_fp32")
        if size <= args.old_max:
            kinds.insert(0, "old")
        row: dict[str, Any] = {}
        outs = {}
        for kind in kinds:
            outs[kind] = work / f"change_{name}_{kind}.tif"
            case = {
                "kind": kind,
                "t1": str(t1),
                "t2": str(t2),
                "out": str(outs[kind]),
                "threads": args.threads,
                "tile": args.tile,
                "overlap": args.overlap,
                "batch": args.batch,
                "ckpt": args.ckpt,
                "old_rev": args.old_rev,
                "work": str(work),
            }
            row[kind] = run_case(case)
            print(f"{name} {kind}: {row[kind]}", file=sys.stderr)
        if "old" in row and "error" not in row["old"] and "error" not in row["new"]:
            row["ratios"] = {
                "old_over_new_predict_s": round(
                    row["old"]["predict_s"] / row["new"]["predict_s"], 2
                ),
                "old_over_new_peak_rss": round(
                    row["old"]["peak_rss_mib"] / row["new"]["peak_rss_mib"], 2
                ),
            }
        row["agreement"] = agreement(outs)
        results[name] = row
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 4000, 8000])
    parser.add_argument("--old-max", type=int, default=4000)
    parser.add_argument("--fp32-max", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--tile", type=int, default=512)
    parser.add_argument("--overlap", type=int, default=64)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--ckpt")
    parser.add_argument("--pair", nargs=2)
    parser.add_argument("--old-rev", default=OLD_REV)
    parser.add_argument("--work", type=Path, help="Folder for the pairs and maps (kept).")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(json.loads(args.child))
        return
    with tempfile.TemporaryDirectory(prefix="predict_large_") as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        results = bench(args, work)
    import torch

    report = {
        "setup": {
            "model": "changestar_1x96",
            "backbone": "resnet18",
            "weights": args.ckpt or "random init (seed 0)",
            "tile": args.tile,
            "overlap": args.overlap,
            "batch": args.batch,
            "threads": args.threads,
            "old_rev": args.old_rev,
            "torch": torch.__version__,
            "cpu_count": os.cpu_count(),
            "machine": platform.machine(),
            "load_average": os.getloadavg(),
        },
        "results": results,
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()

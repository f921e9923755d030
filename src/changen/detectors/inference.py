"""Change maps for image pairs of any size: sliding-window inference, GeoTIFF/PNG out, preview.

:func:`predict_change` cuts the pair into overlapping tiles
(:func:`changen.data.tiling.tile_windows`), pads each tile to a multiple of 32 (mirroring),
runs the detector on batches of tiles and averages the change **probabilities** where tiles
overlap (:func:`changen.data.tiling.stitch`), so a large scene never goes through the model
as one tensor. Inputs are normalised with the ImageNet mean and std (:func:`to_tensor`).

:func:`predict_files` reads the two dates (GeoTIFF with its georeference, or PNG/JPEG) and
writes the binary change map (GeoTIFF: 0/1 uint8 with the t1 image's CRS and transform;
PNG: 0/255, the LEVIR-CD label convention) and a ``<name>.preview.png`` grid: t1, t2 and t2
with the change tinted red. (The whole images are held in memory; only the model works tile
by tile.)
"""

from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch import nn

from changen.data.imageio import write_image
from changen.data.raster import write_raster
from changen.data.readers.change_folders import load_image
from changen.data.tiling import stitch, tile_windows, window_slices
from changen.errors import ConfigError, DataError, OutputExistsError
from changen.sample import GeoRef
from changen.viz.grid import make_grid, save_png

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_TIFF = (".tif", ".tiff")
_PNG = (".png",)
_MULTIPLE = 32


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """A detector input: uint8 HWC RGB → float (3, H, W) normalised with ImageNet mean/std."""
    x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float() / 255.0
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return (x - mean) / std


def _pad_to(image: np.ndarray, multiple: int = _MULTIPLE) -> np.ndarray:
    h, w = image.shape[:2]
    ph, pw = -h % multiple, -w % multiple
    if not (ph or pw):
        return image
    return np.pad(image, ((0, ph), (0, pw), (0, 0)), mode="symmetric")


def predict_change(
    model: nn.Module,
    t1: np.ndarray,
    t2: np.ndarray,
    *,
    tile: int = 512,
    overlap: int = 64,
    batch_size: int = 4,
    device: torch.device | str = "cpu",
    precision: str = "fp32",
    on_tile: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """Change probability (float32 H×W) of two co-registered uint8 RGB images.

    ``on_tile(done, total)`` is called after every batch with its tile count and the total.
    """
    if t1.shape != t2.shape or t1.ndim != 3 or t1.shape[2] != 3:
        raise DataError(
            f"the two dates must be RGB images of one size, got {t1.shape} and {t2.shape}"
        )
    h, w = t1.shape[:2]
    windows = tile_windows(h, w, tile, overlap)
    device = torch.device(device)
    autocast: Any = (
        torch.autocast(device.type, dtype=torch.bfloat16) if precision == "bf16" else nullcontext()
    )
    was_training = model.training
    model.eval()
    tiles: list[np.ndarray] = []
    with torch.no_grad(), autocast:
        for start in range(0, len(windows), batch_size):
            chunk = windows[start : start + batch_size]
            pairs = [(t1[window_slices(win)], t2[window_slices(win)]) for win in chunk]
            x1 = torch.stack([to_tensor(_pad_to(a)) for a, _ in pairs]).to(device)
            x2 = torch.stack([to_tensor(_pad_to(b)) for _, b in pairs]).to(device)
            prob = torch.sigmoid(model(x1, x2).change.float())[:, 0].cpu().numpy()
            for p, win in zip(prob, chunk, strict=True):
                tiles.append(p[: int(win.height), : int(win.width)])
            if on_tile is not None:
                on_tile(len(chunk), len(windows))
    model.train(was_training)
    return stitch(tiles, windows, (h, w), mode="mean").astype(np.float32)


def change_overlay(
    image: np.ndarray, change: np.ndarray, color: tuple[int, int, int] = (255, 0, 0)
) -> np.ndarray:
    """``image`` with changed pixels tinted ``color`` and outlined (uint8 RGB)."""
    out = image.astype(np.float32)
    mask = change.astype(bool)
    out[mask] = 0.55 * out[mask] + 0.45 * np.array(color, np.float32)
    out = np.ascontiguousarray(np.clip(out, 0, 255).astype(np.uint8))
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    thickness = max(1, round(max(mask.shape) / 256))
    cv2.drawContours(out, contours, -1, color, thickness)
    return out


@dataclass
class Prediction:
    """What :func:`predict_files` wrote and how much of the scene changed."""

    out: Path
    preview: Path | None
    changed_fraction: float
    georef: GeoRef | None


def preview_path(out: Path) -> Path:
    """``CHANGE.preview.png`` beside ``CHANGE.tif`` / ``CHANGE.png``."""
    return out.with_name(f"{out.stem}.preview.png")


def _read_pair(t1_path: Path, t2_path: Path) -> tuple[np.ndarray, np.ndarray, GeoRef | None]:
    t1, g1 = load_image(Path(t1_path))
    t2, g2 = load_image(Path(t2_path))
    if t1.shape != t2.shape:
        raise DataError(
            f"{t2_path}: {t2.shape[1]}×{t2.shape[0]} px but {t1_path} is "
            f"{t1.shape[1]}×{t1.shape[0]}; the dates must be co-registered images of one size"
        )
    if g1 is not None and g2 is not None and (g1.crs != g2.crs or g1.transform != g2.transform):
        raise DataError(
            f"{t2_path}: its CRS/transform differ from {t1_path}'s; reproject the dates onto "
            f"one grid first (e.g. gdalwarp -tap)"
        )
    return t1, t2, g1


def predict_files(
    model: nn.Module,
    t1_path: str | os.PathLike[str],
    t2_path: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    threshold: float = 0.5,
    tile: int = 512,
    overlap: int = 64,
    batch_size: int = 4,
    device: torch.device | str = "cpu",
    precision: str = "fp32",
    preview: bool = True,
    overwrite: bool = False,
    on_tile: Callable[[int, int], None] | None = None,
) -> Prediction:
    """Predict the change map of two image files and write it (see the module docstring)."""
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in _TIFF + _PNG:
        raise ConfigError(f"{out}: write the change map as .tif (GeoTIFF) or .png")
    if not 0 < threshold < 1:
        raise ConfigError(f"threshold {threshold} must lie strictly between 0 and 1")
    targets = [out] + ([preview_path(out)] if preview else [])
    existing = [str(p) for p in targets if p.exists()]
    if existing and not overwrite:
        raise OutputExistsError(f"{existing[0]} exists; choose another --out or pass --overwrite")
    t1, t2, georef = _read_pair(Path(t1_path), Path(t2_path))
    prob = predict_change(
        model,
        t1,
        t2,
        tile=tile,
        overlap=overlap,
        batch_size=batch_size,
        device=device,
        precision=precision,
        on_tile=on_tile,
    )
    change = (prob > threshold).astype(np.uint8)
    if suffix in _TIFF:
        write_raster(out, change, georef)
    else:
        write_image(out, change * np.uint8(255))
    written = None
    if preview:
        written = preview_path(out)
        cell = min(512, max(t1.shape[:2]))
        grid = make_grid(
            [[t1, t2, change_overlay(t2, change)]], titles=["t1", "t2", "change"], cell=cell
        )
        save_png(written, grid)
    return Prediction(out, written, float(change.mean()), georef)


def model_cost(model: nn.Module, size: int = 256) -> dict[str, Any]:
    """Parameter counts and the FLOPs of one forward pass on a ``size``² pair (batch 1).

    FLOPs are counted by :class:`torch.utils.flop_counter.FlopCounterMode` (a multiply-add
    counts as 2 FLOPs; convolutions and matrix products only).
    """
    from torch.utils.flop_counter import FlopCounterMode

    params = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    was_training = model.training
    model.eval()
    x = torch.zeros(1, 3, size, size)
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(x, x)
    model.train(was_training)
    return {
        "params": params,
        "trainable_params": trainable,
        "flops": int(counter.get_total_flops()),
        "flops_size": size,
    }

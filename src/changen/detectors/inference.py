"""Change maps for image pairs of any size, streamed window by window; GeoTIFF/PNG out, preview.

The scene is cut by the window plan of :mod:`changen.detectors.windows`: overlapping windows
of one size (a multiple of 32, mirrored padding only where the image is smaller), each
keeping its centre, so the kept regions tile the scene without seams. Windows go through the
detector in batches (:func:`change_windows`); inputs are normalised with the ImageNet mean
and std (:func:`to_tensor`).

:func:`predict_files` streams: both dates are read window by window (GeoTIFF, with
rasterio; see :func:`changen.detectors.windows.open_pair` for PNG/JPEG, which are read whole)
and each window's kept change map is written straight into the output raster, so memory
holds a batch of windows, not the scene. Outputs: the binary change map (GeoTIFF: 0/1 uint8,
tiled and deflated, with the t1 image's CRS and transform; PNG: 0/255, the LEVIR-CD label
convention, assembled in memory at one byte per pixel), optionally the change probability
(float32 GeoTIFF) and a ``<name>.preview.png`` grid of t1, t2 and t2 with the change tinted
red, built from the windows at preview scale. Every output is written under a hidden staging
name beside it (:func:`changen.data.atomic.atomic_path`) and renamed into place only when all
of them are complete (the change map last): a failure or Ctrl-C leaves no partial file, and a
write the user can fix (read-only folder, full disk) is a one-line :class:`DataError`.

``precision=None`` chooses bf16 autocast on a CPU that computes bf16 natively (AVX512-BF16 /
AMX), fp32 elsewhere; channels-last memory format is used throughout. On the development
machine both together make ``predict_files`` 2–3.5× faster than fp32, and the binary map
differs from fp32's on ~0.02 % of pixels (``benchmarks/predict_large.py``).
"""

from __future__ import annotations

import os
import sys
import tempfile
import warnings
from collections.abc import Generator, Iterator
from contextlib import (
    AbstractContextManager,
    ExitStack,
    closing,
    contextmanager,
    nullcontext,
    suppress,
)
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import rasterio
import torch
from affine import Affine
from rasterio.errors import NotGeoreferencedWarning, RasterioError
from rasterio.windows import Window
from torch import nn

from changen.data.atomic import atomic_path
from changen.data.imageio import write_image
from changen.data.output import write_error
from changen.data.raster import CHANGE_MAP_CLASSES, build_overviews, parse_crs, write_classes
from changen.detectors.windows import (
    MULTIPLE,
    TIFF_SUFFIXES,
    ArrayPair,
    PairSource,
    Piece,
    open_pair,
    plan_windows,
)
from changen.engine.config import PRECISIONS
from changen.engine.progress import SILENT, ProgressSink
from changen.errors import ConfigError, DataError, OutputExistsError
from changen.sample import GeoRef
from changen.viz.grid import make_grid, save_png

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_PNG = (".png",)
_BLOCK = 256
_GDAL_CACHE_MB = 64  # bounds GDAL's block cache, which would otherwise grow with the output


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """A detector input: uint8 HWC RGB → float (3, H, W) normalised with ImageNet mean/std."""
    x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float() / 255.0
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return (x - mean) / std


def _pad_to(image: np.ndarray, multiple: int = MULTIPLE) -> np.ndarray:
    h, w = image.shape[:2]
    ph, pw = -h % multiple, -w % multiple
    if not (ph or pw):
        return image
    return np.pad(image, ((0, ph), (0, pw), (0, 0)), mode="symmetric")


def _native_bf16(device: torch.device) -> bool:
    if device.type != "cpu":
        return False
    probe = getattr(torch.cpu, "_is_avx512_bf16_supported", None)
    return bool(probe()) if probe is not None else False


def resolve_precision(precision: str | None, device: torch.device | str) -> str:
    """``fp32`` or ``bf16``; ``None`` / ``"auto"``: bf16 on a CPU with native bf16, else fp32."""
    if precision in (None, "auto"):
        return "bf16" if _native_bf16(torch.device(device)) else "fp32"
    if precision not in PRECISIONS:
        raise ConfigError(f"precision {precision!r}: choose one of auto, {', '.join(PRECISIONS)}")
    return str(precision)


@contextmanager
def _inference(model: nn.Module, channels_last: bool) -> Iterator[None]:
    """``model`` in eval mode (and channels-last) for the block; its mode is restored after."""
    was_training = model.training
    model.eval()
    if channels_last:
        model.to(memory_format=torch.channels_last)
    try:
        yield
    finally:
        if channels_last:
            model.to(memory_format=torch.contiguous_format)
        model.train(was_training)


def change_windows(
    model: nn.Module,
    source: PairSource,
    pieces: list[Piece],
    *,
    batch_size: int = 4,
    device: torch.device | str = "cpu",
    precision: str | None = None,
    channels_last: bool = True,
    progress: ProgressSink = SILENT,
) -> Generator[tuple[Piece, np.ndarray], None, None]:
    """The change probability (float32) of each piece's kept region, in plan order.

    Windows are read from ``source`` and run through ``model`` ``batch_size`` at a time;
    the ``predict`` task of ``progress`` advances by the windows of each batch. ``model`` is
    in eval mode (and channels-last) until the generator ends: close it if you stop early.
    """
    if batch_size < 1:
        raise ConfigError(f"batch size {batch_size} must be at least 1")
    device = torch.device(device)
    chosen = resolve_precision(precision, device)
    autocast: Any = (
        torch.autocast(device.type, dtype=torch.bfloat16) if chosen == "bf16" else nullcontext()
    )
    memory = torch.channels_last if channels_last else torch.contiguous_format
    advance = progress.task("predict", total=len(pieces))
    with _inference(model, channels_last):
        for start in range(0, len(pieces), batch_size):
            chunk = pieces[start : start + batch_size]
            pairs = [source.read(piece.read) for piece in chunk]
            x1, x2 = (
                torch.stack([to_tensor(_pad_to(p[i])) for p in pairs])
                .to(device)
                .contiguous(memory_format=memory)
                for i in (0, 1)
            )
            # Grad and autocast modes are thread-wide: never hold them across a yield.
            with torch.no_grad(), autocast:
                prob = torch.sigmoid(model(x1, x2).change.float())[:, 0].cpu().numpy()
            for p, piece in zip(prob, chunk, strict=True):
                yield piece, piece.crop(p[: int(piece.read.height), : int(piece.read.width)])
            advance(len(chunk))


def predict_change(
    model: nn.Module,
    t1: np.ndarray,
    t2: np.ndarray,
    *,
    tile: int = 512,
    overlap: int = 64,
    batch_size: int = 4,
    device: torch.device | str = "cpu",
    precision: str | None = None,
    channels_last: bool = True,
    progress: ProgressSink = SILENT,
) -> np.ndarray:
    """Change probability (float32 H×W) of two co-registered in-memory uint8 RGB images.

    The same windows and numbers as :func:`predict_files`, assembled in one array.
    """
    source = ArrayPair(t1, t2)
    out = np.empty((source.height, source.width), np.float32)
    pieces = plan_windows(source.height, source.width, tile, overlap)
    for piece, prob in change_windows(
        model,
        source,
        pieces,
        batch_size=batch_size,
        device=device,
        precision=precision,
        channels_last=channels_last,
        progress=progress,
    ):
        r, c = int(piece.keep.row_off), int(piece.keep.col_off)
        out[r : r + prob.shape[0], c : c + prob.shape[1]] = prob
    return out


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
    probability: Path | None = None


def preview_path(out: Path) -> Path:
    """``CHANGE.preview.png`` beside ``CHANGE.tif`` / ``CHANGE.png``."""
    return out.with_name(f"{out.stem}.preview.png")


@contextmanager
def _c_stderr() -> Iterator[list[str]]:
    """Hold back what C code prints on file descriptor 2 during the block (libtiff prints its
    write errors there itself); the list holds those lines afterwards."""
    printed: list[str] = []
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield printed
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            printed.extend(held.read().decode(errors="replace").splitlines())


@contextmanager
def _writing(path: Path, what: str, gdal: bool = False) -> Iterator[None]:
    """One-line :class:`DataError` in place of an OS or GDAL error while writing ``path``.

    ``gdal``: the block calls GDAL, whose libtiff prints the cause of a failed write (``No
    space left on device``) on stderr and raises only "Write failed": the printed line becomes
    the reason, and is not left on the terminal. What a successful block prints is passed on.
    """
    failure: Exception | None = None
    held: AbstractContextManager[list[str]] = _c_stderr() if gdal else nullcontext([])
    with held as printed:
        try:
            yield
        except (OSError, RasterioError) as e:
            failure = e
    if failure is None:
        if printed:
            sys.stderr.write("\n".join(printed) + "\n")
        return
    if isinstance(failure, OSError) and failure.errno is not None:  # the OS's, not GDAL's
        raise write_error(path, failure, what) from None
    text = printed[0].split(": ", 1)[-1] if printed else str(failure).strip()
    reason = text.splitlines()[0].rstrip(".") if text else type(failure).__name__
    raise DataError(
        f"{path}: cannot write the {what} ({reason}); free disk space or choose a writable "
        f"output folder, then rerun"
    ) from None


def _geotiff(path: Path, height: int, width: int, dtype: str, georef: GeoRef | None) -> Any:
    """A one-band tiled, deflated GeoTIFF at ``path`` opened for writing."""
    profile: dict[str, Any] = {
        "driver": "GTiff",
        "width": width,
        "height": height,
        "count": 1,
        "dtype": dtype,
        "crs": parse_crs(georef.crs, str(path)) if georef and georef.crs else None,
        "transform": georef.transform if georef else Affine.identity(),
        "compress": "deflate",
        "predictor": 2 if np.issubdtype(np.dtype(dtype), np.integer) else 3,
        "tiled": True,
        "blockxsize": _BLOCK,
        "blockysize": _BLOCK,
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        return rasterio.open(path, "w", **profile)


def _discard(dataset: Any) -> None:
    """Close a dataset being abandoned (a failed run): GDAL's complaints are not the error."""
    with _c_stderr(), suppress(OSError, RasterioError):
        dataset.close()


class _Preview:
    """t1, t2 and the change map at preview scale, filled in window by window."""

    def __init__(self, height: int, width: int, cell: int = 512) -> None:
        self.scale = min(1.0, cell / max(height, width))
        size = (max(1, round(height * self.scale)), max(1, round(width * self.scale)))
        self.t1 = np.zeros((*size, 3), np.uint8)
        self.t2 = np.zeros((*size, 3), np.uint8)
        self.change = np.zeros(size, bool)

    def add(self, keep: Window, t1: np.ndarray, t2: np.ndarray, change: np.ndarray) -> None:
        """Paste one kept region; a preview pixel is changed if any pixel under it is."""
        r0, c0 = int(keep.row_off), int(keep.col_off)
        rows = slice(round(r0 * self.scale), round((r0 + int(keep.height)) * self.scale))
        cols = slice(round(c0 * self.scale), round((c0 + int(keep.width)) * self.scale))
        size = (cols.stop - cols.start, rows.stop - rows.start)
        if size[0] <= 0 or size[1] <= 0:
            return
        self.t1[rows, cols] = cv2.resize(t1, size, interpolation=cv2.INTER_AREA)
        self.t2[rows, cols] = cv2.resize(t2, size, interpolation=cv2.INTER_AREA)
        area = cv2.resize(change.astype(np.float32), size, interpolation=cv2.INTER_AREA)
        self.change[rows, cols] = area > 0

    def grid(self) -> np.ndarray:
        cell = max(8, *self.change.shape)
        return make_grid(
            [[self.t1, self.t2, change_overlay(self.t2, self.change)]],
            titles=["t1", "t2", "change"],
            cell=cell,
        )


class _Outputs:
    """The staged outputs of :func:`predict_files`, written one kept region at a time."""

    def __init__(
        self,
        stack: ExitStack,
        source: PairSource,
        out: Path,
        probability: Path | None,
        preview: Path | None,
    ) -> None:
        h, w = source.height, source.width
        self.out, self.probability_out, self.preview_out = out, probability, preview
        self.changed = 0
        self._png: np.ndarray | None = None
        self._change: Any = None
        self._prob: Any = None
        self._preview = _Preview(h, w) if preview is not None else None
        named = ((out, "change map"), (probability, "change probability"), (preview, "preview"))
        self._what = {path: what for path, what in named if path is not None}
        # Entered in this order, renamed in the reverse one: the change map appears last.
        self._staged = {path: self._stage(stack, path, what) for path, what in self._what.items()}
        with _writing(out, "change map", gdal=True):
            if out.suffix.lower() in _PNG:
                self._png = np.zeros((h, w), np.uint8)
            else:
                self._change = _geotiff(self._staged[out], h, w, "uint8", source.georef)
                stack.callback(_discard, self._change)
        if probability is not None:
            with _writing(probability, "change probability", gdal=True):
                self._prob = _geotiff(self._staged[probability], h, w, "float32", source.georef)
                stack.callback(_discard, self._prob)

    @staticmethod
    def _stage(stack: ExitStack, path: Path, what: str) -> Path:
        with _writing(path, what):
            return stack.enter_context(atomic_path(path))

    def add(self, piece: Piece, prob: np.ndarray, threshold: float, source: PairSource) -> None:
        """Write one kept region's probability and change map (and its preview part)."""
        change = (prob > threshold).astype(np.uint8)
        self.changed += int(change.sum())
        keep = piece.keep
        if self._png is not None:
            r, c = int(keep.row_off), int(keep.col_off)
            self._png[r : r + change.shape[0], c : c + change.shape[1]] = change * np.uint8(255)
        else:
            with _writing(self.out, "change map", gdal=True):
                self._change.write(change[None], window=keep)
        if self._prob is not None and self.probability_out is not None:
            with _writing(self.probability_out, "change probability", gdal=True):
                self._prob.write(prob[None], window=keep)
        if self._preview is not None:
            t1, t2 = source.read(keep)
            self._preview.add(keep, t1, t2, change)

    def finish(self) -> None:
        """Write the in-memory outputs (PNG map, preview) to their staging names."""
        if self._preview is not None and self.preview_out is not None:
            with _writing(self.preview_out, "preview"):
                save_png(self._staged[self.preview_out], self._preview.grid())
        if self._png is not None:
            with _writing(self.out, "change map"):
                write_image(self._staged[self.out], self._png)
        for dataset, path in ((self._change, self.out), (self._prob, self.probability_out)):
            if dataset is not None and path is not None:
                with _writing(path, self._what[path], gdal=True):
                    if dataset is self._change:
                        write_classes(dataset, CHANGE_MAP_CLASSES)
                    build_overviews(dataset, "nearest" if dataset is self._change else "average")
                    dataset.close()


def _check_outputs(
    out: Path, probability: Path | None, preview: bool, threshold: float, overwrite: bool
) -> None:
    if out.suffix.lower() not in TIFF_SUFFIXES + _PNG:
        raise ConfigError(f"{out}: write the change map as .tif (GeoTIFF) or .png")
    if probability is not None and probability.suffix.lower() not in TIFF_SUFFIXES:
        raise ConfigError(f"{probability}: write the change probability as .tif (GeoTIFF)")
    if not 0 < threshold < 1:
        raise ConfigError(f"threshold {threshold} must lie strictly between 0 and 1")
    targets = [out]
    if probability is not None:
        targets.append(probability)
    if preview:
        targets.append(preview_path(out))
    if len(set(targets)) < len(targets):
        raise ConfigError(f"{out}: the outputs must have different names")
    existing = [str(p) for p in targets if p.exists()]
    if existing and not overwrite:
        raise OutputExistsError(f"{existing[0]} exists; choose another --out or pass --overwrite")


def predict_files(
    model: nn.Module,
    t1_path: str | os.PathLike[str],
    t2_path: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    probability: str | os.PathLike[str] | None = None,
    threshold: float = 0.5,
    tile: int = 512,
    overlap: int = 64,
    batch_size: int = 4,
    device: torch.device | str = "cpu",
    precision: str | None = None,
    channels_last: bool = True,
    preview: bool = True,
    overwrite: bool = False,
    progress: ProgressSink = SILENT,
) -> Prediction:
    """Predict the change map of two image files and write it (see the module docstring)."""
    out = Path(out)
    prob_path = None if probability is None else Path(probability)
    _check_outputs(out, prob_path, preview, threshold, overwrite)
    source = open_pair(t1_path, t2_path)
    pieces = plan_windows(source.height, source.width, tile, overlap)
    shown = preview_path(out) if preview else None
    windows = change_windows(
        model,
        source,
        pieces,
        batch_size=batch_size,
        device=device,
        precision=precision,
        channels_last=channels_last,
        progress=progress,
    )
    env = rasterio.Env(GDAL_CACHEMAX=_GDAL_CACHE_MB, GDAL_PAM_ENABLED="NO")
    with env, closing(windows), _writing(out, "change map"), ExitStack() as stack:
        outputs = _Outputs(stack, source, out, prob_path, shown)
        for piece, prob in windows:
            outputs.add(piece, prob, threshold, source)
        outputs.finish()
    changed = outputs.changed / (source.height * source.width)
    return Prediction(out, shown, changed, source.georef, prob_path)


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

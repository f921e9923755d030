"""Torch datasets for change-detector training and evaluation.

* :class:`ChangePairDataset`: bitemporal samples of any change reader (LEVIR-CD & co., and
  changen's own LEVIR-CD-layout datasets whose ``A_mask/ B_mask/`` give t1/t2 semantic targets).
* :class:`StarPairDataset`: STAR / G-STAR pairs built from a single-temporal (scene) reader:
  each sample is paired with another one by a per-epoch derangement (G-STAR: or, with
  probability ``self_prob``, with its own augmented view), and the change label is where the
  two segmentation targets differ (for binary objects, the XOR of the object masks).
* :func:`subset_indices`: the deterministic ``train_fraction`` subset.
* :class:`EpochBatchSampler`: per-epoch shuffled batches for one rank, resumable mid-epoch.

Items are dicts of tensors: ``t1``/``t2`` float (3, H, W) normalised with the ImageNet mean and
std; ``change`` uint8 (H, W) with 0/1 and 255 = ignore; ``t1_seg``/``t2_seg`` uint8 (H, W)
segmentation targets (0..K-1, 255 = ignore or unknown); ``index`` the position of the item.
Training item ``k`` of epoch ``e`` draws its augmentation from ``SeedSequence([seed, e, k])``,
so the data are the same whatever the number of workers or restarts.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset, Sampler

from changen.data.readers.base import Reader
from changen.detectors.augment import IGNORE, PairAugmentConfig, augment
from changen.detectors.inference import to_tensor
from changen.detectors.pairing import star_pairs
from changen.errors import ConfigError, DataError
from changen.sample import ChangeSample, Scene, Taxonomy


def item_rng(seed: int, epoch: int, k: int) -> np.random.Generator:
    """The generator of training draw ``k`` in ``epoch`` of a run with ``seed``."""
    return np.random.default_rng(np.random.SeedSequence([seed, epoch, k]))


@dataclass(frozen=True)
class SegSpec:
    """How a taxonomy's class-id masks become segmentation targets (0..K-1, 255 ignore).

    ``num_classes == 1`` means binary object masks (1 = object), trained with BCE + dice;
    otherwise K classes trained with cross-entropy. ``lut`` maps every id 0..255 to a target.
    """

    lut: np.ndarray
    num_classes: int

    @classmethod
    def from_taxonomy(
        cls, taxonomy: Taxonomy, object_classes: Sequence[int] | None = None
    ) -> SegSpec:
        """Binary objects when ``object_classes`` is given or the taxonomy has just a background
        and one class; else one target per class id (ids in increasing order)."""
        ids = [i for i in taxonomy.ids if i != taxonomy.ignore]
        lut = np.full(256, IGNORE, np.uint8)
        if object_classes is not None:
            unknown = sorted(set(object_classes) - set(ids))
            if unknown or not object_classes:
                raise ConfigError(
                    f"object classes {list(object_classes)} must be non-empty class ids of "
                    f"taxonomy {taxonomy.name!r} ({ids})"
                )
            lut[ids] = 0
            lut[list(object_classes)] = 1
            return cls(lut, 1)
        if len(ids) == 2 and taxonomy.background in ids:
            lut[ids] = 1
            lut[taxonomy.background] = 0
            return cls(lut, 1)
        lut[sorted(ids)] = np.arange(len(ids), dtype=np.uint8)
        return cls(lut, len(ids))

    def encode(self, mask: np.ndarray | None, hw: tuple[int, int]) -> np.ndarray:
        """The target map of a class-id mask; all ignore when the mask is unknown (``None``)."""
        if mask is None:
            return np.full(hw, IGNORE, np.uint8)
        return self.lut[mask]


def target_change(seg1: np.ndarray, seg2: np.ndarray) -> np.ndarray:
    """Change label of two segmentation targets: 1 where they differ, ignore where either is."""
    change = (seg1 != seg2).astype(np.uint8)
    change[(seg1 == IGNORE) | (seg2 == IGNORE)] = IGNORE
    return change


def subset_indices(names: Sequence[str], fraction: float, seed: int) -> list[int]:
    """The items kept by ``train_fraction``: ``max(1, round(fraction * n))`` of them, ranked by
    SHA-256 of ``"<seed>:<name>"``; returned in dataset order.

    Depends only on the item names, the fraction and the seed (not on reader order or
    platform), and a smaller fraction keeps a subset of a larger one's items.
    """
    if not 0.0 < fraction <= 1.0:
        raise ConfigError(f"train fraction {fraction} must lie in (0, 1], e.g. 0.05 for 5%")
    n = len(names)
    if fraction == 1.0 or n == 0:
        return list(range(n))
    keep = max(1, round(fraction * n))
    keys = [hashlib.sha256(f"{seed}:{name}".encode()).hexdigest() for name in names]
    ranked = sorted(range(n), key=lambda i: (keys[i], i))
    return sorted(ranked[:keep])


def _check_kind(reader: Reader[Any], kind: str, what: str) -> None:
    if reader.kind != kind:
        hint = (
            "use --mode star or gstar for single-temporal (segmentation) data"
            if kind == "change"
            else "use --mode supervised for bitemporal change data"
        )
        raise ConfigError(
            f"{reader.root}: {what} needs a {kind} dataset, got a {reader.kind} dataset; {hint}"
        )


class _ReaderDataset(Dataset[dict[str, Any]]):
    """Common part: a reader, the items used (``indices``), a seed and the current epoch."""

    def __init__(
        self, reader: Reader[Any], seg: SegSpec, seed: int, indices: Sequence[int] | None
    ) -> None:
        self.reader = reader
        self.seg = seg
        self.seed = seed
        self.indices = list(range(len(reader))) if indices is None else list(indices)
        if not self.indices:
            raise DataError(f"{reader.root}: no samples to use")
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.indices)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def name(self, k: int) -> str:
        """The reader's name of item ``k``."""
        return self.reader.names[self.indices[k % len(self)]]


class ChangePairDataset(_ReaderDataset):
    """Bitemporal samples of a change reader, augmented (``aug``) or whole (``aug=None``).

    Training indices ``k`` may exceed ``len(self)`` (see :class:`EpochBatchSampler`): item
    ``k % len(self)`` is read and ``k`` keys its augmentation.
    """

    def __init__(
        self,
        reader: Reader[ChangeSample],
        seg: SegSpec,
        aug: PairAugmentConfig | None = None,
        seed: int = 0,
        indices: Sequence[int] | None = None,
    ) -> None:
        _check_kind(reader, "change", "bitemporal training")
        super().__init__(reader, seg, seed, indices)
        self.aug = aug

    def __getitem__(self, k: int) -> dict[str, Any]:
        sample: ChangeSample = self.reader[self.indices[k % len(self)]]
        hw = sample.t1_image.shape[:2]
        images = {"t1": sample.t1_image, "t2": sample.t2_image}
        labels = {
            "change": sample.change_mask,
            "t1_seg": self.seg.encode(sample.t1_mask, hw),
            "t2_seg": self.seg.encode(sample.t2_mask, hw),
        }
        if self.aug is not None:
            rng = item_rng(self.seed, self.epoch, k)
            images, labels = augment(rng, images, labels, self.aug, sample.source or sample.name)
        return _item(images, labels, k)


class StarPairDataset(_ReaderDataset):
    """STAR (``self_prob=0``) / G-STAR pairs of a scene reader; see the module docstring.

    Pairs are redrawn by :meth:`set_epoch` from ``SeedSequence([seed, epoch])`` among the used
    items; different scenes get their own geometry, a self pair shares one.
    """

    def __init__(
        self,
        reader: Reader[Scene],
        seg: SegSpec,
        aug: PairAugmentConfig,
        seed: int = 0,
        indices: Sequence[int] | None = None,
        self_prob: float = 0.0,
    ) -> None:
        _check_kind(reader, "scene", "STAR training")
        super().__init__(reader, seg, seed, indices)
        self.aug = aug
        self.self_prob = self_prob
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        super().set_epoch(epoch)
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, epoch]))
        self.pairs = star_pairs(len(self), rng, self.self_prob)

    def _scene(self, position: int) -> tuple[np.ndarray, np.ndarray, str]:
        scene: Scene = self.reader[self.indices[position]]
        where = scene.source or scene.name
        if scene.mask is None:
            raise DataError(f"{where}: STAR training needs a mask for every scene")
        return scene.image, self.seg.encode(scene.mask, scene.shape), where

    def __getitem__(self, k: int) -> dict[str, Any]:
        rng = item_rng(self.seed, self.epoch, k)
        i = k % len(self)
        image, seg, where = self._scene(i)
        if self.pairs.is_self[i]:
            both = {"t1": image, "t2": image}
            images, labels = augment(rng, both, {"t1_seg": seg}, self.aug, where)
            labels["t2_seg"] = labels["t1_seg"]
        else:
            image2, seg2, where2 = self._scene(int(self.pairs.partner[i]))
            a, la = augment(rng, {"t1": image}, {"t1_seg": seg}, self.aug, where)
            b, lb = augment(rng, {"t2": image2}, {"t2_seg": seg2}, self.aug, where2)
            images, labels = {**a, **b}, {**la, **lb}
        labels["change"] = target_change(labels["t1_seg"], labels["t2_seg"])
        return _item(images, labels, k)


def _item(images: dict[str, np.ndarray], labels: dict[str, np.ndarray], k: int) -> dict[str, Any]:
    return {
        "t1": to_tensor(images["t1"]),
        "t2": to_tensor(images["t2"]),
        **{name: torch.from_numpy(np.ascontiguousarray(v)) for name, v in labels.items()},
        "index": k,
    }


def pad_collate(items: list[dict[str, Any]], multiple: int = 32) -> dict[str, Any]:
    """Stack whole images of different sizes: pad on the bottom/right to the largest size
    rounded up to ``multiple`` (images with 0, label maps with ignore); ``size`` keeps each
    item's own (H, W)."""
    h = max(int(it["t1"].shape[1]) for it in items)
    w = max(int(it["t1"].shape[2]) for it in items)
    h, w = -(-h // multiple) * multiple, -(-w // multiple) * multiple
    out: dict[str, Any] = {"index": torch.tensor([it["index"] for it in items])}
    out["size"] = torch.tensor([tuple(it["t1"].shape[1:]) for it in items])
    for key in ("t1", "t2", "change", "t1_seg", "t2_seg"):
        padded = []
        for it in items:
            x = it[key]
            pad = (0, w - x.shape[-1], 0, h - x.shape[-2])
            padded.append(F.pad(x, pad, value=0 if key in ("t1", "t2") else IGNORE))
        out[key] = torch.stack(padded)
    return out


class EpochBatchSampler(Sampler[list[int]]):
    """Batches of one rank for one epoch: a fresh permutation per epoch from
    ``SeedSequence([seed, epoch])``; too small datasets are tiled with further permutations so
    an epoch holds at least one full batch on every rank. Yields draw numbers ``k`` (item
    ``k % n``). :meth:`set_epoch` with ``start`` skips the first batches (exact resume).
    """

    def __init__(
        self, n: int, batch_size: int, seed: int = 0, rank: int = 0, world_size: int = 1
    ) -> None:
        if n < 1 or batch_size < 1:
            raise ConfigError(f"need at least one sample and batch size >= 1 (n={n})")
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.rank, self.world_size = rank, world_size
        self.epoch, self.start = 0, 0

    def __len__(self) -> int:
        """Batches per epoch (the same on every rank)."""
        return max(1, self.n // (self.batch_size * self.world_size))

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = epoch, start

    def epoch_order(self) -> np.ndarray:
        """The draw numbers of every rank for this epoch, in global batch order."""
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, self.epoch]))
        needed = len(self) * self.batch_size * self.world_size
        parts = [rng.permutation(self.n) + r * self.n for r in range(-(-needed // self.n))]
        return np.concatenate(parts)[:needed]

    def __iter__(self) -> Iterator[list[int]]:
        order = self.epoch_order()
        per_step = self.batch_size * self.world_size
        for b in range(self.start, len(self)):
            chunk = order[b * per_step : (b + 1) * per_step]
            yield chunk[self.rank * self.batch_size : (self.rank + 1) * self.batch_size].tolist()

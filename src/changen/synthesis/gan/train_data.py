"""Training data of the Changen GAN: scenes → crops → simulated events → (I_t, S_t, S_t+1).

Bitemporal adversarial learning needs no post-event images: every training example is a
single-temporal scene, augmented (:mod:`changen.data.augment`), whose mask is turned into a
post-event mask by the change process on the fly (Algorithm 1, line 3 of the Changen paper).

Determinism. The item with reader index ``i`` seen in epoch ``e`` draws everything (crop,
transform, events, the generator's noise vector ``z``) from ``SeedSequence([seed, e, i])``;
the order of epoch ``e`` is a permutation drawn from its own stream. :class:`StepBatchSampler`
maps each training step to the keys ``(e, i)`` of its batch, so the data of step ``k`` is a
pure function of ``(seed, k)``: the same for any number of DataLoader workers or devices, and a
resumed run continues with exactly the batches an uninterrupted run would have seen.

Class ids. The GAN sees ``N`` = ``taxonomy.num_classes`` classes numbered ``0..N-1``, mapped
by the rule of :mod:`changen.synthesis.classes` (shared with inference): the taxonomy's
background becomes 0, its other non-ignore ids follow in ascending order, and its ignore id
becomes 255, which the networks and losses ignore. Events run on the original ids, before the
mapping.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from changen.data.augment import AugmentConfig, apply_plan, center_plan, draw_plan
from changen.data.bands import to_rgb8
from changen.data.readers.base import Reader
from changen.errors import ConfigError, DataError
from changen.events import ChangeProcess, simulate
from changen.events.regions import event_maps
from changen.sample import Scene, Taxonomy
from changen.synthesis.classes import class_lut, model_class_ids, to_model_ids

GAN_IGNORE = 255
"""The ignore id the GAN networks and losses see."""

Key = tuple[int, int]
"""``(epoch, reader index)`` of one training item."""

CREATED, REMOVED, RECLASSED = 1, 2, 4
"""Bits of :attr:`GanExample.regions`."""


def holdout_split(n: int, fraction: float) -> tuple[list[int], list[int]]:
    """Training and held-out indices of ``n`` items: ``round(n * fraction)`` (at least one when
    ``fraction > 0`` and ``n > 1``) evenly spaced items are held out, whatever the seed."""
    if not 0.0 <= fraction < 1.0:
        raise ConfigError(f"--holdout {fraction} must be in [0, 1)")
    k = round(n * fraction)
    if fraction > 0 and k == 0 and n > 1:
        k = 1
    k = min(k, n - 1)
    held = sorted({int(i * n / k) for i in range(k)}) if k > 0 else []
    chosen = set(held)
    return [i for i in range(n) if i not in chosen], held


def item_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The generator of item ``index`` in ``epoch``."""
    return np.random.default_rng(np.random.SeedSequence([seed, epoch, index]))


@dataclass
class GanExample:
    """One example as numpy: image (H, W, 3) uint8, taxonomy-id masks of both dates,
    the noise vector ``z`` and, when asked for, a bit map of the edited regions
    (:data:`CREATED` | :data:`REMOVED` | :data:`RECLASSED`)."""

    name: str
    image: np.ndarray
    t1_mask: np.ndarray
    t2_mask: np.ndarray
    noise: np.ndarray
    regions: np.ndarray | None = None


class GanTrainData(Dataset[dict[str, torch.Tensor]]):
    """Scene reader → augmented crop → simulated post-event mask, indexed by ``(epoch, index)``.

    ``train=False`` gives the evaluation view: a central crop without augmentation (the
    held-out preview and FID use it, with ``epoch`` 0).
    """

    def __init__(
        self,
        reader: Reader[Scene],
        process: ChangeProcess,
        augment: AugmentConfig,
        *,
        seed: int,
        z_dim: int,
        train: bool = True,
    ) -> None:
        if reader.kind != "scene":
            raise DataError(
                f"{reader.root}: is a change dataset ({reader.format}); train the generator on "
                f"single-temporal scenes with masks (e.g. `changen data sample-world`, xView2)"
            )
        if len(reader) == 0:
            raise DataError(f"{reader.root}: the dataset has no items to train on")
        self.reader = reader
        self.process = process
        self.augment = augment
        self.seed = seed
        self.z_dim = z_dim
        self.train = train
        self.lut = class_lut(reader.taxonomy, GAN_IGNORE)
        self.class_ids = model_class_ids(reader.taxonomy)

    @property
    def taxonomy(self) -> Taxonomy:
        return self.reader.taxonomy

    def model_ids(self, mask: np.ndarray) -> np.ndarray:
        """A taxonomy-id mask as GAN class ids (uint8, 255 = ignore)."""
        return to_model_ids(mask, self.lut, self.taxonomy, "mask")

    def example(self, epoch: int, index: int, regions: bool = False) -> GanExample:
        """The numpy example of ``index`` in ``epoch`` (deterministic)."""
        scene = self.reader[index]
        where = scene.source or scene.name or f"item {index}"
        if scene.mask is None:
            raise DataError(f"{where}: has no mask; the generator trains on labelled scenes")
        image, _ = to_rgb8(scene.image, source=where)
        rng = item_rng(self.seed, epoch, index)
        shape = (image.shape[0], image.shape[1])
        if self.train:
            plan = draw_plan(shape, self.augment, rng, where)
        else:
            plan = center_plan(shape, self.augment.size, where)
        image = apply_plan(image, plan, "image")
        mask = apply_plan(scene.mask, plan, "labels")
        instances = None if scene.instances is None else apply_plan(scene.instances, plan, "labels")
        chain = simulate(mask, self.process, rng, instances=instances, taxonomy=self.taxonomy)
        noise = rng.standard_normal(self.z_dim).astype(np.float32)
        bits = None
        if regions:
            created, removed, reclassed = event_maps(chain, 1)
            bits = (created * CREATED | removed * REMOVED | reclassed * RECLASSED).astype(np.uint8)
        return GanExample(scene.name, image, chain.masks[0], chain.masks[1], noise, bits)

    def __getitem__(self, key: Key) -> dict[str, torch.Tensor]:
        epoch, index = key
        ex = self.example(epoch, index)
        return {
            "t1_image": torch.from_numpy(ex.image).permute(2, 0, 1).contiguous(),
            "t1_mask": torch.from_numpy(self.model_ids(ex.t1_mask)),
            "t2_mask": torch.from_numpy(self.model_ids(ex.t2_mask)),
            "noise": torch.from_numpy(ex.noise),
            "index": torch.tensor(index),
            "epoch": torch.tensor(epoch),
        }


class StepBatchSampler(Sampler[list[Key]]):
    """Infinite batches of keys; step ``s`` holds the global sample positions
    ``s·B .. (s+1)·B - 1`` of an endless sequence of epochs, each a seeded permutation of
    ``indices``. ``rank`` takes its ``B / world_size`` consecutive positions of each step."""

    def __init__(
        self,
        indices: Sequence[int],
        batch_size: int,
        seed: int,
        *,
        start_step: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if not indices:
            raise DataError("no training items left (all of them are held out); lower --holdout")
        if batch_size < 1 or batch_size % world_size:
            raise ConfigError(
                f"--batch-size {batch_size} must be a positive multiple of the number of "
                f"processes ({world_size})"
            )
        self.indices = np.asarray(indices, np.int64)
        self.batch_size = batch_size
        self.local = batch_size // world_size
        self.seed = seed
        self.start_step = start_step
        self.rank = rank
        self._order: tuple[int, np.ndarray] | None = None

    def order(self, epoch: int) -> np.ndarray:
        """The reader indices of ``epoch`` in the order they are seen."""
        if self._order is None or self._order[0] != epoch:
            rng = np.random.default_rng(np.random.SeedSequence([self.seed, epoch], spawn_key=(1,)))
            self._order = (epoch, rng.permutation(self.indices))
        return self._order[1]

    def keys(self, step: int) -> list[Key]:
        """This rank's ``(epoch, index)`` keys at ``step``."""
        n = len(self.indices)
        first = step * self.batch_size + self.rank * self.local
        return [(p // n, int(self.order(p // n)[p % n])) for p in range(first, first + self.local)]

    def __iter__(self) -> Iterator[list[Key]]:
        for step in itertools.count(self.start_step):
            yield self.keys(step)

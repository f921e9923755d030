"""Training data of the Changen GAN: scenes → crops → simulated events → (I_t, S_t, S_t+1).

Bitemporal adversarial learning needs no post-event images: every training example is a
single-temporal scene, augmented (:mod:`changen.data.augment`), whose mask is turned into a
post-event mask by the change process on the fly (Algorithm 1, line 3 of the Changen paper).

Determinism. The item with reader index ``i`` seen in epoch ``e`` draws everything (crop and
transform, by :class:`~changen.synthesis.crops.SceneCrops`, then events and the generator's
noise vector ``z``) from ``SeedSequence([seed, e, i])``; the order of epoch ``e`` is a
permutation drawn from its own stream. :class:`~changen.engine.data.StepBatchSampler` maps
each training step to the keys ``(e, i)`` of its batch, so the data of step ``k`` is a pure
function of ``(seed, k)``: the same for any number of DataLoader workers or devices, and a
resumed run continues with exactly the batches an uninterrupted run would have seen.

Class ids. The GAN sees ``N`` = ``taxonomy.num_classes`` classes numbered ``0..N-1``, mapped
by the rule of :mod:`changen.synthesis.classes` (shared with inference): the taxonomy's
background becomes 0, its other non-ignore ids follow in ascending order, and its ignore id
becomes 255, which the networks and losses ignore. Events run on the original ids, before the
mapping.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from changen.data.augment import AugmentConfig
from changen.data.readers.base import Reader
from changen.engine.data import Key as Key
from changen.engine.data import StepBatchSampler as StepBatchSampler
from changen.engine.data import holdout_split as holdout_split
from changen.errors import DataError
from changen.events import ChangeProcess, simulate
from changen.events.regions import event_maps
from changen.sample import Scene, Taxonomy
from changen.seeding import item_rng
from changen.synthesis.classes import model_class_ids
from changen.synthesis.crops import SceneCrops

GAN_IGNORE = 255
"""The ignore id the GAN networks and losses see."""

CREATED, REMOVED, RECLASSED = 1, 2, 4
"""Bits of :attr:`GanExample.regions`."""


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
        self.crops = SceneCrops(
            reader,
            augment.size,
            seed,
            augment if train else None,
            what="the generator",
        )
        self.reader = reader
        self.process = process
        self.augment = augment
        self.seed = seed
        self.z_dim = z_dim
        self.train = train
        self.class_ids = model_class_ids(reader.taxonomy)

    @property
    def taxonomy(self) -> Taxonomy:
        return self.reader.taxonomy

    def model_ids(self, mask: np.ndarray) -> np.ndarray:
        """A taxonomy-id mask as GAN class ids (uint8, 255 = ignore)."""
        return self.crops.model_ids(mask)

    def example(self, epoch: int, index: int, regions: bool = False) -> GanExample:
        """The numpy example of ``index`` in ``epoch`` (deterministic)."""
        rng = item_rng(self.seed, epoch, index)
        crop = self.crops.layers(index, rng)
        if crop.mask is None:
            raise DataError(f"{crop.source}: has no mask; the generator trains on labelled scenes")
        chain = simulate(
            crop.mask, self.process, rng, instances=crop.instances, taxonomy=self.taxonomy
        )
        noise = rng.standard_normal(self.z_dim).astype(np.float32)
        bits = None
        if regions:
            created, removed, reclassed = event_maps(chain, 1)
            bits = (created * CREATED | removed * REMOVED | reclassed * RECLASSED).astype(np.uint8)
        return GanExample(crop.name, crop.image, chain.masks[0], chain.masks[1], noise, bits)

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

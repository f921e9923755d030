"""Training crops of single-temporal scenes, shared by the generators' trainers.

A :class:`SceneCrops` turns a scene reader into deterministic, augmented crops keyed by
``(epoch, reader index)`` — the keys :class:`~changen.engine.data.StepBatchSampler` yields — so
the data of a training step is a pure function of the run's seed and the step. Everything the
item at key ``(e, i)`` draws (crop window, scale, dihedral transform) comes from
``SeedSequence([seed, e, i])`` (:func:`changen.seeding.item_rng`); callers that draw more for
the same item (the GAN's events and noise) continue from the same generator
(:meth:`SceneCrops.layers`).

Without an :class:`~changen.data.augment.AugmentConfig` the crops are the evaluation view: a
central crop at scale 1, no transform (held-out previews and FID).

Masks leave as model class ids (:mod:`changen.synthesis.classes`, 255 = ignore). With
``instances=True`` an int32 instance map comes too: the reader's own, or — when the reader has
none — regions proposed from the scene (:func:`changen.events.unlabeled.propose_instances`,
slic).

Unlabeled mode (``unlabeled="instances" | "slic" | "felzenszwalb"``, Changen2's training on
images without labels) needs no mask: the instances come from the reader's instance map
(``"instances"``) or are proposed from the scene, and the mask is the class-agnostic one
(:func:`~changen.events.unlabeled.agnostic_mask`, taxonomy
:data:`~changen.events.unlabeled.OBJECT_TAXONOMY`). Proposals run on the whole scene with the
settings of ``changen simulate --unlabeled`` (regions below the events' default ``min_area``
dropped, those above 1/16 of the scene left as background), so a model is conditioned at
training time on the contours it will be given at generation time; they are recomputed each
time an item is read (deterministic, but a cost on large tiles: precompute instance maps and
use ``instances`` there).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from changen.data.augment import AugmentConfig, apply_plan, center_plan, draw_plan
from changen.data.bands import to_rgb8
from changen.data.readers.base import Reader
from changen.engine.data import Key
from changen.errors import DataError
from changen.events.unlabeled import (
    OBJECT_TAXONOMY,
    ProposalMethod,
    agnostic_mask,
    prepare_instances,
    propose_instances,
)
from changen.sample import Scene, Taxonomy
from changen.seeding import item_rng
from changen.synthesis.classes import class_lut, to_model_ids

UnlabeledMode = Literal["instances", "slic", "felzenszwalb"]
UNLABELED_MODES: tuple[str, ...] = ("instances", "slic", "felzenszwalb")
IGNORE = 255
"""The ignore id of model class-id masks."""
PROPOSAL_MIN_AREA = 64
"""Proposed regions smaller than this (pixels; the events' default ``min_area``) are dropped."""
PROPOSAL_MAX_FRACTION = 16
"""Proposed regions larger than 1/16 of the scene (fields, water) stay background."""


@dataclass
class CropLayers:
    """One crop as numpy: RGB image (H, W, 3) uint8, mask in taxonomy ids (None when the scene
    has none, in labelled mode), instance map (the reader's when it has one, else proposed
    when instances were asked for, else None)."""

    name: str
    source: str
    image: np.ndarray
    mask: np.ndarray | None
    instances: np.ndarray | None


class SceneCrops(Dataset[dict[str, Tensor]]):
    """Scene reader → augmented ``size`` crops by key ``(epoch, reader index)`` (see the module
    docstring). ``what`` names the model in the messages of unusable datasets."""

    def __init__(
        self,
        reader: Reader[Scene],
        size: int,
        seed: int,
        augment: AugmentConfig | None = None,
        instances: bool = False,
        *,
        unlabeled: UnlabeledMode | None = None,
        what: str = "the model",
    ) -> None:
        if reader.kind != "scene":
            raise DataError(
                f"{reader.root}: is a change dataset ({reader.format}); train {what} on "
                f"single-temporal scenes with masks (e.g. `changen data sample-world`, xView2)"
            )
        if len(reader) == 0:
            raise DataError(f"{reader.root}: the dataset has no items to train on")
        self.reader = reader
        self.size = size
        self.seed = seed
        self.augment = None if augment is None else dataclasses.replace(augment, size=size)
        self.unlabeled = unlabeled
        self.instances = instances or unlabeled is not None
        self.lut = class_lut(self.taxonomy, IGNORE)

    @property
    def taxonomy(self) -> Taxonomy:
        """The taxonomy of the masks: the reader's, or the class-agnostic one when unlabeled."""
        return OBJECT_TAXONOMY if self.unlabeled is not None else self.reader.taxonomy

    def layers(self, index: int, rng: np.random.Generator) -> CropLayers:
        """The crop of item ``index`` with its plan drawn from ``rng`` (none drawn for the
        evaluation view)."""
        scene = self.reader[index]
        where = scene.source or scene.name or f"item {index}"
        image, _ = to_rgb8(scene.image, source=where)
        instances = self.scene_instances(scene, image, where)
        shape = (image.shape[0], image.shape[1])
        if self.augment is not None:
            plan = draw_plan(shape, self.augment, rng, where)
        else:
            plan = center_plan(shape, self.size, where)
        crop = apply_plan(image, plan, "image")
        mask = None if scene.mask is None else apply_plan(scene.mask, plan, "labels")
        if instances is not None:
            instances = apply_plan(instances, plan, "labels")
        if self.unlabeled is not None:
            assert instances is not None
            mask = agnostic_mask(instances)
        return CropLayers(scene.name or f"{index:06d}", where, crop, mask, instances)

    def scene_instances(self, scene: Scene, image: np.ndarray, where: str) -> np.ndarray | None:
        """The instance map of the whole scene: the reader's (prepared as the events want it
        in unlabeled mode) or, when asked for and there is none, proposed from ``image``."""
        if self.unlabeled in ("slic", "felzenszwalb"):
            return self.propose(image, self.unlabeled)
        if scene.instances is not None:
            if self.unlabeled == "instances":
                return prepare_instances(scene.instances, min_area=PROPOSAL_MIN_AREA)
            return scene.instances
        if self.unlabeled == "instances":
            raise DataError(
                f"{where}: has no instance map; pass --unlabeled slic (or felzenszwalb) to "
                f"segment the image into regions"
            )
        return self.propose(image, "slic") if self.instances else None

    @staticmethod
    def propose(image: np.ndarray, method: ProposalMethod) -> np.ndarray:
        """Class-agnostic regions of a scene, as ``changen simulate --unlabeled`` proposes
        them with the events' default ``min_area``."""
        h, w = image.shape[:2]
        return propose_instances(
            image,
            method,
            min_area=PROPOSAL_MIN_AREA,
            max_area=max(h * w // PROPOSAL_MAX_FRACTION, PROPOSAL_MIN_AREA),
        )

    def crop(self, epoch: int, index: int) -> CropLayers:
        """The crop of ``index`` in ``epoch`` (deterministic)."""
        return self.layers(index, item_rng(self.seed, epoch, index))

    def model_ids(self, mask: np.ndarray, what: str = "mask") -> np.ndarray:
        """A taxonomy-id mask as model class ids (uint8, 255 = ignore)."""
        return to_model_ids(mask, self.lut, self.taxonomy, what)

    def __len__(self) -> int:
        return len(self.reader)

    def __getitem__(self, key: Key) -> dict[str, Tensor]:
        """``image`` float32 (3, H, W) in [−1, 1], ``mask`` uint8 (H, W) model ids and, with
        instances, ``instances`` int32 (H, W)."""
        epoch, index = key
        layers = self.crop(epoch, index)
        if layers.mask is None:
            raise DataError(
                f"{layers.source}: has no mask; train on labelled scenes, or pass "
                f"--unlabeled slic to train on the images alone"
            )
        image = torch.from_numpy(layers.image).permute(2, 0, 1).float() / 127.5 - 1.0
        item = {
            "image": image.contiguous(),
            "mask": torch.from_numpy(self.model_ids(layers.mask, f"{layers.source} mask")),
        }
        if layers.instances is not None and self.instances:
            item["instances"] = torch.from_numpy(layers.instances.astype(np.int32))
        return item

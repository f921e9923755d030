"""Unlabeled mode: change events on class-agnostic instance maps, for imagery without labels.

Changen2 generates change data from unlabeled images by running the event simulation on
class-agnostic instance masks (from SAM in the paper) and conditioning synthesis on the
instances' contours instead of a semantic mask. This module supplies the pieces that make the
same pipeline run here on any image:

* :func:`propose_instances` — a learning-free region proposal (superpixels, scikit-image) for
  images that have no mask at all. A user's own instance map (SAM or any other segmenter, with
  arbitrary ids) can be used instead after :func:`prepare_instances`.
* :func:`agnostic_mask` — the semantic mask convention of unlabeled mode: every instance pixel
  is class 1 (``object``), everything else class 0 (``background``); see
  :data:`OBJECT_TAXONOMY`. Events then treat each instance as an object of class 1.
* :func:`contour_map` — Changen2's condition for unlabeled data: the instance boundaries.

All functions here are deterministic (no random draws), so they take no generator.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from scipy.ndimage import maximum_filter, minimum_filter
from skimage.measure import label
from skimage.segmentation import felzenszwalb, relabel_sequential, slic

from changen.data.bands import to_rgb8
from changen.errors import ConfigError, DataError
from changen.sample import ClassInfo, Taxonomy

OBJECT_CLASS = 1
"""The class id every instance gets in unlabeled mode."""

OBJECT_TAXONOMY = Taxonomy(
    "object",
    (ClassInfo(0, "background", (0, 0, 0)), ClassInfo(OBJECT_CLASS, "object", (255, 255, 255))),
    background=0,
    ignore=255,
)
"""Taxonomy of class-agnostic masks: 0 background, 1 object, 255 ignore."""

ProposalMethod = Literal["slic", "felzenszwalb"]


def propose_instances(
    image: np.ndarray,
    method: ProposalMethod = "slic",
    *,
    n_segments: int = 400,
    compactness: float = 10.0,
    scale: float = 200.0,
    sigma: float = 0.8,
    min_area: int = 64,
    max_area: int | None = None,
) -> np.ndarray:
    """Segment an unlabeled image into class-agnostic instances (int32, 0 = none).

    ``method="slic"`` gives about ``n_segments`` compact superpixels (``compactness`` trades
    colour fidelity for regular shape); ``"felzenszwalb"`` gives graph-based regions whose size
    grows with ``scale`` (``sigma`` pre-smooths). Any band layout and dtype is accepted (the
    :mod:`changen.data.bands` rules apply; alpha-0 pixels are no-data and get no instance).

    Each returned instance is one 4-connected region; regions smaller than ``min_area`` (or
    larger than ``max_area``) become 0, so that tiny fragments are not treated as objects and
    large homogeneous areas (fields, water) can stay free space for created objects. Ids are
    consecutive from 1.
    """
    if image.ndim not in (2, 3) or image.shape[0] < 2 or image.shape[1] < 2:
        raise DataError(f"propose_instances: expected an HW or HWC image, got shape {image.shape}")
    if min_area < 0 or (max_area is not None and max_area < max(min_area, 1)):
        raise ConfigError(
            f"propose_instances: need 0 <= min_area <= max_area, got {min_area}, {max_area}"
        )
    rgb, valid = to_rgb8(image)
    if method == "slic":
        if n_segments < 1:
            raise ConfigError(f"propose_instances: n_segments must be >= 1, got {n_segments}")
        regions = slic(
            rgb,
            n_segments=n_segments,
            compactness=compactness,
            start_label=1,
            channel_axis=-1,
            mask=valid,
        )
    elif method == "felzenszwalb":
        regions = felzenszwalb(rgb, scale=scale, sigma=sigma, min_size=max(min_area, 1)) + 1
    else:
        raise ConfigError(
            f"propose_instances: unknown method {method!r}; choose 'slic' or 'felzenszwalb'"
        )
    if valid is not None:
        regions[~valid] = 0
    return prepare_instances(regions, min_area=min_area, max_area=max_area)


def prepare_instances(
    instances: np.ndarray, *, min_area: int = 0, max_area: int | None = None
) -> np.ndarray:
    """Turn any instance map (SAM export, other segmenter, arbitrary ids) into the event format.

    Returns int32 with consecutive ids from 1 and 0 for "no instance": every 4-connected piece
    of an id becomes its own instance (events move whole connected shapes), and pieces outside
    ``[min_area, max_area]`` are dropped to 0. Negative ids are a :class:`DataError`.
    """
    if instances.ndim != 2:
        raise DataError(f"instance map must be HW, got shape {instances.shape}")
    if not np.issubdtype(instances.dtype, np.integer):
        raise DataError(f"instance map must hold integer ids, got dtype {instances.dtype}")
    if instances.size and instances.min() < 0:
        raise DataError(
            f"instance map holds negative ids (min {instances.min()}); use 0 for 'no instance' "
            f"and positive ids for instances"
        )
    pieces = label(instances.astype(np.int64, copy=False), background=0, connectivity=1)
    areas = np.bincount(pieces.ravel())
    keep = areas >= min_area
    if max_area is not None:
        keep &= areas <= max_area
    keep[0] = False
    pieces[~keep[pieces]] = 0
    return relabel_sequential(pieces)[0].astype(np.int32)


def agnostic_mask(instances: np.ndarray) -> np.ndarray:
    """The unlabeled-mode semantic mask: :data:`OBJECT_CLASS` on instances, 0 elsewhere (uint8)."""
    return (instances > 0).astype(np.uint8) * np.uint8(OBJECT_CLASS)


def contour_map(instances: np.ndarray, *, thickness: int = 1) -> np.ndarray:
    """Changen2's structural condition for unlabeled data: instance boundaries as a 0/1 map.

    A pixel is 1 when it belongs to an instance and a pixel of another instance, or of no
    instance (0), lies within ``thickness`` pixels of it (chessboard distance): a line of
    ``thickness`` pixels along the inside of every outline, so touching instances stay
    separated by their two outlines. The map of the instances at time t+1 is the condition for
    synthesising the image at t+1.
    """
    if instances.ndim != 2:
        raise DataError(f"instance map must be HW, got shape {instances.shape}")
    if thickness < 1:
        raise ConfigError(f"contour thickness must be >= 1 pixel, got {thickness}")
    size = 2 * thickness + 1
    ids = np.asarray(instances)
    differs = maximum_filter(ids, size=size, mode="nearest") != minimum_filter(
        ids, size=size, mode="nearest"
    )
    return (differs & (ids > 0)).astype(np.uint8)

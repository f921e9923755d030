"""How a dataset's class ids become a model's class ids ``0..N-1`` (training and inference).

Generators (the GAN, the diffusion models) one-hot encode masks, so they need dense ids. The
rule: the taxonomy's background id becomes model id 0, then every other class id except the
ignore id follows in ascending order; the taxonomy's ignore id becomes the model's
``ignore_index`` (255 by default), which a generator conditions on as background. For the
usual taxonomies (background 0, ids ``0..N-1``, ignore 255: OpenEarthMap, the sample world,
xView2) the mapping is the identity; for LoveDA (ignore 0, background 1, ids 1..7) it is
``1..7 -> 0..6`` and ``0 -> 255``.
"""

from __future__ import annotations

import numpy as np

from changen.errors import DataError
from changen.sample import Taxonomy
from changen.taxonomies import object_classes

UNKNOWN = -1


def model_class_ids(taxonomy: Taxonomy) -> tuple[int, ...]:
    """The taxonomy ids in model order: entry ``k`` is the taxonomy id of model class ``k``."""
    rest = sorted(i for i in taxonomy.ids if i not in (taxonomy.background, taxonomy.ignore))
    return (taxonomy.background, *rest)


def model_object_classes(taxonomy: Taxonomy) -> tuple[int, ...]:
    """The taxonomy's object classes (:func:`changen.taxonomies.object_classes`) as model ids,
    the ``object_classes`` a generator for this taxonomy masks."""
    order = model_class_ids(taxonomy)
    return tuple(order.index(i) for i in object_classes(taxonomy) if i in order)


def class_lut(taxonomy: Taxonomy, ignore_index: int = 255) -> np.ndarray:
    """A (256,) int16 table from taxonomy id to model id; ``UNKNOWN`` for undefined ids."""
    lut = np.full(256, UNKNOWN, np.int16)
    lut[list(model_class_ids(taxonomy))] = np.arange(len(model_class_ids(taxonomy)))
    lut[taxonomy.ignore] = ignore_index
    return lut


def to_model_ids(mask: np.ndarray, lut: np.ndarray, taxonomy: Taxonomy, what: str) -> np.ndarray:
    """Map a uint8 mask of taxonomy ids through ``lut`` (from :func:`class_lut`) to uint8 model
    ids; ids the taxonomy does not define are a :class:`DataError` naming them."""
    out = lut[mask]
    if (out == UNKNOWN).any():
        bad = sorted(int(i) for i in np.unique(mask[out == UNKNOWN]))[:8]
        raise DataError(
            f"{what} holds class ids {bad} that taxonomy {taxonomy.name!r} does not define "
            f"(ids {taxonomy.ids}, ignore {taxonomy.ignore}); remap the mask or use a "
            f"generator trained on its taxonomy"
        )
    return out.astype(np.uint8)

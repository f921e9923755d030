"""Change labels between two masks: binary, object-level and semantic from-to.

``ignore`` arguments name the ignore id of the *input* masks (the taxonomy's, e.g. 0 for
LoveDA; ``None``: compare every pixel); the outputs mark those pixels with fixed values that
cannot be mistaken for a label, whatever that id is.

* :func:`binary_change`: 1 where the class differs (``t1 != t2`` in class space), 0 elsewhere,
  :data:`CHANGE_IGNORE` (255) where either mask is ignore.
* :func:`object_change`: 1 on every pixel of an object that appeared, disappeared or changed
  class (instance ids differ, or classes differ), the building-change convention where a new
  building on the footprint of a demolished one is still change; :data:`CHANGE_IGNORE` where
  either mask is ignore.
* :func:`semantic_change`: the from-to code ``from * N + to`` (uint16), 0 where unchanged and
  :data:`IGNORE_CODE` where either mask is ignore; :func:`decode_change` and
  :func:`change_counts` read it back.
"""

from __future__ import annotations

import numpy as np

from changen.errors import ConfigError, DataError
from changen.sample import CHANGE_IGNORE

IGNORE_CODE = 65535
"""Semantic change code of pixels that are ignore in either mask."""


def _pair(a: np.ndarray, b: np.ndarray, what: str) -> None:
    if a.shape != b.shape:
        raise DataError(
            f"{what}: the two maps differ in shape ({a.shape} vs {b.shape}); "
            f"give co-registered maps of the same size"
        )


def binary_change(m1: np.ndarray, m2: np.ndarray, ignore: int | None = 255) -> np.ndarray:
    """uint8 change map: 1 where the classes differ, 0 where equal, :data:`CHANGE_IGNORE`
    where either mask is the masks' ignore id ``ignore`` (``None``: compare every pixel)."""
    _pair(m1, m2, "binary_change")
    change = (m1 != m2).view(np.uint8)
    if ignore is not None:
        change = change.copy()
        change[(m1 == ignore) | (m2 == ignore)] = CHANGE_IGNORE
    return change


def object_change(
    inst1: np.ndarray,
    inst2: np.ndarray,
    m1: np.ndarray | None = None,
    m2: np.ndarray | None = None,
    ignore: int | None = 255,
) -> np.ndarray:
    """uint8 object-level change: 1 where a pixel belongs to an object at one time that it
    does not belong to at the other (or, with the masks, where its class differs); pixels that
    are the masks' ignore id ``ignore`` in either mask get :data:`CHANGE_IGNORE`."""
    _pair(inst1, inst2, "object_change")
    change = (inst1 != inst2) & ((inst1 > 0) | (inst2 > 0))
    if m1 is not None and m2 is not None:
        _pair(m1, inst1, "object_change")
        change |= m1 != m2
    out = change.astype(np.uint8)
    if ignore is not None and m1 is not None and m2 is not None:
        out[(m1 == ignore) | (m2 == ignore)] = CHANGE_IGNORE
    return out


def semantic_change(
    m1: np.ndarray, m2: np.ndarray, num_classes: int, ignore: int | None = 255
) -> np.ndarray:
    """uint16 from-to map ``m1 * num_classes + m2`` where the class changed, 0 where it did
    not, :data:`IGNORE_CODE` where either mask is the masks' ignore id ``ignore``. Class ids
    other than ``ignore`` must be below ``num_classes`` (at most 255)."""
    _pair(m1, m2, "semantic_change")
    if not 1 <= num_classes <= 255:
        raise ConfigError(f"semantic_change: num_classes must be 1..255, got {num_classes}")
    valid = np.ones(m1.shape, bool) if ignore is None else (m1 != ignore) & (m2 != ignore)
    for m in (m1, m2):
        if m[valid].size and int(m[valid].max()) >= num_classes:
            raise DataError(
                f"semantic_change: class id {int(m[valid].max())} is not below num_classes="
                f"{num_classes}; pass the taxonomy's number of classes"
            )
    code = m1.astype(np.uint16) * np.uint16(num_classes) + m2.astype(np.uint16)
    code[m1 == m2] = 0
    code[~valid] = IGNORE_CODE
    return code


def decode_change(code: np.ndarray, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """The from and to class maps of a semantic change code (both 0 where unchanged or
    ignored; look at ``code == 0`` / ``code == IGNORE_CODE`` to tell them apart)."""
    keep = (code != 0) & (code != IGNORE_CODE)
    src = np.where(keep, code // num_classes, 0).astype(np.uint8)
    dst = np.where(keep, code % num_classes, 0).astype(np.uint8)
    return src, dst


def change_counts(code: np.ndarray, num_classes: int) -> dict[tuple[int, int], int]:
    """Pixel count of each (from, to) transition present in a semantic change code."""
    values, counts = np.unique(code[(code != 0) & (code != IGNORE_CODE)], return_counts=True)
    return {
        (int(v) // num_classes, int(v) % num_classes): int(n)
        for v, n in zip(values, counts, strict=True)
    }

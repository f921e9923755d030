"""Change labels: binary, object-level and semantic from-to codes."""

from __future__ import annotations

import numpy as np
import pytest

from changen.errors import ConfigError, DataError
from changen.events import (
    CHANGE_IGNORE,
    IGNORE_CODE,
    binary_change,
    change_counts,
    decode_change,
    object_change,
    semantic_change,
)
from changen.taxonomies import LOVEDA


def _pair() -> tuple[np.ndarray, np.ndarray]:
    m1 = np.array([[0, 1, 2], [3, 255, 1], [2, 2, 0]], np.uint8)
    m2 = np.array([[0, 2, 2], [0, 1, 255], [3, 2, 1]], np.uint8)
    return m1, m2


def test_binary_change_marks_differences_and_keeps_ignore() -> None:
    m1, m2 = _pair()
    out = binary_change(m1, m2)
    assert out.dtype == np.uint8
    assert out.tolist() == [[0, 1, 0], [1, 255, 255], [1, 0, 1]]
    assert binary_change(m1, m2, ignore=None).tolist() == [[0, 1, 0], [1, 1, 1], [1, 0, 1]]
    with pytest.raises(DataError, match="shape"):
        binary_change(m1, m2[:2])


def test_semantic_change_codes_decode_and_count() -> None:
    m1, m2 = _pair()
    code = semantic_change(m1, m2, num_classes=4)
    assert code.dtype == np.uint16
    assert code[0, 0] == 0 and code[2, 1] == 0  # unchanged
    assert code[0, 1] == 1 * 4 + 2 and code[1, 0] == 3 * 4 + 0 and code[2, 2] == 0 * 4 + 1
    assert code[1, 1] == IGNORE_CODE == code[1, 2]
    src, dst = decode_change(code, 4)
    changed = (code != 0) & (code != IGNORE_CODE)
    assert np.array_equal(src[changed], m1[changed]) and np.array_equal(dst[changed], m2[changed])
    assert change_counts(code, 4) == {(1, 2): 1, (3, 0): 1, (2, 3): 1, (0, 1): 1}
    assert ((code != 0) & (code != IGNORE_CODE)).sum() == (binary_change(m1, m2) == 1).sum()


def test_semantic_change_checks_class_range() -> None:
    m1, m2 = _pair()
    with pytest.raises(DataError, match="num_classes"):
        semantic_change(m1, m2, num_classes=3)
    with pytest.raises(ConfigError):
        semantic_change(m1, m2, num_classes=256)


def test_object_change_counts_replaced_objects() -> None:
    """A building demolished and rebuilt on the same footprint: no class change, but
    object-level change."""
    m = np.zeros((6, 6), np.uint8)
    m[1:4, 1:4] = 1
    i1 = np.zeros((6, 6), np.int32)
    i1[1:4, 1:4] = 5
    i2 = np.where(i1 == 5, 9, 0).astype(np.int32)
    assert binary_change(m, m).sum() == 0
    assert object_change(i1, i2, m, m).sum() == 9
    assert object_change(i1, i1, m, m).sum() == 0
    m2 = m.copy()
    m2[0, 0] = 255
    out = object_change(i1, i1, m, m2)
    assert out[0, 0] == 255 and out.sum() == 255


def test_ignore_is_255_whatever_the_taxonomy_ignore_id() -> None:
    """LoveDA's ignore id is 0: ignored pixels must not come out 0 (= unchanged)."""
    assert LOVEDA.ignore == 0 and CHANGE_IGNORE == 255
    m1 = np.array([[1, 2, 0], [3, 3, 1]], np.uint8)
    m2 = np.array([[1, 3, 2], [0, 3, 1]], np.uint8)
    expected = [[0, 1, 255], [255, 0, 0]]
    assert binary_change(m1, m2, LOVEDA.ignore).tolist() == expected
    i1 = np.array([[1, 2, 0], [3, 3, 4]], np.int32)
    assert object_change(i1, i1, m1, m2, LOVEDA.ignore).tolist() == expected
    code = semantic_change(m1, m2, num_classes=8, ignore=LOVEDA.ignore)
    assert code.tolist() == [[0, 2 * 8 + 3, IGNORE_CODE], [IGNORE_CODE, 0, 0]]

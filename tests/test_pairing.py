"""STAR / G-STAR pairing: derangements never pair a sample with itself; self pairs are no-change."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from changen.data.readers import open_dataset
from changen.data.world import write_sample_world
from changen.detectors.augment import IGNORE, PairAugmentConfig
from changen.detectors.data import SegSpec, StarPairDataset
from changen.detectors.pairing import derangement, star_pairs
from changen.errors import ConfigError


@settings(max_examples=200, deadline=None)
@given(n=st.integers(2, 300), seed=st.integers(0, 2**32 - 1))
def test_derangement_is_a_permutation_without_fixed_points(n: int, seed: int) -> None:
    perm = derangement(n, np.random.default_rng(seed))
    assert sorted(perm.tolist()) == list(range(n))
    assert not (perm == np.arange(n)).any()


def test_derangement_is_deterministic_and_covers_all_derangements() -> None:
    a = derangement(50, np.random.default_rng(7))
    b = derangement(50, np.random.default_rng(7))
    assert np.array_equal(a, b)
    rng = np.random.default_rng(0)
    seen = {tuple(derangement(3, rng)) for _ in range(100)}
    assert seen == {(1, 2, 0), (2, 0, 1)}  # the only two derangements of 3 items


@pytest.mark.parametrize("n", [0, 1])
def test_too_few_samples_to_pair(n: int) -> None:
    with pytest.raises(ConfigError, match="at least 2"):
        derangement(n, np.random.default_rng(0))
    with pytest.raises(ConfigError, match="at least 2"):
        star_pairs(n, np.random.default_rng(0), self_prob=0.5)


@settings(max_examples=100, deadline=None)
@given(
    n=st.integers(2, 200),
    seed=st.integers(0, 2**32 - 1),
    self_prob=st.sampled_from([0.0, 0.3, 0.5, 1.0]),
)
def test_star_pairs_self_only_where_flagged(n: int, seed: int, self_prob: float) -> None:
    pairs = star_pairs(n, np.random.default_rng(seed), self_prob)
    index = np.arange(n)
    assert np.array_equal(pairs.partner == index, pairs.is_self)
    assert ((pairs.partner >= 0) & (pairs.partner < n)).all()
    if self_prob == 0.0:
        assert not pairs.is_self.any()
    if self_prob == 1.0:
        assert pairs.is_self.all()


def test_gstar_self_pair_rate() -> None:
    pairs = star_pairs(4000, np.random.default_rng(1), self_prob=0.5)
    assert 0.46 < pairs.is_self.mean() < 0.54


def test_bad_self_prob() -> None:
    with pytest.raises(ConfigError, match="probability"):
        star_pairs(4, np.random.default_rng(0), self_prob=1.5)


@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_sample_world(tmp_path_factory.mktemp("star") / "scenes", 6, 3, size=64)


def _star(root: Path, self_prob: float, objects: tuple[int, ...] | None = (8,)) -> StarPairDataset:
    reader = open_dataset(root)
    seg = SegSpec.from_taxonomy(reader.taxonomy, objects)
    return StarPairDataset(reader, seg, PairAugmentConfig(crop=64), seed=5, self_prob=self_prob)


def test_star_dataset_never_pairs_a_scene_with_itself(scenes: Path) -> None:
    ds = _star(scenes, 0.0)
    partners = []
    for epoch in range(6):
        ds.set_epoch(epoch)
        assert not (ds.pairs.partner == np.arange(len(ds))).any()
        partners.append(ds.pairs.partner.tolist())
    assert len({tuple(p) for p in partners}) > 1  # re-drawn per epoch
    ds.set_epoch(2)
    again = _star(scenes, 0.0)
    again.set_epoch(2)
    assert np.array_equal(ds.pairs.partner, again.pairs.partner)  # a function of (seed, epoch)


def test_star_change_is_xor_of_object_masks(scenes: Path) -> None:
    ds = _star(scenes, 0.0)
    for k in range(len(ds)):
        item = ds[k]
        s1, s2, change = item["t1_seg"].numpy(), item["t2_seg"].numpy(), item["change"].numpy()
        valid = (s1 != IGNORE) & (s2 != IGNORE)
        assert set(np.unique(s1[valid])) <= {0, 1}
        assert np.array_equal(change[valid], (s1[valid] ^ s2[valid]).astype(np.uint8))
        assert (change[~valid] == IGNORE).all()
        assert not np.array_equal(item["t1"], item["t2"])


def test_gstar_self_pairs_are_no_change_views(scenes: Path) -> None:
    ds = _star(scenes, 1.0)
    item = ds[0]
    assert np.array_equal(item["t1_seg"], item["t2_seg"])
    assert set(np.unique(item["change"].numpy())) <= {0, IGNORE}
    assert not np.array_equal(item["t1"], item["t2"])  # colour jitter drawn per date

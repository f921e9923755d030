"""The generation plan: index → (item, crop window, variant), seeds, shards."""

from __future__ import annotations

import numpy as np
import pytest

from changen.errors import ConfigError, DataError
from changen.generation.plan import Plan
from changen.generation.shards import shard_ranges
from changen.seeding import sample_rngs


def test_plan_is_item_major_with_variants() -> None:
    plan = Plan(["a", "b", "c"], per_image=2)
    assert len(plan) == 6
    specs = [plan[i] for i in range(6)]
    assert [(s.item_name, s.variant) for s in specs] == [
        ("a", 0), ("a", 1), ("b", 0), ("b", 1), ("c", 0), ("c", 1)
    ]  # fmt: skip
    assert [s.name for s in specs[:2]] == ["a_v00", "a_v01"]
    assert all(s.window is None and s.tile == 0 for s in specs)
    assert [s.index for s in specs] == list(range(6))
    with pytest.raises(IndexError):
        plan[6]


def test_crop_tiles_every_item_inside_its_image() -> None:
    sizes = [(100, 70), (64, 64)]
    plan = Plan(["big", "small"], per_image=1, crop=32, sizes=sizes)
    big = [plan[i] for i in range(len(plan)) if plan[i].item_name == "big"]
    small = [plan[i] for i in range(len(plan)) if plan[i].item_name == "small"]
    assert len(big) == 4 * 3 and len(small) == 4  # rows 0,32,64,68 × cols 0,32,38
    for spec, (h, w) in [(s, sizes[0]) for s in big] + [(s, sizes[1]) for s in small]:
        r, c, hh, ww = spec.window
        assert (hh, ww) == (32, 32) and 0 <= r <= h - 32 and 0 <= c <= w - 32
    assert big[-1].window == (68, 38, 32, 32)
    assert big[1].name == "big_c0001_v00"
    assert len({s.name for s in big + small}) == len(plan)
    assert plan.to_dict() == {"items": 2, "per_image": 1, "crop": 32, "samples": 16}


def test_crop_larger_than_an_item_names_both_sizes() -> None:
    with pytest.raises(ConfigError, match=r"--crop 128 is larger than item 'b' \(96×64 w×h\)"):
        Plan(["a", "b"], crop=128, sizes=[(200, 200), (64, 96)])


def test_bad_plans_are_refused() -> None:
    with pytest.raises(ConfigError, match="per-image 0"):
        Plan(["a"], per_image=0)
    with pytest.raises(DataError, match="no items"):
        Plan([])
    with pytest.raises(ConfigError, match="size of every item"):
        Plan(["a"], crop=16)


def test_sample_rngs_depend_only_on_seed_and_index() -> None:
    def draw(seed: int, index: int) -> tuple[int, int]:
        events, synth = sample_rngs(seed, index)
        return int(events.integers(2**62)), int(synth.integers(2**62))

    a = draw(7, 3)
    draw(7, 2)  # other samples drawn in between change nothing
    assert draw(7, 3) == a
    assert a[0] != a[1]
    assert draw(7, 4) != a and draw(8, 3) != a
    expected = np.random.default_rng(np.random.SeedSequence([7, 3]).spawn(2)[0]).integers(2**62)
    assert a[0] == expected


def test_shards_are_contiguous_ranges() -> None:
    assert shard_ranges(7, 3) == [range(0, 3), range(3, 6), range(6, 7)]
    assert shard_ranges(0, 3) == []
    with pytest.raises(ConfigError, match="shard-size 0"):
        shard_ranges(5, 0)

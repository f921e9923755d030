"""Change events on real labels: xView2 building polygons and LoveDA land cover."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from rasterio.features import rasterize
from shapely import wkt

from changen.data.imageio import read_mask
from changen.events import (
    ChangeProcess,
    CreateConfig,
    EventSpec,
    ReclassConfig,
    RemoveConfig,
    State,
    TransitionKernel,
    extract_objects,
    simulate,
)
from changen.taxonomies import BINARY_BUILDING, LOVEDA

pytestmark = pytest.mark.real


def _xview2_instances(label_file: Path) -> np.ndarray:
    """Rasterise the pixel-space building polygons: instance i+1 for polygon i."""
    feats = json.loads(label_file.read_text())["features"]["xy"]
    shapes = [(wkt.loads(f["wkt"]), i + 1) for i, f in enumerate(feats)]
    return rasterize(shapes, out_shape=(1024, 1024), fill=0, dtype="int32")


def _xview2(real_root: Path) -> list[np.ndarray]:
    labels = sorted((real_root / "xview2_joplin" / "labels").glob("*_pre_disaster.json"))
    if not labels:
        pytest.skip("no xView2 labels in the real samples")
    return [_xview2_instances(p) for p in labels]


def _loveda(real_root: Path) -> list[np.ndarray]:
    files = sorted((real_root / "loveda" / "ann_dir").glob("*.png"))
    if not files:
        pytest.skip("no LoveDA labels in the real samples")
    return [read_mask(p) for p in files]


def test_xview2_buildings_from_polygons(real_root: Path) -> None:
    for instances in _xview2(real_root):
        mask = (instances > 0).astype(np.uint8)
        objs = extract_objects(mask, instances, min_area=0)
        assert {o.id for o in objs} == set(np.unique(instances[instances > 0]).tolist())
        assert all(o.class_id == 1 for o in objs)
        # components merge touching buildings; the polygons keep them apart
        assert len(extract_objects(mask, min_area=0)) <= len(objs)


def test_xview2_chain_keeps_invariants(real_root: Path) -> None:
    instances = _xview2(real_root)[0]
    mask = (instances > 0).astype(np.uint8)
    process = ChangeProcess.from_flags(
        "remove,create", steps=6, count=(1, 5), scale=(0.5, 1.5), rotate="any", flip=True
    )
    chain = simulate(
        mask, process, np.random.default_rng(0), instances=instances, taxonomy=BINARY_BUILDING
    )
    again = simulate(
        mask, process, np.random.default_rng(0), instances=instances, taxonomy=BINARY_BUILDING
    )
    assert chain.masks.tobytes() == again.masks.tobytes() and chain.log == again.log
    assert {r.event for r in chain.log} == {"create", "remove"}
    for t in range(1, 7):
        a, b = chain.masks[t - 1], chain.masks[t]
        records = chain.records(t - 1, t)
        removed = [r.source_id for r in records if r.event == "remove"]
        for rec in (r for r in records if r.event == "create"):
            drawn = chain.instances[t] == rec.new_id
            # no overlap with buildings still standing (a demolished plot may be rebuilt)
            before = chain.instances[t - 1][drawn]
            assert np.isin(before, [0, *removed]).all()
        assert set(np.unique(b).tolist()) <= {0, 1}
        assert np.array_equal(chain.change(t - 1, t), (a != b).astype(np.uint8))
    State(chain.masks[-1], chain.instances[-1], 10**6).check()


def test_loveda_land_cover_events(real_root: Path) -> None:
    kernel = TransitionKernel.from_edges(
        [(7, 2), (7, 5), (6, 5), (6, 7), (5, 7), (5, 2), (4, 5), (3, 5)], name="loveda-test"
    )
    process = ChangeProcess(
        (
            EventSpec("reclass", ReclassConfig(kernel, count=(2, 4))),
            EventSpec("remove", RemoveConfig(count=(1, 3), fill="surrounding", classes=(2,))),
            EventSpec(
                "create",
                CreateConfig(
                    count=(1, 3),
                    classes=(2,),
                    placement="within",
                    within_classes=(7,),
                    rotation="90",
                    min_area=32,
                ),
            ),
        ),
        steps=3,
    )
    for mask in _loveda(real_root):
        chain = simulate(mask, process, np.random.default_rng(1), taxonomy=LOVEDA)
        assert chain.log
        for t in range(1, 4):
            assert (chain.masks[t][mask == 0] == 0).all()  # no-data never written
        for rec in chain.log:
            if rec.event == "reclass":
                assert kernel.allows(rec.class_before, rec.class_after)
            elif rec.event == "create":
                assert rec.class_before == 7 and rec.class_after == 2
            else:
                assert rec.class_after not in (0, 2)
        code = chain.semantic_change(0, 3)
        assert ((code > 0) == (chain.masks[0] != chain.masks[3])).all()
        state = State(chain.masks[-1], chain.instances[-1], 10**7)
        state.check()

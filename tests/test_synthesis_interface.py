"""The synthesizer interface: batch validation, per-sample generators, the name registry."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from changen.errors import ConfigError, DataError
from changen.events import EventRecord
from changen.synthesis import SYNTHESIZERS, SynthesisBatch, Synthesizer, load_synthesizer
from changen.synthesis.copy_paste import CopyPaste
from changen.synthesis.inpaint import Inpaint


def _arrays(b: int = 2, size: int = 32) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    t1_mask = np.zeros((b, size, size), np.uint8)
    t1_mask[:, 4:12, 4:12] = 1
    t2_mask = t1_mask.copy()
    t2_mask[:, 20:28, 20:28] = 1
    return {
        "t1_image": rng.integers(0, 256, (b, size, size, 3), dtype=np.uint8),
        "t1_mask": t1_mask,
        "t2_mask": t2_mask,
        "t1_instances": t1_mask.astype(np.int32),
        "t2_instances": (t1_mask + 2 * (t2_mask != t1_mask)).astype(np.int32),
    }


def _records() -> list[EventRecord]:
    return [EventRecord(1, "create", 1, 2, 0, 1, offset=(16, 16), area=64)]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("t1_image", np.zeros((2, 32, 32, 3), np.float32)),
        ("t1_image", np.zeros((2, 32, 32), np.uint8)),
        ("t1_image", np.zeros((32, 32, 3), np.uint8)),
        ("t1_mask", np.zeros((2, 32, 31), np.uint8)),
        ("t2_mask", np.zeros((1, 32, 32), np.uint8)),
        ("t1_instances", np.zeros((2, 16, 32), np.int32)),
        ("t2_instances", np.zeros((2, 32, 32, 1), np.int32)),
    ],
)
def test_batch_rejects_wrong_shapes(field: str, value: np.ndarray) -> None:
    arrays = _arrays()
    arrays[field] = value
    with pytest.raises(DataError, match=field):
        SynthesisBatch(**arrays)


def test_batch_needs_one_record_list_per_sample() -> None:
    with pytest.raises(DataError, match="one list per sample"):
        SynthesisBatch(**_arrays(), events=[_records()])
    assert len(SynthesisBatch(**_arrays(), events=[_records(), []])) == 2


@pytest.mark.parametrize("name", ["copy_paste", "inpaint"])
def test_one_generator_per_sample(name: str) -> None:
    synth = load_synthesizer(name)
    batch = SynthesisBatch(**_arrays())
    with pytest.raises(DataError, match="one random generator per sample"):
        synth(batch, [np.random.default_rng(0)])


def test_registry_loads_both_baselines_with_options() -> None:
    assert SYNTHESIZERS["copy_paste"] == "changen.synthesis.copy_paste:CopyPaste"
    assert SYNTHESIZERS["inpaint"] == "changen.synthesis.inpaint:Inpaint"
    copy = load_synthesizer("copy_paste")
    assert isinstance(copy, CopyPaste) and isinstance(copy, Synthesizer)
    assert copy.name == "copy_paste"
    assert copy.config() == {
        "name": "copy_paste",
        "feather": 2,
        "inpaint_radius": 5,
        "harmonize": "poisson",
        "fill": "patch",
    }
    inpaint = load_synthesizer("inpaint", inpaint_radius=3)
    assert isinstance(inpaint, Inpaint) and isinstance(inpaint, Synthesizer)
    assert inpaint.config() == {"name": "inpaint", "inpaint_radius": 3, "fill": "patch"}
    options = {k: v for k, v in CopyPaste(feather=0).config().items() if k != "name"}
    assert load_synthesizer("copy_paste", **options) == CopyPaste(feather=0)


def test_registry_rejects_unknown_names_and_bad_options() -> None:
    with pytest.raises(ConfigError, match="unknown synthesizer 'deepfill'"):
        load_synthesizer("deepfill")
    with pytest.raises(ConfigError, match="feather"):
        load_synthesizer("copy_paste", feather=-1)
    with pytest.raises(ConfigError, match="inpaint_radius"):
        load_synthesizer("inpaint", inpaint_radius=0)


def test_options_change_the_output() -> None:
    arrays = _arrays(1)
    batch = SynthesisBatch(**arrays, events=[_records()])
    hard = CopyPaste(feather=0, harmonize="none")(batch, [np.random.default_rng(0)])
    soft = CopyPaste(feather=3, harmonize="none")(batch, [np.random.default_rng(0)])
    assert (hard != soft).any()
    created = arrays["t2_instances"][0] == 2
    np.testing.assert_array_equal(
        hard[0][created], arrays["t1_image"][0, 4:12, 4:12].reshape(-1, 3)
    )


@pytest.mark.parametrize("synth", [CopyPaste(), Inpaint()])
def test_records_need_instance_maps(synth: Synthesizer) -> None:
    arrays = _arrays(1)
    del arrays["t2_instances"]
    batch = SynthesisBatch(**arrays, events=[_records()])
    with pytest.raises(DataError, match="t1_instances and t2_instances"):
        synth(batch, [np.random.default_rng(0)])


def test_records_may_be_dicts_but_must_be_known_events() -> None:
    arrays = _arrays(1)
    as_objects = CopyPaste()(
        SynthesisBatch(**arrays, events=[_records()]), [np.random.default_rng(0)]
    )
    as_dicts = CopyPaste()(
        SynthesisBatch(**arrays, events=[[_records()[0].to_dict()]]), [np.random.default_rng(0)]
    )
    rngs = [np.random.default_rng(0)]
    np.testing.assert_array_equal(as_objects, as_dicts)
    bad = {**_records()[0].to_dict(), "event": "explode"}
    with pytest.raises(DataError, match="unknown event 'explode'"):
        CopyPaste()(SynthesisBatch(**arrays, events=[[bad]]), rngs)
    with pytest.raises(DataError, match="unreadable event record"):
        CopyPaste()(SynthesisBatch(**arrays, events=[[{"event": "create"}]]), rngs)


@pytest.mark.parametrize("instances", [np.float32, "negative"])
def test_instance_maps_must_hold_ids(instances: object) -> None:
    arrays = _arrays(1)
    if instances == "negative":
        arrays["t1_instances"] = arrays["t1_instances"] - 1
    else:
        arrays["t1_instances"] = arrays["t1_instances"].astype(np.float32)
    batch = SynthesisBatch(**arrays, events=[_records()])
    with pytest.raises(DataError, match="t1_instances"):
        CopyPaste()(batch, [np.random.default_rng(0)])


def test_run_options_reach_only_synthesizers_that_take_them() -> None:
    """``--device`` is a run option: learning-free synthesizers do not take it."""
    assert load_synthesizer("copy_paste", device="cpu").name == "copy_paste"
    with pytest.raises(ConfigError, match="unexpected keyword"):
        load_synthesizer("copy_paste", colour="red")


def test_a_name_is_not_read_as_a_folder_of_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An output folder called ``copy_paste`` in the working directory does not shadow the
    synthesizer of that name; ``./copy_paste`` still means the folder."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "copy_paste").mkdir()
    assert isinstance(load_synthesizer("copy_paste"), CopyPaste)
    with pytest.raises(DataError, match="neither a checkpoint"):
        load_synthesizer("./copy_paste")

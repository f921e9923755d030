"""Progressive multi-temporal synthesis over change chains, for any synthesizer."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
import torch

from changen.data.world import WorldConfig, render_scene
from changen.errors import DataError
from changen.events import ChangeChain, ChangeProcess, simulate
from changen.synthesis.base import SynthesisBatch
from changen.synthesis.copy_paste import CopyPaste
from changen.synthesis.gan import ChangenGenerator, preset
from changen.synthesis.gan.synthesizer import GanSynthesizer
from changen.synthesis.series import synthesize_series, synthesize_series_batch
from changen.taxonomies import OPENEARTHMAP

PROCESS = ChangeProcess.from_flags("create,remove", count=(1, 3), steps=3)


pytestmark = pytest.mark.usefixtures("one_thread")


def scene_chain(seed: int, size: int = 64, steps: int = 3) -> tuple[np.ndarray, ChangeChain]:
    """A sample-world scene and a chain of ``steps`` create/remove steps simulated on it."""
    rng = np.random.default_rng(seed)
    scene = render_scene(rng, WorldConfig(size=size))
    process = ChangeProcess(PROCESS.events, steps=steps)
    chain = simulate(scene.mask, process, rng, instances=scene.instances, taxonomy=OPENEARTHMAP)
    return scene.image, chain


class Recorder:
    """Adds a per-sample random offset to the pre-event image and records every batch."""

    name = "recorder"

    def __init__(self) -> None:
        self.calls: list[SynthesisBatch] = []

    def config(self) -> dict[str, Any]:
        return {"name": self.name}

    def __call__(self, batch: SynthesisBatch, rngs: Sequence[np.random.Generator]) -> np.ndarray:
        self.calls.append(batch)
        offsets = np.array([r.integers(1, 50) for r in rngs], np.uint8)
        return batch.t1_image + offsets[:, None, None, None]


def test_each_step_starts_from_the_previous_synthetic_image() -> None:
    image, chain = scene_chain(0)
    recorder = Recorder()
    series = synthesize_series(recorder, image, chain, np.random.default_rng(1))
    assert series.shape == (4, 64, 64, 3) and series.dtype == np.uint8
    np.testing.assert_array_equal(series[0], image)
    assert len(recorder.calls) == 3
    for t, batch in enumerate(recorder.calls, start=1):
        np.testing.assert_array_equal(batch.t1_image[0], series[t - 1])
        np.testing.assert_array_equal(batch.t1_mask[0], chain.masks[t - 1])
        np.testing.assert_array_equal(batch.t2_mask[0], chain.masks[t])
        np.testing.assert_array_equal(batch.t1_instances[0], chain.instances[t - 1])
        np.testing.assert_array_equal(batch.t2_instances[0], chain.instances[t])
        assert batch.events is not None and batch.events[0] == chain.records(t - 1, t)
        assert all(r.step == t for r in batch.events[0])
        offset = (series[t].astype(int) - series[t - 1]) % 256
        assert np.unique(offset).size == 1 and offset.flat[0] > 0
    assert sum(len(b.events[0]) for b in recorder.calls) == len(chain.log) > 0


def test_batched_chains_match_chains_alone() -> None:
    """Chains of different lengths and sizes: batching changes nothing."""
    pairs = [scene_chain(0), scene_chain(1, steps=1), scene_chain(2, size=96), scene_chain(3)]
    images = [p[0] for p in pairs]
    chains = [p[1] for p in pairs]

    def seeds() -> list[np.random.Generator]:
        return [np.random.default_rng([9, k]) for k in range(len(chains))]

    recorder = Recorder()
    batched = synthesize_series_batch(recorder, images, chains, seeds(), batch_size=2)
    assert [len(b) for b in recorder.calls] == [2, 1, 1, 2, 1, 2, 1]
    alone = [
        synthesize_series(Recorder(), i, c, r)
        for i, c, r in zip(images, chains, seeds(), strict=True)
    ]
    for a, b, chain in zip(batched, alone, chains, strict=True):
        assert a.shape[0] == chain.steps + 1
        np.testing.assert_array_equal(a, b)


def test_tiny_gan_series_is_deterministic_and_batch_free() -> None:
    torch.manual_seed(0)
    generator = ChangenGenerator(preset("tiny", num_classes=OPENEARTHMAP.num_classes).generator)
    syn = GanSynthesizer(generator, OPENEARTHMAP)
    pairs = [scene_chain(4), scene_chain(5)]
    images, chains = [p[0] for p in pairs], [p[1] for p in pairs]
    batched = synthesize_series_batch(
        syn, images, chains, [np.random.default_rng([3, k]) for k in range(2)]
    )
    for k in range(2):
        again = synthesize_series(syn, images[k], chains[k], np.random.default_rng([3, k]))
        np.testing.assert_array_equal(batched[k], again)
        assert batched[k].shape == (4, 64, 64, 3)
        assert all(not np.array_equal(batched[k][t], batched[k][t - 1]) for t in (1, 2, 3))


def test_copy_paste_series_keeps_never_changed_pixels() -> None:
    image, chain = scene_chain(6, size=96)
    series = synthesize_series(CopyPaste(), image, chain, np.random.default_rng(0))
    stable = (chain.masks == chain.masks[0]).all(0) & (chain.instances == chain.instances[0]).all(0)
    assert 0 < stable.mean() < 1
    for t in range(1, chain.steps + 1):
        np.testing.assert_array_equal(series[t][stable], image[stable])
    changed = chain.change(0, chain.steps) == 1
    assert (series[-1][changed] != image[changed]).any(-1).mean() > 0.5


def test_mismatched_inputs_are_errors() -> None:
    image, chain = scene_chain(0)
    with pytest.raises(DataError, match="chain's masks"):
        synthesize_series(Recorder(), image[:32], chain, np.random.default_rng(0))
    with pytest.raises(DataError, match="one image and one random generator per chain"):
        synthesize_series_batch(Recorder(), [image], [chain, chain], [np.random.default_rng(0)])
    with pytest.raises(DataError, match="batch_size"):
        synthesize_series_batch(
            Recorder(), [image], [chain], [np.random.default_rng(0)], batch_size=0
        )

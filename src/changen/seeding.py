"""The one seeding convention: everything item ``i`` of a run with seed ``s`` draws comes from
``SeedSequence([s, i])`` (or ``[s, e, i]`` for item ``i`` of epoch ``e``) and its children.

A generated sample's sequence spawns four children: the first drives the change events, the
second the synthesizer, the third decides whether the sample is a hard negative and the fourth
draws its nuisance between dates (:func:`acquisition_rngs`; spawned children depend only on
their position, so the first two are the same whether two or four are spawned).
``changen simulate`` draws its events from that same first child, so ``simulate --seed S``
writes exactly the masks and event logs that ``generate --seed S`` simulates. Nothing else
feeds an item's randomness, so results do not depend on workers, batches, executors or
restarts.
"""

from __future__ import annotations

import numpy as np


def item_rng(seed: int, *key: int) -> np.random.Generator:
    """The generator of the item at ``key`` (e.g. ``index`` or ``epoch, index``)."""
    return np.random.default_rng(np.random.SeedSequence([seed, *key]))


def sample_rngs(seed: int, index: int) -> tuple[np.random.Generator, np.random.Generator]:
    """The (events, synthesis) generators of sample ``index`` of a run with ``seed``."""
    events, synthesis = np.random.SeedSequence([seed, index]).spawn(2)
    return np.random.default_rng(events), np.random.default_rng(synthesis)


def events_rng(seed: int, index: int) -> np.random.Generator:
    """The change-event generator of sample ``index`` (the first of :func:`sample_rngs`)."""
    return sample_rngs(seed, index)[0]


def acquisition_rngs(seed: int, index: int) -> tuple[np.random.Generator, np.random.Generator]:
    """The (hard-negative, nuisance) generators of sample ``index``: the third and fourth
    children of its sequence."""
    children = np.random.SeedSequence([seed, index]).spawn(4)
    return np.random.default_rng(children[2]), np.random.default_rng(children[3])

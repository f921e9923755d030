"""Pairings of single-temporal samples for STAR / G-STAR training (Zheng et al., ICCV 2021).

STAR turns a segmentation dataset into change pairs by pairing every sample with *another*
one: a derangement (a permutation without fixed points), so no pair is a sample with itself
(which would be a no-change pair labelled by chance). G-STAR also pairs a sample with its own
augmented view with probability ``self_prob`` (a true no-change pair). Both draw from an
explicit ``numpy.random.Generator``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from changen.errors import ConfigError

_MAX_TRIES = 1000


def _check_count(n: int) -> None:
    if n < 2:
        raise ConfigError(
            f"cannot pair {n} sample(s) without pairing one with itself; "
            f"STAR needs at least 2 single-temporal samples"
        )


def derangement(n: int, rng: np.random.Generator) -> np.ndarray:
    """A uniformly random permutation of ``range(n)`` with ``perm[i] != i`` for every i.

    Rejection sampling of uniform permutations (about e ≈ 2.7 draws on average), so every
    derangement is equally likely. ``n`` must be at least 2.
    """
    _check_count(n)
    index = np.arange(n)
    for _ in range(_MAX_TRIES):
        perm = rng.permutation(n)
        if not (perm == index).any():
            return perm
    raise RuntimeError(f"no derangement of {n} found in {_MAX_TRIES} draws")  # p < 1e-400


@dataclass(frozen=True)
class StarPairs:
    """Partner of every sample (``partner[i]``) and whether it is a self pair (``is_self[i]``).

    ``partner[i] == i`` exactly where ``is_self[i]``: the G-STAR pairs of a sample with its own
    augmented view. Everywhere else the partner is another sample.
    """

    partner: np.ndarray
    is_self: np.ndarray


def star_pairs(n: int, rng: np.random.Generator, self_prob: float = 0.0) -> StarPairs:
    """STAR (``self_prob=0``) or G-STAR (e.g. ``self_prob=0.5``) partners of ``n`` samples."""
    if not 0.0 <= self_prob <= 1.0:
        raise ConfigError(f"self-pair probability {self_prob} must lie in [0, 1]")
    _check_count(n)
    is_self = rng.random(n) < self_prob if self_prob > 0 else np.zeros(n, bool)
    if is_self.all():
        return StarPairs(np.arange(n), is_self)
    partner = derangement(n, rng)
    partner[is_self] = np.flatnonzero(is_self)
    return StarPairs(partner, is_self)

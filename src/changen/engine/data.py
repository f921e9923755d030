"""The DataLoader every trainer uses, its batch order, and how a worker's user error comes back.

Batches come from a batch sampler (:class:`StepBatchSampler` maps each training step to the
``(epoch, reader index)`` keys of its batch, from seeds only, so the data of step ``k`` is a pure
function of ``(seed, k)`` whatever the number of workers, devices or restarts); the loader's
own ``generator`` keeps it from drawing worker seeds from the global torch RNG (a resumed run
must see the same stream as an uninterrupted one), and workers start with ``forkserver``: a
forked worker hangs in its first OpenCV call once the parent has used OpenCV's thread pool.
"""

from __future__ import annotations

import functools
import itertools
import os
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, TypeVar

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from changen.engine.workers import die_with_parent
from changen.errors import ChangenError, ConfigError, DataError

T = TypeVar("T")

Key = tuple[int, int]
"""``(epoch, reader index)`` of one training item."""


def _init_worker(worker_id: int, parent: int) -> None:
    """One thread per worker process (the workers already run in parallel); no RNG is seeded:
    every draw comes from the item's own generator. The worker ends with the training process
    ``parent``, even one killed with -9 (:func:`~changen.engine.workers.die_with_parent`)."""
    die_with_parent(parent)
    torch.set_num_threads(1)
    cv2.setNumThreads(1)


def make_loader(
    dataset: Dataset[T],
    batch_sampler: Sampler[list[Any]] | Iterable[list[Any]],
    workers: int,
    seed: int,
    **options: Any,
) -> DataLoader[T]:
    """A DataLoader over ``batch_sampler``'s batches with ``workers`` forkserver processes
    (0: in this process); ``options`` go to the DataLoader (e.g. ``collate_fn``)."""
    return DataLoader(
        dataset,
        batch_sampler=batch_sampler,
        num_workers=workers,
        multiprocessing_context="forkserver" if workers > 0 else None,
        worker_init_fn=functools.partial(_init_worker, parent=os.getpid()) if workers else None,
        generator=torch.Generator().manual_seed(seed),
        **options,
    )


def next_batch(batches: Iterator[T]) -> T:
    """The next batch; a user error raised in a DataLoader worker comes back as its one line
    (the DataLoader re-raises it with the worker's traceback in the message)."""
    try:
        return next(batches)
    except ChangenError as e:
        text = str(e).strip()
        if "Original Traceback" not in text:
            raise
        raise type(e)(text.splitlines()[-1].split(": ", 1)[-1]) from None


def holdout_split(n: int, fraction: float) -> tuple[list[int], list[int]]:
    """Training and held-out indices of ``n`` items: ``round(n * fraction)`` (at least one when
    ``fraction > 0`` and ``n > 1``) evenly spaced items are held out, whatever the seed."""
    if not 0.0 <= fraction < 1.0:
        raise ConfigError(f"--holdout {fraction} must be in [0, 1)")
    k = round(n * fraction)
    if fraction > 0 and k == 0 and n > 1:
        k = 1
    k = min(k, n - 1)
    held = sorted({int(i * n / k) for i in range(k)}) if k > 0 else []
    chosen = set(held)
    return [i for i in range(n) if i not in chosen], held


class StepBatchSampler(Sampler[list[Key]]):
    """Infinite batches of keys; step ``s`` holds the global sample positions
    ``s·B .. (s+1)·B - 1`` of an endless sequence of epochs, each a seeded permutation of
    ``indices``. ``rank`` takes its ``B / world_size`` consecutive positions of each step."""

    def __init__(
        self,
        indices: Sequence[int],
        batch_size: int,
        seed: int,
        *,
        start_step: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if not indices:
            raise DataError("no training items left (all of them are held out); lower --holdout")
        if batch_size < 1 or batch_size % world_size:
            raise ConfigError(
                f"--batch-size {batch_size} must be a positive multiple of the number of "
                f"processes ({world_size})"
            )
        self.indices = np.asarray(indices, np.int64)
        self.batch_size = batch_size
        self.local = batch_size // world_size
        self.seed = seed
        self.start_step = start_step
        self.rank = rank
        self._order: tuple[int, np.ndarray] | None = None

    def order(self, epoch: int) -> np.ndarray:
        """The reader indices of ``epoch`` in the order they are seen."""
        if self._order is None or self._order[0] != epoch:
            rng = np.random.default_rng(np.random.SeedSequence([self.seed, epoch], spawn_key=(1,)))
            self._order = (epoch, rng.permutation(self.indices))
        return self._order[1]

    def keys(self, step: int) -> list[Key]:
        """This rank's ``(epoch, index)`` keys at ``step``."""
        n = len(self.indices)
        first = step * self.batch_size + self.rank * self.local
        return [(p // n, int(self.order(p // n)[p % n])) for p in range(first, first + self.local)]

    def __iter__(self) -> Iterator[list[Key]]:
        for step in itertools.count(self.start_step):
            yield self.keys(step)

"""The DataLoader every trainer uses, and how a worker's user error comes back.

Batches come from a batch sampler (each family's decides the order, from seeds); the loader's
own ``generator`` keeps it from drawing worker seeds from the global torch RNG (a resumed run
must see the same stream as an uninterrupted one), and workers start with ``forkserver``: a
forked worker hangs in its first OpenCV call once the parent has used OpenCV's thread pool.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

import cv2
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from changen.errors import ChangenError

T = TypeVar("T")


def _init_worker(worker_id: int) -> None:
    """One thread per worker process (the workers already run in parallel); no RNG is seeded:
    every draw comes from the item's own generator."""
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
        worker_init_fn=_init_worker if workers > 0 else None,
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

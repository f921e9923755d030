"""Executors: who prepares, synthesises and writes the samples of a run.

Both executors take the same :class:`~changen.generation.pipeline.Job` and write through the
same :class:`~changen.generation.shards.DatasetOutput`, so they produce the same bytes.

* :func:`run_local` (the default): a producer prepares upcoming batches (read, crop, events)
  in ``workers`` processes (``workers=0``: one background thread) while the main process runs
  the synthesizer on the current batch and a writer thread encodes and writes the previous
  one. Torch in the main process gets the cores the workers leave free.
* :func:`run_ray`: Ray Data ``from_items(indices)`` → ``map_batches`` (events, ``workers``
  actors) → ``map_batches`` (synthesizer actors, ``num_gpus`` each) → the driver writes. It
  connects to ``address`` (a running cluster) or starts Ray locally, unless Ray is already
  initialised. The cluster's Python must have changen installed.

``batch_size`` only groups samples: a sample's output never depends on its batch (learned
synthesizers make sure of it, see :class:`changen.synthesis.gan.synthesizer.GanSynthesizer`).
``threads`` is the torch thread count of the process (or Ray actor) that synthesises: default
the CPUs the local workers leave free (at least 1), 1 in a Ray actor. On the CPU a learned
synthesizer may round differently with another thread count (PyTorch picks other kernels for
one thread), so to get byte-identical output from runs with different ``workers`` or
executors, give them the same ``threads``; learning-free synthesizers never depend on it.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from changen.engine.workers import die_with_parent
from changen.errors import ConfigError
from changen.generation.pipeline import Generated, Job, Prepared, Preparer, synthesize
from changen.generation.shards import DatasetOutput
from changen.synthesis.base import Synthesizer

Progress = Callable[[int], None]
EXECUTORS: tuple[str, ...] = ("local", "ray")


@dataclass
class RunStats:
    """What one run did: samples written, and of those no-change and hard negatives; samples
    skipped as empty."""

    written: int = 0
    nochange: int = 0
    negatives: int = 0
    skipped: int = 0
    pairs: int = 0
    seconds: float = 0.0
    timing: dict[str, float] = field(default_factory=dict)

    @property
    def samples(self) -> int:
        return self.written + self.skipped

    def add(self, row: dict[str, Any]) -> None:
        if row["status"] == "skipped":
            self.skipped += 1
        else:
            self.written += 1
            self.nochange += row["status"] == "nochange"
            self.negatives += row["status"] == "negative"
        self.pairs += len(row["outputs"])
        for key, value in row["timing"].items():
            self.timing[key] = self.timing.get(key, 0.0) + value


def cpu_count() -> int:
    """CPUs this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _batches(indices: Sequence[int], batch_size: int) -> list[list[int]]:
    if batch_size < 1:
        raise ConfigError(f"--batch-size {batch_size}: a batch holds at least one sample")
    return [list(indices[i : i + batch_size]) for i in range(0, len(indices), batch_size)]


def _write(
    output: DatasetOutput, generated: list[Generated], stats: RunStats, progress: Progress | None
) -> None:
    for g in generated:
        stats.add(output.write(g))
        if progress is not None:
            progress(1)


# -- local ----------------------------------------------------------------------------------

_WORKER: Preparer | None = None


def _init_worker(job: Job, parent: int) -> None:
    """Process-pool initializer: one :class:`Preparer` per worker, single-threaded OpenCV, and
    the worker ends with the run's process ``parent`` (:func:`die_with_parent`)."""
    import cv2

    global _WORKER
    die_with_parent(parent)
    cv2.setNumThreads(1)
    _WORKER = Preparer(job)


def _prepare_in_worker(indices: list[int]) -> list[Prepared]:
    assert _WORKER is not None, "worker used before _init_worker"
    return _WORKER.prepare_batch(indices)


def _mp_context() -> multiprocessing.context.BaseContext:
    """How worker processes start: ``forkserver`` (``spawn`` where there is none).

    Never ``fork``: a forked child inherits OpenCV's (and Ray's) thread pools in a broken state
    and can hang in its first OpenCV call. The fork server imports the pipeline once, and torch
    too when the caller has it (each worker re-runs the caller's main module, which then finds
    torch loaded); workers are forks of it and start without those imports.
    """
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    heavy = [name for name in ("torch",) if name in sys.modules]
    context.set_forkserver_preload(["changen.generation.pipeline", *heavy])
    return context


@contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    """Give torch ``n`` threads for the block (only when torch is already in use)."""
    torch = sys.modules.get("torch")
    if torch is None:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def run_local(
    job: Job,
    output: DatasetOutput,
    synthesizer: Synthesizer,
    *,
    workers: int = 1,
    batch_size: int = 8,
    threads: int | None = None,
    progress: Progress | None = None,
) -> RunStats:
    """Generate every uncommitted sample of ``output`` in this machine's processes."""
    if workers < 0:
        raise ConfigError(f"--workers {workers}: use 0 (a thread) or more worker processes")
    batches = _batches(output.todo(), batch_size)
    stats = RunStats()
    start = time.perf_counter()
    depth = max(2, 2 * workers)
    pool: ThreadPoolExecutor | ProcessPoolExecutor
    prepare: Callable[[list[int]], list[Prepared]]
    if workers:
        pool = ProcessPoolExecutor(
            workers,
            mp_context=_mp_context(),
            initializer=_init_worker,
            initargs=(job, os.getpid()),
        )
        prepare = _prepare_in_worker
    else:
        pool = ThreadPoolExecutor(1, thread_name_prefix="changen-prepare")
        prepare = Preparer(job).prepare_batch
    writer = ThreadPoolExecutor(1, thread_name_prefix="changen-write")
    ahead: deque[Future[list[Prepared]]] = deque()
    writes: deque[Future[None]] = deque()
    queue = iter(batches)

    def refill() -> None:
        while len(ahead) < depth and (batch := next(queue, None)) is not None:
            ahead.append(pool.submit(prepare, batch))

    try:
        with _torch_threads(threads or max(1, cpu_count() - workers)):
            refill()
            while ahead:
                prepared = ahead.popleft().result()
                refill()
                generated = synthesize(synthesizer, prepared, job.seed, job.nuisance)
                writes.append(writer.submit(_write, output, generated, stats, progress))
                while writes and (writes[0].done() or len(writes) > 1):
                    writes.popleft().result()
            while writes:
                writes.popleft().result()
    except BaseException:
        pending: list[Future[Any]] = [*ahead, *writes]
        for future in pending:
            future.cancel()
        raise
    finally:
        writer.shutdown(wait=True, cancel_futures=True)
        pool.shutdown(wait=True, cancel_futures=True)
    stats.seconds = time.perf_counter() - start
    return stats


# -- Ray ------------------------------------------------------------------------------------


class _RayPrepare:
    """Ray Data actor: sample indices → pickled prepared samples."""

    def __init__(self, job: Job) -> None:
        import cv2

        cv2.setNumThreads(1)
        self.preparer = Preparer(job)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        prepared = self.preparer.prepare_batch([int(i) for i in batch["index"]])
        return {"payload": _pickled(prepared)}


class _RaySynth:
    """Ray Data actor holding one synthesizer: prepared samples → pickled generated samples."""

    def __init__(self, job: Job, threads: int) -> None:
        from changen.synthesis import load_synthesizer

        self.synthesizer = load_synthesizer(job.synthesizer, **job.synthesizer_options)
        self.seed = job.seed
        self.nuisance = job.nuisance
        torch = sys.modules.get("torch")
        if torch is not None:
            torch.set_num_threads(threads)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        prepared = [pickle.loads(p) for p in batch["payload"]]
        generated = synthesize(self.synthesizer, prepared, self.seed, self.nuisance)
        return {"payload": _pickled(generated)}


def _pickled(items: Sequence[Any]) -> np.ndarray:
    out = np.empty(len(items), dtype=object)
    out[:] = [pickle.dumps(item, protocol=pickle.HIGHEST_PROTOCOL) for item in items]
    return out


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ConfigError(
            "--executor ray needs Ray Data; install it with pip install 'changen[distributed]' "
            "(or 'ray[data]>=2.30'), or use --executor local"
        ) from None
    return ray


def run_ray(
    job: Job,
    output: DatasetOutput,
    *,
    workers: int = 1,
    synth_actors: int = 1,
    num_gpus: float | None = None,
    batch_size: int = 8,
    threads: int | None = None,
    address: str | None = None,
    progress: Progress | None = None,
) -> RunStats:
    """Generate every uncommitted sample of ``output`` with Ray Data (see the module docstring).

    ``num_gpus`` per synthesizer actor defaults to 1 when the cluster has GPUs, else 0.
    """
    ray = _ray()
    if workers < 1 or synth_actors < 1:
        raise ConfigError("--executor ray needs at least one worker and one synthesizer actor")
    todo = output.todo()
    stats = RunStats()
    start = time.perf_counter()
    if not todo:
        return stats
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    if num_gpus is None:
        num_gpus = 1.0 if ray.cluster_resources().get("GPU", 0) > 0 else 0.0
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    blocks = -(-len(todo) // batch_size)
    ds = ray.data.from_items([{"index": i} for i in todo], override_num_blocks=blocks)
    ds = ds.map_batches(
        _RayPrepare,
        fn_constructor_args=(job,),
        batch_size=batch_size,
        compute=ray.data.ActorPoolStrategy(size=workers),
        batch_format="numpy",
    )
    ds = ds.map_batches(
        _RaySynth,
        fn_constructor_args=(job, threads or 1),
        batch_size=batch_size,
        compute=ray.data.ActorPoolStrategy(size=synth_actors),
        num_gpus=num_gpus,
        batch_format="numpy",
    )
    for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
        _write(output, [pickle.loads(p) for p in batch["payload"]], stats, progress)
    stats.seconds = time.perf_counter() - start
    return stats

"""Dataset generation at scale: GPCM (events, then synthesis) over a whole source dataset.

:func:`generate_dataset` runs a :class:`GenerationConfig` (everything that decides the bytes of
the output) with :class:`RunOptions` (how: executor, workers, batch size, resume), in this
order: open the source, load the synthesizer and check it fits the source's taxonomy, build the
plan (:mod:`.plan`), open the sharded output (:mod:`.shards`), run an executor
(:mod:`.executors`), then write ``manifest.json`` and the dataset card (:mod:`.card`).

The output is byte-identical for any executor, worker count, batch size and number of restarts,
except the ``timing`` field of the manifest rows (a learned synthesizer on the CPU also needs
the same torch thread count, ``RunOptions.threads``).
"""

from __future__ import annotations

import shutil
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from changen.data.lock import output_lock
from changen.data.readers.base import Reader
from changen.data.readers.pooled import SourceEntry
from changen.data.writers import WRITERS
from changen.engine.progress import SILENT, ProgressSink
from changen.errors import ConfigError, DataError, FormatError
from changen.events import ChangeProcess
from changen.events.unlabeled import OBJECT_TAXONOMY
from changen.generation.card import write_card
from changen.generation.executors import EXECUTORS, RunStats, run_local, run_ray
from changen.generation.pipeline import (
    EMPTY_POLICIES,
    EmptyPolicy,
    Job,
    SourceSpec,
    config_hash,
    scene_image,
)
from changen.generation.plan import Plan, SampleSpec, SplitSpec, scan_sizes
from changen.generation.rerun import environment, request_record
from changen.generation.shards import SHARD_DIR, DatasetOutput, read_rows
from changen.generation.simulate import UNLABELED_MODES, UnlabeledMode
from changen.sample import Taxonomy
from changen.seeding import sample_rngs
from changen.synthesis import is_synthesizer_name, load_synthesizer
from changen.synthesis.nuisance import DonorBank, Nuisance, NuisanceConfig


@dataclass(frozen=True)
class GenerationConfig:
    """What a run makes (saved as ``generation.json``; ``--resume`` must repeat it).

    ``source`` is a dataset path (read with ``format``, ``source_gsd`` and
    ``binary_threshold``) or several :class:`~changen.data.readers.pooled.SourceEntry`, pooled
    into one source; ``gsd`` resamples every source to that many metres per pixel before the
    events. ``synthesizer`` is a name of :data:`changen.synthesis.SYNTHESIZERS` or a checkpoint
    folder, loaded with ``synthesizer_options``; ``limit`` keeps the first source items;
    ``crop`` tiles items into ``crop``² windows; ``empty`` is ``"nochange"`` or ``"skip"`` (see
    :mod:`.pipeline`); ``shard_size`` samples are committed at a time; ``nuisance`` (off when
    ``None``) sees post-event images through another acquisition, its style donors the colour
    statistics of ``donors`` source items spread over the source; a share ``negatives`` of
    samples are hard negatives (see :mod:`.pipeline`). ``splits`` puts each source item in
    an output split (see :mod:`.plan`); ``source_split`` reads one split of the source.
    ``unlabeled`` (a mode of :data:`~changen.generation.simulate.UNLABELED_MODES` other than
    ``"none"``) runs the events on class-agnostic objects of each crop (its instance map, or
    regions proposed from the image) instead of its mask, as Changen2 does for unlabeled
    images: the dataset's taxonomy is then :data:`~changen.events.unlabeled.OBJECT_TAXONOMY`
    and its change labels binary.
    """

    source: str | tuple[SourceEntry, ...]
    synthesizer: str
    process: ChangeProcess
    layout: str = "levircd"
    per_image: int = 1
    seed: int = 0
    crop: int | None = None
    empty: EmptyPolicy = "nochange"
    format: str | None = None
    taxonomy: str | Taxonomy | None = None
    limit: int | None = None
    shard_size: int = 64
    synthesizer_options: dict[str, Any] = field(default_factory=dict)
    nuisance: NuisanceConfig | None = None
    donors: int = 32
    negatives: float = 0.0
    gsd: float | None = None
    source_gsd: float | None = None
    binary_threshold: int | None = None
    splits: SplitSpec | None = None
    source_split: str | None = None
    unlabeled: UnlabeledMode = "none"

    def entries(self) -> tuple[SourceEntry, ...]:
        """The source datasets, with absolute paths."""
        if isinstance(self.source, str):
            entry = SourceEntry(
                self.source, self.format, self.source_gsd, self.binary_threshold, self.source_split
            )
            return (replace(entry, path=str(Path(self.source).resolve())),)
        return tuple(replace(e, path=str(Path(e.path).resolve())) for e in self.source)

    def check(self) -> None:
        """Raise on values that are wrong whatever the data (before any work)."""
        if self.layout not in WRITERS:
            raise FormatError(f"unknown layout {self.layout!r}; choose one of {', '.join(WRITERS)}")
        if self.empty not in EMPTY_POLICIES:
            raise ConfigError(f"--empty {self.empty!r}: choose one of {', '.join(EMPTY_POLICIES)}")
        if self.limit is not None and self.limit < 1:
            raise ConfigError(f"--limit {self.limit}: use at least one source item")
        if not 0.0 <= self.negatives <= 1.0:
            raise ConfigError(f"--negatives {self.negatives}: give a share between 0 and 1")
        if self.gsd is not None and self.gsd <= 0:
            raise ConfigError(f"--gsd {self.gsd}: give a positive number of metres per pixel")
        if self.donors < 1:
            raise ConfigError(f"--donors {self.donors}: use at least one donor scene")
        if self.unlabeled not in UNLABELED_MODES:
            raise ConfigError(
                f"--unlabeled {self.unlabeled!r}: choose one of {', '.join(UNLABELED_MODES)}"
            )


@dataclass(frozen=True)
class RunOptions:
    """How a run executes: executor ``local`` or ``ray``, worker processes (Ray: event actors),
    samples per batch, torch threads of the synthesizing process (see
    :mod:`.executors`: the one option that can change a learned synthesizer's CPU output), Ray
    synthesizer actors, GPUs per synthesizer actor and cluster address, and whether to resume
    or overwrite ``out``."""

    executor: str = "local"
    workers: int = 1
    batch_size: int = 8
    threads: int | None = None
    synth_actors: int = 1
    num_gpus: float | None = None
    address: str | None = None
    resume: bool = False
    overwrite: bool = False


@dataclass
class GenerationResult:
    """Where the dataset is and what the run did (``restored``: samples of committed shards
    found when resuming)."""

    out: Path
    planned: int
    restored: int
    stats: RunStats
    manifest: dict[str, Any]
    card: Path


def _spec_string(spec: str) -> str:
    path = Path(spec)
    return str(path.resolve()) if not is_synthesizer_name(spec) and path.is_dir() else spec


def generate_dataset(
    config: GenerationConfig,
    out: str | Path,
    run: RunOptions = RunOptions(),
    progress: ProgressSink = SILENT,
) -> GenerationResult:
    """Generate the dataset ``config`` describes into ``out`` (see the module docstring); one
    run at a time may write ``out`` (:func:`changen.data.lock.output_lock`). A run into a new or
    empty folder that fails before committing a shard leaves the folder as it was."""
    out = Path(out)
    with output_lock(out):
        existed = out.exists()
        fresh = not existed or (out.is_dir() and not any(out.iterdir()))
        try:
            return _generate(config, out, run, progress)
        except BaseException:
            if fresh and not run.resume and not any((out / SHARD_DIR).glob("shard-*.jsonl")):
                shutil.rmtree(out, ignore_errors=True)  # nothing committed: nothing to resume
                if existed:
                    out.mkdir()
            raise


def _generate(
    config: GenerationConfig, out: Path, run: RunOptions, progress: ProgressSink
) -> GenerationResult:
    if run.executor not in EXECUTORS:
        raise ConfigError(f"--executor {run.executor!r}: choose one of {', '.join(EXECUTORS)}")
    config.check()
    source = SourceSpec(
        config.entries(),
        None if config.taxonomy is None else _taxonomy(config.taxonomy),
        config.gsd,
    )
    reader = source.open()
    taxonomy = reader.taxonomy if config.unlabeled == "none" else OBJECT_TAXONOMY
    spec = _spec_string(config.synthesizer)
    synthesizer = load_synthesizer(spec, **config.synthesizer_options)
    check_mode = getattr(synthesizer, "check_unlabeled", None)
    if check_mode is not None:
        check_mode(config.unlabeled)
    check = getattr(synthesizer, "check_taxonomy", None)
    if check is not None:
        check(taxonomy)
    n_items = len(reader) if config.limit is None else min(config.limit, len(reader))
    sizes = None
    if config.crop is not None:
        advance = progress.task("reading item sizes", n_items)
        sizes = scan_sizes(reader, n_items, advance)
    plan = Plan(
        reader.names[:n_items],
        per_image=config.per_image,
        crop=config.crop,
        sizes=sizes,
        splits=config.splits,
        seed=config.seed,
    )
    nuisance = _nuisance(config, reader, n_items, taxonomy, progress)
    synth_info = {"name": synthesizer.name, "config_hash": config_hash(synthesizer.config())}
    saved = {
        "source": _source_record(source, reader, n_items),
        "taxonomy": taxonomy.to_dict(),
        "layout": config.layout,
        "seed": config.seed,
        "per_image": config.per_image,
        "crop": config.crop,
        "steps": config.process.steps,
        "empty": config.empty,
        "shard_size": config.shard_size,
        "process": config.process.to_dict(),
        "negatives": config.negatives,
        "nuisance": None if nuisance is None else nuisance.describe(),
        "synthesizer": {"spec": spec, **synth_info, "config": synthesizer.config()},
        "plan": plan.to_dict(),
    }
    if config.unlabeled != "none":
        saved["unlabeled"] = config.unlabeled
    job = Job(
        source=source,
        plan=plan,
        process=config.process,
        taxonomy=taxonomy,
        seed=config.seed,
        empty=config.empty,
        synthesizer=spec,
        synthesizer_options=dict(config.synthesizer_options),
        negatives=config.negatives,
        nuisance=nuisance,
        unlabeled=config.unlabeled,
    )
    record = {"request": request_record(config, spec), "environment": environment()}
    output = _open_output(out, config, run, taxonomy, len(plan), saved, synth_info, record)
    advance = progress.task("generating", len(output.todo()))
    try:
        if run.executor == "ray":
            stats = run_ray(
                job,
                output,
                workers=run.workers,
                synth_actors=run.synth_actors,
                num_gpus=run.num_gpus,
                batch_size=run.batch_size,
                threads=run.threads,
                address=run.address,
                progress=advance,
            )
        else:
            stats = run_local(
                job,
                output,
                synthesizer,
                workers=run.workers,
                batch_size=run.batch_size,
                threads=run.threads,
                progress=advance,
            )
    except BaseException as e:
        output.discard_uncommitted()
        if isinstance(e, OSError):
            raise _write_error(out, e) from e
        raise
    try:
        manifest = output.close()
        card = write_card(out, saved, read_rows(out), manifest, record["environment"])
    except OSError as e:
        raise _write_error(out, e) from e
    return GenerationResult(out, len(plan), output.restored, stats, manifest, card)


def _source_record(source: SourceSpec, reader: Reader[Any], n_items: int) -> dict[str, Any]:
    """Provenance of the source: its path (the common folder when pooled), format, licence,
    items, the GSD resampled to, and each dataset (when pooled, resampled or read for one
    split)."""
    record: dict[str, Any] = {
        "path": str(reader.root),
        "format": reader.format,
        "licence": reader.licence,
        "items": n_items,
    }
    if source.gsd is not None:
        record["gsd"] = source.gsd
    if len(source.entries) > 1 or source.gsd is not None or any(e.split for e in source.entries):
        record["datasets"] = [asdict(e) for e in source.entries]
    return record


def _nuisance(
    config: GenerationConfig,
    reader: Reader[Any],
    n_items: int,
    taxonomy: Taxonomy,
    progress: ProgressSink,
) -> Nuisance | None:
    """The job's nuisance model, its donors read from ``config.donors`` items spread evenly
    over the source (``None`` when off)."""
    if config.nuisance is None or not config.nuisance.active:
        return None
    donors = None
    if config.nuisance.style > 0:
        picks = np.unique(np.linspace(0, n_items - 1, min(config.donors, n_items)).astype(int))
        advance = progress.task("reading style donors", len(picks))
        images = []
        for i in picks:
            images.append(scene_image(reader[int(i)]))
            advance(1)
        donors = DonorBank.from_images(images)
    return Nuisance.for_taxonomy(config.nuisance, taxonomy, donors)


def _open_output(
    out: Path,
    config: GenerationConfig,
    run: RunOptions,
    taxonomy: Taxonomy,
    n_samples: int,
    saved: dict[str, Any],
    synth_info: dict[str, str],
    record: dict[str, Any],
) -> DatasetOutput:
    try:
        return DatasetOutput(
            out,
            config.layout,
            taxonomy,
            n_samples=n_samples,
            shard_size=config.shard_size,
            seed=config.seed,
            config=saved,
            synthesizer=synth_info,
            resume=run.resume,
            overwrite=run.overwrite,
            record=record,
        )
    except OSError as e:
        raise _write_error(out, e) from e


def _write_error(out: Path, e: OSError) -> DataError:
    return DataError(
        f"{out}: cannot write the dataset ({e.strerror or e}); free disk space or choose a "
        f"writable --out, then rerun with --resume (committed shards are kept)"
    )


def _taxonomy(value: str | Taxonomy) -> Taxonomy:
    from changen.taxonomies import get_taxonomy

    return get_taxonomy(value) if isinstance(value, str) else value


__all__ = [
    "GenerationConfig",
    "GenerationResult",
    "Plan",
    "RunOptions",
    "RunStats",
    "SampleSpec",
    "SplitSpec",
    "generate_dataset",
    "sample_rngs",
]

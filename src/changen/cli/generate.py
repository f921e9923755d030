"""``changen generate``: a synthetic change dataset from a single-temporal labelled dataset.

A thin layer over :func:`changen.generation.generate_dataset`: the event flags (or a
``ChangeProcess`` JSON given to ``--events``) become the process, the other flags the
:class:`~changen.generation.GenerationConfig` and :class:`~changen.generation.RunOptions`.
A rich progress bar shows samples/s and the ETA; a summary says what was written where.
``--sampling-steps``, ``--sampler`` and ``--switch`` go to a diffusion synthesizer (others
refuse them); ``--unlabeled`` runs the events on class-agnostic objects (Changen2's unlabeled
mode, for a contour-conditioned diffusion checkpoint or the learning-free synthesizers).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console

from changen.cli import options
from changen.cli.progress import rich_sink
from changen.errors import ConfigError

if TYPE_CHECKING:
    from changen.data.readers.pooled import SourceEntry
    from changen.generation import GenerationResult, SplitSpec


def summary(result: GenerationResult, layout: str) -> str:
    """The closing lines: counts, throughput and where the output is."""
    s = result.stats
    rate = s.samples / s.seconds if s.seconds > 0 else 0.0
    lines = [
        f"generated {s.samples} samples ({s.pairs} pairs; {s.nochange} no-change, "
        f"{s.negatives} hard negatives, {s.skipped} skipped as empty) in {s.seconds:.1f} s, "
        f"{rate:.2f} samples/s",
    ]
    if s.samples:
        parts = ", ".join(
            f"{key.removesuffix('_s')} {1000 * s.timing.get(key, 0.0) / s.samples:.1f}"
            for key in ("read_s", "events_s", "synth_s", "nuisance_s", "write_s")
        )
        lines.append(f"ms per sample (summed over processes): {parts}")
    if result.restored:
        lines.append(f"resumed: {result.restored} samples were already committed")
    planned = result.manifest["provenance"].get("plan", {}).get("split_counts", {})
    if planned:
        written = result.manifest["counts"].get("splits", {})
        pairs = {name: written.get(name, {}).get("samples", 0) for name in planned}
        line = "splits: " + ", ".join(f"{name} {n} pairs" for name, n in pairs.items())
        empty = [name for name, counts in planned.items() if not counts["items"]]
        if empty:
            line += f" ({', '.join(empty)}: no source item drawn; use more items or larger shares)"
        lines.append(line)
    lines.append(
        f"dataset: {result.out} ({layout}, {result.manifest['counts'].get('samples', 0)} pairs "
        f"in all); card: {result.card}; provenance: {result.out / 'manifest'}"
    )
    return "\n".join(lines)


def source_entries(
    paths: list[Path],
    sources_file: Path | None,
    format: str | None,
    source_gsd: float | None,
    binary_threshold: int | None,
    split: str | None = None,
) -> tuple[SourceEntry, ...]:
    """The sources named on the command line (read for ``split`` when given), then those of
    ``--sources``."""
    from changen.data.readers.pooled import SourceEntry, read_sources_file

    entries = [SourceEntry(str(p), format, source_gsd, binary_threshold, split) for p in paths]
    if sources_file is not None:
        entries += read_sources_file(sources_file)
    if not entries:
        raise ConfigError("name a source dataset (SOURCE ...) or a sources file (--sources FILE)")
    return tuple(entries)


def split_options(
    split: str | None, source_split: str | None
) -> tuple[SplitSpec | None, str | None]:
    """``--split`` as output shares (``train=0.8,val=0.2``) or, without ``=``, as the source
    split to read (like ``--split`` of the other commands); ``--source-split`` names the
    latter explicitly."""
    from changen.generation import SplitSpec

    if split is None or "=" not in split:
        if split is not None and source_split is not None:
            raise ConfigError(
                f"--split {split} and --source-split {source_split} both name the source "
                f"split; give one, or give --split as shares (train=0.8,val=0.2)"
            )
        return None, source_split or split
    return SplitSpec.parse(split), source_split


def generate(
    sources: list[Path] = typer.Argument(
        None,
        help="Single-temporal labelled dataset(s), format detected; several are pooled.",
        show_default=False,
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder (empty, or --resume)."),
    synthesizer: str = typer.Option(
        "copy_paste", help="Synthesizer name (copy_paste, inpaint) or a checkpoint folder."
    ),
    per_image: int = typer.Option(1, "--per-image", min=1, help="Variants per source crop."),
    steps: int | None = typer.Option(
        None, min=1, help="Time steps T; T > 1 also writes the series. (default: 1)"
    ),
    seed: int = typer.Option(0, min=0, help="Seed; sample i draws from SeedSequence((seed, i))."),
    layout: str = typer.Option(
        "levircd", help="Output layout: levircd, second, second_rgb or geotiff."
    ),
    events: str | None = options.EVENTS,
    count: str | None = options.COUNT,
    scale: str | None = options.OBJECT_SCALE,
    rotate: str | None = options.OBJECT_ROTATE,
    flip: bool | None = options.OBJECT_FLIP,
    fill: str | None = options.FILL,
    kernel: Path | None = options.KERNEL,
    placement: str | None = options.PLACEMENT,
    within: str | None = options.WITHIN,
    crop: int | None = typer.Option(None, min=1, help="Tile source items into CROP² windows."),
    nuisance: str = typer.Option(
        "off",
        help="Acquisition differences between dates on post-event images: a preset (off, mild, "
        "default, strong) or a JSON file of strengths (docs/nuisance.md).",
    ),
    negatives: float = typer.Option(
        0.0, min=0.0, max=1.0, help="Share of hard negatives: no event, nuisance only."
    ),
    donors: int = typer.Option(
        32, min=1, help="Source items whose colour statistics are style donors for --nuisance."
    ),
    empty: str = typer.Option(
        "nochange",
        help="Items with no eligible objects: nochange (write a no-change pair) or skip.",
    ),
    executor: str = typer.Option("local", help="local or ray."),
    address: str | None = typer.Option(None, help="Ray cluster address (default: start locally)."),
    workers: int = typer.Option(
        1, min=0, help="Processes for reading and events (0: a thread; Ray: event actors)."
    ),
    batch_size: int = typer.Option(8, "--batch-size", min=1, help="Samples per synthesizer call."),
    threads: int | None = typer.Option(
        None,
        min=1,
        help="Torch threads of the synthesizer (default: CPUs left by --workers; Ray: 1). "
        "Keep it fixed to get the same bytes from a learned synthesizer on CPU across runs.",
    ),
    actors: int = typer.Option(1, min=1, help="Ray synthesizer actors."),
    num_gpus: float | None = typer.Option(
        None, help="GPUs per Ray synthesizer actor. (default: 1 if the cluster has GPUs)"
    ),
    device: str | None = options.DEVICE,
    sampling_steps: int | None = options.SAMPLING_STEPS,
    sampler: str | None = options.SAMPLER,
    switch: float | None = options.SWITCH,
    unlabeled: str = options.UNLABELED,
    shard_size: int = typer.Option(64, min=1, help="Samples committed at a time."),
    sources_file: Path | None = typer.Option(
        None,
        "--sources",
        help='JSON list of sources [{"path", "format", "gsd", "binary_threshold"}] to pool.',
    ),
    gsd: float | None = typer.Option(
        None, help="Resample sources to GSD metres per pixel first (e.g. 0.5 for LEVIR-CD)."
    ),
    source_gsd: float | None = typer.Option(
        None, help="GSD of sources whose files carry no georeference (with --gsd)."
    ),
    binary_threshold: int | None = typer.Option(
        None, min=0, help="Read grey 0/255 masks as mask > N (folder sources), e.g. 127."
    ),
    format: str | None = typer.Option(None, "--format", "-f", help="Force the source format."),
    taxonomy: str | None = typer.Option(None, help="Built-in taxonomy of the source masks."),
    limit: int | None = typer.Option(None, min=1, help="Use only the first N source items."),
    split: str | None = typer.Option(
        None,
        "--split",
        help="Output splits by source item, NAME=SHARE,… e.g. train=0.8,val=0.1,test=0.1 "
        "(writes train/ val/ test/ and list/*.txt); a plain NAME reads that source split.",
    ),
    source_split: str | None = typer.Option(
        None, "--source-split", help="Read only this split of the source (with --split shares)."
    ),
    resume: bool = typer.Option(False, help="Finish an interrupted run in --out."),
    overwrite: bool = typer.Option(False, help="Replace what --out holds."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Generate a change dataset: simulate events on the source masks, synthesise post-event
    images, write shards (resumable) with provenance and a dataset card."""
    from changen.data.readers.pooled import open_sources
    from changen.events.policy import unfired_warnings
    from changen.generation import GenerationConfig, RunOptions, generate_dataset
    from changen.generation.shards import read_rows
    from changen.synthesis.nuisance import nuisance_config

    if resume and overwrite:
        raise ConfigError("--resume keeps what --out holds and --overwrite deletes it; pick one")
    splits, read_split = split_options(split, source_split)
    entries = source_entries(
        sources or [], sources_file, format, source_gsd, binary_threshold, read_split
    )
    reader = open_sources(entries, taxonomy, gsd)
    process = options.change_process(
        events,
        reader.taxonomy,
        steps=steps,
        unlabeled=unlabeled != "none",
        count=count,
        scale=scale,
        rotate=rotate,
        flip=flip,
        fill=fill,
        kernel=kernel,
        placement=placement,
        within=within,
    )
    config = GenerationConfig(
        source=entries,
        synthesizer=synthesizer,
        process=process,
        layout=layout,
        per_image=per_image,
        seed=seed,
        crop=crop,
        empty=empty,  # type: ignore[arg-type]  # checked by GenerationConfig.check
        format=format,
        taxonomy=taxonomy,
        limit=limit,
        shard_size=shard_size,
        synthesizer_options={
            "device": options.resolve_device(device),
            **options.sampling_options(sampling_steps, sampler, switch),
        },
        nuisance=nuisance_config(nuisance),
        donors=donors,
        negatives=negatives,
        gsd=gsd,
        splits=splits,
        unlabeled=unlabeled,  # type: ignore[arg-type]  # checked by GenerationConfig.check
    )
    run = RunOptions(
        executor=executor,
        workers=workers,
        batch_size=batch_size,
        threads=threads,
        synth_actors=actors,
        num_gpus=num_gpus,
        address=address,
        resume=resume,
        overwrite=overwrite,
    )
    with rich_sink(progress, unit="samples") as sink:
        result = generate_dataset(config, out, run, sink)
        counts = Counter(e["event"] for row in read_rows(result.out) for e in row["events"])
        for warning in unfired_warnings(process, counts):
            sink.note(warning)
    Console().print(summary(result, layout), highlight=False, soft_wrap=True)

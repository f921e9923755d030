"""``changen generate``: a synthetic change dataset from a single-temporal labelled dataset.

A thin layer over :func:`changen.generation.generate_dataset`: the event flags (or a
``ChangeProcess`` JSON given to ``--events``) become the process, the other flags the
:class:`~changen.generation.GenerationConfig` and :class:`~changen.generation.RunOptions`.
A rich progress bar shows samples/s and the ETA; a summary says what was written where.
``--sampling-steps``, ``--sampler``, ``--switch``, ``--n-max`` and ``--n-min`` go to a
diffusion synthesizer (others refuse them); ``--unlabeled`` runs the events on class-agnostic
objects (Changen2's unlabeled mode, for a contour-conditioned diffusion checkpoint or the
learning-free synthesizers).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console

from changen.cli import jsonout, options
from changen.cli.progress import rich_sink
from changen.errors import ConfigError

if TYPE_CHECKING:
    from changen.data.readers.pooled import SourceEntry
    from changen.generation import GenerationConfig, GenerationResult


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


def split_options(split: str | None, source_split: str | None) -> tuple[str | None, str | None]:
    """``--split`` as output shares (``train=0.8,val=0.2``, returned as text for
    :meth:`SplitSpec.parse`) or, without ``=``, as the source split to read (like ``--split``
    of the other commands); ``--source-split`` names the latter explicitly."""
    if split is None or "=" not in split:
        if split is not None and source_split is not None:
            raise ConfigError(
                f"--split {split} and --source-split {source_split} both name the source "
                f"split; give one, or give --split as shares (train=0.8,val=0.2)"
            )
        return None, source_split or split
    return split, source_split


#: Options that say how a run executes, not what it makes: the only ones ``--config`` takes.
RUN_OPTIONS = frozenset(
    {
        "out",
        "config_file",
        "executor",
        "address",
        "workers",
        "batch_size",
        "threads",
        "actors",
        "num_gpus",
        "device",
        "resume",
        "overwrite",
        "progress",
        "as_json",
    }
)


def summary_json(result: GenerationResult, layout: str) -> dict[str, Any]:
    """The ``--json`` summary: counts, seconds, where the output and its card are, per-split
    pairs."""
    s = result.stats
    written = result.manifest["counts"].get("splits", {})
    planned = result.manifest["provenance"].get("plan", {}).get("split_counts", {})
    return {
        "out": result.out,
        "layout": layout,
        "samples": s.samples,
        "pairs": s.pairs,
        "nochange": s.nochange,
        "negatives": s.negatives,
        "skipped": s.skipped,
        "restored": result.restored,
        "seconds": round(s.seconds, 3),
        "splits": {name: written.get(name, {}).get("samples", 0) for name in planned},
        "card": result.card,
        "config": result.out / "generation.json",
    }


def rerun_config(ctx: typer.Context, path: Path, device: str | None) -> GenerationConfig:
    """The config of ``--config generation.json``; options that would change what the run
    makes are refused (edit the file's ``request`` instead); ``--device`` replaces its
    device."""
    from dataclasses import replace

    from changen.generation.rerun import config_from_request, read_request

    given = []
    for param in ctx.command.params:
        source = ctx.get_parameter_source(param.name or "")
        if param.name not in RUN_OPTIONS and source is not None and source.name == "COMMANDLINE":
            given.append(param.opts[0] if param.opts else str(param.name))
    if given:
        raise ConfigError(
            f"--config {path} reruns that dataset as it was made; drop {', '.join(given)} "
            f'(or edit the file\'s "request")'
        )
    config = config_from_request(read_request(path), path)
    if device is None:
        return config
    opts = {**config.synthesizer_options, "device": options.resolve_device(device)}
    return replace(config, synthesizer_options=opts)


def run_generation(
    config: GenerationConfig, out: Path, run: dict[str, Any], progress: bool, as_json: bool
) -> None:
    """Run ``config`` into ``out`` with ``run`` (:class:`RunOptions` fields) and a progress bar
    (on stderr), warn about events that never fired, then print the summary (or its JSON)."""
    from changen.events.policy import unfired_warnings
    from changen.generation import RunOptions, generate_dataset
    from changen.generation.shards import read_rows

    with rich_sink(progress and not as_json, unit="samples") as sink:
        result = generate_dataset(config, out, RunOptions(**run), sink)
        counts = Counter(e["event"] for row in read_rows(result.out) for e in row["events"])
        for warning in unfired_warnings(config.process, counts):
            sink.note(warning)
    if as_json:
        jsonout.emit(summary_json(result, config.layout))
    else:
        Console().print(summary(result, config.layout), highlight=False, soft_wrap=True)


def generate(
    ctx: typer.Context,
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
    n_max: int | None = options.N_MAX,
    n_min: int | None = options.N_MIN,
    unlabeled: str = options.UNLABELED,
    shard_size: int = typer.Option(64, min=1, help="Samples committed at a time."),
    sources_file: Path | None = options.SOURCES_FILE,
    gsd: float | None = options.GSD,
    source_gsd: float | None = options.SOURCE_GSD,
    binary_threshold: int | None = options.SOURCE_THRESHOLD,
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
    config_file: Path | None = typer.Option(
        None,
        "--config",
        help="Rerun a dataset exactly from its generation.json (same sources, events, seed, "
        "synthesizer); only run options (--out, --workers, --device, …) go with it.",
    ),
    as_json: bool = jsonout.JSON,
) -> None:
    """Generate a change dataset: simulate events on the source masks, synthesise post-event
    images, write shards (resumable) with provenance and a dataset card."""
    from changen.data.readers.pooled import open_sources

    if resume and overwrite:
        raise ConfigError("--resume keeps what --out holds and --overwrite deletes it; pick one")
    run: dict[str, Any] = {  # RunOptions' fields; changen.generation is imported after the checks
        "executor": executor,
        "workers": workers,
        "batch_size": batch_size,
        "threads": threads,
        "synth_actors": actors,
        "num_gpus": num_gpus,
        "address": address,
        "resume": resume,
        "overwrite": overwrite,
    }
    if config_file is not None:
        run_generation(rerun_config(ctx, config_file, device), out, run, progress, as_json)
        return
    shares, read_split = split_options(split, source_split)
    entries = source_entries(
        sources or [], sources_file, format, source_gsd, binary_threshold, read_split
    )
    reader = open_sources(entries, taxonomy, gsd)  # a wrong source fails here, before torch
    from changen.generation import GenerationConfig, SplitSpec
    from changen.synthesis.nuisance import nuisance_config

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
            **options.sampling_options(sampling_steps, sampler, switch, n_max, n_min),
        },
        nuisance=nuisance_config(nuisance),
        donors=donors,
        negatives=negatives,
        gsd=gsd,
        splits=None if shares is None else SplitSpec.parse(shares),
        unlabeled=unlabeled,  # type: ignore[arg-type]  # checked by GenerationConfig.check
    )
    run_generation(config, out, run, progress, as_json)

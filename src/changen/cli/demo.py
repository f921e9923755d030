"""``changen demo``: the whole GPCM pipeline on the procedural sample world, in minutes on a CPU.

It writes, under ``--out`` (default ``./changen-demo``)::

    source/             N sample-world scenes (images, OpenEarthMap masks, instances)
    dataset/            the generated change dataset (LEVIR-CD layout, provenance, card)
    dataset/gallery/    its HTML gallery

The default synthesizer is the small Changen GAN checkpoint shipped in the package
(``changen/assets/demo_gan/``, trained on the sample world by the project's own recipe);
``--synthesizer`` runs any other one (``copy_paste``, ``inpaint``, a checkpoint folder — a
diffusion one sampled as ``--sampling-steps``, ``--sampler``, ``--switch``, ``--n-max`` and
``--n-min`` say).

The demo folder is built in place (its dataset records the source's path) under the writer
lock of ``--out``; a demo that fails leaves what was there before — nothing, or with
``--overwrite`` the previous demo, which waits beside it until the new one is complete
(:func:`changen.data.staging.output_in_place`).
"""

from __future__ import annotations

import time
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console

from changen.cli import jsonout, options
from changen.data.staging import output_in_place
from changen.errors import ConfigError

if TYPE_CHECKING:
    from changen.events import ChangeProcess

BUILDING, TREE = 8, 5
OPEN_LAND = (1, 2, 3, 7)  # bareland, rangeland, developed, agriculture


def demo_checkpoint() -> Path:
    """Where the shipped demo checkpoint lives in the installed package."""
    return Path(str(resources.files("changen"))) / "assets" / "demo_gan"


def demo_process() -> ChangeProcess:
    """The demo's events on OpenEarthMap classes: new buildings on open land, buildings and
    trees removed (filled with the surrounding class), objects re-classed by the OpenEarthMap
    kernel."""
    from changen.events import (
        OPENEARTHMAP_KERNEL,
        ChangeProcess,
        CreateConfig,
        EventSpec,
        ReclassConfig,
        RemoveConfig,
    )

    return ChangeProcess(
        (
            EventSpec(
                "create",
                CreateConfig(
                    count=(1, 4),
                    classes=(BUILDING,),
                    scale=(0.8, 1.25),
                    rotation="any",
                    flip=True,
                    placement="within",
                    within_classes=OPEN_LAND,
                    min_area=32,
                ),
            ),
            EventSpec(
                "remove",
                RemoveConfig(
                    count=(1, 2), classes=(BUILDING, TREE), fill="surrounding", min_area=32
                ),
            ),
            EventSpec("reclass", ReclassConfig(kernel=OPENEARTHMAP_KERNEL, count=(0, 1)), 0.5),
        )
    )


def _synthesizer(spec: str | None) -> str:
    if spec is not None:
        return spec
    checkpoint = demo_checkpoint()
    if not (checkpoint / "config.json").is_file():
        raise ConfigError(
            f"the demo's Changen GAN checkpoint is not installed ({checkpoint}); run "
            f"`changen demo --synthesizer copy_paste`, or pass --synthesizer CHECKPOINT_DIR"
        )
    return str(checkpoint)


def demo(
    out: Path = typer.Option(Path("changen-demo"), "--out", "-o", help="Output folder."),
    synthesizer: str | None = typer.Option(
        None, help="Synthesizer name or checkpoint folder. (default: the shipped demo GAN)"
    ),
    n: int = typer.Option(24, min=1, help="Sample-world scenes to generate from."),
    size: int = typer.Option(128, min=32, help="Scene size in pixels (a multiple of 32)."),
    seed: int = typer.Option(0, min=0, help="Seed of the scenes and of the generation."),
    workers: int = typer.Option(1, min=0, help="Processes for reading and events."),
    sampling_steps: int | None = options.SAMPLING_STEPS,
    sampler: str | None = options.SAMPLER,
    switch: float | None = options.SWITCH,
    n_max: int | None = options.N_MAX,
    n_min: int | None = options.N_MIN,
    overwrite: bool = typer.Option(
        False, help="Replace what --out holds (kept until the new demo is complete)."
    ),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
    as_json: bool = jsonout.JSON,
) -> None:
    """Run the whole pipeline on the built-in sample world: scenes, change events, synthesis,
    a LEVIR-CD-style dataset with provenance, and its HTML gallery."""
    from changen.cli.gallery import write_gallery
    from changen.cli.generate import summary, summary_json
    from changen.cli.progress import rich_sink
    from changen.data.world import write_sample_world
    from changen.generation import GenerationConfig, RunOptions, generate_dataset

    start = time.perf_counter()
    spec = _synthesizer(synthesizer)
    with output_in_place(out, overwrite=overwrite) as root:
        source = write_sample_world(root / "source", n, seed, size=size)
        config = GenerationConfig(
            source=str(source),
            synthesizer=spec,
            process=demo_process(),
            seed=seed,
            synthesizer_options=options.sampling_options(
                sampling_steps, sampler, switch, n_max, n_min
            ),
        )
        with rich_sink(progress and not as_json, unit="samples") as sink:
            result = generate_dataset(config, root / "dataset", RunOptions(workers=workers), sink)
        page = write_gallery(result.out)
    if as_json:
        seconds = round(time.perf_counter() - start, 3)
        gallery = page.resolve()
        extra = {"source": source, "gallery": gallery, "total_seconds": seconds}
        jsonout.emit(summary_json(result, "levircd") | extra)
        return
    console = Console()
    console.print(summary(result, "levircd"), highlight=False, soft_wrap=True)
    console.print(
        f"demo finished in {time.perf_counter() - start:.1f} s\n"
        f"  source:  {source}\n  dataset: {result.out}\n  gallery: {page.resolve().as_uri()}",
        highlight=False,
        soft_wrap=True,
    )

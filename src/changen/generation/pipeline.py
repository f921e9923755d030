"""One sample's way through GPCM: read and crop the source item, simulate the change events,
synthesise the post-event image(s), and turn the result into change samples and a manifest row.

The work is split in the two halves the executors schedule separately:

* :class:`Preparer` (CPU, any process): source item → crop → :func:`changen.events.simulate`,
  giving a :class:`Prepared` sample (pre-event image, T+1 masks and instance maps, event log);
* :func:`synthesize` (main process or a synthesizer actor): a list of prepared samples →
  :class:`Generated` samples by :func:`changen.synthesis.series.synthesize_series_batch`
  (progressive synthesis, step t from the synthetic image of step t-1; samples of the same
  size share a synthesizer call per step).

Sample ``i`` draws its events from the first and its synthesis noise from the second child of
``SeedSequence([seed, i])`` (see :mod:`changen.generation.plan`), so batches are just groups
of samples.

A sample whose chain has no event at all ("no eligible objects": nothing to create from,
remove or re-class) is handled by ``empty``: ``"nochange"`` (the default) synthesises and
writes it like any other sample, a no-change pair, and marks its row ``"nochange"``;
``"skip"`` writes no file and marks its row ``"skipped"``.

Two optional steps make the pairs look like two acquisitions (see
:mod:`changen.synthesis.nuisance`): a share ``negatives`` of samples are **hard negatives**,
whose chain has no event (the change label is empty) although their images differ, and the
**nuisance** model, when the job has one, sees every post-event image (t >= 1) through another
acquisition after synthesis. Masks and labels are never touched by either. Both draw from
their own children of the sample's sequence (:func:`changen.seeding.acquisition_rngs`), so
turning them on changes no event and no synthesis draw.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from rasterio.windows import Window

from changen.data.bands import to_rgb8
from changen.data.readers.base import Reader
from changen.data.readers.pooled import SourceEntry, open_sources
from changen.data.tiling import tile_georef
from changen.errors import DataError
from changen.events import ChangeChain, ChangeProcess, simulate, unchanged
from changen.events.labels import binary_change
from changen.generation.plan import Plan, SampleSpec
from changen.generation.simulate import UnlabeledMode, proposal_min_area, unlabeled_layers
from changen.sample import ChangeSample, ChangeSeries, GeoRef, Taxonomy
from changen.seeding import acquisition_rngs, sample_rngs
from changen.synthesis.base import Synthesizer
from changen.synthesis.nuisance import Nuisance
from changen.synthesis.series import synthesize_series_batch

EmptyPolicy = Literal["nochange", "skip"]
EMPTY_POLICIES: tuple[str, ...] = ("nochange", "skip")
Status = Literal["ok", "nochange", "skipped", "negative"]


def config_hash(config: dict[str, Any]) -> str:
    """A short, stable hash of a JSON-ready config (sorted keys)."""
    text = json.dumps(config, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class SourceSpec:
    """How to (re)open the source in any process: its datasets (pooled when several), the
    taxonomy and the GSD they are resampled to (see
    :func:`changen.data.readers.pooled.open_sources`)."""

    entries: tuple[SourceEntry, ...]
    taxonomy: Taxonomy | None = None
    gsd: float | None = None

    def open(self) -> Reader[Any]:
        return open_sources(self.entries, self.taxonomy, self.gsd)


@dataclass(frozen=True)
class Job:
    """Everything the workers need to produce any sample of a run (picklable)."""

    source: SourceSpec
    plan: Plan
    process: ChangeProcess
    taxonomy: Taxonomy
    seed: int
    empty: EmptyPolicy = "nochange"
    synthesizer: str = ""
    synthesizer_options: dict[str, Any] = field(default_factory=dict)
    negatives: float = 0.0
    nuisance: Nuisance | None = None
    unlabeled: UnlabeledMode = "none"


@dataclass
class Prepared:
    """A sample after the events: pre-event ``image`` (H, W, 3) uint8, the simulated ``chain``
    (masks, instance maps, event log) and where it came from."""

    spec: SampleSpec
    image: np.ndarray
    chain: ChangeChain
    georef: GeoRef | None
    source: str
    status: Status
    timing: dict[str, float]
    nuisance: list[dict[str, Any]] = field(default_factory=list)

    @property
    def masks(self) -> np.ndarray:
        """The (T+1, H, W) class masks of the chain."""
        return self.chain.masks


@dataclass
class Generated:
    """A finished sample: ``images`` (T+1, H, W, 3) with ``images[0]`` the source crop, or
    ``None`` when the sample is skipped."""

    prepared: Prepared
    images: np.ndarray | None


class Preparer:
    """Reads, crops and simulates samples of a :class:`Job` (one per process; keeps the last
    source item decoded, since consecutive samples usually share it)."""

    def __init__(self, job: Job) -> None:
        self.job = job
        self._reader: Reader[Any] | None = None
        self._cached: tuple[int, Any] | None = None

    def _item(self, index: int) -> Any:
        if self._cached is None or self._cached[0] != index:
            if self._reader is None:
                self._reader = self.job.source.open()
            self._cached = (index, self._reader[index])
        return self._cached[1]

    def prepare(self, index: int) -> Prepared:
        """Sample ``index``: source crop and simulated chain (with timings)."""
        job = self.job
        spec = job.plan[index]
        start = time.perf_counter()
        item = self._item(spec.item)
        min_area = proposal_min_area(job.process)
        image, mask, instances, georef, source = _layers(item, spec, job.unlabeled, min_area)
        read_s = time.perf_counter() - start
        events_rng, _ = sample_rngs(job.seed, index)
        negative_rng, _ = acquisition_rngs(job.seed, index)
        status: Status = "ok"
        if job.negatives > 0 and negative_rng.random() < job.negatives:
            status = "negative"
            chain = unchanged(
                mask,
                job.process.steps,
                instances=instances,
                taxonomy=job.taxonomy,
                connectivity=job.process.connectivity,
            )
        else:
            chain = simulate(
                mask, job.process, events_rng, instances=instances, taxonomy=job.taxonomy
            )
            if not chain.log:
                status = "nochange" if job.empty == "nochange" else "skipped"
        return Prepared(
            spec=spec,
            image=image,
            chain=chain,
            georef=georef,
            source=source,
            status=status,
            timing={"read_s": read_s, "events_s": time.perf_counter() - start - read_s},
        )

    def prepare_batch(self, indices: Sequence[int]) -> list[Prepared]:
        return [self.prepare(i) for i in indices]


def scene_image(item: Any) -> np.ndarray:
    """The RGB uint8 image of a source item (the t1 image of a change sample)."""
    image = item.t1_image if isinstance(item, ChangeSample) else item.image
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        image = to_rgb8(image, source=item.source or item.name)[0]
    return np.asarray(image)


def _layers(
    item: Any, spec: SampleSpec, unlabeled: UnlabeledMode = "none", min_area: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, GeoRef | None, str]:
    """Image (RGB uint8), mask, instances, georef and source path of a scene (or of the t1
    side of a change sample), cut to the spec's window; in an ``unlabeled`` mode the mask and
    instances are the crop's class-agnostic ones
    (:func:`changen.generation.simulate.unlabeled_layers`, regions below ``min_area`` dropped)."""
    if isinstance(item, ChangeSample):
        mask, instances = item.t1_mask, None
    else:
        mask, instances = item.mask, item.instances
    where = item.source or item.name
    if mask is None and unlabeled == "none":
        raise DataError(
            f"{where}: has no semantic mask to simulate events on; generate from a labelled "
            f"dataset (scenes with masks, or change data with t1 masks), or pass --unlabeled "
            f"slic to propose class-agnostic objects"
        )
    image = scene_image(item)
    georef = item.georef
    if spec.window is not None:
        r, c, h, w = spec.window
        image = image[r : r + h, c : c + w]
        mask = None if mask is None else mask[r : r + h, c : c + w]
        instances = None if instances is None else instances[r : r + h, c : c + w]
        georef = tile_georef(georef, Window(c, r, w, h))
    if unlabeled != "none":
        mask, instances = unlabeled_layers(image, instances, unlabeled, min_area, where)
    assert mask is not None
    return (
        np.ascontiguousarray(image),
        np.ascontiguousarray(mask),
        None if instances is None else np.ascontiguousarray(instances),
        georef,
        where,
    )


def synthesize(
    synthesizer: Synthesizer,
    prepared: Sequence[Prepared],
    seed: int,
    nuisance: Nuisance | None = None,
) -> list[Generated]:
    """Post-event images of every non-skipped sample, in input order, through ``nuisance``
    when given (see the module docstring); the synthesis time is shared out equally in each
    sample's timing."""
    todo = [p for p in prepared if p.status != "skipped"]
    start = time.perf_counter()
    series = synthesize_series_batch(
        synthesizer,
        [p.image for p in todo],
        [p.chain for p in todo],
        [sample_rngs(seed, p.spec.index)[1] for p in todo],
        batch_size=max(1, len(todo)),
    )
    share = (time.perf_counter() - start) / max(1, len(todo))
    images = {id(p): s for p, s in zip(todo, series, strict=True)}
    for p in todo:
        p.timing["synth_s"] = share
        if nuisance is not None and nuisance.config.active:
            begin = time.perf_counter()
            acquire(nuisance, p, images[id(p)], seed)
            p.timing["nuisance_s"] = time.perf_counter() - begin
    return [Generated(p, images.get(id(p))) for p in prepared]


def acquire(nuisance: Nuisance, p: Prepared, images: np.ndarray, seed: int) -> None:
    """Apply ``nuisance`` in place to every post-event image of ``images`` (T+1, H, W, 3),
    one child generator per step, recording the drawn parameters in ``p.nuisance``."""
    _, rng = acquisition_rngs(seed, p.spec.index)
    chain = p.chain
    for t, step_rng in enumerate(rng.spawn(chain.steps), start=1):
        created = None
        if nuisance.config.shadows > 0:
            new = [r.new_id for r in chain.log if r.step == t and r.event == "create"]
            created = np.isin(chain.instances[t], new) if new else None
        images[t], params = nuisance.apply(images[t], chain.masks[t], step_rng, created)
        p.nuisance.append(params)


def pair_name(name: str, i: int, j: int, steps: int) -> str:
    """The output name of the pair (i, j) of sample ``name``: ``name`` itself when T = 1."""
    return name if steps == 1 else f"{name}_t{i}_t{j}"


def change_samples(generated: Generated, taxonomy: Taxonomy) -> list[ChangeSample]:
    """The consecutive pairs (t-1, t) of a generated sample, as change samples."""
    p, images = generated.prepared, generated.images
    if images is None:
        return []
    steps = p.masks.shape[0] - 1
    return [
        ChangeSample(
            t1_image=images[t - 1],
            t2_image=images[t],
            change_mask=binary_change(p.masks[t - 1], p.masks[t], taxonomy.ignore),
            t1_mask=p.masks[t - 1],
            t2_mask=p.masks[t],
            georef=p.georef,
            taxonomy=taxonomy,
            name=pair_name(p.spec.name, t - 1, t, steps),
            source=p.source,
            meta={"sample": p.spec.index, "step": t},
        )
        for t in range(1, steps + 1)
    ]


def change_series(generated: Generated, taxonomy: Taxonomy) -> ChangeSeries | None:
    """The whole time series of a generated sample (``None`` when skipped)."""
    p = generated.prepared
    if generated.images is None:
        return None
    return ChangeSeries(generated.images, p.masks, p.georef, taxonomy, p.spec.name)


def manifest_row(generated: Generated, seed: int, synthesizer: dict[str, str]) -> dict[str, Any]:
    """The provenance row of one sample (``outputs`` and the write time are added on writing)."""
    p = generated.prepared
    return {
        "index": p.spec.index,
        "name": p.spec.name,
        "status": p.status,
        "source": {"path": p.source, **p.spec.to_dict()},
        "seed": [seed, p.spec.index],
        "size": [int(p.masks.shape[1]), int(p.masks.shape[2])],
        "steps": int(p.masks.shape[0]) - 1,
        "georef": None if p.georef is None else p.georef.to_dict(),
        "events": p.chain.log_dicts(),
        "nuisance": p.nuisance,
        "synthesizer": synthesizer,
        "timing": {k: round(v, 6) for k, v in p.timing.items()},
    }

"""Training a conditional diffusion model of P(I | S) on single-temporal scenes.

No events and no post-event images are needed: the model learns to make an image from its
semantic mask (Changen2's RS-DiT; ChangeAnywhere's latent diffusion), and change comes in at
sampling time, when the mask of the post-event date conditions the sample
(:mod:`changen.synthesis.diffusion.sampling`). Each step:

1. a batch of augmented crops (:class:`~changen.synthesis.crops.SceneCrops`) is encoded into
   the latent space (the identity in pixel space) and its masks into label maps
   (:class:`~changen.synthesis.diffusion.labels.LabelSpec`);
2. uniform timesteps and Gaussian noise (:func:`~changen.synthesis.diffusion.objective.
   training_noise`, from a torch generator seeded by ``(seed, step, rank)``) make x_t;
3. the denoiser takes one AdamW step on :class:`~changen.synthesis.diffusion.objective.
   DiffusionObjective` (ε-MSE, plus the variational bound when it learns its variance, as DiT);
4. the EMA denoiser moves towards it (what sampling uses; its decay warms up as diffusers'
   ``EMAModel``'s does, :meth:`DiffusionTrainer.ema_decay`).

Loops run on Lightning Fabric (:mod:`changen.engine.config`): CPU, one or many GPUs, many
nodes (DDP), fp32 or bf16 autocast; ``batch_size`` is the global batch.

Run folder (the engine's, :mod:`changen.engine.run`)::

    RUN/config.json                   the checkpoint config without "step"
    RUN/checkpoints/step-<N>/         config.json (kind "changen_diffusion": the
                                      DiffusionModelConfig under "diffusion", the training
                                      config under "train"), denoiser(_ema).safetensors, state.pt
    RUN/checkpoints/last/             the newest checkpoint (opens with ``model.load_denoiser``)
    RUN/samples/step-<N>.png          held-out masks, their images, EMA samples (DDIM)
    RUN/metrics.csv, RUN/losses.png   loss (= loss_mse + loss_vb), s/step, FID/KID

Exact resume: the data of step ``k`` are a pure function of ``(seed, k)``
(:class:`~changen.engine.data.StepBatchSampler` and the crops' per-item seeds), its noise and
timesteps come from a generator seeded by ``(seed, k, rank)``, the models are initialised
inside :func:`torch.random.fork_rng`, and optimizer state travels in ``state.pt``: a run resumed
from step ``k`` reproduces the uninterrupted one (bitwise on CPU).

Latent cache (``cache_latents``, latent autoencoders only; pixel space has nothing to save).
Crops are deterministic per ``(epoch, item)`` key, but keys never repeat across epochs, so a
cache per key would never hit. The cache therefore fixes each item's crop to its epoch-0 draw:
every epoch sees the same augmented crop of an item, encoded once (one item at a time, so the
latent does not depend on which items shared its batch) and kept in memory on the CPU for the
whole run. This trades augmentation variety for skipping the encoder (and, after the first
epoch, the image reading): use it for large datasets, not for a handful of scenes. Cached
items are read in the training process (``--workers`` is not used).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning_fabric import Fabric
from torch import Tensor, nn

from changen import __version__
from changen.data.atomic import write_text_atomic
from changen.data.output import check_output_dir
from changen.data.readers.pooled import open_data_spec
from changen.engine.checkpoint import load_config, load_state, load_weights, unwrap
from changen.engine.config import make_fabric
from changen.engine.data import StepBatchSampler, holdout_split, make_loader, next_batch
from changen.engine.loop import Periodic, TrainTask, Window, mean_over_processes, run_loop
from changen.engine.metrics import MetricsLog
from changen.engine.progress import SILENT, ProgressSink
from changen.engine.run import capture_rng, latest_checkpoint, restore_rng, save_step
from changen.errors import ConfigError, DataError
from changen.events.unlabeled import OBJECT_TAXONOMY, contour_map
from changen.synthesis.classes import model_class_ids
from changen.synthesis.crops import SceneCrops
from changen.synthesis.diffusion.labels import LabelSpec
from changen.synthesis.diffusion.latent import LatentSpace, open_latent_space
from changen.synthesis.diffusion.model import (
    DiffusionModelConfig,
    build_denoiser,
    checkpoint_config,
    conditioned,
)
from changen.synthesis.diffusion.objective import DiffusionObjective, training_noise
from changen.synthesis.diffusion.sampling import SamplingConfig, sample
from changen.synthesis.diffusion.train_config import (
    DiffusionTrainConfig,
    check_diffusion_resume,
    network_config,
    network_stride,
    schedule_config,
)
from changen.synthesis.gan.train import Fidelity, ema_update
from changen.viz.grid import make_grid, save_png

Batch = dict[str, Tensor]


@dataclass(frozen=True)
class DiffusionTrainResult:
    """Where a run ended: its folder, the last checkpoint and the step reached."""

    run: Path
    checkpoint: Path
    step: int


def seeded_generator(seed: int, *key: int, stream: int) -> torch.Generator:
    """A CPU torch generator seeded from ``SeedSequence([seed, *key])``'s child ``stream``
    (2: the training noise of a step, 3: the sample of a preview item)."""
    state = np.random.SeedSequence([seed, *key], spawn_key=(stream,)).generate_state(1, np.uint64)
    return torch.Generator().manual_seed(int(state[0]))


def to_uint8(images: Tensor) -> np.ndarray:
    """(N, 3, H, W) in [−1, 1] → (N, H, W, 3) uint8."""
    pixels = ((images.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return pixels.permute(0, 2, 3, 1).cpu().numpy()


@dataclass(frozen=True)
class Example:
    """A held-out crop: its name, RGB image, mask (taxonomy ids, for display), model-id mask
    and instance map (the contour condition's)."""

    name: str
    image: np.ndarray
    mask: np.ndarray
    model_mask: np.ndarray
    instances: np.ndarray | None

    def contour_source(self) -> np.ndarray:
        """The instance map (present whenever the label encoding needs one)."""
        if self.instances is None:
            raise DataError(f"{self.name}: no instance map for the contour condition")
        return self.instances


class LatentCache:
    """The latent, mask and instance map of each item's epoch-0 crop, encoded once (see the
    module docstring)."""

    def __init__(self, crops: SceneCrops, latent: LatentSpace, device: torch.device) -> None:
        self.crops = crops
        self.latent = latent
        self.device = device
        self.items: dict[int, Batch] = {}

    def item(self, index: int) -> Batch:
        if index not in self.items:
            item = self.crops[(0, index)]
            image = item.pop("image")[None].to(self.device)
            item["latent"] = self.latent.encode(image)[0].float().cpu()
            self.items[index] = item
        return self.items[index]

    def batch(self, keys: Sequence[tuple[int, int]]) -> Batch:
        items = [self.item(index) for _, index in keys]
        return {k: torch.stack([it[k] for it in items]) for k in items[0]}


class DiffusionTrainer(TrainTask):
    """Denoiser, EMA, optimizer and data of one run, set up on ``fabric``: the diffusion
    family's :class:`~changen.engine.loop.TrainTask`.

    ``checkpoint`` (a checkpoint folder) resumes a run from its step; ``run`` is the run
    folder :meth:`save` writes into.
    """

    def __init__(
        self,
        config: DiffusionTrainConfig,
        fabric: Fabric,
        *,
        checkpoint: Path | None = None,
        run: Path | None = None,
    ) -> None:
        self.fabric = fabric
        self.run = run
        reader = open_data_spec(config.data, config.format, config.taxonomy)
        taxonomy = OBJECT_TAXONOMY if config.unlabeled else reader.taxonomy
        self.spec = LabelSpec(config.label_encoding(taxonomy), taxonomy.num_classes)
        self.latent = open_latent_space(config.latent, fabric.device)
        described = self.latent.describe()
        latent = "pixel" if described["kind"] == "pixel" else str(described["folder"])
        self.config = config = dataclasses.replace(config, labels=self.spec.encoding, latent=latent)
        crops: dict[str, Any] = {
            "instances": self.spec.needs_instances,
            "unlabeled": config.unlabeled,
            "what": "the diffusion model",
        }
        self.crops = SceneCrops(reader, config.size, config.seed, config.augment, **crops)
        self.eval_crops = SceneCrops(reader, config.size, config.seed, None, **crops)
        self.taxonomy = self.crops.taxonomy
        self.train_indices, self.holdout_indices = holdout_split(len(reader), config.holdout)
        network = network_config(config, self.latent.channels, self.spec)
        self.model_config = DiffusionModelConfig(
            family=config.family,
            network=network,
            schedule=schedule_config(config),
            labels=self.spec,
            latent=latent,
            image_size=config.size,
            class_ids=model_class_ids(self.taxonomy),
            taxonomy=self.taxonomy.to_dict(),
        )
        self.latent_size = self.check_size(network_stride(network))

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            denoiser = build_denoiser(self.model_config)
        ema = copy.deepcopy(denoiser)
        self.step = 0
        state: dict[str, Any] = {}
        if checkpoint is not None:
            load_weights(checkpoint, {"denoiser": denoiser, "denoiser_ema": ema})
            state = load_state(checkpoint)
            self.step = int(state["step"])
        ema.requires_grad_(False).eval()
        optimizer = torch.optim.AdamW(
            denoiser.parameters(), lr=config.lr, weight_decay=config.weight_decay
        )
        self.denoiser, self.optimizer = fabric.setup(denoiser, optimizer)
        self.ema = fabric.to_device(ema)
        self.ema_updates = 0
        self.scheduler = self.model_config.schedule.training()
        self.objective = DiffusionObjective(self.scheduler)
        self.loop_state: dict[str, Any] = state.get("loop", {})
        self.cache = None
        if config.cache_latents and latent != "pixel":
            self.cache = LatentCache(self.crops, self.latent, fabric.device)
        self._batches: Iterator[Batch] | None = None
        self._sampler: StepBatchSampler | None = None
        if state:
            self.optimizer.load_state_dict(state["optimizer"])
            self.ema_updates = int(state["ema"]["updates"])
            restore_rng(state["rng"])

    def check_size(self, stride: int) -> int:
        """The latent side of the crops; it must be a multiple of the network's ``stride``."""
        factor, size = self.latent.factor, self.config.size
        step = factor * stride
        if size % step:
            raise ConfigError(
                f"--size {size}: the latent grid (size / {factor}) must be a multiple of "
                f"{stride} for this {self.config.family} network; use e.g. --size "
                f"{max(step, round(size / step) * step)}"
            )
        return size // factor

    # -- data ---------------------------------------------------------------------------

    def sampler(self) -> StepBatchSampler:
        """This rank's batch keys from the current step on."""
        c = self.config
        return StepBatchSampler(
            self.train_indices,
            c.batch_size,
            c.seed,
            start_step=self.step,
            rank=self.fabric.global_rank,
            world_size=self.fabric.world_size,
        )

    def next_batch(self) -> Batch:
        """The batch of the current step with its ``latent`` (from the cache, on the CPU, or
        encoded on the device) and its masks (and instances)."""
        if self.cache is not None:
            if self._sampler is None:
                self._sampler = self.sampler()
            return self.cache.batch(self._sampler.keys(self.step))
        if self._batches is None:
            loader = make_loader(
                self.crops, self.sampler(), self.config.run.workers, self.config.seed
            )
            self._batches = iter(loader)
        batch = next_batch(self._batches)
        with torch.no_grad():
            image = batch.pop("image").to(self.fabric.device)
            batch["latent"] = self.latent.encode(image).float()
        return batch

    def label_map(self, batch: Mapping[str, Tensor]) -> Tensor:
        """The encoded label maps of a batch, on the device."""
        instances = batch.get("instances")
        arrays = None if instances is None else instances.cpu().numpy()
        return self.spec.encode(batch["mask"].cpu(), arrays).to(self.fabric.device)

    # -- one step -----------------------------------------------------------------------

    def losses(
        self, network: nn.Module, batch: Mapping[str, Tensor], generator: torch.Generator
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """Mean loss of ``network`` on ``batch`` with noise and timesteps from ``generator``,
        and its parts."""
        x0 = batch["latent"].to(self.fabric.device)
        labels = self.label_map(batch)
        x_t, noise, t = training_noise(self.scheduler, x0, generator)
        with self.fabric.autocast():
            output = network(x_t, t, labels)
        loss, parts = self.objective(output, x0, x_t, noise, t)
        return loss.mean(), {k: v.mean() for k, v in parts.items()}

    def update(self) -> dict[str, Tensor]:
        """The engine's step: one AdamW step on the next batch, then the EMA."""
        batch = self.next_batch()
        generator = seeded_generator(self.config.seed, self.step, self.fabric.global_rank, stream=2)
        loss, parts = self.losses(self.denoiser, batch, generator)
        self.optimizer.zero_grad(set_to_none=True)
        self.fabric.backward(loss)
        self.optimizer.step()
        ema_update(self.ema, unwrap(self.denoiser), self.ema_decay())
        self.ema_updates += 1
        self.step += 1
        return {"loss": loss.detach(), **{f"loss_{k}": v for k, v in parts.items()}}

    def ema_decay(self) -> float:
        """The EMA decay of the next update: the configured one, warmed up as diffusers'
        ``EMAModel`` does (``(1 + n) / (10 + n)`` after n updates, when smaller), so that a
        short run's EMA is not still mostly the zero-output initialisation."""
        n = self.ema_updates
        return min(self.config.decay, (1 + n) / (10 + n))

    # -- checkpoints --------------------------------------------------------------------

    def run_config(self) -> dict[str, Any]:
        """The checkpoint config without its step (also written as ``RUN/config.json``)."""
        return checkpoint_config(
            self.model_config, train=self.config.to_dict(), changen_version=__version__
        )

    def save(self, loop_state: dict[str, Any]) -> None:
        """Write the run's checkpoint of the current step, publish it as ``last`` and prune
        (rank 0 writes, others wait)."""
        if self.run is None:
            raise ValueError("DiffusionTrainer.save needs the run folder (run=...)")
        if self.fabric.is_global_zero:
            state = {
                "step": self.step,
                "optimizer": self.optimizer.state_dict(),
                "ema": {"decay": self.config.decay, "updates": self.ema_updates},
                "data": {"step": self.step, "samples_seen": self.step * self.config.batch_size},
                "rng": capture_rng(),
                "loop": loop_state,
            }
            models = {"denoiser": self.denoiser, "denoiser_ema": self.ema}
            config = {**self.run_config(), "step": self.step}
            save_step(self.run, self.step, models, config, state, self.config.run.keep)
        self.fabric.barrier()

    # -- evaluation ---------------------------------------------------------------------

    def eval_indices(self, count: int) -> list[int]:
        """Items for sample grids and FID: held-out ones (training ones when none are)."""
        return (self.holdout_indices or self.train_indices)[:count]

    def eval_examples(self, count: int) -> list[tuple[int, Example]]:
        """``(reader index, central crop with its mask)`` of the evaluation items."""
        examples = []
        for i in self.eval_indices(count):
            crop = self.eval_crops.crop(0, i)
            if crop.mask is None:
                raise DataError(f"{crop.source}: has no mask; train on labelled scenes")
            mask = self.eval_crops.model_ids(crop.mask, f"{crop.source} mask")
            examples.append((i, Example(crop.name, crop.image, crop.mask, mask, crop.instances)))
        return examples

    def condition(self, examples: Sequence[tuple[int, Example]]) -> Tensor:
        """The label maps of evaluation crops, on the device."""
        masks = np.stack([e.model_mask for _, e in examples])
        instances = None
        if self.spec.needs_instances:
            instances = np.stack([e.contour_source() for _, e in examples])
        return self.spec.encode(masks, instances).to(self.fabric.device)

    def conditioned_ema(self, labels: Tensor) -> Callable[[Tensor, Tensor], Tensor]:
        """The EMA denoiser conditioned on ``labels``, under the run's autocast, in fp32 out."""
        denoise = conditioned(self.ema, labels)

        def step(x: Tensor, t: Tensor) -> Tensor:
            with self.fabric.autocast():
                return denoise(x, t).float()

        return step

    @torch.no_grad()
    def synthesize(self, examples: Sequence[tuple[int, Example]], batch: int = 16) -> np.ndarray:
        """EMA samples (N, H, W, 3) uint8 conditioned on the examples' masks (DDIM, the run's
        ``sample_steps``); item ``i`` always starts from the same noise, so grids compare
        across steps."""
        c = self.config
        sampling = SamplingConfig("ddim", c.sample_steps)
        side = self.latent_size
        out = []
        for k in range(0, len(examples), batch):
            chunk = examples[k : k + batch]
            gens = [seeded_generator(c.seed, i, stream=3) for i, _ in chunk]
            shape = (len(chunk), self.latent.channels, side, side)
            denoise = self.conditioned_ema(self.condition(chunk))
            z = sample(
                denoise,
                self.model_config.schedule,
                shape,
                gens,
                sampling,
                device=self.fabric.device,
            )
            out.append(to_uint8(self.latent.decode(z)))
        return np.concatenate(out)

    def preview(self, examples: Sequence[tuple[int, Example]]) -> np.ndarray:
        """Grid with one column per example; rows: the condition (the mask, or the contour
        map), the real image, the sample."""
        fakes = self.synthesize(examples)
        conditions = [
            contour_map(e.contour_source()) > 0 if self.spec.needs_instances else e.mask
            for _, e in examples
        ]
        rows = [conditions, [e.image for _, e in examples], list(fakes)]
        return make_grid(
            rows,
            titles=[e.name for _, e in examples],
            row_labels=[self.spec.encoding, "real", "sample"],
            taxonomy=self.taxonomy,
            cell=min(256, max(96, self.config.size)),
        )


# -- the loop -------------------------------------------------------------------------------


def train_diffusion(
    config: DiffusionTrainConfig,
    out: str | os.PathLike[str],
    *,
    resume: bool = False,
    progress: ProgressSink = SILENT,
    fabric: Fabric | None = None,
) -> DiffusionTrainResult:
    """Train (or, with ``resume``, continue) a diffusion run in the folder ``out``.

    Without ``resume`` the folder must be new or empty. With it, the run continues from
    ``checkpoints/last``; ``config`` may differ from the run's only in
    :data:`~changen.synthesis.diffusion.train_config.RUNTIME_FIELDS` (build it with
    :func:`~changen.synthesis.diffusion.train_config.resume_config`).
    """
    run = Path(out)
    if fabric is None:
        fabric = make_fabric(config.run)
        fabric.launch()
    checkpoint = None
    if resume:
        checkpoint = latest_checkpoint(run)
        saved = DiffusionTrainConfig.from_dict(load_config(checkpoint)["train"])
        check_diffusion_resume(config, saved, run)
    else:
        check_output_dir(run, overwrite=False)
    rank0 = fabric.is_global_zero
    sink = progress if rank0 else SILENT
    trainer = DiffusionTrainer(config, fabric, checkpoint=checkpoint, run=run)
    config = trainer.config
    if trainer.step >= config.steps:
        sink.note(f"{run}: already at step {trainer.step} >= --steps {config.steps}; nothing to do")
        return DiffusionTrainResult(run, checkpoint or latest_checkpoint(run), trainer.step)
    trainer.crops[(0, trainer.train_indices[0])]  # bad data fails here, not in a worker
    examples: list[tuple[int, Example]] = []
    log = None
    if rank0:
        examples = trainer.eval_examples(config.preview)
        run.mkdir(parents=True, exist_ok=True)
        write_text_atomic(run / "config.json", _json(trainer.run_config()))
        log = MetricsLog(
            run / "metrics.csv",
            plot=run / "losses.png",
            resume_step=trainer.step if resume else None,
        )
    periodic = []
    if examples:
        periodic.append(Periodic(config.sample_every, _previewer(trainer, examples, run)))
    if config.fid_every and log is not None:
        if trainer.holdout_indices:
            periodic.append(Periodic(config.fid_every, _fid_scorer(trainer, Fidelity(sink.note))))
        else:
            sink.note("FID/KID skipped: no held-out items (--holdout 0)")
    run_loop(
        trainer,
        config.steps,
        config.run,
        log=log,
        advance=sink.task("train diffusion", config.steps, completed=trainer.step),
        periodic=periodic,
        window=Window.from_state(trainer.loop_state.get("window")),
        reduce=mean_over_processes(fabric),
        shown=("loss",),
    )
    if log is not None:
        log.close()
    fabric.barrier()
    return DiffusionTrainResult(run, run / "checkpoints" / "last", trainer.step)


def _previewer(
    trainer: DiffusionTrainer, examples: list[tuple[int, Example]], run: Path
) -> Callable[[int], None]:
    def preview(step: int) -> None:
        save_png(run / "samples" / f"step-{step}.png", trainer.preview(examples))

    return preview


def _fid_scorer(trainer: DiffusionTrainer, fidelity: Fidelity) -> Callable[[int], dict[str, float]]:
    def score(step: int) -> dict[str, float]:
        examples = trainer.eval_examples(trainer.config.fid_samples)
        real = np.stack([e.image for _, e in examples])
        return fidelity(real, trainer.synthesize(examples))

    return score


def _json(data: Mapping[str, Any]) -> str:
    return json.dumps(data, indent=2, sort_keys=True) + "\n"

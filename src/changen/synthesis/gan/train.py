"""Training the Changen GAN with bitemporal adversarial learning (Changen Algorithm 1).

Each iteration draws a batch of single-temporal scenes, simulates a post-event mask for each
(:mod:`changen.synthesis.gan.train_data`), and then, as in the paper's Algorithm 1:

1. the generator makes ``Ĩ_t+1 = G(S_t+1, I_t, S_t, z)`` and takes one Adam step on the
   adversarial loss ``g_loss(D, Ĩ_t+1, S_t+1)`` (D frozen);
2. the discriminator takes one Adam step on ``d_loss(D, I_t, S_t, Ĩ_t+1, S_t+1)``: the real
   pair is the *pre-event* ``(I_t, S_t)``, the fake pair ``(Ĩ_t+1, S_t+1)`` (same ``Ĩ_t+1``,
   detached);
3. the EMA generator moves towards G (parameters by ``decay``, buffers copied).

Adversarial losses only; Adam β = (0, 0.999), lr 1e-4 (G) / 4e-4 (D). Loops run on Lightning
Fabric (:mod:`changen.engine.config`): CPU, one or many GPUs, many nodes (DDP), fp32 or bf16
autocast. ``batch_size`` is the global batch, split evenly over the processes.

Run folder (the engine's, :mod:`changen.engine.run`; the config and the fields a resume may
change are in :mod:`changen.synthesis.gan.train_config`)::

    RUN/config.json                   the checkpoint config without "step" (what is trained)
    RUN/checkpoints/step-<N>/         every run.save_every steps and at the end; the last keep
    RUN/checkpoints/last/             the newest checkpoint (hard-linked copy of step-<N>)
    RUN/samples/step-<N>.png          held-out grid: I_t, S_t, S_t+1, Ĩ_t+1 (EMA G), events
    RUN/metrics.csv, RUN/losses.png   loss_g, loss_d, D accuracies, s/step, FID/KID

A checkpoint folder (:func:`changen.engine.checkpoint.save_checkpoint`) holds
``config.json`` = ``{"kind": "changen_gan", "gan": GanConfig, "taxonomy": Taxonomy,
"class_ids": [taxonomy id of each GAN class], "train": GanTrainConfig, "step": N,
"changen_version": ...}``, ``generator``/``generator_ema``/``discriminator.safetensors`` and
``state.pt`` (optimizers, EMA bookkeeping, step, data position, global RNG states).

Exact resume: all randomness of step ``k`` (data, events, noise) is drawn from seeds derived
from ``(seed, k)`` and the items, never from global RNG state; the models are initialised
inside :func:`torch.random.fork_rng`. A run resumed from step ``k`` therefore reproduces the
uninterrupted run (bitwise on CPU). The global torch/numpy/python RNG states are saved and
restored all the same, for any third-party code that might draw from them.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib
import json
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from lightning_fabric import Fabric
from torch import Tensor, nn
from torch.optim.swa_utils import get_ema_multi_avg_fn
from torch.utils.data import DataLoader

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
from changen.errors import ChangenError
from changen.events import ChangeProcess
from changen.events.policy import default_process
from changen.synthesis.gan import (
    FAKE,
    ChangenGenerator,
    SegDiscriminator,
    d_loss,
    g_loss,
)
from changen.synthesis.gan.train_config import GanTrainConfig, check_gan_resume, resolve_gan
from changen.synthesis.gan.train_data import (
    CREATED,
    GAN_IGNORE,
    RECLASSED,
    REMOVED,
    GanExample,
    GanTrainData,
)
from changen.viz.grid import make_grid, overlay_events, save_png

KIND = "changen_gan"
PLOT_GROUPS = {"loss": "loss", "D pixel accuracy": "d_acc"}

Note = Callable[[str], None]


@dataclass(frozen=True)
class GanTrainResult:
    """Where a run ended: its folder, the last checkpoint and the step reached."""

    run: Path
    checkpoint: Path
    step: int


@torch.no_grad()
def ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """``ema ← decay·ema + (1 - decay)·model`` for parameters (torch's
    :func:`~torch.optim.swa_utils.get_ema_multi_avg_fn`); buffers (BatchNorm statistics,
    spectral-norm vectors) are copied, since an average of unit vectors is not one."""
    average = get_ema_multi_avg_fn(decay)
    average(list(ema.parameters()), [p.detach() for p in model.parameters()], None)
    for b_ema, b in zip(ema.buffers(), model.buffers(), strict=True):
        b_ema.copy_(b)


def to_model_inputs(
    batch: Mapping[str, Tensor], z_dim: int
) -> tuple[Tensor, Tensor, Tensor, Tensor | None]:
    """uint8 batch → image in [-1, 1], long masks (255 = ignore), noise (None if z_dim = 0)."""
    image = batch["t1_image"].float() / 127.5 - 1.0
    noise = batch["noise"].float() if z_dim > 0 else None
    return image, batch["t1_mask"].long(), batch["t2_mask"].long(), noise


def d_accuracy(logits: Tensor, mask: Tensor, real: bool) -> Tensor:
    """Share of valid pixels D labels correctly: class ``1 + S`` if ``real``, else "fake"."""
    valid = mask != GAN_IGNORE
    target = mask + 1 if real else torch.full_like(mask, FAKE)
    hits = (logits.argmax(1) == target) & valid
    return hits.sum() / valid.sum().clamp(min=1)


class GanTrainer(TrainTask):
    """Networks, optimizers, EMA and data of one run, set up on ``fabric``: the GAN's
    :class:`~changen.engine.loop.TrainTask`.

    ``checkpoint`` (a checkpoint folder) resumes a run from its step; ``run`` is the run
    folder :meth:`save` writes into. The step methods are public so that tests and notebooks
    can drive them one by one.
    """

    def __init__(
        self,
        config: GanTrainConfig,
        fabric: Fabric,
        *,
        checkpoint: Path | None = None,
        run: Path | None = None,
    ) -> None:
        self.config = config
        self.fabric = fabric
        self.run = run
        reader = open_data_spec(config.data, config.format, config.taxonomy, config.split)
        self.taxonomy = reader.taxonomy
        if config.events is None:
            process = default_process(self.taxonomy)
        else:
            process = ChangeProcess.from_dict(config.events)
        events = json.loads(json.dumps(process.to_dict()))
        self.config = config = dataclasses.replace(config, events=events)
        self.gan = resolve_gan(config, self.taxonomy)
        self.train_indices, self.holdout_indices = holdout_split(len(reader), config.holdout)
        z_dim = self.gan.generator.z_dim
        self.data = GanTrainData(reader, process, config.augment, seed=config.seed, z_dim=z_dim)
        self.eval_data = GanTrainData(
            reader, process, config.augment, train=False, seed=config.seed, z_dim=z_dim
        )
        self.class_ids = self.data.class_ids

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            generator = ChangenGenerator(self.gan.generator, config.encoder_weights)
            discriminator = SegDiscriminator(self.gan.discriminator)
        ema = copy.deepcopy(generator)
        self.step = 0
        state: dict[str, Any] = {}
        if checkpoint is not None:
            load_weights(
                checkpoint,
                {"generator": generator, "generator_ema": ema, "discriminator": discriminator},
            )
            state = load_state(checkpoint)
            self.step = int(state["step"])
        ema.requires_grad_(False).eval()
        opt_g = torch.optim.Adam(generator.parameters(), lr=config.lr_g, betas=config.betas)
        opt_d = torch.optim.Adam(discriminator.parameters(), lr=config.lr_d, betas=config.betas)
        self.generator, self.opt_g = fabric.setup(generator, opt_g)
        self.discriminator, self.opt_d = fabric.setup(discriminator, opt_d)
        self.ema = fabric.to_device(ema)
        self.ema_updates = 0
        self.loop_state: dict[str, Any] = state.get("loop", {})
        self._batches: Iterator[dict[str, Tensor]] | None = None
        self._last: tuple[Mapping[str, Tensor], Tensor] | None = None
        if state:
            self.opt_g.load_state_dict(state["optimizer_g"])
            self.opt_d.load_state_dict(state["optimizer_d"])
            self.ema_updates = int(state["ema"]["updates"])
            restore_rng(state["rng"])

    # -- data ---------------------------------------------------------------------------

    def batches(self) -> Iterator[dict[str, Tensor]]:
        """Endless training batches on the device, starting at the current step."""
        c = self.config
        sampler = StepBatchSampler(
            self.train_indices,
            c.batch_size,
            c.seed,
            start_step=self.step,
            rank=self.fabric.global_rank,
            world_size=self.fabric.world_size,
        )
        loader = make_loader(self.data, sampler, c.run.workers, c.seed)
        wrapped = self.fabric.setup_dataloaders(loader, use_distributed_sampler=False)
        return iter(cast(DataLoader[dict[str, Tensor]], wrapped))  # one loader in, one out

    def inputs(self, batch: Mapping[str, Tensor]) -> tuple[Tensor, Tensor, Tensor, Tensor | None]:
        return to_model_inputs(batch, self.gan.generator.z_dim)

    # -- one iteration ------------------------------------------------------------------

    def g_step(self, batch: Mapping[str, Tensor]) -> tuple[Tensor, Tensor]:
        """One generator update (D frozen); returns the loss and the fake image (detached)."""
        image, t1_mask, t2_mask, noise = self.inputs(batch)
        fake = self.generator(image, t1_mask, t2_mask, noise=noise)
        d = unwrap(self.discriminator)
        d.requires_grad_(False)
        try:
            with self.fabric.autocast():
                loss = g_loss(d, fake, t2_mask, GAN_IGNORE)
            self.opt_g.zero_grad(set_to_none=True)
            self.fabric.backward(loss)
            self.opt_g.step()
        finally:
            d.requires_grad_(True)
        ema_update(self.ema, unwrap(self.generator), self.config.ema_decay)
        self.ema_updates += 1
        return loss.detach(), fake.detach()

    def d_step(self, batch: Mapping[str, Tensor], fake: Tensor) -> Tensor:
        """One discriminator update: real ``(I_t, S_t)`` against fake ``(fake, S_t+1)``."""
        image, t1_mask, t2_mask, _ = self.inputs(batch)
        loss = d_loss(self.discriminator, image, t1_mask, fake, t2_mask, GAN_IGNORE)
        self.opt_d.zero_grad(set_to_none=True)
        self.fabric.backward(loss)
        self.opt_d.step()
        return loss.detach()

    @torch.no_grad()
    def fake(self, batch: Mapping[str, Tensor], ema: bool = False) -> Tensor:
        """``G(S_t+1, I_t, S_t, z)`` of a batch without gradients: the EMA G (eval mode) if
        ``ema``, else G in its current mode (in training mode this advances its BatchNorm
        and spectral-norm state, as a training forward would)."""
        image, t1_mask, t2_mask, noise = self.inputs(batch)
        g = self.ema if ema else self.generator
        return g(image, t1_mask, t2_mask, noise=noise)

    def train_step(self, batch: Mapping[str, Tensor]) -> tuple[dict[str, Tensor], Tensor]:
        """Algorithm 1 lines 4-6: synthesise, update G once, update D once; ``step`` += 1.
        Returns the losses and the (detached) fake images."""
        loss_g, fake = self.g_step(batch)
        loss_d = self.d_step(batch, fake)
        self.step += 1
        return {"loss_g": loss_g, "loss_d": loss_d}, fake

    def update(self) -> dict[str, Tensor]:
        """The engine's step: :meth:`train_step` on the next batch of :meth:`batches`."""
        if self._batches is None:
            self._batches = self.batches()
        batch = next_batch(self._batches)
        losses, fake = self.train_step(batch)
        self._last = batch, fake
        return losses

    def log_extras(self) -> dict[str, Tensor]:
        """D's pixel accuracies on the last batch, computed only for a metrics row."""
        return {} if self._last is None else self.d_accuracies(*self._last)

    @torch.no_grad()
    def d_accuracies(self, batch: Mapping[str, Tensor], fake: Tensor) -> dict[str, Tensor]:
        """D's pixel accuracy on the real pair (class of S_t) and the fake pair ("fake"),
        with D in eval mode so that measuring does not advance its spectral-norm state."""
        image, t1_mask, t2_mask, _ = self.inputs(batch)
        d = unwrap(self.discriminator)
        d.eval()
        try:
            with self.fabric.autocast():
                real = d_accuracy(d(image), t1_mask, real=True)
                made = d_accuracy(d(fake), t2_mask, real=False)
        finally:
            d.train()
        return {"d_acc_real": real, "d_acc_fake": made}

    # -- checkpoints --------------------------------------------------------------------

    def run_config(self) -> dict[str, Any]:
        """The checkpoint config without its step (also written as ``RUN/config.json``)."""
        return {
            "kind": KIND,
            "gan": self.gan.to_dict(),
            "taxonomy": self.taxonomy.to_dict(),
            "class_ids": list(self.class_ids),
            "train": self.config.to_dict(),
            "changen_version": __version__,
        }

    def save(self, loop_state: dict[str, Any]) -> None:
        """Write the run's checkpoint of the current step, publish it as ``last`` and prune
        (rank 0 writes, others wait)."""
        if self.run is None:
            raise ValueError("GanTrainer.save needs the run folder (GanTrainer(run=...))")
        if self.fabric.is_global_zero:
            state = {
                "step": self.step,
                "optimizer_g": self.opt_g.state_dict(),
                "optimizer_d": self.opt_d.state_dict(),
                "ema": {"decay": self.config.ema_decay, "updates": self.ema_updates},
                "data": {"step": self.step, "samples_seen": self.step * self.config.batch_size},
                "rng": capture_rng(),
                "loop": loop_state,
            }
            models = {
                "generator": self.generator,
                "generator_ema": self.ema,
                "discriminator": self.discriminator,
            }
            config = {**self.run_config(), "step": self.step}
            save_step(self.run, self.step, models, config, state, self.config.run.keep)
        self.fabric.barrier()

    # -- evaluation ---------------------------------------------------------------------

    def eval_indices(self, count: int) -> list[int]:
        """Items for previews and FID: held-out ones (training ones when none are held out)."""
        return (self.holdout_indices or self.train_indices)[:count]

    def eval_examples(self, count: int, regions: bool = False) -> list[GanExample]:
        return [self.eval_data.example(0, i, regions) for i in self.eval_indices(count)]

    @torch.no_grad()
    def synthesize(self, examples: list[GanExample], batch_size: int = 16) -> np.ndarray:
        """EMA-G post-event images (N, H, W, 3) uint8 for numpy examples, in float32."""
        ids = self.data.model_ids
        out = []
        for k in range(0, len(examples), batch_size):
            chunk = examples[k : k + batch_size]
            images = torch.from_numpy(np.stack([e.image for e in chunk]))
            batch = {
                "t1_image": images.permute(0, 3, 1, 2),
                "t1_mask": torch.from_numpy(np.stack([ids(e.t1_mask) for e in chunk])),
                "t2_mask": torch.from_numpy(np.stack([ids(e.t2_mask) for e in chunk])),
                "noise": torch.from_numpy(np.stack([e.noise for e in chunk])),
            }
            batch = self.fabric.to_device(batch)
            fake = self.fake(batch, ema=True).float()
            pixels = ((fake.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
            out.append(pixels.permute(0, 2, 3, 1).cpu().numpy())
        return np.concatenate(out)

    def preview(self, examples: list[GanExample]) -> np.ndarray:
        """Grid with one column per example; rows I_t, S_t, S_t+1, Ĩ_t+1 (EMA G), events."""
        fakes = self.synthesize(examples)
        tax = self.taxonomy
        events = []
        for e in examples:
            bits = e.regions if e.regions is not None else np.zeros(e.t2_mask.shape, np.uint8)
            events.append(
                overlay_events(
                    tax.colorize(e.t2_mask),
                    (bits & CREATED) > 0,
                    (bits & REMOVED) > 0,
                    (bits & RECLASSED) > 0,
                    legend=False,
                )
            )
        rows = [
            [e.image for e in examples],
            [e.t1_mask for e in examples],
            [e.t2_mask for e in examples],
            list(fakes),
            events,
        ]
        labels = ["I_t", "S_t", "S_t+1", "G_ema", "events"]
        cell = min(256, max(96, self.config.size))
        return make_grid(
            rows, titles=[e.name for e in examples], row_labels=labels, taxonomy=tax, cell=cell
        )


# -- FID / KID ------------------------------------------------------------------------------


class Fidelity:
    """Calls ``changen.metrics.fidelity.compute_fidelity`` if it is installed and works;
    otherwise says why once and stays off."""

    def __init__(self, note: Note) -> None:
        self.note = note
        self.fn: Callable[..., Any] | None = None
        try:
            module = importlib.import_module("changen.metrics.fidelity")
            self.fn = module.compute_fidelity
        except (ImportError, AttributeError) as e:
            note(f"FID/KID skipped: changen.metrics.fidelity is not available ({e})")

    def __call__(self, real: np.ndarray, fake: np.ndarray) -> dict[str, float]:
        if self.fn is None:
            return {}
        try:
            result = self.fn(real, fake)
        except (ChangenError, OSError, RuntimeError, ValueError) as e:
            self.note(f"FID/KID skipped from now on: {e}")
            self.fn = None
            return {}
        if dataclasses.is_dataclass(result) and not isinstance(result, type):
            result = dataclasses.asdict(result)
        if isinstance(result, Mapping):
            return {str(k): float(v) for k, v in result.items() if isinstance(v, int | float)}
        return {"fid": float(result)}


# -- the loop -------------------------------------------------------------------------------


def train_generator(
    config: GanTrainConfig,
    out: str | os.PathLike[str],
    *,
    resume: bool = False,
    progress: ProgressSink = SILENT,
    fabric: Fabric | None = None,
) -> GanTrainResult:
    """Train (or, with ``resume``, continue) a Changen GAN run in the folder ``out``.

    Without ``resume`` the folder must be new or empty. With it, the run continues from
    ``checkpoints/last``; ``config`` may differ from the run's only in
    :data:`~changen.synthesis.gan.train_config.RUNTIME_FIELDS` (build it with
    :func:`~changen.synthesis.gan.train_config.resume_config`). ``progress`` receives the step
    bar and one-line notes (rank 0 only).
    """
    run = Path(out)
    if fabric is None:
        fabric = make_fabric(config.run)
        fabric.launch()
    checkpoint = None
    if resume:
        checkpoint = latest_checkpoint(run)
        saved = GanTrainConfig.from_dict(load_config(checkpoint)["train"])
        check_gan_resume(config, saved, run)
    else:
        check_output_dir(run, overwrite=False)
    rank0 = fabric.is_global_zero
    sink = progress if rank0 else SILENT
    trainer = GanTrainer(config, fabric, checkpoint=checkpoint, run=run)
    config = trainer.config
    if trainer.step >= config.steps:
        sink.note(f"{run}: already at step {trainer.step} >= --steps {config.steps}; nothing to do")
        return GanTrainResult(run, checkpoint or latest_checkpoint(run), trainer.step)
    trainer.data.example(0, trainer.train_indices[0])  # bad data fails here, not in a worker
    examples = []
    log = None
    if rank0:
        examples = trainer.eval_examples(config.preview, regions=True)
        run.mkdir(parents=True, exist_ok=True)
        write_text_atomic(run / "config.json", _json(trainer.run_config()))
        log = MetricsLog(
            run / "metrics.csv",
            plot=run / "losses.png",
            resume_step=trainer.step if resume else None,
            groups=PLOT_GROUPS,
        )
    fidelity = Fidelity(sink.note) if config.fid_every and log is not None else None
    if fidelity is not None and not trainer.holdout_indices:
        sink.note("FID/KID skipped: no held-out items (--holdout 0)")
        fidelity = None
    periodic = []
    if examples:
        periodic.append(Periodic(config.sample_every, _previewer(trainer, examples, run)))
    if fidelity is not None:
        periodic.append(Periodic(config.fid_every, _fid_scorer(trainer, fidelity)))
    run_loop(
        trainer,
        config.steps,
        config.run,
        log=log,
        advance=sink.task("train G", config.steps, completed=trainer.step),
        periodic=periodic,
        window=Window.from_state(trainer.loop_state.get("window")),
        reduce=mean_over_processes(fabric),
        shown=("loss_d", "loss_g"),
    )
    if log is not None:
        log.close()
    fabric.barrier()
    return GanTrainResult(run, run / "checkpoints" / "last", trainer.step)


def _previewer(trainer: GanTrainer, examples: list[GanExample], run: Path) -> Callable[[int], None]:
    def preview(step: int) -> None:
        save_png(run / "samples" / f"step-{step}.png", trainer.preview(examples))

    return preview


def _fid_scorer(trainer: GanTrainer, fidelity: Fidelity) -> Callable[[int], dict[str, float]]:
    def score(step: int) -> dict[str, float]:
        examples = trainer.eval_examples(trainer.config.fid_samples)
        real = np.stack([e.image for e in examples])
        return fidelity(real, trainer.synthesize(examples))

    return score


def _json(data: Mapping[str, Any]) -> str:
    return json.dumps(data, indent=2, sort_keys=True) + "\n"

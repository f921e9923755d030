"""Training a latent autoencoder (``changen train autoencoder --kind kl|vq``) on the engine.

Each step draws a batch of image crops of single-temporal scenes (:class:`ImageCrops`, the
images of :class:`~changen.synthesis.crops.SceneCrops`; masks are not needed), then

1. the autoencoder takes one Adam step on L1 (+ ``grad_weight`` × edge L1) + ``reg_weight`` ×
   (KL, or codebook + commitment) and, from step ``disc_start`` on, + ``disc_weight`` × the
   adaptive weight × the hinge GAN loss of the patch discriminator (frozen for this step);
2. from ``disc_start`` on, the discriminator takes one Adam step on the hinge loss of the real
   crops against the (detached) reconstructions.

The loss functions, presets and defaults follow latent diffusion's first stage
(:mod:`changen.synthesis.diffusion.autoencoder`): Adam β = (0.5, 0.9); KL: weight 1e-6, GAN
from step 50001 at weight 0.5; VQ: codebook weight 1, GAN from step 0 at weight 0.75; the
learning rate defaults to LDM's 4.5e-6 × the global batch for the ``full`` presets and to 1e-3
for the ``tiny`` ones (useful on a CPU in minutes).

Run folder (the engine's, :mod:`changen.engine.run`)::

    RUN/config.json                   the checkpoint config without "step"
    RUN/checkpoints/step-<N>/         config.json (kind "changen_autoencoder", the train config,
                                      the architecture, scaling_factor), autoencoder.safetensors,
                                      discriminator.safetensors, state.pt, and autoencoder/ —
                                      the same model as a diffusers folder (its weights a hard
                                      link), so the checkpoint (or RUN) opens as a latent space
    RUN/checkpoints/last/             the newest checkpoint
    RUN/samples/step-<N>.png          held-out crops (top) and their reconstructions (bottom)
    RUN/metrics.csv, RUN/losses.png   losses; PSNR / L1 on held-out crops; VQ code usage and
                                      perplexity (of the last batch and of the held-out crops)

The ``scaling_factor`` of a checkpoint is 1 / std of the latents of the held-out crops (the
training crops when none are held out), measured when it is saved, as Stable Diffusion set its
own; it is written into ``autoencoder/config.json`` and the checkpoint's ``config.json``. The
``autoencoder/`` folder is added once the engine's checkpoint is in place and before it is
published as ``last``; a save cut short between the two leaves a ``step-<N>`` without it (the
previous ``last`` stays whole).

Exact resume: data are a pure function of ``(seed, step)`` (the engine's
:class:`~changen.engine.data.StepBatchSampler` and the crops' per-item seeds), the KL
posterior sample of step ``k`` draws from a generator seeded by ``(seed, k, rank)``, models are
initialised inside :func:`torch.random.fork_rng`, and optimizer states and global RNG states
travel in ``state.pt``: a resumed run reproduces the uninterrupted one (bitwise on CPU).
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from changen import __version__
from changen.data.atomic import write_text_atomic
from changen.data.augment import AugmentConfig
from changen.data.output import check_output_dir
from changen.data.readers import open_dataset
from changen.engine.checkpoint import (
    load_config,
    load_state,
    load_weights,
    save_checkpoint,
    unwrap,
)
from changen.engine.config import RunConfig, make_fabric
from changen.engine.data import Key, StepBatchSampler, holdout_split, make_loader, next_batch
from changen.engine.loop import Periodic, TrainTask, Window, mean_over_processes, run_loop
from changen.engine.metrics import MetricsLog
from changen.engine.progress import SILENT, ProgressSink
from changen.engine.run import (
    capture_rng,
    check_resume,
    latest_checkpoint,
    prune_checkpoints,
    publish_last,
    restore_rng,
    step_dir,
)
from changen.errors import ConfigError
from changen.synthesis.crops import SceneCrops
from changen.synthesis.diffusion.autoencoder import (
    KIND,
    WEIGHTS_NAME,
    AutoencoderConfig,
    AutoencoderObjective,
    LossWeights,
    PatchDiscriminator,
    build_autoencoder,
    code_usage,
    hinge_d_loss,
    latent_scale,
    preset,
    write_diffusers_folder,
)
from changen.viz.grid import make_grid, save_png

if TYPE_CHECKING:
    from lightning_fabric import Fabric

RUNTIME_FIELDS = ("steps", "run", "sample_every", "eval_every", "eval_samples", "preview")
"""Fields a resumed run may change (``run`` but its precision)."""

KIND_DEFAULTS: dict[str, dict[str, float]] = {
    "kl": {"reg_weight": 1e-6, "disc_start": 50001, "disc_weight": 0.5},
    "vq": {"reg_weight": 1.0, "disc_start": 0, "disc_weight": 0.75},
}
"""Latent diffusion's first-stage settings (KL-f8 and VQ-f4 configs) by kind."""

BASE_LR = 4.5e-6
"""LDM's base learning rate, multiplied by the global batch (its ``scale_lr``)."""
TINY_LR = 1e-3
"""The learning rate of the ``tiny`` presets."""

PLOT_GROUPS = {"loss": "loss", "PSNR (dB)": "psnr", "codes used": "code_usage"}


def default_run() -> RunConfig:
    """The autoencoder's run defaults: a checkpoint every 2000 steps, the newest 3 kept."""
    return RunConfig(save_every=2000, keep=3, log_every=10)


@dataclass(frozen=True)
class AutoencoderTrainConfig:
    """Everything that defines an autoencoder training run.

    Data: ``data`` (any single-temporal dataset; only its images are used),
    ``format``/``taxonomy`` (detected when None), ``holdout`` (fraction never trained on; grids,
    PSNR and the scaling factor use it), ``size`` (crop side, a multiple of the preset's
    factor), ``augment`` (random dihedral transforms). Model: ``kind`` (``kl`` / ``vq``),
    ``preset`` (``full`` / ``tiny``, :data:`~changen.synthesis.diffusion.autoencoder.PRESETS`).
    Optimisation: ``steps``, global ``batch_size``, ``lr`` (None: see the module docstring),
    ``betas``, ``grad_weight`` (edge L1), ``reg_weight`` (KL or codebook), ``disc_start``,
    ``disc_weight``, ``adaptive`` (LDM's adaptive GAN weight; off: ``disc_weight`` alone) —
    the None ones take :data:`KIND_DEFAULTS`. Runtime (:data:`RUNTIME_FIELDS`): ``run``, and
    how often to write grids of ``preview`` held-out crops and to measure PSNR on
    ``eval_samples`` of them (0: only at the end).
    """

    data: str
    format: str | None = None
    taxonomy: str | None = None
    holdout: float = 0.1
    kind: str = "kl"
    preset: str = "full"
    size: int = 256
    augment: bool = True
    steps: int = 100_000
    batch_size: int = 8
    lr: float | None = None
    betas: tuple[float, float] = (0.5, 0.9)
    grad_weight: float = 0.1
    reg_weight: float | None = None
    disc_start: int | None = None
    disc_weight: float | None = None
    adaptive: bool = True
    seed: int = 0
    run: RunConfig = dataclasses.field(default_factory=default_run)
    sample_every: int = 500
    eval_every: int = 500
    eval_samples: int = 16
    preview: int = 4

    def __post_init__(self) -> None:
        arch = preset(self.kind, self.preset)
        if self.size < 4 * arch.factor or self.size % arch.factor:
            fix = max(4, round(self.size / arch.factor)) * arch.factor
            raise ConfigError(
                f"--size {self.size}: the {self.kind} {self.preset} autoencoder needs a multiple "
                f"of its factor {arch.factor} of at least {4 * arch.factor}; use e.g. --size {fix}"
            )
        for name in ("steps", "batch_size", "eval_samples"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}={getattr(self, name)} must be at least 1")
        for name in ("sample_every", "eval_every", "preview"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name}={getattr(self, name)} must be >= 0")
        defaults = KIND_DEFAULTS[self.kind]
        for name, value in defaults.items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, type(value)(value))
        if self.lr is None:
            lr = TINY_LR if self.preset == "tiny" else BASE_LR * self.batch_size
            object.__setattr__(self, "lr", lr)
        if cast(float, self.lr) <= 0:
            raise ConfigError(f"--lr {self.lr} must be positive, e.g. --lr 1e-3")
        for name in ("reg_weight", "disc_weight", "grad_weight", "disc_start"):
            if getattr(self, name) < 0:
                raise ConfigError(f"--{name.replace('_', '-')} {getattr(self, name)} must be >= 0")

    @property
    def architecture(self) -> AutoencoderConfig:
        return preset(self.kind, self.preset)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["betas"] = list(self.betas)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AutoencoderTrainConfig:
        unknown = sorted(set(data) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ConfigError(f"unknown autoencoder training keys {unknown}; remove them")
        values = dict(data)
        if "betas" in values:
            values["betas"] = tuple(values["betas"])
        if "run" in values:
            values["run"] = RunConfig.from_dict(values["run"])
        return cls(**values)


def resume_config(folder: Path, **overrides: Any) -> AutoencoderTrainConfig:
    """The training config of the run in ``folder`` with the runtime fields in ``overrides``
    replaced (``run`` as a dict of the :class:`RunConfig` fields to change)."""
    fixed = sorted(k for k in overrides if k not in RUNTIME_FIELDS)
    if fixed:
        raise ConfigError(
            f"{', '.join(fixed)} cannot change when resuming (the run's config.json fixes "
            f"them); drop them, or start a new run"
        )
    saved = saved_config(latest_checkpoint(folder))
    if isinstance(overrides.get("run"), Mapping):
        overrides["run"] = dataclasses.replace(saved.run, **overrides["run"])
    config = dataclasses.replace(saved, **overrides)
    check_resume(config.to_dict(), saved.to_dict(), RUNTIME_FIELDS, folder)
    return config


def saved_config(checkpoint: Path) -> AutoencoderTrainConfig:
    """The training config recorded in an autoencoder checkpoint."""
    config = load_config(checkpoint)
    if config.get("kind") != KIND:
        raise ConfigError(
            f"{checkpoint}: a {config.get('kind')} checkpoint, not an autoencoder run; resume "
            f"a run of `changen train autoencoder`"
        )
    return AutoencoderTrainConfig.from_dict(config["train"])


def to_unit(image: np.ndarray) -> Tensor:
    """(H, W, 3) uint8 → (3, H, W) float32 in [−1, 1]."""
    return (torch.from_numpy(image).permute(2, 0, 1).float() / 127.5 - 1.0).contiguous()


class ImageCrops(Dataset[dict[str, Tensor]]):
    """The images of :class:`~changen.synthesis.crops.SceneCrops` by key ``(epoch, index)``:
    ``{"image": (3, H, W) float32 in [−1, 1]}`` (masks are neither needed nor required)."""

    def __init__(self, crops: SceneCrops) -> None:
        self.crops = crops

    def __len__(self) -> int:
        return len(self.crops)

    def __getitem__(self, key: Key) -> dict[str, Tensor]:
        return {"image": to_unit(self.crops.crop(*key).image)}


def psnr(recon: Tensor, target: Tensor) -> float:
    """Peak signal-to-noise ratio (dB) of images in [−1, 1], over the whole batch."""
    mse = float(((recon.float() - target.float()) / 2).pow(2).mean())
    return 10.0 * float(np.log10(1.0 / max(mse, 1e-12)))


def step_seed(seed: int, step: int, rank: int) -> int:
    """The seed of the KL posterior sample of ``step`` on ``rank``."""
    return int(np.random.SeedSequence([seed, step, rank]).generate_state(1)[0])


@dataclass(frozen=True)
class AutoencoderTrainResult:
    """Where a run ended: its folder, the last checkpoint and the step reached."""

    run: Path
    checkpoint: Path
    step: int


class AutoencoderTrainer(TrainTask):
    """Autoencoder, patch discriminator, optimizers and data of one run on ``fabric``: the
    autoencoder's :class:`~changen.engine.loop.TrainTask`. ``checkpoint`` resumes from its
    step; ``run`` is the run folder :meth:`save` writes into."""

    def __init__(
        self,
        config: AutoencoderTrainConfig,
        fabric: Fabric,
        *,
        checkpoint: Path | None = None,
        run: Path | None = None,
    ) -> None:
        self.config = config
        self.fabric = fabric
        self.run = run
        reader = open_dataset(config.data, format=config.format, taxonomy=config.taxonomy)
        self.train_indices, self.holdout_indices = holdout_split(len(reader), config.holdout)
        augment = AugmentConfig(config.size, (1.0, 1.0), *(config.augment,) * 3)
        what = "the autoencoder"
        self.data = ImageCrops(SceneCrops(reader, config.size, config.seed, augment, what=what))
        self.eval_data = ImageCrops(SceneCrops(reader, config.size, config.seed, what=what))
        self.arch = arch = config.architecture
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            model = build_autoencoder(arch)
            disc = PatchDiscriminator(arch.disc_channels, arch.disc_layers)
        self.step = 0
        state: dict[str, Any] = {}
        if checkpoint is not None:
            load_weights(checkpoint, {"autoencoder": model, "discriminator": disc})
            state = load_state(checkpoint)
            self.step = int(state["step"])
        lr = cast(float, config.lr)
        opt_ae = torch.optim.Adam(model.parameters(), lr=lr, betas=config.betas)
        opt_d = torch.optim.Adam(disc.parameters(), lr=lr, betas=config.betas)
        weights = LossWeights(
            config.grad_weight,
            cast(float, config.reg_weight),
            cast(float, config.disc_weight),
            config.adaptive,
        )
        objective = AutoencoderObjective(model, arch.kind, weights)
        self.objective, self.opt_ae = fabric.setup(objective, opt_ae)
        self.disc, self.opt_d = fabric.setup(disc, opt_d)
        self.loop_state: dict[str, Any] = state.get("loop", {})
        self._batches: Iterator[dict[str, Tensor]] | None = None
        self._last_codes: Tensor | None = None
        if state:
            self.opt_ae.load_state_dict(state["optimizer_ae"])
            self.opt_d.load_state_dict(state["optimizer_d"])
            restore_rng(state["rng"])

    @property
    def model(self) -> nn.Module:
        """The diffusers autoencoder (unwrapped)."""
        return cast(AutoencoderObjective, unwrap(self.objective)).net.model

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
        return iter(cast(DataLoader[dict[str, Tensor]], wrapped))

    def eval_images(self, count: int) -> Tensor:
        """``count`` held-out crops (training ones when none are held out) on the device."""
        indices = (self.holdout_indices or self.train_indices)[:count]
        images = torch.stack([self.eval_data[(0, i)]["image"] for i in indices])
        return self.fabric.to_device(images)

    # -- one iteration ------------------------------------------------------------------

    def gan_on(self) -> bool:
        """Whether the patch-GAN term is on at the current step (never with weight 0)."""
        c = self.config
        return cast(float, c.disc_weight) > 0 and self.step >= cast(int, c.disc_start)

    def train_step(self, images: Tensor) -> dict[str, Tensor]:
        """One autoencoder update and, with the GAN term on, one discriminator update;
        ``step`` += 1. Returns the step's figures."""
        generator = torch.Generator(images.device)
        generator.manual_seed(step_seed(self.config.seed, self.step, self.fabric.global_rank))
        gan = self.gan_on()
        d = unwrap(self.disc)
        d.requires_grad_(False)
        try:
            loss, figures, recon, codes = self.objective(images, generator, d if gan else None)
        finally:
            d.requires_grad_(True)
        self.opt_ae.zero_grad(set_to_none=True)
        self.fabric.backward(loss)
        self.opt_ae.step()
        if gan:
            d_loss = hinge_d_loss(self.disc(images), self.disc(recon))
            self.opt_d.zero_grad(set_to_none=True)
            self.fabric.backward(d_loss)
            self.opt_d.step()
            figures["loss_d"] = d_loss.detach()
        self._last_codes = codes
        self.step += 1
        return figures

    def update(self) -> dict[str, Tensor]:
        """The engine's step: :meth:`train_step` on the next batch of :meth:`batches`."""
        if self._batches is None:
            self._batches = self.batches()
        return self.train_step(next_batch(self._batches)["image"])

    def log_extras(self) -> dict[str, float]:
        """The codebook use of the last batch (VQ), computed only for a metrics row."""
        if self._last_codes is None:
            return {}
        return code_usage(self._last_codes, self.arch.codebook)

    # -- evaluation ---------------------------------------------------------------------

    @torch.no_grad()
    def reconstruct(self, images: Tensor) -> tuple[Tensor, Tensor | None]:
        """Deterministic reconstructions in fp32 (KL: the posterior mean; VQ: quantised) and
        the VQ codes, with the model in eval mode."""
        model: Any = self.model
        model.eval()
        try:
            if self.arch.kind == "kl":
                return model.decode(model.encode(images).latent_dist.mode()).sample, None
            quant, _, (_, _, codes) = model.quantize(model.encode(images).latents)
            return model.decode(quant, force_not_quantize=True).sample, codes.flatten()
        finally:
            model.train()

    def evaluate(self, images: Tensor) -> dict[str, float]:
        """PSNR and L1 of the held-out reconstructions, and their codebook use (VQ)."""
        recon, codes = self.reconstruct(images)
        recon = recon.clamp(-1, 1)
        figures = {"val_psnr": psnr(recon, images), "val_l1": float((recon - images).abs().mean())}
        if codes is not None:
            usage = code_usage(codes, self.arch.codebook)
            figures |= {f"val_{k}": v for k, v in usage.items()}
        return figures

    def preview(self, images: Tensor) -> np.ndarray:
        """Grid: held-out crops (top row) and their reconstructions (bottom row)."""
        recon, _ = self.reconstruct(images)

        def pixels(x: Tensor) -> list[np.ndarray]:
            u8 = ((x.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
            return list(u8.permute(0, 2, 3, 1).cpu().numpy())

        cell = min(256, max(96, self.config.size))
        return make_grid([pixels(images), pixels(recon)], row_labels=["image", "recon"], cell=cell)

    # -- checkpoints --------------------------------------------------------------------

    def run_config(self) -> dict[str, Any]:
        """The checkpoint config without its step and scale (also ``RUN/config.json``)."""
        return {
            "kind": KIND,
            "autoencoder": self.arch.to_dict(),
            "train": self.config.to_dict(),
            "changen_version": __version__,
        }

    def save(self, loop_state: dict[str, Any]) -> None:
        """Write the checkpoint of the current step with its diffusers folder, publish it as
        ``last`` and prune (rank 0 writes, others wait)."""
        if self.run is None:
            raise ValueError("AutoencoderTrainer.save needs the run folder (run=...)")
        if self.fabric.is_global_zero:
            scale = latent_scale(self.model.eval(), self.eval_images(self.config.eval_samples))
            self.model.train()
            state = {
                "step": self.step,
                "optimizer_ae": self.opt_ae.state_dict(),
                "optimizer_d": self.opt_d.state_dict(),
                "data": {"step": self.step, "samples_seen": self.step * self.config.batch_size},
                "rng": capture_rng(),
                "loop": loop_state,
            }
            config = {**self.run_config(), "step": self.step, "scaling_factor": scale}
            models = {
                WEIGHTS_NAME.removesuffix(".safetensors"): self.model,
                "discriminator": self.disc,
            }
            saved = save_checkpoint(step_dir(self.run, self.step), models, config, state)
            write_diffusers_folder(self.model, saved, scale)
            publish_last(saved)
            prune_checkpoints(self.run, self.config.run.keep)
        self.fabric.barrier()


# -- the loop -------------------------------------------------------------------------------


def train_autoencoder(
    config: AutoencoderTrainConfig,
    out: str | os.PathLike[str],
    *,
    resume: bool = False,
    progress: ProgressSink = SILENT,
    fabric: Fabric | None = None,
) -> AutoencoderTrainResult:
    """Train (or, with ``resume``, continue) an autoencoder run in the folder ``out``.

    Without ``resume`` the folder must be new or empty; with it the run continues from
    ``checkpoints/last`` and ``config`` may differ from the run's only in
    :data:`RUNTIME_FIELDS` (build it with :func:`resume_config`)."""
    run = Path(out)
    if fabric is None:
        fabric = make_fabric(config.run)
        fabric.launch()
    checkpoint = None
    if resume:
        checkpoint = latest_checkpoint(run)
        check_resume(config.to_dict(), saved_config(checkpoint).to_dict(), RUNTIME_FIELDS, run)
    else:
        check_output_dir(run, overwrite=False)
    rank0 = fabric.is_global_zero
    sink = progress if rank0 else SILENT
    trainer = AutoencoderTrainer(config, fabric, checkpoint=checkpoint, run=run)
    if trainer.step >= config.steps:
        sink.note(f"{run}: already at step {trainer.step} >= --steps {config.steps}; nothing to do")
        return AutoencoderTrainResult(run, checkpoint or latest_checkpoint(run), trainer.step)
    _ = trainer.data[(0, trainer.train_indices[0])]  # bad data fails here, not in a worker
    log = None
    periodic = []
    if rank0:
        run.mkdir(parents=True, exist_ok=True)
        write_text_atomic(run / "config.json", _json(trainer.run_config()))
        log = MetricsLog(
            run / "metrics.csv",
            plot=run / "losses.png",
            resume_step=trainer.step if resume else None,
            groups=PLOT_GROUPS,
        )
        held = trainer.eval_images(config.eval_samples)
        periodic.append(Periodic(config.eval_every, lambda step: trainer.evaluate(held)))
        if config.preview:
            periodic.append(
                Periodic(config.sample_every, _previewer(trainer, held[: config.preview], run))
            )
    run_loop(
        trainer,
        config.steps,
        config.run,
        log=log,
        advance=sink.task(f"train {config.kind} autoencoder", config.steps, completed=trainer.step),
        periodic=periodic,
        window=Window.from_state(trainer.loop_state.get("window")),
        reduce=mean_over_processes(fabric),
        shown=("loss_rec", "loss"),
    )
    if log is not None:
        log.close()
    fabric.barrier()
    return AutoencoderTrainResult(run, run / "checkpoints" / "last", trainer.step)


def _previewer(trainer: AutoencoderTrainer, images: Tensor, run: Path) -> Callable[[int], None]:
    def preview(step: int) -> None:
        save_png(run / "samples" / f"step-{step}.png", trainer.preview(images))

    return preview


def _json(data: Mapping[str, Any]) -> str:
    return json.dumps(data, indent=2, sort_keys=True) + "\n"

"""Post-event images from a trained diffusion checkpoint (kind ``changen_diffusion``), behind
the :class:`~changen.synthesis.base.Synthesizer` interface.

- **Condition**: the post-event mask, mapped from the taxonomy's ids to the model's
  ``0..K-1`` (:mod:`changen.synthesis.classes`) and encoded by the checkpoint's
  :class:`~changen.synthesis.diffusion.labels.LabelSpec` at image resolution; a
  ``contour`` model reads the post-event instance maps instead (unlabeled mode).
- **Guidance by the pre-event image**: it is encoded by the checkpoint's latent space and
  imposed on the unchanged region by masked sampling (:mod:`.sampling`; ``switch`` the
  fraction of masked steps, ``switch = 1`` keeps the unchanged region to the pre-event
  latent). **Change mask**: pixels whose class differs (``t1_mask != t2_mask``); for the
  class-agnostic encodings (``binary``, ``contour``) also every pixel of an object that
  appeared, disappeared or was replaced (:func:`changen.events.labels.object_change` of the
  instance maps), since those models see objects, not classes. It reaches the latent grid by
  :func:`~changen.synthesis.diffusion.sampling.latent_change` (a cell is changed when any
  pixel it covers is).
- **Any size**: the network needs multiples of latent factor × its grid multiple (RS-DiT's
  patch, 2^(levels − 1) for a UNet, :func:`grid_multiple`); inputs are
  reflect-padded (split evenly between both sides) and the output cropped back. RS-DiT has no
  positional embedding and windowed attention, so a model trained at 256² samples 512² or
  1024² tiles directly (resolution scaling).
- **Noise**: each sample's draws come from ``torch.Generator().manual_seed(s)``, ``s =
  torch_seed(rng)`` of that sample's generator, on the CPU; on the CPU the passes are split
  as :func:`~changen.synthesis.inference.forward_chunks` says, so a sample's output is
  bitwise the same whatever batch it is in (a lone image runs twice).
- **Precision**: ``bf16`` (autocast around the denoiser; sampler arithmetic stays fp32) by
  default on CUDA, ``fp32`` elsewhere.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from changen.engine.checkpoint import load_config
from changen.errors import ConfigError, DataError
from changen.events.labels import object_change
from changen.sample import Taxonomy
from changen.synthesis.base import SynthesisBatch, check_rngs, torch_seed
from changen.synthesis.classes import class_lut, model_class_ids, to_model_ids
from changen.synthesis.diffusion.latent import LatentSpace
from changen.synthesis.diffusion.model import (
    KIND,
    DiffusionModelConfig,
    conditioned,
    load_denoiser,
)
from changen.synthesis.diffusion.rsdit import RSDiT
from changen.synthesis.diffusion.sampling import Denoiser, SamplingConfig, latent_change, sample
from changen.synthesis.diffusion.unet import SemanticUNet
from changen.synthesis.inference import (
    PRECISIONS,
    default_device,
    forward_chunks,
    pad_to,
    taxonomy_key,
    weights_digest,
)

AGNOSTIC = ("binary", "contour")
"""Label encodings that see objects, not classes: their change mask adds object changes."""


def grid_multiple(network: nn.Module) -> int:
    """The multiple of the latent grid a family's network needs: RS-DiT's patch size, a
    semantic UNet's 2 per downsampling (2^(levels − 1))."""
    if isinstance(network, RSDiT):
        return network.config.patch_size
    if isinstance(network, SemanticUNet):
        return int(2 ** (len(network.unet.config.block_out_channels) - 1))
    return 1


class DiffusionSynthesizer:
    """A diffusion denoiser (eval mode, frozen), its checkpoint config and latent space as a
    synthesizer. ``sampling`` says how to sample; ``batch_invariant`` (CPU) runs the passes
    so that a sample does not depend on its batch; ``checkpoint``, ``step`` and ``use_ema``
    only describe where the weights came from (:meth:`from_checkpoint` fills them)."""

    name = KIND

    def __init__(
        self,
        network: nn.Module,
        model: DiffusionModelConfig,
        latent: LatentSpace,
        *,
        sampling: SamplingConfig = SamplingConfig(),
        device: str | torch.device | None = None,
        precision: str | None = None,
        batch_invariant: bool = True,
        checkpoint: str | os.PathLike[str] | None = None,
        step: int | None = None,
        use_ema: bool = True,
    ) -> None:
        self.device = default_device(device)
        self.precision = precision or ("bf16" if self.device.type == "cuda" else "fp32")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision={self.precision!r} is unknown; use one of {PRECISIONS}")
        in_channels = model.network.get("in_channels")
        if in_channels is not None and in_channels != latent.channels:
            raise ConfigError(
                f"the denoiser takes {in_channels} latent channels but latent space "
                f"{model.latent!r} has {latent.channels}; give the autoencoder it was trained with"
            )
        model.schedule.sampler(sampling.sampler, sampling.steps)  # bad steps/sampler fail now
        self.model = model
        self.latent = latent
        self.sampling = sampling
        self.batch_invariant = batch_invariant
        self.checkpoint = None if checkpoint is None else str(checkpoint)
        self.step = step
        self.use_ema = use_ema
        self.taxonomy = Taxonomy.from_dict(model.taxonomy) if model.taxonomy else None
        self._lut = None if self.taxonomy is None else class_lut(self.taxonomy)
        self.network = network.requires_grad_(False).eval().to(self.device)
        self._digest = weights_digest(self.network)

    @classmethod
    def from_checkpoint(
        cls,
        path: str | os.PathLike[str],
        device: str | torch.device | None = None,
        precision: str | None = None,
        steps: int = 50,
        sampler: str = "ddim",
        switch: float = 1.0,
        eta: float = 0.0,
        use_ema: bool = True,
        batch_invariant: bool = True,
        n_max: int | None = None,
        n_min: int | None = None,
    ) -> DiffusionSynthesizer:
        """Load a ``changen train diffusion`` checkpoint folder (EMA weights by default);
        ``device=None`` picks CUDA when available. ``steps``, ``sampler``, ``switch``,
        ``eta`` and ``n_max`` (its ``start``) are the
        :class:`~changen.synthesis.diffusion.sampling.SamplingConfig`; ``n_min``, when given,
        replaces ``switch`` by ChangeAnywhere's two phases
        (:meth:`~changen.synthesis.diffusion.sampling.SamplingConfig.from_two_phase`)."""
        if n_min is None:
            sampling = SamplingConfig(
                sampler=sampler, steps=steps, switch=switch, eta=eta, start=n_max
            )
        else:
            sampling = SamplingConfig.from_two_phase(steps, n_max, n_min, sampler=sampler, eta=eta)
        where = default_device(device)
        network, model, latent = load_denoiser(path, ema=use_ema, device=where)
        trained = model.class_ids
        if trained and model.taxonomy:
            mapped = model_class_ids(Taxonomy.from_dict(model.taxonomy))
            if tuple(trained) != mapped:
                raise DataError(
                    f"{path}: the model was trained with model classes = taxonomy ids "
                    f"{list(trained)}, but inference maps them as {list(mapped)}; retrain with "
                    f"this changen version"
                )
        return cls(
            network,
            model,
            latent,
            sampling=sampling,
            device=where,
            precision=precision,
            batch_invariant=batch_invariant,
            checkpoint=Path(path).resolve(),
            step=load_config(path).get("step"),
            use_ema=use_ema,
        )

    def config(self) -> dict[str, Any]:
        """JSON-ready description (the dataset provenance): model, latent space, sampling,
        where the weights came from and ``weights_sha256``, what identifies them."""
        return {
            "name": self.name,
            "family": self.model.family,
            "network": dict(self.model.network),
            "labels": self.model.labels.to_dict(),
            "latent": self.latent.describe(),
            "schedule": self.model.schedule.to_dict(),
            "image_size": self.model.image_size,
            "taxonomy": dict(self.model.taxonomy),
            "sampling": self.sampling.to_dict(),
            "checkpoint": self.checkpoint,
            "step": self.step,
            "use_ema": self.use_ema,
            "weights_sha256": self._digest,
            "device": self.device.type,
            "precision": self.precision,
            "batch_invariant": self.batch_invariant,
        }

    @property
    def multiple(self) -> int:
        """Image sides must be multiples of this: latent factor × :func:`grid_multiple`."""
        return self.latent.factor * grid_multiple(self.network)

    def check_taxonomy(self, taxonomy: Taxonomy) -> None:
        """Raise :class:`ConfigError` unless ``taxonomy`` matches the model's (a contour model
        conditions on outlines, not classes, and fits any)."""
        if self.model.labels.encoding == "contour" or self.taxonomy is None:
            return
        if taxonomy_key(taxonomy) != taxonomy_key(self.taxonomy):
            raise ConfigError(
                f"the data's taxonomy {taxonomy.name!r} (ids {taxonomy.ids}, ignore "
                f"{taxonomy.ignore}) differs from the diffusion model's {self.taxonomy.name!r} "
                f"(ids {self.taxonomy.ids}, ignore {self.taxonomy.ignore}); use a model trained "
                f"on this taxonomy"
            )

    def check_unlabeled(self, mode: str) -> None:
        """Raise :class:`ConfigError` when the label encoding and the unlabeled ``mode``
        (``"none"`` or a proposal mode) disagree: contour models need unlabeled mode's
        instances, class-conditioned ones the classes it drops."""
        where = self.checkpoint or "the diffusion model"
        encoding = self.model.labels.encoding
        if encoding == "contour" and mode == "none":
            raise ConfigError(
                f"{where}: a contour-conditioned model synthesises from instance outlines; "
                f"pass --unlabeled slic, felzenszwalb or instances"
            )
        if encoding in ("onehot", "index") and mode != "none":
            raise ConfigError(
                f"{where}: a {encoding}-conditioned model needs class masks, which --unlabeled "
                f"{mode} does not give; drop --unlabeled or use a contour-conditioned model"
            )

    def _inputs(self, batch: SynthesisBatch) -> tuple[Tensor, Tensor, Tensor]:
        """Padded model inputs: image (B, 3, H', W') in [−1, 1], label maps
        (B, channels, H', W') and the change mask (B, H', W') bool."""
        _, h, w, _ = batch.t1_image.shape
        pad = (pad_to(h, self.multiple), pad_to(w, self.multiple))

        def padded(a: np.ndarray) -> np.ndarray:
            return np.pad(a, ((0, 0), *pad, *(((0, 0),) if a.ndim == 4 else ())), mode="reflect")

        spec = self.model.labels
        t2_ids = batch.t2_mask
        if self._lut is not None and spec.encoding != "contour":
            assert self.taxonomy is not None
            t2_ids = to_model_ids(batch.t2_mask, self._lut, self.taxonomy, "t2_mask")
        instances = None if batch.t2_instances is None else padded(batch.t2_instances)
        labels = spec.encode(padded(t2_ids), instances)
        change = batch.t1_mask != batch.t2_mask
        if spec.encoding in AGNOSTIC and batch.t1_instances is not None:
            assert batch.t2_instances is not None
            pairs = zip(batch.t1_instances, batch.t2_instances, strict=True)
            change |= np.stack([object_change(a, b, ignore=None) == 1 for a, b in pairs])
        image = torch.from_numpy(padded(batch.t1_image)).permute(0, 3, 1, 2)
        return (
            (image.float() / 127.5 - 1.0).to(self.device),
            labels.to(self.device),
            torch.from_numpy(padded(change)).to(self.device),
        )

    def _denoiser(self, labels: Tensor) -> Denoiser:
        """The conditioned denoiser, under bf16 autocast when asked, returning float32."""
        denoise = conditioned(self.network, labels)
        bf16 = self.precision == "bf16"

        def run(x: Tensor, t: Tensor) -> Tensor:
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=bf16):
                return denoise(x, t).float()

        return run

    def _sample(self, image: Tensor, labels: Tensor, change: Tensor, seeds: list[int]) -> Tensor:
        """Post-event images (n, 3, H', W') in [−1, 1] of one pass."""
        pre = self.latent.encode(image).float()
        generators = [torch.Generator().manual_seed(s) for s in seeds]
        out = sample(
            self._denoiser(labels),
            self.model.schedule,
            pre.shape,
            generators,
            self.sampling,
            pre_latent=pre,
            change=latent_change(change, (pre.shape[-2], pre.shape[-1])),
            device=self.device,
        )
        return self.latent.decode(out).float()

    def __call__(self, batch: SynthesisBatch, rngs: Sequence[np.random.Generator]) -> np.ndarray:
        """Post-event images (B, H, W, 3) uint8."""
        check_rngs(batch, rngs)
        if len(batch) == 0:
            return batch.t1_image.copy()
        seeds = [torch_seed(rng) for rng in rngs]
        _, h, w, _ = batch.t1_image.shape
        top, left = pad_to(h, self.multiple)[0], pad_to(w, self.multiple)[0]
        image, labels, change = self._inputs(batch)
        invariant = self.batch_invariant and self.device.type == "cpu"
        outs = []
        with torch.inference_mode():
            for rows, keep in forward_chunks(len(batch), invariant):
                part = self._sample(
                    image[rows], labels[rows], change[rows], [seeds[r] for r in rows]
                )
                outs.append(part[:keep])
        out = torch.cat(outs)[:, :, top : top + h, left : left + w]
        out = ((out + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8)
        return out.permute(0, 2, 3, 1).cpu().numpy()

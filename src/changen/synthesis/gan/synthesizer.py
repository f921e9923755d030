"""Post-event images from a trained Changen generator, behind the :class:`Synthesizer` interface.

- **Inputs**: uint8 images become float in [-1, 1] (``x / 127.5 - 1``); masks are mapped from
  the taxonomy's ids to the model's ``0..N-1`` (:mod:`changen.synthesis.classes`).
- **Noise**: each sample's noise vector is drawn from ``torch.Generator().manual_seed(s)`` with
  ``s = torch_seed(rng)`` of that sample's generator, on the CPU, so a sample's noise does not
  depend on its batch or the device.
- **Any size**: the generator needs multiples of 32; inputs are reflect-padded (split evenly
  between both sides) and the output cropped back. The network is fully convolutional, so a
  generator trained at 256² synthesises 1024² tiles directly.
- **Context at the borders**: run on exactly its input, the generator's zero-padded border
  shows in the output as a band up to about two cells of the coarsest scale (64 px) wide, its
  3×3 convs at h/32 and h/16 carrying the padding inwards; whether it is bright or dark, and
  on which edge, is learned (a bright bottom band on xView2 crops from a generator trained at
  96², dark right and left bands on the demo). Without context, sizes that are multiples of
  32, such as 256² crops, get no padding at all, so their edges are the network's own border.
  ``context`` reflect-pads that many more pixels on every side before the stride padding and
  crops them off. :meth:`GanSynthesizer.from_checkpoint` uses :data:`CONTEXT` (64: the band
  falls in the cropped margin, at 2.25× the pixels of a 256² crop and 1.27× of a 1024² tile);
  the bare constructor uses 0 and runs the generator exactly as given.
- **Fast path**: ``precision="bf16"`` runs under bf16 autocast and ``channels_last`` stores
  activations NHWC; both default on for CUDA and off on CPU (the default CPU path is fp32, whose
  per-sample outputs are the same whatever the batch composition, see the tests).
"""

from __future__ import annotations

import copy
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from changen.engine.checkpoint import load_config, load_weights, unwrap
from changen.errors import ConfigError, DataError
from changen.sample import Taxonomy
from changen.synthesis.base import SynthesisBatch, check_rngs, torch_seed
from changen.synthesis.classes import class_lut, model_class_ids, to_model_ids
from changen.synthesis.gan.config import GanConfig
from changen.synthesis.gan.generator import STRIDE, ChangenGenerator, sample_noise
from changen.synthesis.inference import (
    PRECISIONS,
    forward_chunks,
    pad_to,
    taxonomy_key,
    weights_digest,
)

KIND = "changen_gan"
CONTEXT = 2 * STRIDE


def pad_amounts(size: int, context: int = 0) -> tuple[int, int]:
    """(before, after) padding: ``context`` pixels on each side, then up to the next multiple
    of the stride, split evenly."""
    return pad_to(size, STRIDE, context)


class GanSynthesizer:
    """A Changen generator as a :class:`~changen.synthesis.base.Synthesizer`.

    The generator (or the module under a DDP / Fabric / compile wrapper) is copied, so a
    module that is still being trained is left untouched.
    ``precision`` / ``channels_last`` default to bf16 + channels-last on CUDA and fp32 +
    contiguous elsewhere. ``batch_invariant`` (CPU) runs the forward passes so that a sample's
    output is bitwise the same whatever batch it is in (:func:`forward_chunks`); it costs a
    second pass for a lone image, so turn it off for one-off single images. ``context`` is the
    reflect-padded border in pixels (see the module docstring). ``checkpoint``,
    ``step`` and ``use_ema`` only describe where the weights came from (they appear in
    :meth:`config`); :meth:`from_checkpoint` fills them.
    """

    name = KIND

    def __init__(
        self,
        generator: ChangenGenerator,
        taxonomy: Taxonomy,
        *,
        device: str | torch.device = "cpu",
        precision: str | None = None,
        channels_last: bool | None = None,
        use_ema: bool = True,
        batch_invariant: bool = True,
        context: int = 0,
        checkpoint: str | os.PathLike[str] | None = None,
        step: int | None = None,
    ) -> None:
        self.device = torch.device(device)
        cuda = self.device.type == "cuda"
        self.precision = precision or ("bf16" if cuda else "fp32")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision={self.precision!r} is unknown; use one of {PRECISIONS}")
        self.channels_last = cuda if channels_last is None else bool(channels_last)
        if context < 0:
            raise ConfigError(f"context={context} must be >= 0 (pixels of padded border)")
        self.context = context
        plain = unwrap(generator)
        if not isinstance(plain, ChangenGenerator):
            name = type(plain).__name__
            raise ConfigError(f"GanSynthesizer needs a ChangenGenerator, got a {name}")
        gen_config = plain.config
        if taxonomy.num_classes != gen_config.num_classes:
            raise ConfigError(
                f"taxonomy {taxonomy.name!r} has {taxonomy.num_classes} classes but the "
                f"generator has {gen_config.num_classes}; give the taxonomy it was trained on"
            )
        self.taxonomy = taxonomy
        self.use_ema = use_ema
        self.batch_invariant = batch_invariant
        self.checkpoint = None if checkpoint is None else str(checkpoint)
        self.step = step
        self._lut = class_lut(taxonomy, gen_config.ignore_index)
        module = copy.deepcopy(plain).eval().requires_grad_(False)
        self._digest = weights_digest(module)
        memory = torch.channels_last if self.channels_last else torch.contiguous_format
        self.generator = module.to(self.device).to(memory_format=memory)

    @classmethod
    def from_checkpoint(
        cls,
        path: str | os.PathLike[str],
        device: str | torch.device | None = None,
        precision: str | None = None,
        channels_last: bool | None = None,
        use_ema: bool = True,
        batch_invariant: bool = True,
        context: int = CONTEXT,
    ) -> GanSynthesizer:
        """Load a ``changen train generator`` checkpoint folder (EMA weights by default).

        ``device=None`` picks CUDA when available, else the CPU; the folder needs
        ``config.json`` and ``generator_ema.safetensors`` (or ``generator.safetensors`` with
        ``use_ema=False``), nothing else. A ``class_ids`` entry in the config (the taxonomy id
        of each model class, as the trainer records it) must match
        :func:`~changen.synthesis.classes.model_class_ids`.
        """
        config = load_config(path)
        if config.get("kind") != KIND:
            raise ConfigError(
                f"{path}: checkpoint kind is {config.get('kind')!r}, not {KIND!r}; "
                f"give the folder of a Changen GAN checkpoint"
            )
        try:
            gan = GanConfig.from_dict(config["gan"])
            taxonomy = Taxonomy.from_dict(config["taxonomy"])
        except (KeyError, TypeError, ValueError) as err:
            raise DataError(f"{path}: malformed checkpoint config ({err!r})") from None
        trained = config.get("class_ids")
        if trained is not None and tuple(trained) != model_class_ids(taxonomy):
            raise DataError(
                f"{path}: the generator was trained with model classes = taxonomy ids "
                f"{list(trained)}, but inference maps them as {list(model_class_ids(taxonomy))}; "
                f"retrain with this changen version"
            )
        generator = ChangenGenerator(gan.generator)
        load_weights(path, {"generator_ema" if use_ema else "generator": generator})
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        return cls(
            generator,
            taxonomy,
            device=device,
            precision=precision,
            channels_last=channels_last,
            use_ema=use_ema,
            batch_invariant=batch_invariant,
            context=context,
            checkpoint=Path(path).resolve(),
            step=config.get("step"),
        )

    def config(self) -> dict[str, Any]:
        """JSON-ready description; ``weights_sha256`` identifies the weights themselves."""
        return {
            "name": self.name,
            "generator": self.generator.config.to_dict(),
            "taxonomy": self.taxonomy.to_dict(),
            "checkpoint": self.checkpoint,
            "step": self.step,
            "use_ema": self.use_ema,
            "weights_sha256": self._digest,
            "device": self.device.type,
            "precision": self.precision,
            "channels_last": self.channels_last,
            "batch_invariant": self.batch_invariant,
            "context": self.context,
        }

    def check_taxonomy(self, taxonomy: Taxonomy) -> None:
        """Raise :class:`ConfigError` unless ``taxonomy`` matches the generator's."""
        if taxonomy_key(taxonomy) != taxonomy_key(self.taxonomy):
            raise ConfigError(
                f"the data's taxonomy {taxonomy.name!r} (ids {taxonomy.ids}, ignore "
                f"{taxonomy.ignore}) differs from the generator's {self.taxonomy.name!r} "
                f"(ids {self.taxonomy.ids}, ignore {self.taxonomy.ignore}); use a generator "
                f"trained on this taxonomy"
            )

    def _noise(self, rngs: Sequence[np.random.Generator]) -> torch.Tensor | None:
        """(B, z_dim) noise, one CPU generator per sample seeded from its numpy generator."""
        seeds = [torch_seed(rng) for rng in rngs]
        z_dim = self.generator.config.z_dim
        if z_dim == 0:
            return None
        rows = [sample_noise(1, z_dim, torch.Generator().manual_seed(s)) for s in seeds]
        return torch.cat(rows).to(self.device)

    def _tensors(self, batch: SynthesisBatch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Padded model inputs: image (B, 3, H', W') in [-1, 1], both masks (B, H', W')."""
        _, h, w, _ = batch.t1_image.shape
        pad = (pad_amounts(h, self.context), pad_amounts(w, self.context))
        t1 = to_model_ids(batch.t1_mask, self._lut, self.taxonomy, "t1_mask")
        t2 = to_model_ids(batch.t2_mask, self._lut, self.taxonomy, "t2_mask")
        image = np.pad(batch.t1_image, ((0, 0), *pad, (0, 0)), mode="reflect")
        t1, t2 = (np.pad(m, ((0, 0), *pad), mode="reflect") for m in (t1, t2))
        memory = torch.channels_last if self.channels_last else torch.contiguous_format
        x = torch.from_numpy(image).to(self.device).permute(0, 3, 1, 2)
        x = (x.float() / 127.5 - 1.0).contiguous(memory_format=memory)
        return (
            x,
            torch.from_numpy(t1).to(self.device).long(),
            torch.from_numpy(t2).to(self.device).long(),
        )

    def _forward(
        self, image: torch.Tensor, t1: torch.Tensor, t2: torch.Tensor, noise: torch.Tensor | None
    ) -> torch.Tensor:
        """Generator output (B, 3, H', W') in float32."""
        bf16 = self.precision == "bf16"
        with (
            torch.inference_mode(),
            torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=bf16),
        ):
            return self.generator(image, t1, t2, noise=noise).float()

    def __call__(self, batch: SynthesisBatch, rngs: Sequence[np.random.Generator]) -> np.ndarray:
        """Post-event images (B, H, W, 3) uint8."""
        check_rngs(batch, rngs)
        noise = self._noise(rngs)
        _, h, w, _ = batch.t1_image.shape
        (top, _), (left, _) = pad_amounts(h, self.context), pad_amounts(w, self.context)
        image, t1, t2 = self._tensors(batch)
        outs = []
        invariant = self.batch_invariant and self.device.type == "cpu"
        for rows, keep in forward_chunks(len(batch), invariant):
            whole = rows == list(range(len(batch)))
            if whole:
                outs.append(self._forward(image, t1, t2, noise)[:keep])
            else:
                part_noise = None if noise is None else noise[rows]
                outs.append(self._forward(image[rows], t1[rows], t2[rows], part_noise)[:keep])
        out = torch.cat(outs)[:, :, top : top + h, left : left + w]
        out = ((out + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8)
        return out.permute(0, 2, 3, 1).cpu().numpy()

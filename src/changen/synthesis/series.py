"""Progressive multi-temporal synthesis: one image per step of a simulated change chain.

Given the pre-event image ``I_0`` and a :class:`~changen.events.ChangeChain` with masks
``S_0..S_T``, step ``t`` synthesises ``Ĩ_t = G(Ĩ_t-1, S_t-1, S_t)`` from the previous *synthetic*
image, with that step's instance maps and event records, so changes accumulate over time as in
the Changen paper (Fig. 3). Any :class:`~changen.synthesis.base.Synthesizer` works.

Randomness: step ``t`` of a chain draws from the ``t``-th child of the chain's generator
(``rng.spawn``), so a step's output depends neither on how many numbers the previous steps
drew nor on which other chains share its batch.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from changen.errors import DataError
from changen.events import ChangeChain
from changen.synthesis.base import SynthesisBatch, Synthesizer


def _check(image: np.ndarray, chain: ChangeChain, k: int) -> None:
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise DataError(f"image {k} must be uint8 (H, W, 3), got {image.dtype} {image.shape}")
    if image.shape[:2] != chain.masks.shape[1:]:
        raise DataError(
            f"image {k} is {image.shape[:2]} but its chain's masks are {chain.masks.shape[1:]}; "
            f"simulate the chain on the image's mask"
        )


def _step_batch(chains: Sequence[ChangeChain], frames: list[np.ndarray], t: int) -> SynthesisBatch:
    """The synthesis inputs of step ``t`` (S_t-1 -> S_t) for ``chains``, whose previous images
    are ``frames``."""
    return SynthesisBatch(
        t1_image=np.stack(frames),
        t1_mask=np.stack([c.masks[t - 1] for c in chains]),
        t2_mask=np.stack([c.masks[t] for c in chains]),
        t1_instances=np.stack([c.instances[t - 1] for c in chains]),
        t2_instances=np.stack([c.instances[t] for c in chains]),
        events=[c.records(t - 1, t) for c in chains],
    )


def _step_groups(
    images: Sequence[np.ndarray], chains: Sequence[ChangeChain], t: int, batch_size: int
) -> list[list[int]]:
    """Indices of the chains that have a step ``t``, by image size, in batches."""
    groups: dict[tuple[int, ...], list[int]] = {}
    for k, chain in enumerate(chains):
        if chain.steps >= t:
            groups.setdefault(images[k].shape, []).append(k)
    return [
        members[start : start + batch_size]
        for members in groups.values()
        for start in range(0, len(members), batch_size)
    ]


def synthesize_series_batch(
    synthesizer: Synthesizer,
    images: Sequence[np.ndarray],
    chains: Sequence[ChangeChain],
    rngs: Sequence[np.random.Generator],
    *,
    batch_size: int = 8,
) -> list[np.ndarray]:
    """Image series (T_k+1, H_k, W_k, 3) uint8 for several chains, frame 0 being ``images[k]``.

    Step ``t`` of every chain that has one is synthesised together, in batches of up to
    ``batch_size`` chains of the same image size; chains may differ in length and size.
    """
    if not len(images) == len(chains) == len(rngs):
        raise DataError(
            f"need one image and one random generator per chain ({len(chains)}), got "
            f"{len(images)} images and {len(rngs)} generators"
        )
    if batch_size < 1:
        raise DataError(f"batch_size={batch_size} must be at least 1")
    for k, (image, chain) in enumerate(zip(images, chains, strict=True)):
        _check(image, chain, k)
    step_rngs = [rng.spawn(chain.steps) for rng, chain in zip(rngs, chains, strict=True)]
    series = []
    for image, chain in zip(images, chains, strict=True):
        frames = np.empty((chain.steps + 1, *image.shape), np.uint8)
        frames[0] = image
        series.append(frames)
    for t in range(1, max((c.steps for c in chains), default=0) + 1):
        for part in _step_groups(images, chains, t, batch_size):
            batch = _step_batch([chains[k] for k in part], [series[k][t - 1] for k in part], t)
            out = synthesizer(batch, [step_rngs[k][t - 1] for k in part])
            if out.shape != batch.t1_image.shape or out.dtype != np.uint8:
                raise DataError(
                    f"synthesizer {synthesizer.name!r} returned {out.dtype} {out.shape}; "
                    f"expected uint8 {batch.t1_image.shape}"
                )
            for k, frame in zip(part, out, strict=True):
                series[k][t] = frame
    return series


def synthesize_series(
    synthesizer: Synthesizer,
    image: np.ndarray,
    chain: ChangeChain,
    rng: np.random.Generator,
) -> np.ndarray:
    """The image series (T+1, H, W, 3) uint8 of one chain: ``image``, then Ĩ_1..Ĩ_T.

    The steps of one chain are sequential by nature (each needs the previous image), so there is
    nothing to batch; use :func:`synthesize_series_batch` to batch several chains.
    """
    return synthesize_series_batch(synthesizer, [image], [chain], [rng])[0]

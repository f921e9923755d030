"""What every learned synthesizer needs at inference, whatever its family: the taxonomy
agreement with the data, a digest of its weights for provenance, padding to the network's
stride, and forward passes whose per-sample output does not depend on the batch (CPU).
"""

from __future__ import annotations

import hashlib
from typing import Any

import torch

from changen.sample import Taxonomy

PRECISIONS = ("fp32", "bf16")
ONE_THREAD_MAX_PASS = 15


def taxonomy_key(taxonomy: Taxonomy) -> tuple[Any, ...]:
    """What must agree between a generator and its data: ids, names, background, ignore."""
    classes = tuple(sorted((c.id, c.name) for c in taxonomy.classes))
    return classes, taxonomy.background, taxonomy.ignore


def weights_digest(module: torch.nn.Module) -> str:
    """SHA-256 of a module's state (names, dtypes, shapes and bytes, in key order)."""
    digest = hashlib.sha256()
    for key, value in sorted(module.state_dict().items()):
        tensor = value.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{key}:{value.dtype}:{tuple(value.shape)};".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def pad_to(size: int, multiple: int, context: int = 0) -> tuple[int, int]:
    """(before, after) padding: ``context`` pixels on each side, then up to the next multiple
    of ``multiple``, split evenly."""
    total = 2 * context + (-(size + 2 * context) % multiple)
    return total // 2, total - total // 2


def forward_chunks(n: int, invariant: bool = True) -> list[tuple[list[int], int]]:
    """How to split a batch of ``n`` into forward passes: (row indices, rows to keep) pairs.

    On the CPU, PyTorch picks each conv's kernel from the batch size (ATen's ``use_mkldnn``):
    oneDNN for two images or more, its native kernel for a single small image and, when
    single-threaded, the native kernel for 1×1 convs below 16 images. The kernels round
    differently, so a sample's output would depend on its batch. Here every CPU pass holds
    2..15 images when single-threaded and at least 2 otherwise (a lone image runs twice), so
    the kernels are the same whatever the batch. ``invariant=False`` runs the batch as it is.
    """
    if not invariant:
        return [(list(range(n)), n)]
    limit = ONE_THREAD_MAX_PASS if torch.get_num_threads() == 1 else n
    chunks = [list(range(s, min(n, s + limit))) for s in range(0, n, limit)]
    return [(c * 2, 1) if len(c) == 1 else (c, len(c)) for c in chunks]


def default_device(device: str | torch.device | None) -> torch.device:
    """``device``, or CUDA when available and the CPU otherwise."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)

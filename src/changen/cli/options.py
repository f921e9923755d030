"""Options shared by several commands, declared once.

Run options (where and how a training runs, :class:`~changen.engine.config.RunConfig`) are used
by ``train generator`` and ``detect train/finetune``; event options (the change process) by
``simulate``, ``generate`` and ``train generator``. Every option defaults to ``None`` so that a
command can tell what was given: what is left out takes the library's default (or, when
resuming, the run's recorded value).
"""

from __future__ import annotations

from typing import Any

import typer

ACCELERATOR = typer.Option(None, help="cpu, gpu/cuda, mps or auto. (default: auto)")
DEVICES = typer.Option(None, help="Devices per node: a count or auto (DDP when more than one).")
NUM_NODES = typer.Option(None, help="Nodes (DDP). (default: 1)")
STRATEGY = typer.Option(None, help="Lightning strategy: auto or ddp. (default: auto)")
PRECISION = typer.Option(None, help="fp32 or bf16 (autocast). (default: fp32)")
WORKERS = typer.Option(None, "--workers", help="DataLoader worker processes.")
LOG_EVERY = typer.Option(None, help="Steps between metric rows. (default: 10)")
SAVE_EVERY = typer.Option(None, help="Steps between checkpoints (0: the family's default).")
KEEP = typer.Option(None, help="Step checkpoints kept.")
RESUME = typer.Option(False, help="Continue the run in --out from its newest checkpoint.")
PROGRESS = typer.Option(True, "--progress/--no-progress", help="Show a progress bar.")


def run_settings(**given: Any) -> dict[str, Any]:
    """The run options that were given (not ``None``), as :class:`RunConfig` fields."""
    return {k: v for k, v in given.items() if v is not None}


DEVICE = typer.Option(
    None, help="Where learned models run: auto, cpu, cuda or cuda:N. (default: auto)"
)


def resolve_device(device: str | None) -> str:
    """``auto`` (or nothing) → ``cuda`` when available, else ``cpu``; other names unchanged."""
    if device in (None, "auto"):
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return device

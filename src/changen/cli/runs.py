"""The run folder of a training command: one writer, and no half-made run left behind.

``changen train generator`` and ``changen detect train`` / ``finetune`` hold the writer lock
of ``--out`` for the whole command. A new run (or one started with ``--overwrite``, whose
previous run waits beside it) that fails before writing its first checkpoint is removed, and
whatever was there before put back, so the next try does not need ``--overwrite``; a run with
checkpoints is kept, since ``--resume`` continues it. A resumed run is left as the failure
leaves it. See :func:`changen.data.staging.output_in_place`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from changen.data.staging import output_in_place

RANK_VARIABLES = ("RANK", "LOCAL_RANK", "NODE_RANK", "GROUP_RANK", "SLURM_PROCID")
"""Set (non-zero) in the processes a distributed launcher starts beside the first one."""


def launcher() -> bool:
    """Whether this is the process that started the run (not one Lightning, torchrun or
    SLURM started beside it): only it locks and rolls back the run folder."""
    return all(os.environ.get(name, "0") == "0" for name in RANK_VARIABLES)


def has_checkpoint(run: Path) -> bool:
    """Whether ``run`` holds a checkpoint to resume from."""
    from changen.engine.run import step_checkpoints

    return bool(step_checkpoints(run)) or (run / "checkpoints" / "last").is_dir()


@contextmanager
def run_folder(out: Path, *, resume: bool, overwrite: bool = False) -> Iterator[Path]:
    """Hold run folder ``out`` for one training command (see the module docstring); yield
    the folder to train into (``out``, or the folder it links to)."""
    if not launcher():
        yield out
        return
    with output_in_place(
        out, overwrite=overwrite, resume=resume, keep=has_checkpoint, what="run folder"
    ) as run:
        yield run

"""Transactional output folders: a command's output appears whole, or not at all.

Beside an output folder ``out`` (and its lock file, :mod:`changen.data.lock`) these hidden
folders exist only while a command writes it::

    .<name>.changen-staging   the new output, built by :func:`staged_output`
    .<name>.changen-old       the previous output, kept until the new one commits
    .<name>.changen-trash     the previous output after the commit, being deleted

:func:`staged_output` builds the new output under the staging name and swaps it in at the
end: rename the old output away, rename the new one in, delete the old one. A failure (a bad
item, a full disk) removes the staging folder and leaves ``out`` as it was.
:func:`output_in_place` is for outputs built at their final path, because they record their
own paths (the demo) or must be resumable while they grow (training run folders): the old
output waits under the old name; on failure the new one is removed and the old one put back,
unless ``keep`` says the new one is resumable. Renaming the old folder to the trash name is
the commit, so a run killed at any moment leaves something the next one repairs: both
context managers hold the writer lock and first put back an old output left by a killed run
(unless ``keep`` accepts the killed run's output), then delete staging and trash.

Both raise :func:`changen.data.output.write_error` (one line) in place of an ``OSError`` of a
write that fails for want of space or permission.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from changen.data.lock import output_lock
from changen.data.output import WRITE_ERRNOS, check_output_dir, write_error


def _never(_: Path) -> bool:
    """No output of a failed run is worth keeping (the default ``keep``)."""
    return False


def _target(out: str | os.PathLike[str]) -> Path:
    """The folder to build: ``out``, or the folder it links to (the link stays as it is)."""
    path = Path(out).absolute()
    return path.resolve() if path.is_symlink() else path


def _sibling(out: Path, role: str) -> Path:
    return out.parent / f".{out.name}.changen-{role}"


def _remove(path: Path) -> None:
    """Delete a folder, file or link, as far as the permissions allow."""
    if path.is_symlink() or path.is_file():
        path.unlink()
    else:
        shutil.rmtree(path, ignore_errors=True)


def _drop(out: Path) -> None:
    """Commit: the old output of ``out`` becomes trash (one rename), then is deleted."""
    old, trash = _sibling(out, "old"), _sibling(out, "trash")
    if old.exists():
        _remove(trash)
        os.replace(old, trash)
        _remove(trash)


def _restore(out: Path) -> None:
    """Roll back: remove the new ``out`` and put the old one back in its place."""
    _remove(out)
    os.replace(_sibling(out, "old"), out)


def _recover(out: Path, keep: Callable[[Path], bool]) -> None:
    """Repair what a killed run left beside ``out`` (see the module docstring)."""
    _remove(_sibling(out, "staging"))
    if _sibling(out, "old").exists():
        if out.exists() and keep(out):
            _drop(out)
        else:
            _restore(out)
    _remove(_sibling(out, "trash"))


@contextmanager
def _write_errors(out: Path, what: str) -> Iterator[None]:
    """Raise :func:`write_error` in place of an ``OSError`` of :data:`WRITE_ERRNOS`."""
    try:
        yield
    except OSError as e:
        if e.errno in WRITE_ERRNOS or isinstance(e, NotADirectoryError):
            raise write_error(out, e, what) from None
        raise


@contextmanager
def staged_output(
    out: str | os.PathLike[str], *, overwrite: bool = False, what: str = "dataset"
) -> Iterator[Path]:
    """Yield an empty staging folder beside ``out`` (or the folder it links to); on success it
    replaces that folder.

    ``out`` must be absent or empty unless ``overwrite`` (:func:`check_output_dir`); the
    previous output stays in place until the new one is complete. The writer lock of ``out``
    is held throughout.
    """
    out = _target(out)
    with output_lock(out, what), _write_errors(out, what):
        _recover(out, _never)
        check_output_dir(out, overwrite)
        stage = _sibling(out, "staging")
        stage.mkdir()
        try:
            yield stage
            old = _sibling(out, "old")
            if out.exists():
                os.replace(out, old)
            try:
                os.replace(stage, out)
            except OSError:
                if old.exists():
                    os.replace(old, out)
                raise
            _drop(out)
        finally:
            _remove(stage)


@contextmanager
def output_in_place(
    out: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    resume: bool = False,
    keep: Callable[[Path], bool] = _never,
    what: str = "dataset",
) -> Iterator[Path]:
    """Yield the folder to build in place (``out``, or the folder it links to); on failure,
    put back what was there before.

    ``out`` must be absent or empty unless ``overwrite`` or ``resume``. With ``resume`` the
    folder is the caller's to continue and is left as the failure leaves it. Otherwise a
    previous ``out`` (with ``overwrite``) waits beside it until the block succeeds; if the
    block fails, the new ``out`` is removed and the previous one (or nothing) put back, unless
    ``keep(out)`` says the new one can be resumed. The writer lock of ``out`` is held
    throughout.
    """
    out = _target(out)
    with output_lock(out, what), _write_errors(out, what):
        _recover(out, keep)
        if resume:
            yield out
            return
        check_output_dir(out, overwrite)
        old = _sibling(out, "old")
        existed = out.exists()
        if existed:
            os.replace(out, old)
        else:
            old.mkdir()  # so that a killed run is rolled back to no output (an empty folder)
        try:
            yield out
        except BaseException:
            if out.exists() and keep(out):
                _drop(out)
            else:
                _restore(out)
                if not existed:
                    out.rmdir()
            raise
        _drop(out)

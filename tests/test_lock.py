"""One writer per output folder: a second writer is refused with the holder named, a dead
holder's lock is free, and generate takes it (every other writer: tests/test_transactions.py);
places that cannot be written are one-line errors."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from changen.data.lock import lock_path, output_lock
from changen.data.output import write_error
from changen.errors import OutputBusyError
from changen.generation import RunOptions, generate_dataset
from fixtures_generation import config


def test_second_writer_is_refused_and_names_the_holder(tmp_path: Path) -> None:
    out = tmp_path / "out"
    busy = pytest.raises(OutputBusyError, match=f"in use by pid {os.getpid()}")
    with output_lock(out), busy, output_lock(out):
        pass
    with output_lock(out):
        pass
    assert lock_path(out.absolute()).is_file() and not out.exists()


def test_a_killed_holder_leaves_no_stale_lock(tmp_path: Path) -> None:
    out = tmp_path / "out"
    code = (
        "import sys, time; from changen.data.lock import output_lock\n"
        f"with output_lock({str(out)!r}):\n    print('held', flush=True); time.sleep(60)\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(OutputBusyError, match=f"pid {holder.pid}"), output_lock(out):
            pass
    finally:
        holder.kill()
        holder.wait()
    time.sleep(0.1)
    with output_lock(out):
        pass


@pytest.mark.usefixtures("fake_synthesizers")
def test_generate_refuses_a_folder_in_use(source: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    with output_lock(out), pytest.raises(OutputBusyError, match="in use by"):
        generate_dataset(config(source), out, RunOptions(workers=0, overwrite=True))
    assert not out.exists()
    generate_dataset(config(source), out, RunOptions(workers=0))


def test_an_unwritable_place_is_a_one_line_error(tmp_path: Path) -> None:
    from changen.errors import DataError

    (tmp_path / "file").write_text("not a folder")
    refused = pytest.raises(DataError, match=r"cannot write the dataset \(Not a directory\)")
    with refused, output_lock(tmp_path / "file" / "out"):
        pass


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_parent_is_a_one_line_error(tmp_path: Path) -> None:
    from changen.errors import DataError

    tmp_path.chmod(0o500)
    try:
        refused = pytest.raises(DataError, match=r"out: cannot write the gallery \(Permission")
        with refused, output_lock(tmp_path / "out", "gallery"):
            pass
    finally:
        tmp_path.chmod(0o700)


@pytest.mark.parametrize(
    ("code", "fix"),
    [(errno.ENOSPC, "free disk space"), (errno.EDQUOT, "free disk space"),
     (errno.EROFS, "choose a writable output folder"), (errno.EACCES, "fix its permissions")],
)  # fmt: skip
def test_write_errors_say_what_to_do_in_one_line(tmp_path: Path, code: int, fix: str) -> None:
    error = write_error(tmp_path / "out", OSError(code, os.strerror(code), "x.png"), "run folder")
    message = str(error)
    assert message.startswith(f"{tmp_path / 'out'}: cannot write the run folder (")
    assert fix in message and "\n" not in message

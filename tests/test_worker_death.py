"""Generation's pool workers die with the run's process, even when it is killed with -9."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from changen.engine.workers import process_alive

POOL = textwrap.dedent(
    """
    import multiprocessing, os, sys, time
    from concurrent.futures import ProcessPoolExecutor

    def init(parent):
        from changen.engine.workers import die_with_parent
        die_with_parent(parent)

    def pid(_):
        return os.getpid()

    if __name__ == "__main__":
        context = multiprocessing.get_context(sys.argv[1])
        pool = ProcessPoolExecutor(
            2, mp_context=context, initializer=init, initargs=(os.getpid(),)
        )
        pids = {f.result() for f in [pool.submit(pid, i) for i in range(16)]}
        pool.submit(time.sleep, 600)  # one worker busy, the other idle on the queue
        print(" ".join(map(str, sorted(pids))), flush=True)
        time.sleep(600)
    """
)


@pytest.mark.skipif(sys.platform == "win32", reason="kill -9 is POSIX")
@pytest.mark.parametrize("method", ["forkserver", "spawn"])
def test_workers_die_with_killed_parent(tmp_path: Path, method: str) -> None:
    script = tmp_path / "pool.py"
    script.write_text(POOL)
    run = subprocess.Popen(
        [sys.executable, str(script), method], stdout=subprocess.PIPE, text=True, cwd=tmp_path
    )
    try:
        assert run.stdout is not None
        workers = [int(p) for p in run.stdout.readline().split()]
        assert workers and all(process_alive(p) for p in workers)
        os.kill(run.pid, signal.SIGKILL)  # no cleanup runs; the parent stays a zombie
        deadline = time.monotonic() + 5.0
        while any(process_alive(p) for p in workers) and time.monotonic() < deadline:
            time.sleep(0.05)
        left = [p for p in workers if process_alive(p)]
    finally:
        run.kill()
        run.wait()
    for p in left:
        os.kill(p, signal.SIGKILL)
    assert not left, f"workers {left} outlived their parent by 5 s"


def test_alive_sees_this_process_and_not_a_reaped_child() -> None:
    assert process_alive(os.getpid())
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert not process_alive(child.pid)

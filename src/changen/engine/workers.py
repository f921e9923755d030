"""Worker processes that end with the process that started them.

A process killed with ``kill -9`` runs no cleanup, so the pool workers it started are left
behind: an idle :class:`~concurrent.futures.ProcessPoolExecutor` worker waits on its task
queue for ever (it holds that queue's write end itself). :func:`die_with_parent`, called first
in a pool initializer, ends the worker instead. Torch-free, so a worker pays nothing for it.
"""

from __future__ import annotations

import os
import sys
import threading
import time

_PR_SET_PDEATHSIG = 1  # linux/prctl.h
_POLL_S = 0.5


def die_with_parent(parent: int) -> None:
    """End this worker process when ``parent`` (the process that started the pool) dies.

    On Linux the kernel sends SIGKILL when the worker's own parent dies (``PR_SET_PDEATHSIG``;
    under ``forkserver`` that parent is the fork server, which exits with ``parent``); on every
    platform a daemon thread checks twice a second that ``parent`` is still the process it was
    and exits the worker at once when it is not."""
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    ppid = os.getppid()

    def watch() -> None:
        while process_alive(parent) and os.getppid() == ppid:
            time.sleep(_POLL_S)
        os._exit(1)

    threading.Thread(target=watch, name="changen-parent-watch", daemon=True).start()


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` exists and has not exited (a zombie counts as dead)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = f"/proc/{pid}/stat"
    if os.path.exists(stat):
        with open(stat, encoding="ascii", errors="replace") as f:
            return f.read().rsplit(")", 1)[-1].split()[0] != "Z"
    return True

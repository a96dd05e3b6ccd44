"""Run a file reader in a forked child with a deadline, so a damaged file cannot hang or crash snnc.

Why: the HDF5 C library, which h5py (and so the ``nir`` package) uses, loops forever on some damaged
files (fuzzing found one: a corrupted global heap makes reading a variable-length string attribute never
return; tests/fuzzing.py, docs/fuzzing-results.md) and can crash on others. A loop inside C code
cannot be interrupted from Python (signal handlers run only between bytecodes), so the read runs in a
forked copy of this process: its result (or the error it raised) comes back pickled; if it does not
finish within the deadline it is killed, and if it dies the file is reported, naming the file.

Where ``os.fork`` does not exist, or ``SNNC_READ_IN_PROCESS=1``, the reader runs in-process.
``SNNC_READ_DEADLINE_S`` sets the base deadline in seconds (default 60).
"""
from __future__ import annotations

import contextlib
import os
import pickle
import selectors
import signal
import time
import traceback
from pathlib import Path
from typing import Any, Callable, TypeVar

from snnc.errors import InputFileError, SnncError
from snnc.processes import die_with_parent

T = TypeVar("T")

#: Seconds a read may take before the file is declared unreadable: generous for any real file (the
#: artifact files snnc writes read in milliseconds), plus a second per 10 MB for large ones.
BASE_DEADLINE_S = 60.0
SECONDS_PER_BYTE = 1e-7


def deadline_for(path: Path) -> float:
    """The deadline for reading ``path`` (grows with its size); ``SNNC_READ_DEADLINE_S`` overrides the base
    (tests/fuzzing.py shortens it, so that a looping case is stopped well within its own time limit)."""
    base = BASE_DEADLINE_S
    with contextlib.suppress(ValueError):
        base = float(os.environ.get("SNNC_READ_DEADLINE_S", base))
    try:
        size = path.stat().st_size
    except OSError:
        size = 0
    return base + size * SECONDS_PER_BYTE


def isolated(path: Path, what: str, fn: Callable[..., T], *args: Any, deadline_s: float | None = None,
             **kwargs: Any) -> T:
    """``fn(*args, **kwargs)`` computed in a forked child; its exception is re-raised here.

    ``what`` names the library in the error (e.g. 'HDF5'). A child that runs past ``deadline_s``
    (default :func:`deadline_for`) is killed; one that dies (a crash in C code) is reported too.
    """
    if not hasattr(os, "fork") or os.environ.get("SNNC_READ_IN_PROCESS") == "1":
        return fn(*args, **kwargs)
    limit = deadline_for(path) if deadline_s is None else deadline_s
    r, w = os.pipe()
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:    # the child: compute, send the pickled outcome, leave without running any cleanup
        status = 0
        try:
            die_with_parent(signal.SIGKILL, parent)   # a looping read must not outlive a killed snnc
            os.close(r)
            try:
                outcome: tuple[str, Any] = ("ok", fn(*args, **kwargs))
            except BaseException as e:  # noqa: BLE001 - every outcome goes back to the parent, re-raised there
                if not isinstance(e, SnncError) and hasattr(e, "add_note"):
                    e.add_note("in the isolated reader:\n" + "".join(traceback.format_exception(e)))
                outcome = ("error", e)
            try:
                data = pickle.dumps(outcome)
            except Exception as e:  # noqa: BLE001 - an unpicklable result or exception: say what it was
                data = pickle.dumps(("error", RuntimeError(f"unpicklable {outcome[0]} from the isolated "
                                                           f"reader: {type(e).__name__}: {e}")))
            with os.fdopen(w, "wb") as f:
                f.write(data)
        except BaseException:  # noqa: BLE001 - the child must never return into the parent's code
            status = 1
        finally:
            os._exit(status)
    os.close(w)
    chunks: list[bytes] = []
    timed_out = False
    try:
        with os.fdopen(r, "rb", buffering=0) as f, selectors.DefaultSelector() as sel:
            sel.register(f, selectors.EVENT_READ)
            end = time.monotonic() + limit
            while True:
                left = end - time.monotonic()
                if left <= 0:
                    timed_out = True
                    break
                if not sel.select(timeout=min(left, 1.0)):
                    continue
                chunk = f.read(1 << 20)
                if not chunk:
                    break
                chunks.append(chunk)
    except BaseException:   # interrupted here (Ctrl-C, an alarm): never leave the child running
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        raise
    if timed_out:
        os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    if timed_out:
        raise InputFileError(f"{path}: the {what} library did not finish reading the file within {limit:.0f} s "
                             f"(a damaged file can make it loop forever), so snnc stopped it. The file is "
                             f"truncated or corrupted; write it again.")
    if not chunks:
        how = (f"killed by signal {os.WTERMSIG(status)}" if os.WIFSIGNALED(status)
               else f"exit status {os.WEXITSTATUS(status)}")
        raise InputFileError(f"{path}: the {what} library crashed reading the file ({how}). The file is "
                             f"truncated or corrupted; write it again.")
    kind, value = pickle.loads(b"".join(chunks))
    if kind == "error":
        raise value
    return value  # type: ignore[no-any-return]

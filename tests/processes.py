"""Helpers for the process-hygiene tests: who is alive, and killing a program mid-run."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path


def proc_stat(pid: str) -> tuple[str, int, int] | None:
    """(state, ppid, pgid) of a process from /proc, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return fields[0], int(fields[1]), int(fields[2])


def leftovers(pgid: int, before: set[str]) -> list[str]:
    """Our children (any state) and live members of process group ``pgid``, except the pids in ``before``.

    Zombies of the group re-parented to init are not ours to reap (init does, a moment later).
    """
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        info = proc_stat(pid)
        if info is None or int(pid) == os.getpid() or pid in before:
            continue
        state, ppid, group = info
        if ppid == os.getpid() or (group == pgid and state != "Z"):
            found.append(f"pid {pid} state {state} ppid {ppid} pgid {group}")
    return found


def descendants(root: int) -> set[int]:
    """Every process below ``root`` now (by parent links in /proc)."""
    children: dict[int, list[int]] = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        info = proc_stat(pid)
        if info is not None:
            children.setdefault(info[1], []).append(int(pid))
    found, todo = set(), [root]
    while todo:
        for c in children.get(todo.pop(), []):
            found.add(c)
            todo.append(c)
    return found


def alive(pids: set[int]) -> list[str]:
    """Those of ``pids`` still running (zombies are dead; whoever adopted them reaps them)."""
    return [f"pid {p} state {info[0]}" for p in sorted(pids) if (info := proc_stat(str(p))) and info[0] != "Z"]


def kill_mid_run(script: str, where: Path, sig: signal.Signals, *, children: int) -> tuple[list[str], int, str]:
    """Run ``script`` (it prints "running" when it starts its long job), wait until it has at least
    ``children`` descendants, send it ``sig``; return what of its descendants is still alive 15 s
    later, its exit code and its stderr."""
    path = where / "long_run.py"
    path.write_text(script)
    err = where / "stderr.txt"   # a file, not a pipe: leftovers holding a pipe would block its reader
    seen: set[int] = set()
    with open(err, "w") as err_file:
        # Ctrl-C's default action in the child even when this test runs in a background job, where the
        # shell starts it with SIGINT ignored (and an ignored signal stays ignored across exec)
        proc = subprocess.Popen([sys.executable, str(path)], stdout=subprocess.PIPE, stderr=err_file, text=True,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "running", err.read_text()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(seen) < children:
            seen |= descendants(proc.pid)
            time.sleep(0.2)
        time.sleep(1.0)
        seen |= descendants(proc.pid)
        assert len(seen) >= children, f"the run did not start its processes in time: {seen}"
        proc.send_signal(sig)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            return [f"the program itself did not exit within 30 s of {sig.name}"], -1, err.read_text()
        deadline = time.monotonic() + 15
        while alive(seen) and time.monotonic() < deadline:
            time.sleep(0.2)
        return alive(seen), proc.returncode, err.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
        for pid in seen:
            try:
                os.kill(pid, signal.SIGKILL)   # never leave a test's leftovers running
            except (ProcessLookupError, PermissionError):
                pass

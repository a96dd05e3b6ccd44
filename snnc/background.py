"""snn-compile's helper process: the slow imports and two outputs off the main path (issue 22).

Importing onnx costs ~0.9 s here (ml_dtypes' extension alone) and matplotlib ~0.4 s, on top of the
~1.5-1.9 s of torch that loading a checkpoint needs anyway. :class:`Helper` starts one Python process
(``python -m snnc.background``) when a compile begins; it imports onnx and matplotlib while this
process imports torch and compiles, then runs the jobs it is sent, in order: report.html
(``snnc.html_report:write_page``) and graph.onnx (``snnc.compiler.onnx_io:write_checked``), on the
machine's second core. A job is a plain module function; it runs the same in this process
(``Helper(enabled=False)``, a machine with one core, or a helper that died: its jobs are then run
here, so a compile never fails because of the helper).

Not ``multiprocessing``: its "spawn" start re-runs the caller's ``__main__`` script in the child (a
user's script that compiles at top level would compile again there, and ``python -`` cannot be
re-run at all). Jobs and results travel pickled over two pipes of their own; the child's stdout and
stderr are the user's.

Hygiene: the helper dies with this process however it ends (PR_SET_PDEATHSIG, snnc.processes) and
ignores Ctrl-C (this process handles it and ends the helper); leaving the ``with`` block ends it,
after its jobs on success, at once (killed) on an error, and :meth:`Helper.abort` kills it before a
failed compile's staged directory is removed: no half-written artifact, no process left behind. A
job's error is raised here as the error it was.
"""
from __future__ import annotations

import os
import pickle
import queue
import signal
import subprocess
import sys
import threading
from typing import Any, BinaryIO

#: the modules the helper imports at its start, while its parent works
PRELOAD = ("snnc.compiler.onnx_io", "snnc.html_report")


def _run(function: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """``package.module:function`` called with these arguments (imported where it runs)."""
    import importlib

    module, name = function.split(":")
    return getattr(importlib.import_module(module), name)(*args, **kwargs)


class Job:
    """One submitted job; :meth:`result` waits for it (and for the jobs before it) and returns its
    value or raises its error."""

    def __init__(self, helper: "Helper", function: str, args: tuple[Any, ...], kwargs: dict[str, Any]):
        self._helper, self.function, self.args, self.kwargs = helper, function, args, kwargs
        self._done = False
        self._value: Any = None
        self._error: BaseException | None = None

    def _settle(self, ok: bool, value: Any) -> None:
        self._done = True
        if ok:
            self._value = value
        else:
            self._error = value

    def _run_here(self) -> None:
        try:
            self._settle(True, _run(self.function, self.args, self.kwargs))
        except Exception as e:      # noqa: BLE001  (raised again by result(), where the caller waits)
            self._settle(False, e)

    def result(self) -> Any:
        while not self._done:
            self._helper._receive_one()
        if self._error is not None:
            raise self._error
        return self._value


class Helper:
    """``with Helper() as h: job = h.call("pkg.mod:function", *args); ...; job.result()``."""

    def __init__(self, enabled: bool = True):
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        self.enabled = enabled and cores > 1
        self._proc: subprocess.Popen | None = None
        self._send: BinaryIO | None = None
        self._recv: BinaryIO | None = None
        self._pending: list[Job] = []
        self._outbox: queue.SimpleQueue | None = None     # pickled jobs for the sender thread
        self._sender: threading.Thread | None = None

    # --- the parent's side -----------------------------------------------------------------------
    def __enter__(self) -> "Helper":
        if self.enabled:
            self._start()
        return self

    def _start(self) -> None:
        jobs_r, jobs_w = os.pipe()
        results_r, results_w = os.pipe()
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "snnc.background", str(os.getpid()), str(jobs_r), str(results_w)],
                pass_fds=(jobs_r, results_w), stdin=subprocess.DEVNULL)
        except OSError:                 # no helper: every job runs here
            os.close(jobs_w)
            os.close(results_r)
            return
        finally:
            os.close(jobs_r)
            os.close(results_w)
        self._send, self._recv = os.fdopen(jobs_w, "wb"), os.fdopen(results_r, "rb")
        # a job (the page's counts: megabytes) fills the pipe long before the helper, still importing,
        # reads it: a thread writes, so that this process goes on working meanwhile
        self._outbox = queue.SimpleQueue()
        self._sender = threading.Thread(target=self._send_all, args=(self._send, self._outbox),
                                        name="snnc-helper-sender", daemon=True)
        self._sender.start()

    @staticmethod
    def _send_all(pipe: BinaryIO, outbox: queue.SimpleQueue) -> None:
        while (data := outbox.get()) is not None:
            try:
                pipe.write(data)
                pipe.flush()
            except (OSError, ValueError):   # the helper is gone: its answers never come (_receive_one)
                return

    def call(self, function: str, *args: Any, **kwargs: Any) -> Job:
        """Run ``"package.module:function"(*args, **kwargs)``: the module is imported only where the job
        runs (``snnc.compiler.onnx_io:write_checked`` imports onnx, ~0.9 s, in the helper alone)."""
        job = Job(self, function, args, kwargs)
        try:
            data = pickle.dumps((function, args, kwargs), protocol=pickle.HIGHEST_PROTOCOL)
        except Exception:               # noqa: BLE001  (arguments that do not pickle: run it here)
            data = None
        if self._outbox is None or data is None:
            job._run_here()
            return job
        self._pending.append(job)
        self._outbox.put(data)
        return job

    def _receive_one(self) -> None:
        """Settle the oldest pending job with the helper's answer (or, the helper gone, run it here)."""
        job = self._pending[0]
        try:
            assert self._recv is not None
            ok, value = pickle.load(self._recv)
        except (EOFError, OSError, ValueError, pickle.UnpicklingError, AssertionError):
            self._give_up()
            return
        self._pending.pop(0)
        job._settle(ok, value)

    def _give_up(self) -> None:
        """The helper died: end it, and run its unanswered jobs here, in order."""
        pending, self._pending = self._pending, []
        self._stop(kill=True)
        for job in pending:
            job._run_here()

    def _stop(self, kill: bool) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and kill:
            proc.kill()                       # a write the sender is blocked in fails now
        if self._outbox is not None and self._sender is not None:
            self._outbox.put(None)
            self._sender.join()
        self._outbox = self._sender = None
        for f in (self._send, self._recv):
            if f is not None:
                try:
                    f.close()
                except OSError:
                    pass
        self._send = self._recv = None
        if proc is not None:
            proc.wait()

    def abort(self) -> None:
        """End the helper now, its jobs unfinished (an error: nothing it writes is wanted)."""
        self._pending = []
        self._stop(kill=True)

    def __exit__(self, kind: Any, error: Any, tb: Any) -> None:
        if kind is not None:
            self.abort()
            return
        for job in list(self._pending):
            job.result()
        self._stop(kill=False)       # stdin of jobs closed: the helper ends


# --- the helper's side ---------------------------------------------------------------------------------
def _serve(parent: int, jobs_fd: int, results_fd: int) -> None:
    from snnc.processes import die_with_parent

    die_with_parent(signal.SIGKILL, parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # Ctrl-C is the parent's: it ends us
    import importlib

    for module in PRELOAD:
        importlib.import_module(module)
    from snnc.html_report import preload

    preload()
    with os.fdopen(jobs_fd, "rb") as jobs, os.fdopen(results_fd, "wb") as results:
        while True:
            try:
                function, args, kwargs = pickle.load(jobs)
            except EOFError:
                return
            try:
                answer: tuple[bool, Any] = (True, _run(function, args, kwargs))
            except Exception as e:      # noqa: BLE001  (the parent raises it)
                answer = (False, e)
            try:
                data = pickle.dumps(answer, protocol=pickle.HIGHEST_PROTOCOL)
            except Exception:           # noqa: BLE001  (a value or error that does not pickle: its text does)
                from snnc.errors import SnncError

                data = pickle.dumps((False, SnncError(f"{type(answer[1]).__name__}: {answer[1]}")))
            results.write(data)
            results.flush()


if __name__ == "__main__":
    try:
        _serve(*(int(a) for a in sys.argv[1:4]))
    except BaseException:      # noqa: BLE001  (an import or a pipe failed: no traceback for the user;
        os._exit(1)            # the parent runs the unanswered jobs itself and reports their errors)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)      # no interpreter teardown (onnx, matplotlib): the parent waits for this exit

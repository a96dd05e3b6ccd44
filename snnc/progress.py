"""Progress of long runs, as the commands show it: rich bars on a terminal, plain lines elsewhere.

The library layers (snnc.models, snnc.hwsim, snnc.runtime, snnc.pipeline) never print or import
rich: they take a callback ``progress(task, done, total)`` (:data:`ProgressFn`) and call it as work
completes. The commands pass a :class:`Progress`, which draws on stderr (stdout stays clean for
``--json``):

* stderr a terminal: one rich bar per task, with done/total, rate, elapsed time and ETA;
* otherwise (CI, pipes, tests): a plain line per task when it passes 25, 50, 75 and 100 %, and at
  most one more every ``every_s`` seconds in between; a task done within ``min_s`` prints nothing
  (the command's own output says it finished).

A finished task's bar is removed (snn-train's steps of an epoch: the epoch's summary line stays).
"""
from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import dataclass, field
from typing import IO, Any, Callable, Collection

#: what library code calls: (task, done, total); a task is named by what it counts ("epoch 2 steps",
#: "lava samples"); ``done`` runs from 0 to ``total``, and a smaller ``done`` starts the task again
ProgressFn = Callable[[str, int, int], None]

QUARTERS = (25, 50, 75, 100)


def command_started() -> float:
    """``time.perf_counter()`` at the start of this process (Linux: from /proc; else now), so that
    a command can report the wall time its user waited, imports included."""
    now = time.perf_counter()
    try:
        with open("/proc/self/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        start_ticks = int(fields[19])          # field 22 of stat(5): starttime, in clock ticks after boot
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        age = uptime - start_ticks / os.sysconf("SC_CLK_TCK")
        if 0 <= age < 86400:
            return now - age
    except (OSError, ValueError, IndexError):
        pass
    return now


def fmt_duration(seconds: float | None) -> str:
    """'42 s', '3 min 05 s', '1 h 02 min'; '?' when unknown."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return "?"
    s = int(round(seconds))
    if s < 60:
        return f"{seconds:.1f} s" if seconds < 10 else f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


@dataclass
class _Task:
    total: int
    start: float
    done: int = 0
    last_line: float = 0.0
    quarter: int = 0            # how many of QUARTERS were printed
    bar: Any = None             # rich TaskID

    def rate(self, now: float) -> float | None:
        elapsed = now - self.start
        return self.done / elapsed if elapsed > 0 and self.done > 0 else None

    def eta(self, now: float) -> float | None:
        rate = self.rate(now)
        return (self.total - self.done) / rate if rate else None


@dataclass
class Progress:
    """The commands' :data:`ProgressFn`: call it as ``progress(task, done, total)``; use as a context
    manager (the bars end with it). ``live``: draw rich bars (default: when ``stream`` is a
    terminal); ``plain_skip``: tasks that print no plain lines (what other output already says,
    e.g. snn-train's epochs, each of which ends with its summary line)."""

    stream: IO[str] | None = None
    live: bool | None = None
    every_s: float = 10.0
    min_s: float = 2.0
    plain_skip: Collection[str] = ()
    clock: Callable[[], float] = time.monotonic
    _tasks: dict[str, _Task] = field(default_factory=dict)
    _rich: Any = None

    def __post_init__(self) -> None:
        if self.stream is None:
            self.stream = sys.stderr
        if self.live is None:
            isatty = getattr(self.stream, "isatty", None)
            self.live = bool(isatty and isatty()) and os.environ.get("TERM") != "dumb"

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """End the bars (they stay on the screen as drawn last)."""
        if self._rich is not None:
            self._rich.stop()
            self._rich = None
        self._tasks.clear()

    def __call__(self, task: str, done: int, total: int) -> None:
        now = self.clock()
        total = max(int(total), 0)
        state = self._tasks.get(task)
        if state is None or done < state.done or total != state.total:   # new, or started again
            state = self._start(task, total, now, state)
        state.done = min(int(done), total) if total else int(done)
        if self.live:
            self._draw(state)
        elif task not in self.plain_skip:
            self._line(task, state, now)

    # ------------------------------------------------------------------ rich bars

    def _start(self, task: str, total: int, now: float, old: _Task | None) -> _Task:
        state = _Task(total=total, start=now, last_line=now)
        if self.live:
            bars = self._bars()
            if old is not None and old.bar is not None:
                bars.reset(old.bar, total=total or None, completed=0)
                state.bar = old.bar
            else:
                state.bar = bars.add_task(task, total=total or None)
        self._tasks[task] = state
        return state

    def _bars(self) -> Any:
        if self._rich is None:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress as RichProgress, TextColumn

            self._rich = RichProgress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                      _rate_column(), console=Console(file=self.stream), transient=False)
            self._rich.start()
        return self._rich

    def _draw(self, state: _Task) -> None:
        bars = self._bars()
        bars.update(state.bar, completed=state.done)
        if state.total and state.done >= state.total:
            bars.remove_task(state.bar)
            for name, other in list(self._tasks.items()):
                if other is state:
                    del self._tasks[name]

    # ------------------------------------------------------------------ plain lines

    def _line(self, task: str, state: _Task, now: float) -> None:
        pct = 100.0 * state.done / state.total if state.total else 0.0
        quarter = state.quarter
        while quarter < len(QUARTERS) and pct >= QUARTERS[quarter]:
            quarter += 1
        due = now - state.last_line >= self.every_s and state.done < state.total
        if (quarter == state.quarter and not due) or now - state.start < self.min_s:
            return
        state.quarter, state.last_line = quarter, now
        rate = state.rate(now)
        parts = [f"{task}: {state.done}/{state.total} ({pct:.0f}%)"]
        if rate is not None:
            parts.append(f"{rate:.3g}/s")
        parts.append(f"elapsed {fmt_duration(now - state.start)}")
        if state.done < state.total:
            parts.append(f"ETA {fmt_duration(state.eta(now))}")
        print(", ".join(parts), file=self.stream, flush=True)


def _rate_column() -> Any:
    from rich.progress import ProgressColumn
    from rich.text import Text

    class RateColumn(ProgressColumn):
        """Mean rate since the task (re)started and ETA: '9.8/s  ETA 4.2 s' (rich's own speed needs
        two updates within its window, which an epoch bar may never see)."""

        def render(self, task: Any) -> Text:
            elapsed = task.elapsed or 0.0
            rate = task.completed / elapsed if elapsed > 0 and task.completed else None
            text = "-/s" if rate is None else (f"{rate:.3g}/s" if rate >= 1 else f"{1 / rate:.3g} s each")
            eta = (task.total - task.completed) / rate if rate and task.total else None
            return Text(f"{text}  ETA {fmt_duration(eta)}", style="progress.remaining")

    return RateColumn()


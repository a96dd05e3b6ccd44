"""Run a fixed-point graph on Lava's CPU simulator (bit-accurate ``fixed_pt`` models), sample by sample.

:func:`run_on_lava` returns the same thing as hwsim's ``HwSimResult.spikes``: for every neuron layer,
a bool array (batch, T, n) of its spikes at every step. It is the reference hwsim is checked against,
so it reproduces hwsim's semantics (``snnc.compiler.ir`` docstring) with stock Lava processes:

    RingBuffer source -> Dense|Conv -> LIF -> Dense|Conv -> LIF ...   and one RingBuffer sink per LIF
    (one Dense or Conv per synapse node, one LIF per population: any graph the IR accepts, feed-forward
    or recurrent)

* recurrence: a Dense may lead from a population back into its own ``a_in`` or into an earlier
  population's (cycles across populations). Every process is created first and connected after, so
  a connection may point anywhere; a population driven by several synapses sums them at its one
  ``a_in`` port (as NeuNorm's auxiliary populations already do). Nothing else is special: Lava's
  Dense sends the previous step's buffered sum before it receives this step's spikes,
  SP/lava/proc/dense/models.py:93-96 ("The a_out sent at each timestep is a buffered value from
  dendritic accumulation at timestep t-1. This prevents deadlocking in networks with recurrent
  connectivity structures."), while the LIF receives before it sends (SP/lava/proc/lif/models.py:
  200, 216), so a cycle never waits on itself and a recurrent spike of step t acts at t + 1: the
  IR's ``a[t] = W s_src[t-1]`` for every synapse (``snnc.compiler.ir`` ``Graph``). A recurrent link
  carries the population's binary spikes (``num_message_bits`` 0) even when the network's input is
  graded. Between samples a recurrent Dense's ``a_buff`` (W s of the last step) is zeroed like every
  other (below), so no spike crosses from one sample into the next;
* synaptic delays: a Dense with ``delay`` (compiler/ir.py) is Lava's ``DelayDense`` with the same
  weight options (``_dense``); its buffer holds every delayed sum still on its way and is zeroed
  between samples like a Dense's, so nothing crosses from one sample into the next;
* layouts: a population or input with a (C, H, W) shape lives in Lava's (W, H, C) layout (what
  Lava's Conv takes, SP/lava/proc/conv/process.py:24-60); a Dense reading it goes through
  ``s_out.flatten()`` with its weight columns permuted to that order (what netx does for a flatten
  layer, SP/lava/lib/dl/netx/hdf5.py:314-461); results are turned back into torch (C, H, W) order;
* every sample starts from zero state: between samples ``u``, ``v`` (LIF) and ``a_buff`` (Dense, the
  one-step delay buffer) are set back to 0 with ``Var.set``; the network is compiled once per block
  of samples, not once per sample (build + compile + spawn is ~0.4 s; a fresh network per sample
  measured 635 ms/sample against ~80 ms/sample reused, 64-128-10 at T=20, 2 cores);
* the source holds the whole block's input, sample k at columns k*T .. k*T+T-1. Lava's step counter
  runs on across ``run`` calls and both ring buffers index with ``(time_step - 1) % buffer``
  (SP/lava/proc/io/source.py:40-44, SP/lava/proc/io/sink.py:48-52), so step t of sample k reads
  and writes column k*T + t - 1 with no per-sample ``Var.set`` of the input. Every set/get moves
  one value per message (SP/lava/magma/runtime/runtime.py:516-612): reading the sinks back is the
  slowest part of a run (~17 us per neuron-step), more than the steps themselves (~1.5 ms each).

Why a worker process: Lava deadlocks instead of failing when a process model raises mid-run (the
runtime service waits forever for the DONE of models blocked on the failed one,
SP/lava/magma/runtime/runtime_services/runtime_service.py:221-236, 341-352), and a blocked
``run`` cannot be interrupted from a thread. So each call forks one worker in its own process group;
the worker builds and runs the network, watches Lava's processes (one that exits mid-run is an error),
and always stops or kills them. The caller enforces ``timeout_s`` and Ctrl-C by terminating that
group, which cannot hang. If the caller itself is killed, Linux's parent-death signal stops the
worker and, through it, Lava's processes. Nothing of Lava's ever outlives the call.
"""
from __future__ import annotations

import contextlib
import io
import multiprocessing as mp
import multiprocessing.connection
import os
import signal
import threading
import time
from dataclasses import dataclass, field, replace
from types import SimpleNamespace
from typing import Any, Callable, NoReturn

import numpy as np

from snnc.compiler.ir import Graph, QConv, QCubaLIF, QDense, dims
from snnc.compiler.lowering import lava_groups, merge_groups
from snnc.errors import GraphError, LavaRunError
from snnc.processes import die_with_parent
from snnc.runtime.lava_compat import ensure_lava_importable, patch_conv_geometry, patch_reshape_ports

#: Most input values (n_in x samples x T) one compiled network holds; more samples => more blocks
#: (bounds the memory of the preloaded source and of the sinks; each block costs one ~0.4 s start).
MAX_BLOCK_VALUES = 2**22
#: A run's default time limit: TIMEOUT_FLOOR_S + TIMEOUT_FACTOR x its expected time (expected_seconds).
TIMEOUT_FLOOR_S = 300.0
TIMEOUT_FACTOR = 20.0
#: Seconds a terminated worker gets to stop Lava cleanly before its whole process group is killed.
TERMINATE_GRACE_S = 5.0
_POLL_S = 0.05
_ADVICE = ("Check that the graph came from snnc's compiler (so every parameter is in Lava's range), "
           "compare with hwsim on the same inputs, and report the error with the graph if it persists.")


@dataclass(frozen=True)
class PopulationSpec:
    """One LIF population's parameters, as Lava's process takes them."""

    name: str
    size: int
    du: int                 # Lava's register value: effective du - 1 (may be -1: no current decay)
    dv: int
    vth: int
    bias_mant: np.ndarray   # int32 (n,), torch order
    bias_exp: int
    shape: tuple[int, ...] | None = None   # torch (C, H, W): lives in Lava as (W, H, C)


@dataclass(frozen=True)
class SynapseSpec:
    """One Dense process: from ``source`` (the input or a population) into population ``dest``."""

    name: str
    source: str
    dest: str
    weight: np.ndarray      # int32 (n_out, n_in), torch order
    weight_exp: int
    message_bits: int       # 0: binary spikes; > 0: graded input values (SP/lava/proc/dense/models.py:96-107)
    recurrent: bool = False  # on a cycle (Population.recurrent): source in the destination's block
    delay: np.ndarray | None = None  # int64 (n_out, n_in) synaptic delays, torch order: a DelayDense (None: Dense)


@dataclass(frozen=True)
class ConvSpec:
    """One Conv process, parameters already in Lava's conventions (SP/lava/proc/conv/process.py:15-60)."""

    name: str
    source: str
    dest: str
    weight: np.ndarray      # int32 (out, kW, kH, in/groups): flipped for Lava's true convolution
    input_shape: tuple[int, int, int]   # (W, H, C)
    stride: tuple[int, int]             # (x, y)
    padding: tuple[int, int]
    dilation: tuple[int, int]
    groups: int
    message_bits: int


def lava_conv_weight(weight: np.ndarray) -> np.ndarray:
    """PyTorch cross-correlation kernel (out, in/g, kh, kw) -> Lava's convolution kernel (out, kW, kH, in/g).

    Lava convolves (scipy.signal.convolve2d, SP/lava/proc/conv/utils.py:222-299), so the kernel is
    flipped in both spatial axes; netx does the same (SP/lava/lib/dl/netx/hdf5.py:505-506).
    """
    return np.ascontiguousarray(weight[:, :, ::-1, ::-1].transpose(0, 3, 2, 1))


def torch_to_lava_order(shape: tuple[int, ...]) -> np.ndarray:
    """For a (C, H, W) layout: the torch flat index at each position of Lava's flattened (W, H, C) array."""
    return np.arange(int(np.prod(shape))).reshape(shape).transpose(2, 1, 0).ravel()


def to_lava_layout(x: np.ndarray, shape: tuple[int, ...] | None) -> np.ndarray:
    """(..., n) torch order -> (..., W, H, C) for a 3-D shape; unchanged for a flat one."""
    if shape is None or len(shape) != 3:
        return x
    lead = x.shape[:-1]
    nd = len(lead)
    return x.reshape(*lead, *shape).transpose(*range(nd), nd + 2, nd + 1, nd)


def from_lava_layout(x: np.ndarray, shape: tuple[int, ...] | None) -> np.ndarray:
    """(W, H, C, ...) Lava layout -> (n, ...) torch order; a flat (n, ...) array is unchanged."""
    if shape is None or len(shape) != 3:
        return x
    rest = x.shape[3:]
    return x.transpose(2, 1, 0, *range(3, x.ndim)).reshape(int(np.prod(shape)), *rest)


@dataclass(frozen=True)
class NetSpec:
    """The whole fixed-point graph as plain Lava parameters, populations in ``Graph.populations()``
    order (strongly connected components in topological order; a synapse may point back)."""

    input_name: str
    input_size: int
    input_bits: int
    populations: tuple[PopulationSpec, ...]
    synapses: tuple[SynapseSpec | ConvSpec, ...]
    read_v: tuple[str, ...]  # populations whose v is read after every sample (readout integrators)
    input_shape: tuple[int, ...] | None = None   # torch (C, H, W) when the input lives as (W, H, C)
    record: tuple[str, ...] | None = None         # populations with a Sink (None: all); each costs a process

    def recorded(self) -> list[str]:
        return [p.name for p in self.populations if self.record is None or p.name in self.record]

    def layout(self, name: str) -> tuple[int, ...] | None:
        """The (C, H, W) shape of the input or a population that lives in Lava's 3-D layout, else None."""
        if name == self.input_name:
            return self.input_shape
        return next(p.shape for p in self.populations if p.name == name)


@dataclass(frozen=True)
class LavaResult:
    spikes: dict[str, np.ndarray]     # bool (batch, T, n) per population
    final_v: dict[str, np.ndarray]    # int64 (batch, n) for the populations in NetSpec.read_v
    stats: "LavaRunStats"


@dataclass
class LavaRunStats:
    """Wall times of one :func:`run_on_lava` call, measured in the worker."""

    batch: int
    timesteps: int
    blocks: int = 0
    build_s: float = 0.0        # building processes + compiling + spawning Lava's workers
    run_s: float = 0.0          # RunSteps of every sample, including the state resets
    read_s: float = 0.0         # reading the sinks back
    stop_s: float = 0.0
    total_s: float = 0.0        # as seen by the caller, including the fork and the result transfer
    per_sample_s: list[float] = field(default_factory=list)


def net_spec(graph: Graph, read_v: tuple[str, ...] = ()) -> NetSpec:
    """The graph as Lava parameters; only fixed-point graphs can run on Lava."""
    if not graph.is_fixed_point:
        raise GraphError("Lava runs fixed-point graphs only: quantize the graph first")
    inp = graph.input
    pops: list[PopulationSpec] = []
    syns: list[SynapseSpec | ConvSpec] = []
    for pop in graph.populations():
        neu = pop.neuron
        if not isinstance(neu, QCubaLIF):
            raise GraphError(f"population '{neu.name}' is not a QCubaLIF")
        convs = [syn for syn, _ in pop.inputs if isinstance(syn, QConv)]
        shape = neu.shape if neu.shape is not None else (convs[0].out_shape if convs else None)
        pops.append(PopulationSpec(
            name=neu.name, size=neu.size, du=int(neu.lava_du), dv=int(neu.dv), vth=int(neu.vth),
            bias_mant=np.broadcast_to(np.asarray(neu.bias_mant, dtype=np.int32), (neu.size,)).copy(),
            bias_exp=int(neu.bias_exp), shape=tuple(shape) if shape is not None and len(shape) == 3 else None))
        for syn, src in pop.inputs:
            bits = inp.bits if src == inp.name else 0   # only the Input is graded: populations send spikes
            if syn.name in pop.recurrent and not isinstance(syn, QDense):   # Graph.check refuses it too
                raise GraphError(f"synapse '{syn.name}' ({src} -> {neu.name}) is on a cycle but is not a Dense: "
                                 f"Lava's runtime runs recurrent Dense connections only")
            if isinstance(syn, QConv):
                c, h, w = syn.in_shape
                groups = lava_groups(syn.groups)   # Lava holds groups in int8: 128 -> 64 merged groups
                weight = merge_groups(syn.weight, syn.groups, groups) if groups != syn.groups else syn.weight
                syns.append(ConvSpec(syn.name, src, neu.name, lava_conv_weight(weight).astype(np.int32),
                                     (w, h, c), syn.stride[::-1], syn.padding[::-1], syn.dilation[::-1],
                                     groups, bits))
            else:
                assert isinstance(syn, QDense)
                delay = None if syn.delay is None else np.ascontiguousarray(syn.delay, dtype=np.int64)
                syns.append(SynapseSpec(syn.name, src, neu.name, np.ascontiguousarray(syn.weight, dtype=np.int32),
                                        int(syn.weight_exp), bits, syn.name in pop.recurrent, delay))
    in_shape = tuple(dims(inp))
    return NetSpec(inp.name, inp.size, inp.bits, tuple(pops), tuple(syns), tuple(read_v),
                   in_shape if len(in_shape) == 3 else None)


def expected_seconds(net: NetSpec, batch: int, steps: int) -> float:
    """About how long Lava takes for ``batch`` samples of ``steps`` steps, from the costs measured on
    2 cores (module docstring): ~0.5 s to start each block, ~1.5 ms per step, ~17 us per recorded
    neuron-step read back."""
    blocks = -(-batch // max(1, MAX_BLOCK_VALUES // (net.input_size * steps)))
    neurons = sum(p.size for p in net.populations if p.name in net.recorded() or p.name in net.read_v)
    return 0.5 * blocks + batch * steps * (1.5e-3 + 17e-6 * neurons)


def default_timeout(net: NetSpec, batch: int, steps: int) -> float:
    """The bound every run gets unless told otherwise: a run past it is hung, not slow."""
    return TIMEOUT_FLOOR_S + TIMEOUT_FACTOR * expected_seconds(net, batch, steps)


def run_on_lava(graph: Graph, inputs: np.ndarray, *, timeout_s: float | None = None) -> dict[str, np.ndarray]:
    """Spikes of every population, bool (batch, T, n), from Lava's fixed_pt simulation of ``graph``.

    Every sample starts from zero state; ``timeout_s`` bounds the whole call (LavaRunError when
    exceeded; None: :func:`default_timeout`, ``math.inf``: no bound). Raises LavaRunError for
    anything Lava fails at.
    """
    return run_on_lava_full(graph, inputs, timeout_s=timeout_s).spikes


def run_on_lava_with_stats(graph: Graph, inputs: np.ndarray, *,
                           timeout_s: float | None = None) -> tuple[dict[str, np.ndarray], LavaRunStats]:
    """:func:`run_on_lava` plus where the time went."""
    res = run_on_lava_full(graph, inputs, timeout_s=timeout_s)
    return res.spikes, res.stats


def run_on_lava_full(graph: Graph, inputs: np.ndarray, *, read_v: tuple[str, ...] = (),
                     timeout_s: float | None = None, record: tuple[str, ...] | None = None,
                     progress: Callable[[str, int, int], None] | None = None) -> LavaResult:
    """Spikes of every population (or only of ``record``: each recorded population costs Lava one
    more process to synchronise every step), ``v`` after the last step of the ``read_v``
    populations, and timings. ``progress(task, done, total)`` hears each sample Lava finishes
    (task 'lava samples'; the worker sends a message per sample over its pipe)."""
    net = replace(net_spec(graph, read_v), record=record)
    x = graph.input.check_values(inputs)
    batch, steps = x.shape[:2]
    if batch == 0 or steps == 0:
        empty = {p.name: np.zeros((batch, steps, p.size), dtype=bool) for p in net.populations
                 if p.name in net.recorded()}
        vs = {p.name: np.zeros((batch, p.size), dtype=np.int64) for p in net.populations if p.name in read_v}
        return LavaResult(empty, vs, LavaRunStats(batch, steps))
    if timeout_s is not None and not timeout_s > 0:
        raise ValueError(f"timeout_s must be positive, got {timeout_s}")
    if timeout_s is None:
        timeout_s = default_timeout(net, batch, steps)
    _preload_lava()
    start = time.perf_counter()
    spikes, final_v, stats = _run_in_worker(net, x, timeout_s, progress)
    stats.total_s = time.perf_counter() - start
    return LavaResult(spikes, final_v, stats)


# --------------------------------------------------------------------------------------- lava imports

_LAVA: SimpleNamespace | None = None


def lava_api() -> SimpleNamespace:
    """Import the few Lava names we use (once); LavaRunError if Lava cannot be imported."""
    global _LAVA
    if _LAVA is None:
        ensure_lava_importable()
        if mp.get_start_method(allow_none=True) == "fork":
            # Lava's import calls set_start_method('fork') without force, which raises once any
            # method is set, even 'fork' itself; resetting to None lets it set the same value again
            mp.set_start_method(None, force=True)
        try:
            from lava.magma.core.run_conditions import RunSteps
            from lava.magma.core.run_configs import Loihi2SimCfg
            from lava.proc.conv.process import Conv
            from lava.proc.dense.process import DelayDense, Dense
            from lava.proc.io.sink import RingBuffer as Sink
            from lava.proc.io.source import RingBuffer as Source
            from lava.proc.lif.process import LIF
            from lava.utils.weightutils import SignMode
        except (ImportError, ValueError, RuntimeError) as exc:
            raise LavaRunError(
                f"Lava could not be imported ({type(exc).__name__}: {exc}). snnc needs lava-nc 0.10.0 "
                f"installed in this environment (pip install --no-deps lava-nc==0.10.0 and its "
                f"dependencies, see docs/install.md); on Python >= 3.11 snnc patches one known "
                f"incompatibility at import time, see snnc.runtime.lava_compat.") from None
        patch_reshape_ports()
        patch_conv_geometry()
        _LAVA = SimpleNamespace(RunSteps=RunSteps, Loihi2SimCfg=Loihi2SimCfg, Dense=Dense, DelayDense=DelayDense,
                                Conv=Conv, Sink=Sink, Source=Source, LIF=LIF, SignMode=SignMode)
    return _LAVA


def _preload_lava() -> None:
    """Import Lava here if that is harmless, so forked workers inherit it instead of re-importing.

    Importing Lava calls ``mp.set_start_method('fork')`` without force
    (SP/lava/magma/runtime/message_infrastructure/multiprocessing.py:46-47), which raises if the
    program already chose a start method; then only the worker imports it (after resetting its copy).
    """
    if _LAVA is None and mp.get_start_method(allow_none=True) is None:
        lava_api()


# --------------------------------------------------------------------------------------- the caller

def _run_in_worker(net: NetSpec, x: np.ndarray, timeout_s: float,
                   progress: Callable[[str, int, int], None] | None = None
                   ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], LavaRunStats]:
    """Fork the worker, wait for its one message (or the deadline), and always reap its process group."""
    ctx = mp.get_context("fork")
    recv, send = ctx.Pipe(duplex=False)
    worker = ctx.Process(target=_worker_main, args=(net, x, send, os.getpid(), progress is not None),
                         name="snnc-lava-worker")
    deadline = time.monotonic() + timeout_s   # inf: no deadline
    finished = False
    worker.start()
    try:
        _set_own_group(worker.pid)
        send.close()
        message = _wait_for_message(recv, worker, deadline, timeout_s, progress)
        finished = True
    finally:
        recv.close()
        _reap_worker(worker, graceful=finished)
    kind, payload = message
    if kind == "ok":
        return payload
    raise LavaRunError(payload)


def _set_own_group(pid: int) -> None:
    """Put the worker in its own process group (it does so too: whoever runs first wins the race)."""
    try:
        os.setpgid(pid, pid)
    except OSError:
        pass  # already done by the worker, or it has already exited


def _wait_for_message(recv: mp.connection.Connection, worker: mp.Process, deadline: float | None,
                      timeout_s: float | None, progress: Callable[[str, int, int], None] | None = None
                      ) -> tuple[str, Any]:
    """The worker's ("ok", result) or ("error", text); LavaRunError on timeout or a silent death.
    ("progress", (done, total)) messages on the way go to ``progress``."""
    while True:
        wait = _POLL_S * 10 if deadline is None else max(0.0, min(_POLL_S * 10, deadline - time.monotonic()))
        if recv.poll(wait):
            try:
                message = recv.recv()
            except EOFError:
                break
            if message[0] != "progress":
                return message
            if progress is not None:
                progress("lava samples", *message[1])
            continue
        if not worker.is_alive():
            if recv.poll(0):
                try:
                    return recv.recv()
                except EOFError:
                    pass
            break
        if deadline is not None and time.monotonic() >= deadline:
            raise LavaRunError(
                f"Lava did not finish within timeout_s={timeout_s:g} s; its processes were stopped. "
                f"Lava needs ~0.5 s to start plus, per sample, ~1.5 ms per timestep and ~17 us per "
                f"neuron-step of spikes read back (a 64-128-10 network at T=20: ~80 ms per sample); "
                f"raise the limit (snn-run / snn-compile --lava-timeout S, Python timeout_s) for bigger inputs, "
                f"or run fewer samples. {_ADVICE}")
    raise LavaRunError(f"Lava's worker process died without a result (exit code {worker.exitcode}), "
                       f"possibly killed for memory or by a signal. {_ADVICE}")


def _reap_worker(worker: mp.Process, *, graceful: bool) -> None:
    """Join the worker; if it must be stopped: SIGTERM, a grace period, then SIGKILL its whole group."""
    if graceful:
        worker.join(TERMINATE_GRACE_S)
    if worker.is_alive():
        try:
            os.kill(worker.pid, signal.SIGTERM)  # the worker kills Lava's processes, then exits
        except ProcessLookupError:
            pass
        worker.join(TERMINATE_GRACE_S)
    _kill_group(worker.pid)  # anything of Lava's that is left (normally nothing)
    worker.join()


def _kill_group(pgid: int) -> None:
    """SIGKILL every process left in the worker's process group."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


# --------------------------------------------------------------------------------------- the worker

@dataclass
class _Network:
    """The Lava processes of one block; the first population's LIF owns the runtime once compiled."""

    source: Any
    synapses: list[Any]   # Dense and Conv processes
    lifs: dict[str, Any]
    sinks: dict[str, Any]


class _Worker:
    """State of the worker process: where it is (for error messages) and what must be torn down."""

    def __init__(self, send: mp.connection.Connection, tell_progress: bool = False):
        self.send = send
        self.tell_progress = tell_progress
        self.total = 0
        self.stage = "importing Lava"
        self.runtime: Any = None
        self.lock = threading.Lock()
        self.pid = os.getpid()

    def report(self, kind: str, payload: Any) -> None:
        """Send the one message the caller waits for."""
        with self.lock:
            if self.send is not None:
                self.send.send((kind, payload))
                self.send.close()
                self.send = None

    def progress(self, done: int) -> None:
        """Tell the caller that ``done`` samples are finished (when it asked to hear it)."""
        if self.tell_progress:
            with self.lock:
                if self.send is not None:
                    self.send.send(("progress", (done, self.total)))

    def abort(self, text: str | None) -> NoReturn:
        """Report ``text`` (if any), kill Lava's processes, and exit the worker at once."""
        if os.getpid() != self.pid:   # a Lava child that inherited our signal handler
            os._exit(1)
        try:
            if text is not None:
                self.report("error", text)
            force_shutdown(self.runtime)
        finally:
            os._exit(1)


def _worker_main(net: NetSpec, x: np.ndarray, send: mp.connection.Connection, parent: int,
                 tell_progress: bool = False) -> None:
    """Entry point of the forked worker: simulate, send the result or the error, exit."""
    try:
        os.setpgid(0, 0)
    except OSError:
        pass
    worker = _Worker(send, tell_progress)
    signal.signal(signal.SIGTERM, lambda signum, frame: worker.abort(None))
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the caller handles Ctrl-C and then terminates us
    # the caller killed outright (it is not our process group): SIGTERM, whose handler kills Lava's
    # processes; and those die with us in any case
    os.register_at_fork(after_in_child=lambda: die_with_parent(signal.SIGKILL))
    die_with_parent(signal.SIGTERM, parent)
    try:
        if _LAVA is None:
            mp.set_start_method(None, force=True)  # let Lava's own set_start_method('fork') succeed
        api = lava_api()
        worker.report("ok", _simulate(worker, api, net, x))
    except LavaRunError as exc:
        worker.abort(str(exc))
    except BaseException as exc:  # anything at all: one paragraph for the caller, and Lava killed
        worker.abort(_failure_text(worker.stage, exc))


def _failure_text(stage: str, exc: BaseException) -> str:
    """One paragraph: what failed, where, and what to do."""
    detail = str(exc).strip().splitlines()
    first = detail[0] if detail else ""
    return f"Lava failed while {stage} ({type(exc).__name__}: {first}). {_ADVICE}"


def _simulate(worker: _Worker, api: SimpleNamespace, spec: NetSpec, x: np.ndarray
              ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], LavaRunStats]:
    """All samples, block by block; every block is one compiled network."""
    batch, steps, n_in = x.shape
    per_block = max(1, MAX_BLOCK_VALUES // (n_in * steps))
    stats = LavaRunStats(batch, steps)
    worker.total = batch
    parts: list[tuple[dict[str, np.ndarray], dict[str, np.ndarray]]] = []
    for first in range(0, batch, per_block):
        parts.append(_simulate_block(worker, api, spec, x[first:first + per_block], first, stats))
        stats.blocks += 1
    spikes = {name: np.concatenate([s[name] for s, _ in parts]) for name in spec.recorded()}
    final_v = {name: np.concatenate([v[name] for _, v in parts]) for name in spec.read_v}
    return spikes, final_v, stats


def _simulate_block(worker: _Worker, api: SimpleNamespace, spec: NetSpec, x: np.ndarray, offset: int,
                    stats: LavaRunStats) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Build, compile, run every sample of ``x`` from zero state, read the sinks, stop."""
    batch, steps, _ = x.shape
    t0 = time.perf_counter()
    net = _build_network(worker, api, spec, x)
    worker.stage = "compiling the network and starting Lava's processes"
    owner = net.lifs[spec.populations[0].name]
    try:
        # Runtime.initialize print()s a builder's traceback before raising it
        # (SP/lava/magma/runtime/runtime.py:165-173): keep it out of the user's terminal.
        with contextlib.redirect_stdout(io.StringIO()):
            owner.create_runtime(run_cfg=api.Loihi2SimCfg(select_tag="fixed_pt"))
    finally:
        worker.runtime = owner.runtime  # set even when initialize failed half way: it may have children
    monitor = _ActorMonitor(worker)
    monitor.start()
    stats.build_s += time.perf_counter() - t0
    final_v: dict[str, list[np.ndarray]] = {name: [] for name in spec.read_v}
    try:
        for k in range(batch):
            ts = time.perf_counter()
            if k:
                worker.stage = f"resetting the state before sample {offset + k}"
                _reset_state(net)
            worker.stage = f"running sample {offset + k}"
            owner.run(condition=api.RunSteps(num_steps=steps))
            for name in spec.read_v:  # the readout integrator's v after the last step
                worker.stage = f"reading v of '{name}' after sample {offset + k}"
                v = np.asarray(net.lifs[name].v.get()).astype(np.int64)
                final_v[name].append(from_lava_layout(v, spec.layout(name)))
            stats.per_sample_s.append(time.perf_counter() - ts)
            worker.progress(offset + k + 1)
        stats.run_s += sum(stats.per_sample_s[-batch:])
        t1 = time.perf_counter()
        spikes = {}
        for name, sink in net.sinks.items():
            worker.stage = f"reading the spikes of layer '{name}'"
            spikes[name] = _sink_spikes(from_lava_layout(np.asarray(sink.data.get()), spec.layout(name)), batch, steps)
        stats.read_s += time.perf_counter() - t1
    finally:
        monitor.stop()
    t2 = time.perf_counter()
    worker.stage = "stopping Lava's processes"
    owner.stop()   # graceful: every model process returns and is joined
    force_shutdown(owner.runtime)  # no-op after a clean stop; kills whatever did not exit
    worker.runtime = None
    stats.stop_s += time.perf_counter() - t2
    return spikes, {name: np.stack(v) for name, v in final_v.items()}


def _build_network(worker: _Worker, api: SimpleNamespace, spec: NetSpec, x: np.ndarray) -> _Network:
    """Source, one LIF (+ sink) per population, one Dense or Conv per synapse; the block's input preloaded.

    Every process is created before any is connected, so a synapse may lead into any population: its
    own source (a self-loop) or an earlier one (a cycle). A population driven by several synapses sums
    them at its ``a_in`` port (Lava adds the messages of every connection into one InPort).
    """
    batch, steps, n_in = x.shape
    cols = batch * steps
    worker.stage = "building the input source"
    # column k*T + t holds sample k, step t (SP/lava/proc/io/source.py:40-44 sends column (time_step-1) % cols)
    flat = np.ascontiguousarray(x.transpose(2, 0, 1).reshape(n_in, cols), dtype=np.int32)
    source = api.Source(data=np.ascontiguousarray(to_lava_layout(flat.T, spec.input_shape).transpose(
        *range(1, 4 if spec.input_shape else 2), 0)))
    net = _Network(source, [], {}, {})
    # 1. every process
    for pop in spec.populations:
        worker.stage = f"building layer '{pop.name}'"
        shape = tuple(pop.shape[::-1]) if pop.shape else (pop.size,)
        # du is the register value (effective - 1; -1 = no decay): SP/lava/proc/lif/models.py:145-148
        net.lifs[pop.name] = api.LIF(shape=shape, du=pop.du, dv=pop.dv, vth=pop.vth,
                                     bias_mant=to_lava_layout(pop.bias_mant, pop.shape).astype(np.int32),
                                     bias_exp=np.full(shape, pop.bias_exp, dtype=np.int32), name=pop.name)
        if spec.record is None or pop.name in spec.record:
            net.sinks[pop.name] = api.Sink(shape=shape, buffer=cols)
    for syn in spec.synapses:
        worker.stage = f"building synapse '{syn.name}'"
        net.synapses.append(_conv(api, syn) if isinstance(syn, ConvSpec) else _dense(api, syn, spec))
    # 2. every connection
    worker.stage = "connecting the network"
    outs = {spec.input_name: source.s_out, **{name: lif.s_out for name, lif in net.lifs.items()}}
    for name, sink in net.sinks.items():
        net.lifs[name].s_out.connect(sink.a_in)
    for syn, proc in zip(spec.synapses, net.synapses):
        worker.stage = f"connecting synapse '{syn.name}' ({syn.source} -> {syn.dest})"
        src_shape, dest_shape = spec.layout(syn.source), spec.layout(syn.dest)
        port = outs[syn.source]
        (port.flatten() if src_shape and not isinstance(syn, ConvSpec) else port).connect(proc.s_in)
        out = proc.a_out
        (out.reshape(dest_shape[::-1]) if dest_shape and not isinstance(syn, ConvSpec) else out).connect(
            net.lifs[syn.dest].a_in)
    return net


def _dense(api: SimpleNamespace, syn: SynapseSpec, spec: NetSpec) -> Any:
    """A Dense process; a 3-D source or destination gets its columns or rows in Lava's (W, H, C) order.

    A synapse with delays is a ``DelayDense`` (SP/lava/proc/dense/process.py:189-263) with the same
    weight options, its delays permuted like the weights and ``max_delay`` their largest: its
    ``PyDelayDenseModelBitAcc`` clips and truncates the weights as Dense does and shifts each delay's
    sum by weight_exp before adding it to its buffer (SP/lava/proc/dense/models.py:319-360), which
    is what hwsim computes (``snnc.hwsim.sim.dense_input``)."""
    w, delay = syn.weight, syn.delay
    src_shape, dest_shape = spec.layout(syn.source), spec.layout(syn.dest)
    if src_shape:
        w = w[:, torch_to_lava_order(src_shape)]
        delay = None if delay is None else delay[:, torch_to_lava_order(src_shape)]
    if dest_shape:
        w = w[torch_to_lava_order(dest_shape), :]
        delay = None if delay is None else delay[torch_to_lava_order(dest_shape), :]
    # MIXED forced: determine_sign_mode would make an all-negative matrix INHIBITORY and clip
    # -256 to -255 (SP/lava/utils/weightutils.py:21-43, 250-295); num_weight_bits=8 keeps even
    # weights exact (SP/lava/proc/dense/models.py:82-91).
    if delay is not None:
        return api.DelayDense(weights=np.ascontiguousarray(w), delays=np.ascontiguousarray(delay, dtype=np.int64),
                              max_delay=int(delay.max()), weight_exp=syn.weight_exp, num_weight_bits=8,
                              sign_mode=api.SignMode.MIXED, num_message_bits=syn.message_bits, name=syn.name)
    return api.Dense(weights=np.ascontiguousarray(w), weight_exp=syn.weight_exp, num_weight_bits=8,
                     sign_mode=api.SignMode.MIXED, num_message_bits=syn.message_bits, name=syn.name)


def _conv(api: SimpleNamespace, syn: ConvSpec) -> Any:
    """A Conv process (fixed_pt: weights used raw, output wrapped to 24 bits, SP/lava/proc/conv/models.py:68-79)."""
    return api.Conv(weight=syn.weight, input_shape=syn.input_shape, padding=syn.padding, stride=syn.stride,
                    dilation=syn.dilation, groups=syn.groups, num_message_bits=syn.message_bits, name=syn.name)


def _reset_state(net: _Network) -> None:
    """Zero every piece of state that carries over between samples (u, v, and the synapses' buffers).

    Dense's a_buff (Conv's a_buf) holds W @ s of the previous sample's last step, which it would send
    first in the next step (SP/lava/proc/dense/models.py:93-107, SP/lava/proc/conv/models.py:34-51). vth is cached after the first step but never changes;
    the bias is recomputed every step (SP/lava/proc/lif/models.py:194-208). A DelayDense's a_buff
    (n_out, max_delay + 1) holds every delayed sum still on its way; it is zeroed the same way.
    """
    for lif in net.lifs.values():
        zeros = np.zeros(lif.u.shape)
        lif.u.set(zeros)
        lif.v.set(zeros)
    for syn in net.synapses:
        buf = syn.a_buff if hasattr(syn, "a_buff") else syn.a_buf   # Dense: a_buff; Conv: a_buf
        buf.set(np.zeros(buf.shape))


def _sink_spikes(data: np.ndarray, batch: int, steps: int) -> np.ndarray:
    """Sink data (n, batch*T), column k*T + t (SP/lava/proc/io/sink.py:48-52) -> bool (batch, T, n)."""
    n = data.shape[0]
    return np.ascontiguousarray(data.reshape(n, batch, steps).transpose(1, 2, 0) != 0)


class _ActorMonitor(threading.Thread):
    """Turns a Lava process that exits mid-run into an error instead of Lava's silent deadlock."""

    def __init__(self, worker: _Worker):
        super().__init__(name="snnc-lava-monitor", daemon=True)
        self.worker = worker
        self.actors = _actors(worker.runtime)
        self.labels = _actor_labels(worker.runtime, len(self.actors))
        self._stop_event = threading.Event()

    def run(self) -> None:
        """Wait on the actors' sentinels; one that fires before stop() means a process ended."""
        try:
            sentinels = [a.sentinel for a in self.actors]
            while not self._stop_event.is_set() and sentinels:
                if mp.connection.wait(sentinels, timeout=_POLL_S) and not self._stop_event.is_set():
                    time.sleep(_POLL_S * 4)  # let the others that go down with it finish, to pick the cause
                    self.worker.abort(_death_text(self.worker.stage, self.actors, self.labels))
        except Exception as exc:  # never die silently: the main thread may be blocked in Lava for good
            self.worker.abort(_failure_text(self.worker.stage, exc))

    def stop(self) -> None:
        """Stop watching (before a deliberate stop of the runtime)."""
        self._stop_event.set()
        if self.is_alive() and threading.current_thread() is not self:
            self.join()


def _actors(runtime: Any) -> list[Any]:
    """Lava's OS processes of ``runtime`` (the actors of its MultiProcessing infrastructure)."""
    # SP/lava/magma/runtime/message_infrastructure/multiprocessing.py:95-126
    infra = getattr(runtime, "_messaging_infrastructure", None)
    return list(getattr(infra, "actors", None) or [])


def _actor_labels(runtime: Any, count: int) -> list[str]:
    """Name each actor: process models first, in proc_builders order, then runtime services.

    That is the order Runtime starts them in (SP/lava/magma/runtime/runtime.py:300-328); Process
    objects drop their kwargs on start, so the order is the only link back to our processes.
    """
    executable = getattr(runtime, "_executable", None)
    procs = list(getattr(executable, "proc_builders", None) or {})
    labels = [f"the {type(p).__name__} process '{p.name}'" for p in procs]
    return (labels + ["Lava's runtime service"] * count)[:count]


def _death_text(stage: str, actors: list[Any], labels: list[str]) -> str:
    """Which Lava process ended mid-run and why (the exception it sent, if any)."""
    ended = []
    for actor, label in zip(actors, labels):
        if not mp.connection.wait([actor.sentinel], timeout=0):
            continue
        cause = None
        try:
            if actor._pconn.poll(0.1):  # SystemProcess sends (exception, traceback) or None
                sent = actor._pconn.recv()
                if sent:
                    exc = sent[0]
                    first = (str(exc).strip().splitlines() or [""])[0]
                    cause = f"it raised {type(exc).__name__}: {first}"
        except (OSError, EOFError, ValueError):
            pass
        ended.append((label, cause))
    if not ended:
        return f"Lava failed while {stage}: one of its processes ended unexpectedly. {_ADVICE}"
    label, cause = next(((lb, c) for lb, c in ended if c is not None), ended[0])
    return (f"Lava failed while {stage}: {label} stopped ({cause or 'it exited without an error'}). "
            f"{_ADVICE}")


def force_shutdown(runtime: Any) -> None:
    """Kill and reap Lava's processes of ``runtime`` and free its shared memory; safe to repeat.

    Runtime.stop() cannot be used after a failure: it waits for answers from processes that may be
    dead or blocked (SP/lava/magma/runtime/runtime.py:485-507), and before the first run it joins
    processes that never exit.
    """
    if runtime is None:
        return
    for actor in _actors(runtime):
        if getattr(actor, "_is_done", False):
            continue  # already joined and closed by Lava
        actor.kill()   # SIGKILL; a no-op for one that has exited
        actor.join()   # SystemProcess.join: reap, close, mark done (multiprocessing.py:71-79)
    infra = getattr(runtime, "_messaging_infrastructure", None)
    smm = getattr(infra, "smm", None)
    if smm is not None:
        # Lava's wrapper is idempotent (SP/lava/magma/runtime/message_infrastructure/
        # shared_memory_manager.py:20-26); the manager's server unlinks every channel's segment.
        smm.shutdown()
    watchdog = getattr(runtime, "_watchdog_manager", None)
    if watchdog is not None:
        watchdog.stop()
    runtime._is_running = False
    runtime._is_started = False


__all__ = ["run_on_lava", "run_on_lava_with_stats", "run_on_lava_full", "LavaResult", "LavaRunStats", "NetSpec",
           "net_spec", "lava_api", "force_shutdown", "MAX_BLOCK_VALUES"]

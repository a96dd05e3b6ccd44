"""nengo-loihi's Loihi 1 emulator as a second reference engine, run at arm's length (bridges/).

Lava's fixed-point models are a model of Loihi; nengo-loihi 1.1.0's ``EmulatorInterface`` is another,
whose tests ran against the chip (docs/emulator.md). Where a network never overflows, has even
weights and ``weight_exp >= -1``, the two agree exactly, so the emulator joins ``--verify`` as the
engine "emulator"; where they differ, the run has entered a regime in which Lava's model and the
silicon-tested semantics part (docs/emulator.md lists them).

Licence: nengo (which nengo_loihi imports) is GPL-2.0 and snnc is BSD-3, so no snnc module imports
either. The emulator runs in ``bridges/nengo_loihi_emulator.py``, a standalone script started here in
its own process with the Python that has nengo-loihi (this one, or ``SNNC_EMULATOR_PYTHON``); the
network goes in and the spikes come back as plain .npz files (its docstring is the protocol). This
module only asks ``importlib.util.find_spec`` whether nengo-loihi is installed; it never imports it.

What goes where mirrors hwsim (snnc.hwsim.sim) and the Lava runtime (snnc.runtime.lava_backend): the
effective current decay ``du`` (the bridge stores the register du - 1, to which the emulator adds 1
back: SP/nengo_loihi/emulator/interface.py:273, as Lava's ds_offset, SP/lava/proc/lif/models.py:145-152),
``dv``, ``vth``, ``bias_mant``/``bias_exp`` as the graph holds them; a Dense's weights as Lava's Dense
uses them (``lava_weights``, SP/lava/proc/dense/models.py:82-91: the identity for every compiled
graph) with its ``weight_exp``; a Conv's integer weights as they are (no weight_exp, as Lava's Conv,
SP/lava/proc/conv/models.py:68-79), lowered to the sparse matrix of its taps with hwsim's own
convolution (``conv_input`` on one-hot inputs: conv via its synapses, each source neuron an axon of
nengo-loihi's ``Synapse``, SP/nengo_loihi/block.py:690-732). The bridge scales them as nengo-loihi's
builder would have (<< 6 on weights and threshold, SP/nengo_loihi/builder/discretize.py:339-343,
473-488); its docstring has the whole mapping, docs/emulator.md the table with both sides' sources.
"""
from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import snnc
from snnc.compiler.ir import Graph, Population, QConv, QCubaLIF, QDense
from snnc.errors import SnncError
from snnc.hwsim.sim import conv_input, lava_weights
from snnc.models.fixed_point import LOIHI_FIXED_POINT
from snnc.models.readout import Readout

#: The bridge's protocol version (its docstring) and the nengo-loihi release whose emulator it mirrors.
PROTOCOL = 1
NENGO_LOIHI_VERSION = "1.1.0"
NENGO_VERSION = "4.1.0"     # the nengo it was tested with here (pyproject's emulator extra)
BRIDGE_FILE = "nengo_loihi_emulator.py"
#: Environment: another interpreter (or environment) that has nengo-loihi; the folder holding the bridge.
ENV_PYTHON = "SNNC_EMULATOR_PYTHON"
ENV_BRIDGES = "SNNC_BRIDGES_DIR"
INSTALL = "pip install 'snnc[emulator]'"
#: The fixed-point format fields the emulator hard-codes (12-bit decays with the +1 on du, << 6 on
#: input and threshold, 24-bit state): a population in another format is not Loihi 1's arithmetic.
LOIHI1_FIELDS = ("decay_unity", "current_decay_offset", "act_shift", "vth_shift", "state_bits")
#: The bound of a run unless told otherwise: TIMEOUT_FLOOR_S + TIMEOUT_FACTOR x expected_seconds.
TIMEOUT_FLOOR_S = 120.0
TIMEOUT_FACTOR = 20.0
#: How long checking an SNNC_EMULATOR_PYTHON (importing nengo_loihi there) may take.
STATUS_TIMEOUT_S = 60.0
#: Values of one one-hot block when a convolution is lowered to its matrix (bounds that memory).
CONV_BLOCK_VALUES = 2**24
OVERFLOW_KINDS = ("q0", "current", "u2")


class EmulatorError(SnncError):
    """nengo-loihi's emulator is unavailable, cannot run a graph, or its bridge failed."""


@dataclass
class EmulatorResult:
    """What the emulator computed for every population, and how long it took."""

    spikes: dict[str, np.ndarray]      # bool (batch, T, n)
    final_v: dict[str, np.ndarray]     # int64 (batch, n): v after the last step
    #: per kind ("q0", "current", "u2"), (batch,) the first 1-based step the emulator wrapped that
    #: quantity in any neuron (0: never): its own overflow checks, nengo_loihi/emulator/interface.py:313-319
    overflow_steps: dict[str, np.ndarray] = field(default_factory=dict)
    build_s: float = 0.0               # in the bridge: building the emulator's blocks
    run_s: float = 0.0                 # in the bridge: every sample
    total_s: float = 0.0               # as seen here: writing, starting the bridge, reading back


# ------------------------------------------------------------------------------------ availability

def bridges_dir() -> Path:
    """``SNNC_BRIDGES_DIR``, else the source tree's bridges/ (pyproject maps the snnc package to
    snnc/ at the repository root, so that is ``snnc/__init__.py``'s grandparent)."""
    override = os.environ.get(ENV_BRIDGES)
    return Path(override) if override else Path(snnc.__file__).resolve().parent.parent / "bridges"


def bridge_path() -> Path:
    return bridges_dir() / BRIDGE_FILE


def emulator_python() -> str:
    """The interpreter that runs the bridge: ``SNNC_EMULATOR_PYTHON``, else this one."""
    return os.environ.get(ENV_PYTHON) or sys.executable


def emulator_status() -> str | None:
    """None when the emulator can be used; otherwise one plain line saying why not."""
    bridge = bridge_path()
    if not bridge.is_file():
        where = f"{ENV_BRIDGES}={os.environ[ENV_BRIDGES]}" if os.environ.get(ENV_BRIDGES) else "the source tree"
        return (f"its bridge {bridge} is not there ({where}): snnc runs the emulator from a source checkout's "
                f"bridges/ folder; set {ENV_BRIDGES} to the folder that holds {BRIDGE_FILE}")
    other = os.environ.get(ENV_PYTHON)
    if other:
        return _interpreter_status(other)
    if importlib.util.find_spec("nengo_loihi") is None or importlib.util.find_spec("nengo") is None:
        return f"nengo-loihi is not installed: {INSTALL} (or set {ENV_PYTHON} to a Python that has it)"
    try:
        version = importlib.metadata.version("nengo-loihi")
    except importlib.metadata.PackageNotFoundError:
        version = None
    if version is not None and version != NENGO_LOIHI_VERSION:
        return (f"nengo-loihi {version} is installed, but the bridge mirrors {NENGO_LOIHI_VERSION}'s emulator: "
                f"{INSTALL}")
    return None


_PROBE = ("import sys, warnings; warnings.simplefilter('ignore'); import numpy; "
          "import nengo_loihi, nengo_loihi.emulator.interface; v = nengo_loihi.__version__; "
          f"ok = v == {NENGO_LOIHI_VERSION!r}; "
          f"ok or print('nengo_loihi ' + v + ' is installed, not {NENGO_LOIHI_VERSION}', file=sys.stderr); "
          "sys.exit(0 if ok else 4)")


@functools.lru_cache(maxsize=8)
def _interpreter_status(python: str) -> str | None:
    """Whether ``python`` (SNNC_EMULATOR_PYTHON) imports nengo-loihi 1.1.0: checked once per value, in a
    subprocess (importing it here is what the licence arrangement forbids)."""
    exe = shutil.which(python)
    if exe is None:
        return f"{ENV_PYTHON}={python} is not an executable Python"
    try:
        r = subprocess.run([exe, "-c", _PROBE], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, text=True, timeout=STATUS_TIMEOUT_S)
    except (OSError, subprocess.SubprocessError) as e:
        return f"{ENV_PYTHON}={python} could not be started ({type(e).__name__}: {e})"
    if r.returncode != 0:
        return (f"{ENV_PYTHON}={python} cannot run the emulator ({_last_line(r.stderr) or f'exit {r.returncode}'}): "
                f"install it there with {python} -m pip install nengo=={NENGO_VERSION} "
                f"nengo-loihi=={NENGO_LOIHI_VERSION}")
    return None


def emulator_support_problem(graph: Graph) -> str | None:
    """None when the emulator can run ``graph``; otherwise one plain line saying what it cannot run."""
    if not graph.is_fixed_point:
        return "the emulator runs fixed-point graphs only: quantize the graph first"
    inp = graph.input
    if inp.bits:
        return (f"the input '{inp.name}' carries graded {inp.bits}-bit values, and Loihi 1, which nengo-loihi's "
                f"emulator models, has binary spikes only (graded spikes came with Loihi 2)")
    if graph.has_delays:
        delayed = graph.delayed_synapses()
        return (f"synapse(s) {', '.join(delayed[:3])}{' ...' if len(delayed) > 3 else ''} carry synaptic delays, and nengo-loihi's emulator does not model "
                f"them (its CompartmentState.MAX_DELAY = 1, 'delay not yet implemented', "
                f"nengo_loihi/emulator/interface.py:223)")
    for pop in graph.populations():
        neu = pop.neuron
        if not isinstance(neu, QCubaLIF):
            return f"population '{pop.name}' is not a fixed-point CUBA-LIF population"
        differs = [f"{f} {getattr(neu.fmt, f)}" for f in LOIHI1_FIELDS
                   if getattr(neu.fmt, f) != getattr(LOIHI_FIXED_POINT, f)]
        if differs:
            want = ", ".join(f"{f} {getattr(LOIHI_FIXED_POINT, f)}" for f in LOIHI1_FIELDS)
            return (f"population '{pop.name}' uses the fixed-point format '{neu.fmt.name}' ({', '.join(differs)}), "
                    f"and the emulator computes Loihi 1's only ({want})")
    return None


# --------------------------------------------------------------------------------------- the protocol

def synapse_matrix(syn: QDense | QConv, fmt: object = LOIHI_FIXED_POINT) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rows, cols, weights) int32: the non-zero integer weights of a synapse as the target neuron's
    input sees them, row = target neuron, col = source neuron (flat, PyTorch (C, H, W) order).

    A Dense: the weights Lava's Dense uses (``lava_weights``, as hwsim reads them). A Conv: its
    taps, found by hwsim's exact convolution of one-hot inputs (each input's column of the matrix),
    a block of inputs at a time; Lava's Conv uses its weights as they are, and so does this.
    """
    if isinstance(syn, QDense):
        w = lava_weights(syn.weight, fmt)   # type: ignore[arg-type]
        rows, cols = np.nonzero(w)
        return rows.astype(np.int32), cols.astype(np.int32), w[rows, cols].astype(np.int32)
    n_in, n_out = syn.in_size, syn.out_size
    step = max(1, min(n_in, CONV_BLOCK_VALUES // max(1, n_out + n_in)))
    parts = []
    for start in range(0, n_in, step):
        k = min(step, n_in - start)
        onehot = np.zeros((k, n_in), dtype=bool)
        onehot[np.arange(k), start + np.arange(k)] = True
        y = conv_input(onehot, syn)                       # (k, n_out): column start + i of the matrix
        src, dst = np.nonzero(y)
        parts.append((dst.astype(np.int32), (start + src).astype(np.int32), y[src, dst].astype(np.int32)))
    return tuple(np.concatenate([p[i] for p in parts]) for i in range(3))  # type: ignore[return-value]


def emulator_spec(graph: Graph, x: np.ndarray) -> dict[str, np.ndarray]:
    """IN.npz's arrays (protocol 1, the bridge's docstring) for ``graph`` and bool inputs (B, T, n_in)."""
    pops: list[Population] = graph.populations()
    readout = Readout.from_json(graph.meta.get("readout"))
    out_name = graph.output.name
    neurons = [p.neuron for p in pops]
    spec: dict[str, np.ndarray] = {
        "protocol": np.int64(PROTOCOL), "input_name": np.str_(graph.input.name),
        "input_spikes": np.ascontiguousarray(x, dtype=bool),
        "pop_names": np.array([p.name for p in pops]),
        "pop_size": np.array([n.size for n in neurons], dtype=np.int64),
        "pop_du": np.array([n.du for n in neurons], dtype=np.int64),     # effective (Lava's register + 1)
        "pop_dv": np.array([n.dv for n in neurons], dtype=np.int64),
        "pop_vth": np.array([n.vth for n in neurons], dtype=np.int64),
        "pop_bias_exp": np.array([n.bias_exp for n in neurons], dtype=np.int64),
        "pop_spiking": np.array([readout.spiking or p.name != out_name for p in pops], dtype=bool),
    }
    names, sources, targets, exps, recurrent = [], [], [], [], []
    for i, pop in enumerate(pops):
        neu = pop.neuron
        spec[f"pop{i}_bias_mant"] = np.broadcast_to(np.asarray(neu.bias_mant, dtype=np.int64), (neu.size,)).copy()
        for syn, src in pop.inputs:
            j = len(names)
            rows, cols, w = synapse_matrix(syn, neu.fmt)  # type: ignore[arg-type]
            spec[f"syn{j}_rows"], spec[f"syn{j}_cols"], spec[f"syn{j}_weights"] = rows, cols, w
            names.append(syn.name)
            sources.append(src)
            targets.append(pop.name)
            exps.append(syn.weight_exp if isinstance(syn, QDense) else 0)   # Lava's Conv has no weight_exp
            recurrent.append(syn.name in pop.recurrent)
    spec.update({"syn_names": np.array(names, dtype=str), "syn_source": np.array(sources, dtype=str),
                 "syn_target": np.array(targets, dtype=str), "syn_weight_exp": np.array(exps, dtype=np.int64),
                 "syn_recurrent": np.array(recurrent, dtype=bool)})
    return spec


def expected_seconds(graph: Graph, batch: int, steps: int) -> float:
    """An upper estimate of the bridge's time, from its costs measured on 2 cores (docs/emulator.md):
    ~1 s to start, ~0.1 ms per population per step, ~12 us per spike delivered through a synapse,
    counting every source neuron as spiking every step."""
    pops = graph.populations()
    sources = sum(graph.nodes[src].size for p in pops for _, src in p.inputs)  # type: ignore[union-attr]
    return 1.0 + batch * steps * (1e-4 * len(pops) + 12e-6 * sources)


def default_timeout(graph: Graph, batch: int, steps: int) -> float:
    """The bound every run gets unless told otherwise: a run past it is hung, not slow."""
    return TIMEOUT_FLOOR_S + TIMEOUT_FACTOR * expected_seconds(graph, batch, steps)


# ------------------------------------------------------------------------------------------- running

def run_on_emulator(graph: Graph, inputs: np.ndarray, timeout_s: float | None = None
                    ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Spikes (batch, T, n) bool and final v (batch, n) int64 of every population, from nengo-loihi's
    emulator, every sample from zero state. EmulatorError (one line) when it is unavailable, cannot
    run the graph, fails or passes ``timeout_s`` (None: :func:`default_timeout`, ``math.inf``: none)."""
    res = run_on_emulator_full(graph, inputs, timeout_s=timeout_s)
    return res.spikes, res.final_v


def run_on_emulator_full(graph: Graph, inputs: np.ndarray, timeout_s: float | None = None) -> EmulatorResult:
    """:func:`run_on_emulator` with the emulator's overflow steps and the times."""
    status = emulator_status()
    if status is not None:
        raise EmulatorError(f"nengo-loihi's emulator is not available: {status}")
    problem = emulator_support_problem(graph)
    if problem is not None:
        raise EmulatorError(f"nengo-loihi's emulator cannot run this network: {problem}")
    x = graph.input.check_values(inputs)
    batch, steps = x.shape[:2]
    pops = graph.populations()
    if batch == 0 or steps == 0:
        return EmulatorResult({p.name: np.zeros((batch, steps, p.neuron.size), dtype=bool) for p in pops},
                              {p.name: np.zeros((batch, p.neuron.size), dtype=np.int64) for p in pops},
                              {k: np.zeros(batch, dtype=np.int64) for k in OVERFLOW_KINDS})
    if timeout_s is not None and not timeout_s > 0:
        raise ValueError(f"timeout_s must be positive, got {timeout_s}")
    timeout = default_timeout(graph, batch, steps) if timeout_s is None else timeout_s
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="snnc-emulator-") as tmp:
        src, dst = Path(tmp) / "in.npz", Path(tmp) / "out.npz"
        with open(src, "wb") as f:
            np.savez(f, **emulator_spec(graph, x))
        _run_bridge([emulator_python(), str(bridge_path()), str(src), str(dst)], timeout)
        res = _read_result(dst, pops, batch, steps)
    res.total_s = time.perf_counter() - start
    return res


def _run_bridge(cmd: list[str], timeout: float) -> None:
    """Run the bridge in its own session; stop its whole group on timeout, Ctrl-C or any error here.
    A failure is one EmulatorError line naming the bridge and the last line it wrote to stderr."""
    env = {**os.environ, "SNNC_BRIDGE_PARENT": str(os.getpid())}
    try:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                text=True, errors="replace", start_new_session=True, env=env)
    except OSError as e:
        raise EmulatorError(f"nengo-loihi's emulator bridge ({cmd[1]}) could not be started with {cmd[0]}: "
                            f"{e.strerror or e}") from None
    try:
        _, err = proc.communicate(timeout=None if math.isinf(timeout) else timeout)
    except subprocess.TimeoutExpired:
        _stop(proc)
        raise EmulatorError(f"nengo-loihi's emulator (bridge {cmd[1]}) did not finish within {timeout:g} s and was "
                            f"stopped; pass a larger timeout for bigger inputs, or verify without it "
                            f"(snn-compile --no-emulator)") from None
    except BaseException:
        _stop(proc)
        raise
    if proc.returncode != 0:
        last = _last_line(err) or "no message"
        how = f"signal {-proc.returncode}" if proc.returncode < 0 else f"exit {proc.returncode}"
        raise EmulatorError(f"nengo-loihi's emulator bridge ({cmd[1]}) failed ({how}): {last}. Please report it "
                            f"with the model file; snn-compile --no-emulator verifies on the other engines")


def _stop(proc: subprocess.Popen) -> None:
    """Kill the bridge's process group and reap it."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.communicate()


def _last_line(text: str | None) -> str:
    lines = [ln.strip() for ln in (text or "").splitlines() if ln.strip()]
    return lines[-1][:400] if lines else ""


def _read_result(path: Path, pops: list[Population], batch: int, steps: int) -> EmulatorResult:
    """OUT.npz -> EmulatorResult, checked against what was sent (names, shapes, dtypes)."""
    try:
        with np.load(path, allow_pickle=False) as f:
            out = {k: f[k] for k in f.files}
        if int(out["protocol"]) != PROTOCOL or [str(n) for n in out["pop_names"]] != [p.name for p in pops]:
            raise ValueError(f"protocol {out['protocol']} / populations {list(out['pop_names'])[:4]}")
        spikes, final_v = {}, {}
        for i, p in enumerate(pops):
            s, v = out[f"spikes{i}"], out[f"v{i}"]
            n = p.neuron.size
            if s.dtype != bool or s.shape != (batch, steps, n) or v.shape != (batch, n):
                raise ValueError(f"population '{p.name}': spikes {s.dtype} {s.shape}, v {v.shape}")
            spikes[p.name], final_v[p.name] = s, v.astype(np.int64)
        over = out["overflow_steps"].astype(np.int64)
        return EmulatorResult(spikes, final_v, {k: over[:, i] for i, k in enumerate(OVERFLOW_KINDS)},
                              float(out["seconds_build"]), float(out["seconds_run"]))
    except (OSError, KeyError, ValueError) as e:
        raise EmulatorError(f"nengo-loihi's emulator bridge wrote an unexpected result ({type(e).__name__}: "
                            f"{str(e)[:200]}): is {bridge_path()} the version this snnc expects (protocol "
                            f"{PROTOCOL})?") from None

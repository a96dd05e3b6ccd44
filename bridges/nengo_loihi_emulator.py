#!/usr/bin/env python3
"""Run a fixed-point spiking network on nengo-loihi's Loihi 1 emulator: ``python nengo_loihi_emulator.py IN.npz OUT.npz``.

A standalone program, not a part of snnc: it imports only the standard library, numpy and
nengo_loihi (which imports nengo, GPL-2.0), and never snnc. snnc writes IN.npz, starts this script in
a separate process (snnc/runtime/emulator.py) and reads OUT.npz back; nothing else passes between them.
The emulator is nengo-loihi 1.1.0's ``EmulatorInterface`` (nengo_loihi/emulator/interface.py), run on
hand-built ``LoihiBlock`` / ``Synapse`` / ``Axon`` / ``SpikeInput`` objects, without nengo's builder.

Protocol 1
==========
Every array is a plain numpy array (no pickles: read with ``allow_pickle=False``). Integers are int64
unless stated (any integer dtype is read); names are unicode arrays. P populations, S synapses, B samples, T steps.

IN.npz (written by snnc)
  protocol        int64 ()        1
  input_name      str ()          the input's name (a synapse source)
  input_spikes    bool (B, T, n_in)  input spikes; step t (0-based) is nengo SpikeInput step t + 1
  pop_names       str (P,)        population names, unique
  pop_size        (P,)            neurons per population
  pop_du          (P,)            *effective* current decay in [0, 4096]: u keeps (4096 - du) / 4096 per step
                                  (Lava's register du is this - 1; nengo-loihi's decay_u register the same)
  pop_dv          (P,)            voltage decay in [0, 4096]: v keeps (4096 - dv) / 4096 per step
  pop_vth         (P,)            threshold mantissa, in weight units: a neuron spikes when v > vth << 6
  pop_bias_exp    (P,)            bias exponent: bias = bias_mant << bias_exp (floor shift if negative),
                                  added to u every step, already in u units (not shifted by 6)
  pop_spiking     bool (P,)       False marks a readout integrator; informational: it runs like any other
                                  population (snnc gives it the largest threshold, as Lava does)
  pop{i}_bias_mant  (n_i,)        per-neuron bias mantissa of population i
  syn_names       str (S,)        synapse names (labels only)
  syn_source      str (S,)        source: input_name or a population name
  syn_target      str (S,)        target population name
  syn_weight_exp  (S,)            weight exponent: the synapse adds (W << weight_exp) to the input of the
                                  step after its source spiked (floor shift if negative, per synapse)
  syn_recurrent   bool (S,)       on a cycle; informational: every synapse delays one step either way
  syn{j}_rows     int32 (nnz,)    target neuron index of each non-zero weight of synapse j
  syn{j}_cols     int32 (nnz,)    source neuron index
  syn{j}_weights  int32 (nnz,)    integer weight in weight units, as the synapse memory holds it (not << 6);
                                  a convolution comes as the sparse matrix snnc lowers it to

OUT.npz (written here)
  protocol          int64 ()      1
  nengo_loihi_version str ()
  pop_names         str (P,)      as in IN.npz
  spikes{i}         bool (B, T, n_i)  spikes of population i at every step
  v{i}              (B, n_i)      its integer v after the last step, in u units (vth << 6 is the threshold)
  overflow_steps    (B, 3)        per sample the first 1-based step at which the emulator wrapped the
                                  input accumulator q0, the current u, or u + bias (columns in that
                                  order; 0: never), from its own overflow checks (interface.py:276-279)
  seconds_build     float64 ()    building the blocks
  seconds_run       float64 ()    running every sample

Environment: ``SNNC_BRIDGE_PARENT``, the pid of the process that started the bridge (optional).

Errors: exit status 2 for a bad command line or IN.npz, 3 if nengo_loihi 1.1.0 cannot be imported, 1 for
anything else; the last line on stderr then says what went wrong.

Scaling (what nengo-loihi's builder, nengo_loihi/builder/discretize.py, would have stored)
-------------------------------------------------------------------------------------
* weights: the emulator adds each synapse's integer weight into q0 as it is (interface.py:506-518),
  weights that discretize_weights has already shifted: ``shift(w, s2)`` then ``<< 6``
  (discretize.py:473-488, s2 = shift_bits + weight_exp for the 8-bit mantissa w >> shift_bits). For
  an even weight W that is ``floor(W * 2**weight_exp) << 6``, per synapse, before any sum: the chip
  shifts weights, not the summed input (Lava shifts the sum, lava/proc/dense/models.py:102-107; the
  two agree for weight_exp >= -1 and even W). The shift is a floor (discretize.py:481-484: "Just
  shifting would floor everything"; nengo's builder rounds its float weights first so that its own
  shifts are exact, a quantization choice snnc has already made).
* q0 is 21 bits + sign (``Q_BITS = 21``, discretize.py:19; interface.py:313), so a weight is stored
  modulo 2**32 in int32: the 22-bit wrap depends only on the sum modulo 2**22, and numpy's int32
  additions wrap modulo 2**32, so the result is exactly the chip's q0.
* decay_u: the register (effective - 1), because the emulator adds 1 back (``decay_int(...,
  offset=1)``, interface.py:273; "subtract 1 from decay_u here because it gets added back by the
  chip", discretize.py:268-271). decay_v as it is (offset 0, interface.py:274).
* vth: ``vth << 6`` (VTH_EXP = 6, discretize.py:10-12, 339-340), capped at vmax = 2**23 - 1, which v
  never exceeds after its clip (interface.py:326), so the cap changes no spike.
* bias: ``bias_mant << bias_exp`` (discretize.py:342-343), int32 modulo 2**32 (u + bias wraps at 24
  bits, interface.py:317-319, so only the value modulo 2**24 matters).
* vmin = -(2**23 - 1), vmax = 2**23 - 1 (Lava's v clip, lava/proc/lif/models.py:174-186); the
  builder's own defaults would be vmin = 0 (block.py:179-180).
* refract_delay = 1: no refractory period. A spike sets ref_count to 1 and it is decremented in the
  same step (interface.py:330-334), so v is never held.
* noise off (enable_noise False: its multiplier is 0, interface.py:359), one fixed seed.

Timing: ``EmulatorInterface.step`` (interface.py:112-123) first delivers the spikes the compartments
emitted in the previous step through their axons (``compartment.spiked``, interface.py:500-504), and
a SpikeInput's spikes of step t - 1 (interface.py:491-498: "input spikes take one time-step to
arrive"), then updates every compartment. So every synapse delays one step, as Lava's Dense does,
and input step t (0-based) is SpikeInput step t + 1: it reaches the first populations at step t + 1.
Each sample runs on a fresh ``EmulatorInterface`` (zero state).
"""
from __future__ import annotations

import ctypes
import os
import signal
import sys
import time
import warnings
from types import SimpleNamespace

import numpy as np

PROTOCOL = 1
NENGO_LOIHI_VERSION = "1.1.0"
STATE_MAX = 2**23           # u and v are 23 bits + sign (U_BITS = 23, discretize.py:21)
VTH_SHIFT = 6               # VTH_EXP (discretize.py:11)
WEIGHT_SHIFT = 6            # discretize_weights' final << 6 (discretize.py:488)
OVERFLOWS = ("q0", "current", "u2")   # the names interface.py:313-319 report


class ProtocolError(ValueError):
    """IN.npz is not a protocol-1 network."""


def _die_with_parent() -> None:
    """On Linux, ask to be killed when the process that started us dies (prctl PR_SET_PDEATHSIG = 1),
    so that nothing of ours outlives a killed snnc; ``SNNC_BRIDGE_PARENT`` (its pid) catches a parent
    that died before the request. Elsewhere a no-op: the run is finite and ends by itself."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL), 0, 0, 0)
    except (OSError, AttributeError):
        return
    parent = os.environ.get("SNNC_BRIDGE_PARENT", "")
    if parent.isdigit() and os.getppid() != int(parent):
        os._exit(1)


def _shift(x: np.ndarray, exp: int) -> np.ndarray:
    """``x << exp``, or the floor shift ``x >> -exp``, in int64."""
    x = np.asarray(x, dtype=np.int64)
    return x << exp if exp >= 0 else x >> -exp


def _int32_wrap(x: np.ndarray) -> np.ndarray:
    """int64 -> int32 modulo 2**32 (two's complement), for values only ever used modulo 2**22 or 2**24."""
    return (np.asarray(x, dtype=np.int64) & 0xFFFFFFFF).astype(np.uint32).view(np.int32)


def _read(path: str) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as f:
        net = {k: f[k] for k in f.files}
    if "protocol" not in net or int(net["protocol"]) != PROTOCOL:
        raise ProtocolError(f"{path}: protocol {net.get('protocol')}, this bridge speaks protocol {PROTOCOL}")
    missing = [k for k in ("input_name", "input_spikes", "pop_names", "pop_size", "pop_du", "pop_dv", "pop_vth",
                           "pop_bias_exp", "pop_spiking", "syn_names", "syn_source", "syn_target",
                           "syn_weight_exp", "syn_recurrent") if k not in net]
    if missing:
        raise ProtocolError(f"{path}: missing {', '.join(missing)}")
    x = net["input_spikes"]
    if x.dtype != bool or x.ndim != 3:
        raise ProtocolError(f"{path}: input_spikes must be bool (batch, T, n_in), got {x.dtype} {x.shape}")
    names = [str(n) for n in net["pop_names"]]
    if len(set(names)) != len(names) or str(net["input_name"]) in names:
        raise ProtocolError(f"{path}: population names must be unique and differ from the input's")
    for i, n in enumerate(net["pop_size"]):
        if net[f"pop{i}_bias_mant"].shape != (int(n),):
            raise ProtocolError(f"{path}: pop{i}_bias_mant must have shape ({int(n)},)")
    return net


def build(net: dict[str, np.ndarray]) -> tuple[SimpleNamespace, object, list[slice]]:
    """The emulator's model: one LoihiBlock per population, one Synapse + Axon per synapse, one SpikeInput."""
    from nengo_loihi.block import Axon, LoihiBlock, Synapse
    from nengo_loihi.inputs import SpikeInput

    input_name = str(net["input_name"])
    n_in = int(net["input_spikes"].shape[2])
    spike_input = SpikeInput(n_in, label=input_name)
    sizes: dict[str, int] = {input_name: n_in}
    blocks: dict[str, LoihiBlock] = {}
    for i, name in enumerate(str(n) for n in net["pop_names"]):
        n = int(net["pop_size"][i])
        block = LoihiBlock(n, label=name)
        c = block.compartment
        # already discretized (discretize_compartment's results, discretize.py:267-365), int32 throughout
        c.decay_u = np.full(n, int(net["pop_du"][i]) - 1, dtype=np.int32)    # register: effective - 1
        c.decay_v = np.full(n, int(net["pop_dv"][i]), dtype=np.int32)
        c.scale_u = c.scale_v = False
        c.vth = np.full(n, min(int(net["pop_vth"][i]) << VTH_SHIFT, STATE_MAX - 1), dtype=np.int32)
        c.bias = _int32_wrap(_shift(net[f"pop{i}_bias_mant"], int(net["pop_bias_exp"][i])))
        c.refract_delay = np.ones(n, dtype=np.int32)
        c.enable_noise = np.zeros(n, dtype=bool)
        c.vmin, c.vmax = -(STATE_MAX - 1), STATE_MAX - 1
        blocks[name], sizes[name] = block, n
    for j, name in enumerate(str(n) for n in net["syn_names"]):
        src, dst = str(net["syn_source"][j]), str(net["syn_target"][j])
        if src not in sizes or dst not in blocks:
            raise ProtocolError(f"synapse {name!r}: unknown source {src!r} or target {dst!r}")
        rows, cols, w = (net[f"syn{j}_{k}"] for k in ("rows", "cols", "weights"))
        if not all(np.issubdtype(a.dtype, np.integer) and a.ndim == 1 and a.shape == rows.shape for a in (rows, cols, w)):
            raise ProtocolError(f"synapse {name!r}: rows, cols and weights must be 1-D integer arrays of one length")
        rows, cols = rows.astype(np.int64), cols.astype(np.int64)
        if rows.size and (rows.min() < 0 or rows.max() >= sizes[dst] or cols.min() < 0 or cols.max() >= sizes[src]):
            raise ProtocolError(f"synapse {name!r}: an index is outside {src!r} ({sizes[src]}) or {dst!r} ({sizes[dst]})")
        w = _int32_wrap(_shift(w, int(net["syn_weight_exp"][j])) << WEIGHT_SHIFT)
        if not np.any(w):
            # no non-zero weight: it adds nothing, and nengo-loihi cannot size an empty synapse's
            # indices (block.py:665, log2 of 0)
            continue
        order = np.argsort(cols, kind="stable")
        rows, cols, w = rows[order], cols[order], w[order]
        bounds = np.searchsorted(cols, np.arange(sizes[src] + 1))
        # one weight row per axon (= source neuron), int32 and 2-D, so that block.py:700 and 716's
        # np.array(copy=False) need no copy (NumPy 2 refuses to make one)
        weights = [np.ascontiguousarray(w[a:b].reshape(1, -1)) for a, b in zip(bounds[:-1], bounds[1:])]
        indices = [np.ascontiguousarray(rows[a:b].astype(np.int32).reshape(1, -1))
                   for a, b in zip(bounds[:-1], bounds[1:])]
        synapse = Synapse(sizes[src], label=name)
        synapse._set_weights_indices(weights, indices=indices, weight_dtype=np.int32, compression=3)
        blocks[dst].add_synapse(synapse)
        axon = Axon(sizes[src], label=name)
        axon.target = synapse
        (spike_input if src == input_name else blocks[src]).add_axon(axon)
    model = SimpleNamespace(blocks=list(blocks.values()), inputs=[spike_input], probes=[], dt=0.001)
    slices, start = [], 0
    for block in blocks.values():
        slices.append(slice(start, start + block.n_neurons))
        start += block.n_neurons
    return model, spike_input, slices


def run(net: dict[str, np.ndarray], model: SimpleNamespace, spike_input: object,
        slices: list[slice]) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray]:
    """Every sample on a fresh EmulatorInterface: spikes (B, T, n) and final v (B, n) per population,
    and the first step of each kind of overflow the emulator reported."""
    from nengo_loihi.emulator.interface import EmulatorInterface

    x = net["input_spikes"]
    batch, steps, _ = x.shape
    spikes = [np.zeros((batch, steps, s.stop - s.start), dtype=bool) for s in slices]
    final_v = [np.zeros((batch, s.stop - s.start), dtype=np.int64) for s in slices]
    overflow = np.zeros((batch, len(OVERFLOWS)), dtype=np.int64)
    for b in range(batch):
        spike_input.spikes.clear()                  # type: ignore[attr-defined]
        for t in range(steps):
            idx = np.flatnonzero(x[b, t])
            if idx.size:
                spike_input.add_spikes(t + 1, idx)  # type: ignore[attr-defined]
        emu = EmulatorInterface(model, seed=0)
        first = overflow[b]

        def overflowed(msg: str, emu: EmulatorInterface = emu, first: np.ndarray = first) -> None:
            for k, kind in enumerate(OVERFLOWS):    # "Overflow in q0" etc., interface.py:276-279
                if msg == f"Overflow in {kind}" and first[k] == 0:
                    first[k] = emu.t
        emu.compartment.error = overflowed          # instead of a warning per step (interface.py:210-214)
        state = emu.compartment
        for t in range(steps):                      # run_steps(T) is this loop (interface.py:101-110)
            emu.step()
            for i, s in enumerate(slices):
                spikes[i][b, t] = state.spiked[s]
        for i, s in enumerate(slices):
            final_v[i][b] = state.voltage[s]
        emu.close()
    return spikes, final_v, overflow


def main(argv: list[str]) -> int:
    _die_with_parent()
    if len(argv) != 3:
        print(f"usage: {argv[0]} IN.npz OUT.npz", file=sys.stderr)
        return 2
    try:
        net = _read(argv[1])
    except (OSError, ValueError, KeyError) as e:
        print(f"nengo_loihi_emulator: cannot read {argv[1]}: {e}", file=sys.stderr)
        return 2
    with warnings.catch_warnings():
        # nengo-loihi 1.1.0 warns that it was not tested with nengo 4.1 (nengo_loihi/version.py), and
        # NumPy 2 warns at its NaN fills of int32 arrays (interface.py:236-246), which are all overwritten
        warnings.simplefilter("ignore")
        try:
            import nengo_loihi
        except Exception as e:  # noqa: BLE001 - any import failure is reported the same way
            print(f"nengo_loihi_emulator: cannot import nengo_loihi ({type(e).__name__}: {e})", file=sys.stderr)
            return 3
        if nengo_loihi.__version__ != NENGO_LOIHI_VERSION:
            print(f"nengo_loihi_emulator: nengo_loihi {nengo_loihi.__version__} is installed; this bridge mirrors "
                  f"{NENGO_LOIHI_VERSION}'s emulator (pip install nengo-loihi=={NENGO_LOIHI_VERSION})", file=sys.stderr)
            return 3
        start = time.perf_counter()
        model, spike_input, slices = build(net)
        built = time.perf_counter()
        spikes, final_v, overflow = run(net, model, spike_input, slices)
        done = time.perf_counter()
    out = {"protocol": np.int64(PROTOCOL), "nengo_loihi_version": np.str_(nengo_loihi.__version__),
           "pop_names": net["pop_names"], "overflow_steps": overflow,
           "seconds_build": np.float64(built - start), "seconds_run": np.float64(done - built)}
    for i in range(len(slices)):
        out[f"spikes{i}"], out[f"v{i}"] = spikes[i], final_v[i]
    with open(argv[2], "wb") as f:                  # a file object: np.savez appends no '.npz'
        np.savez(f, **out)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv))
    except ProtocolError as e:
        print(f"nengo_loihi_emulator: bad input: {e}", file=sys.stderr)
        sys.exit(2)

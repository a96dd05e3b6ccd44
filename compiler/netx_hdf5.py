"""lava-dl netx HDF5 (``network.net``): write the fixed-point graph, and read such files back.

Layout (SP/lava/lib/dl/netx/README.md:16-56; read by netx/utils.py:22-77 NetDict and
netx/hdf5.py:566-689 ``Network._create``; keys as lava-dl's own slayer export writes them,
SP/lava/lib/dl/slayer/block/base.py:564-627 dense, 720-788 conv, 196-207 flatten)::

    /layer/0/type = b'input', shape = torch (C, H, W) or (n,)   (no neuron: netx only takes the shape)
    /layer/i/type = b'conv',  shape = output (C, H, W), inChannels, outChannels, kernelSize (kh, kw),
                   stride, padding, dilation (h, w), groups (scalar),
                   weight (out, in/groups, kh, kw) = PyTorch's cross-correlation kernel, as it is,
                   bias (C,) per channel, or (W, H, C) per neuron (netx/blocks/process.py:53-72)
    /layer/i/type = b'flatten', shape = [n, 1, 1]             (before a dense that reads a conv layer)
    /layer/i/type = b'dense', shape = [n], inFeatures, outFeatures, weight (n, n_in), bias (n,)
                   [delay (n,) per output neuron, or (n, n_in) per synapse: a QDense's synaptic delays]
    /layer/i/type = b'dense_rec', the same plus weight_rec (n, n)   (a population with a self-loop)
    /layer/i/neuron/type = b'CUBA', iDecay (effective du), vDecay, vThMant, refDelay, gradedSpike
    /simulation/Ts, tSample

Every shape and geometry pair in the file is in PyTorch order; netx reverses them to Lava's
(W, H, C) / (x, y) (hdf5.py:272, 496-500, 597). A conv kernel is stored exactly as PyTorch's
cross-correlation weight: netx flips it, ``weight[:, :, ::-1, ::-1]``, and transposes it to Lava's
(out, W, H, in) layout (hdf5.py:505-506), and Lava's Conv computes a true convolution
(SP/lava/proc/conv/utils.py:221-296), so the two flips cancel. netx's ``flatten`` makes the next
dense layer read ``out.transpose([2, 1, 0]).flatten()`` of the conv block (hdf5.py:655-660), i.e. the
torch (C, H, W) flat order every snnc spike vector already has, so dense weights are written as they are.

netx sets Lava's ``du = iDecay - 1`` and ``bias_exp = 6`` (hdf5.py:144-163), which is exactly our
QCubaLIF encoding. For dense layers it picks ``num_weight_bits``/``weight_exp`` itself
(netx/utils.py:80-158) and Lava's Dense then clips and truncates (SP/lava/proc/dense/models.py:82-106):
:func:`netx_dense_weights` replays that, and a matrix that does not come through unchanged is refused
(netx's and Lava's sign modes disagree on all-negative and zero-max matrices).
Conv weights reach Lava's Conv raw (hdf5.py:505-521; blocks/process.py:451-459; Conv ignores
weight_exp and num_weight_bits, SP/lava/proc/conv/models.py:68-79). Lava holds a conv's geometry
in int8 Vars (conv/models.py:25-29): ``groups`` above 127 is written as its largest divisor <= 127
with a block-diagonal kernel (the same convolution) and the real value in ``snncGroups``, which
netx ignores and :func:`read_netx` restores; larger kernel/stride/padding/dilation are refused.

Recurrence: a population whose only recurrent synapse is a Dense from itself is a ``dense_rec`` layer
(slayer's ``cuba.Recurrent`` export, SP/lava/lib/dl/slayer/block/base.py:1496-1557; netx's
``RecurrentDense``, netx/blocks/process.py:203-306: ``neuron.s_out -> synapse_rec -> neuron.a_in``, a
Lava Dense, so a spike at t acts at t + 1 as in compiler/ir.py). netx scales ``weight`` and
``weight_rec`` together (hdf5.py:393-407): :func:`netx_dense_rec_weights` replays that. Other cycles
(through several populations, two self-loops, a self-loop on a conv population) are refused.

Synaptic delays (compiler/ir.py ``QDense.delay``): a dense layer's ``delay`` is read as netx runs it
(hdf5.py:425-448: a scalar for every synapse, a 1-D array of the layer's size per output neuron, one of
its input size per input line, a 2-D array per synapse; values above 62 clamped, which the notes say;
Lava's DelayDense truncates to integers) and written in the smallest shape netx reads back to the same
matrix (:func:`netx_delay`). slayer's ``delay=True`` blocks export an axonal delay per output neuron of
the block; netx applies it to the same block's input synapses per output neuron, which for a neuron
without bias is the same spike train (a time-invariant neuron from zero state). A ``dense_rec`` layer
with delays and a nonzero conv delay are refused (netx runs neither as written).

Reading lava-dl's SLAYER exports (``snn-compile network.net``): :func:`read_netx_file` also returns
notes on what it read. Fields netx ignores but that change what slayer trained (``gradedSpike``,
``refDelay``, a norm's ``weight_exp``, conv delays), and what snnc's graph cannot hold (graded
messages, per-neuron decays), are refused with the file, layer, type and what to do; neutral ones
(all-zero delays, unknown keys) and delays are read and named in the notes.
See docs/netx.md ("netx in", "Synaptic delays").
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from snnc.compiler.graph_file import damaged_hdf5, dataset, group, open_hdf5
from snnc.compiler.isolation import isolated
from snnc.compiler.lowering import CONV_GEOMETRY_MAX, lava_groups, merge_groups, split_groups
from snnc.compiler.ir import MAX_DELAY, Graph, Input, Output, Population, QConv, QCubaLIF, QDense
from snnc.errors import GraphError, InputFileError, SnncError, UnsupportedLayerError
from snnc.models.datasets import MAX_TIMESTEPS, sample_size_problem
from snnc.models.fixed_point import LOIHI_FIXED_POINT, FixedPointFormat

#: What :func:`read_netx` reads (named in every refusal).
SUPPORTED = ("input (without neuron), conv, flatten and dense layers, and dense_rec (a dense layer with its own "
             "recurrent weight_rec), with CUBA/LOIHI neurons")


# ------------------------------------------------------------------------ what netx runs

def _netx_optimize(w: np.ndarray) -> tuple[np.ndarray, int, int] | str:
    """netx's ``optimize_weight_bits`` (SP/lava/lib/dl/netx/utils.py:80-158) on int64 ``w``: ``(weight <<
    scale_bits as int32, num_weight_bits, scale_bits)`` (``weight_exponent = -scale_bits``), or why netx fails."""
    if w.size == 0:
        return "it has no weights"
    mx, mn = int(w.max()), int(w.min())
    if mx > 254 and mn < 0:                       # utils.py:103-112: netx clips, with a warning
        w = np.clip(w, -256, 254)
        mx = int(w.max())
    if mn < -256 and mx > 0:
        w = np.clip(w, -256, 254)
        mn = int(w.min())
    if mx < 0:
        signed, scale = 0, -256 / mn
    elif mn >= 0:
        if mx == 0:
            return ("netx's optimize_weight_bits fails on an all-zero weight matrix "
                    "(255 / 0, then int(inf) shift; netx/utils.py:131-151)")
        signed, scale = 0, 255 / mx
    else:
        signed = 1
        scale = min(127 / mx if mx > 0 else np.inf, -128 / mn)
    scale_bits = int(np.floor(np.log2(scale))) + signed
    if scale_bits < 0:
        return f"weights in [{mn}, {mx}] exceed the 8-bit range netx scales to (netx/utils.py:124-151)"
    n = 8
    while n > 0 and np.abs(w / 2 ** n - np.round(w / 2 ** n)).sum() != 0:
        n -= 1
    n -= signed
    return np.left_shift(w.astype(np.int32), scale_bits), 8 - scale_bits - n, scale_bits


def _lava_dense(w2: np.ndarray, num_weight_bits: int) -> np.ndarray:
    """Lava's Dense (fixed_pt) on the weights netx hands it, with no ``sign_mode`` (netx's blocks pass none,
    netx/blocks/process.py:157-162, 249-262): determine_sign_mode (min >= 0 / max <= 0), clip_weights(num_bits=8),
    truncate_weights(num_weight_bits) (SP/lava/proc/dense/models.py:82-106; SP/lava/utils/weightutils.py:21-43,
    204-295), with the same int32 numpy operations."""
    if w2.min() >= 0:
        mixed, inhibitory = 0, 0
    elif w2.max() <= 0:
        mixed, inhibitory = 0, 1
    else:
        mixed, inhibitory = 1, 0
    w3 = (-w2 if inhibitory else w2).astype(np.int32)
    w3 = np.clip(w3, -(2 ** 8) * mixed, 2 ** 8 - 1)
    k = 8 - num_weight_bits + mixed
    w3 = (w3 >> k) << k
    w3 = -w3 if inhibitory else w3
    return w3.astype(np.int64)


def netx_dense_weights(weight: np.ndarray) -> tuple[np.ndarray | None, int, str | None]:
    """The integer weights and weight exponent netx's Lava Dense really uses for an HDF5 ``weight``.

    Replays netx's ``optimize_weight_bits`` (SP/lava/lib/dl/netx/utils.py:80-158: sign mode from
    ``max < 0`` / ``min >= 0``, scale to 8 bits, ``weight << scale_bits``, ``num_weight_bits``,
    ``weight_exp = -scale_bits``) and then Lava's PyDenseModelBitAcc (SP/lava/proc/dense/models.py:
    82-106: sign mode re-derived with ``max <= 0``, because netx's Dense block does not pass it,
    netx/blocks/process.py:157-162; ``clip_weights`` to 8 bits and ``truncate_weights``,
    SP/lava/utils/weightutils.py:21-43, 204-295), with the same int32 numpy operations.
    Returns ``(w_lava, weight_exp, None)``: Lava delivers ``(w_lava @ s) >> -weight_exp``, so netx
    runs the layer exactly iff ``w_lava == weight << -weight_exp``; or ``(None, 0, reason)`` where
    netx fails on the matrix.
    """
    opt = _netx_optimize(np.asarray(weight).astype(np.int64))
    if isinstance(opt, str):
        return None, 0, opt
    w2, num_weight_bits, scale_bits = opt
    return _lava_dense(w2, num_weight_bits), -scale_bits, None


def netx_dense_rec_weights(weight: np.ndarray, weight_rec: np.ndarray
                           ) -> tuple[np.ndarray | None, np.ndarray | None, int, str | None]:
    """:func:`netx_dense_weights` for a ``dense_rec`` layer: netx scales ``weight`` and ``weight_rec``
    together, ``optimize_weight_bits(np.hstack((weight, weight_rec)))``, and splits the result
    (SP/lava/lib/dl/netx/hdf5.py:393-407); its RecurrentDense then gives both Lava Dense processes that
    ``num_weight_bits`` and ``weight_exp`` and no sign mode, so each re-derives its own
    (netx/blocks/process.py:249-262). Returns ``(w_lava, w_rec_lava, weight_exp, None)`` or
    ``(None, None, 0, reason)``."""
    w, wr = np.asarray(weight).astype(np.int64), np.asarray(weight_rec).astype(np.int64)
    opt = _netx_optimize(np.hstack((w, wr)))
    if isinstance(opt, str):
        return None, None, 0, opt
    w2, num_weight_bits, scale_bits = opt
    return (_lava_dense(w2[:, :w.shape[1]], num_weight_bits), _lava_dense(w2[:, w.shape[1]:], num_weight_bits),
            -scale_bits, None)


def _dense_problem(weight: np.ndarray, fmt: FixedPointFormat = LOIHI_FIXED_POINT,
                   weight_rec: np.ndarray | None = None) -> str | None:
    """Why netx and snnc's engines would not run this dense matrix (and a dense_rec layer's recurrent
    ``weight_rec``, scaled with it) alike; None if they would."""
    parts = {"weight": np.asarray(weight, dtype=np.int64)}
    if weight_rec is not None:
        parts["weight_rec"] = np.asarray(weight_rec, dtype=np.int64)
    for key, w in parts.items():
        off = (w % fmt.weight_step != 0) | (w < fmt.weight_min) | (w > fmt.weight_max)
        if off.any():
            i, j = (int(x) for x in np.argwhere(off)[0])
            return (f"{key}[{i}, {j}] = {int(w[i, j])} is not a {fmt.name} dense weight (multiples of "
                    f"{fmt.weight_step} in [{fmt.weight_min}, {fmt.weight_max}], models/quant.py): snnc's engines "
                    f"clip and floor it as Lava's 8-bit mixed-sign Dense does, netx rescales and runs it as written")
    if weight_rec is None:
        w_lava, exp, why = netx_dense_weights(weight)
        lava = {"weight": w_lava}
    else:
        w_lava, wr_lava, exp, why = netx_dense_rec_weights(weight, weight_rec)
        lava = {"weight": w_lava, "weight_rec": wr_lava}
    if why is not None:
        return why
    for key, w in parts.items():
        bad = np.argwhere(lava[key] != w << -exp)
        if len(bad):
            i, j = (int(x) for x in bad[0])
            return (f"netx would run {key}[{i}, {j}] = {int(w[i, j])} as {lava[key][i, j] / 2 ** -exp:g} "
                    f"({len(bad)} weights change: netx's optimize_weight_bits and Lava's Dense disagree on "
                    f"the sign mode or clip, netx/utils.py:114-151, SP/lava/utils/weightutils.py:21-43, 250-295)")
    return None


#: What to do with a recurrent graph that ``network.net`` cannot hold (named in the refusals).
_REC_ADVICE = ("graph.h5 and graph.onnx hold this network; for a netx file, make each recurrence a population's "
               "connection to itself (one Dense from the population back into it)")


def _self_loop(pop: Population) -> tuple[QDense | None, str | None]:
    """The population's recurrent synapse as netx's ``dense_rec`` holds it (one Dense from the population
    back into itself, netx/blocks/process.py:203-306: ``neuron.s_out -> synapse_rec -> neuron.a_in``), None
    if it has none, or why netx cannot hold its recurrence."""
    rec = pop.recurrent_inputs
    if not rec:
        return None, None
    other = [(s, src) for s, src in rec if src != pop.name]
    if other:
        syn, src = other[0]
        return None, (f"population '{pop.name}' is on a cycle through '{src}' (synapse '{syn.name}': '{src}' -> "
                      f"'{pop.name}'): netx's only recurrent layer, dense_rec, connects a population to itself "
                      f"(RecurrentDense, netx/blocks/process.py:203-306; netx connects each block only to the next, "
                      f"hdf5.py:636-663); {_REC_ADVICE}")
    if len(rec) > 1:
        return None, (f"population '{pop.name}' has {len(rec)} synapses from itself "
                      f"({', '.join(s.name for s, _ in rec)}): netx's dense_rec holds one weight_rec "
                      f"(hdf5.py:393-407); sum them into one Dense")
    syn = rec[0][0]
    if not isinstance(syn, QDense):
        return None, f"'{syn.name}' -> '{pop.name}' is not a fixed-point layer (quantize the graph first)"
    return syn, None


def netx_layers(graph: Graph) -> list[tuple[QDense | QConv, QCubaLIF, QDense | None]] | str:
    """The graph as netx's blocks: per population in order, its one feed-forward synapse, the
    population and its self-connection (``dense_rec``'s ``weight_rec``, or None); or why netx cannot
    hold the graph's shape (a chain of blocks, hdf5.py:580-689, each with at most a self-loop)."""
    pops = graph.populations()
    loops: dict[str, QDense | None] = {}
    for pop in pops:                    # cycles first: a cycle through two populations is never a chain
        loops[pop.name], why = _self_loop(pop)
        if why:
            return why
    succ: dict[str, int] = {}
    for a, b in graph.edges:
        if loops.get(a) is None or b != loops[a].name:      # a self-loop is part of its layer
            succ[a] = succ.get(a, 0) + 1
    if any(k > 1 for k in succ.values()) or any(len(p.feedforward_inputs) != 1 for p in pops):
        return "netx holds chains of layers only; this graph has populations with several inputs or outputs"
    out = []
    for pop in pops:
        syn, neu = pop.feedforward_inputs[0][0], pop.neuron
        if not isinstance(neu, QCubaLIF) or not isinstance(syn, (QDense, QConv)):
            return f"'{syn.name}' -> '{neu.name}' is not a fixed-point layer (quantize the graph first)"
        rec = loops[pop.name]
        if rec is not None and not isinstance(syn, QDense):
            return (f"population '{neu.name}' has a recurrent synapse '{rec.name}' and a conv input '{syn.name}': "
                    f"netx's dense_rec is a dense layer (a 2-D weight and weight_rec, hdf5.py:393-407); "
                    f"{_REC_ADVICE}, fed by a Dense")
        out.append((syn, neu, rec))
    return out


def netx_limitation(graph: Graph) -> str | None:
    """Why netx cannot run ``graph`` exactly (None if it can): netx networks are chains of
    binary-spike conv and dense blocks; a conv block must read the input or another conv block; a dense
    block may have a self-connection (``dense_rec``)."""
    layers = netx_layers(graph)
    if isinstance(layers, str):
        return layers
    if graph.input.bits:
        return (f"netx has no graded ({graph.input.bits}-bit) input layer: input_message_bits is a Network() "
                f"argument, not part of the file (netx/hdf5.py:64-76), and the first layer's weight_exp "
                f"-{graph.input.bits} (graded input scaled by 2**-bits) cannot be written: netx picks each dense "
                f"layer's weight exponent from its weights (netx/utils.py:80-158)")
    prev = "input"
    for syn, neu, rec in layers:
        if neu.bias_exp != 6 or neu.fmt != LOIHI_FIXED_POINT:
            return (f"'{neu.name}': netx fixes bias_exp = 6 and Lava's Loihi LIF encoding "
                    f"(netx/hdf5.py:151-159), this population has bias_exp {neu.bias_exp}, format {neu.fmt.name}")
        if isinstance(syn, QDense):
            if rec is not None and (syn.delay is not None or rec.delay is not None):
                return (f"dense_rec layer '{syn.name}' + recurrent '{rec.name}' has synaptic delays: netx's "
                        f"RecurrentDense with delays gives its recurrent synapse the feed-forward delay matrix and "
                        f"drops the weight exponent (netx/blocks/process.py:264-287), so netx would not run it as "
                        f"written; graph.h5, graph.nir and graph.onnx hold it")
            for d in (syn, rec):
                if d is not None and d.weight_exp != 0:
                    return f"netx cannot carry weight_exp {d.weight_exp} of '{d.name}' (netx computes its own)"
            why = _dense_problem(syn.weight, neu.fmt, None if rec is None else rec.weight)
            if why:
                return (f"dense layer '{syn.name}': {why}" if rec is None else
                        f"dense_rec layer '{syn.name}' + recurrent '{rec.name}' (scaled together by netx, "
                        f"hdf5.py:401-407): {why}")
            prev = "dense"
            continue
        if prev == "dense":
            return (f"conv layer '{syn.name}' reads a dense layer: netx gives a dense block a flat shape "
                    f"(netx/hdf5.py:345) and builds a conv on the previous block's shape (hdf5.py:600-601), "
                    f"which Lava's Conv requires to be (W, H, C) (SP/lava/proc/conv/process.py:117-122)")
        geo = [*syn.kernel, *syn.stride, *syn.padding, *syn.dilation]   # groups: see lava_groups
        if max(geo) > CONV_GEOMETRY_MAX:
            return (f"conv layer '{syn.name}': kernel/stride/padding/dilation {geo} exceed "
                    f"{CONV_GEOMETRY_MAX}: Lava's Conv model holds them as int8 (SP/lava/proc/conv/models.py:25-29)")
        prev = "conv"
    return None


# ------------------------------------------------------------------------ grouped convs beyond int8

#: Extra key on a conv layer whose ``groups`` we merged (netx reads only the keys it knows,
#: netx/utils.py:59-74, and ignores this one); :func:`read_netx` restores the original grouping.
GROUPS_KEY = "snncGroups"

#: File attribute :func:`write_netx` sets (netx reads no attributes, netx/utils.py:22-77), so a
#: reader can tell snnc's files from lava-dl's exports.
WRITER_ATTR = "writer"


#: Attribute on a ``dense_rec`` layer that snnc writes when the recurrent synapse comes before the
#: feed-forward one among the population's inputs (netx reads datasets only, netx/utils.py:22-77), so
#: that :func:`read_netx` rebuilds the population's inputs in the graph's order.
REC_FIRST_ATTR = "snncRecurrentFirst"


# ------------------------------------------------------------------------ writer

def _first_input_is(graph: Graph, neu: QCubaLIF, syn: QDense) -> bool:
    pop = next(p for p in graph.populations() if p.neuron is neu)
    return pop.inputs[0][0] is syn


def _neuron_group(g: h5py.Group, neu: QCubaLIF) -> None:
    n = g.create_group("neuron")
    n["type"] = np.array([b"CUBA"])
    n["iDecay"] = int(neu.du)
    n["vDecay"] = int(neu.dv)
    n["vThMant"] = int(neu.vth)
    n["refDelay"] = 1
    n["gradedSpike"] = False


def _conv_bias(neu: QCubaLIF, shape: tuple[int, int, int]) -> np.ndarray:
    """(C,) when the bias is one value per channel (what slayer writes), else per neuron in the
    (W, H, C) layout netx's block compares with its own shape (netx/blocks/process.py:53-72)."""
    b = np.asarray(neu.bias_mant, dtype=np.int64).reshape(shape)
    per_channel = b[:, :1, :1]
    if np.array_equal(b, np.broadcast_to(per_channel, shape)):
        return per_channel.reshape(-1).astype(np.int32)
    return b.transpose(2, 1, 0).astype(np.int32)


def netx_delay(delay: np.ndarray) -> np.ndarray:
    """A QDense's (out, in) delays as the smallest ``delay`` dataset netx reads back to the same matrix:
    (out,) when every output neuron's synapses share one delay (netx repeats a 1-D delay of the layer's
    size along the inputs, hdf5.py:436-438; this is also slayer's per-neuron export), else the full
    (out, in) matrix (handed to DelayDense as it is, hdf5.py:448). A per-input (in,) array is never
    written: netx reads a 1-D delay as per output neuron first, so it would be misread when out == in."""
    d = np.asarray(delay, dtype=np.int32)
    if np.array_equal(d, np.broadcast_to(d[:, :1], d.shape)):
        return np.ascontiguousarray(d[:, 0])
    return d


def write_netx(graph: Graph, path: Path, timesteps: int) -> None:
    """Write a fixed-point chain of dense and conv layers as a netx HDF5 file; a dense layer whose
    population has a self-loop is written as ``dense_rec`` (``weight_rec`` = the loop's matrix)."""
    why = netx_limitation(graph)
    if why is not None:
        raise UnsupportedLayerError(f"{path}: cannot write a netx network: {why}.")
    with h5py.File(path, "w") as f:
        f.attrs[WRITER_ATTR] = "snnc"
        sim = f.create_group("simulation")
        sim["Ts"] = 1
        sim["tSample"] = int(timesteps)
        layers = f.create_group("layer")
        inp = layers.create_group("0")
        inp["type"] = np.array([b"input"])
        inp["shape"] = np.array(graph.input.shape, dtype=np.int64)
        index, src_conv = 1, False
        blocks = netx_layers(graph)
        assert not isinstance(blocks, str)
        for syn, neu, rec in blocks:
            if isinstance(syn, QDense):
                if src_conv:    # netx flattens a conv block's (W, H, C) output in torch order
                    fl = layers.create_group(str(index))
                    fl["type"] = np.array([b"flatten"])
                    fl["shape"] = np.array([syn.in_size, 1, 1], dtype=np.int64)
                    index += 1
                g = layers.create_group(str(index))
                g["type"] = np.array([b"dense" if rec is None else b"dense_rec"])
                g["shape"] = np.array([neu.size], dtype=np.int64)
                g["inFeatures"] = syn.in_size
                g["outFeatures"] = syn.out_size
                g["weight"] = syn.weight.astype(np.int32)
                if syn.delay is not None:
                    g["delay"] = netx_delay(syn.delay)
                if rec is not None:     # slayer's cuba.Recurrent keys (slayer/block/base.py:1496-1557)
                    g["weight_rec"] = rec.weight.astype(np.int32)
                    if _first_input_is(graph, neu, rec):
                        g.attrs[REC_FIRST_ATTR] = True
                g["bias"] = np.asarray(neu.bias_mant).astype(np.int32)
                src_conv = False
            else:
                assert isinstance(syn, QConv)
                g = layers.create_group(str(index))
                g["type"] = np.array([b"conv"])
                g["shape"] = np.array(syn.out_shape, dtype=np.int64)
                g["inChannels"] = int(syn.in_shape[0])
                g["outChannels"] = int(syn.out_shape[0])
                g["kernelSize"] = np.array(syn.kernel, dtype=np.int64)
                g["stride"] = np.array(syn.stride, dtype=np.int64)
                g["padding"] = np.array(syn.padding, dtype=np.int64)
                g["dilation"] = np.array(syn.dilation, dtype=np.int64)
                groups = lava_groups(syn.groups)
                g["groups"] = groups      # a scalar: Lava's Conv rejects an array (conv/process.py:124-130)
                weight = syn.weight
                if groups != syn.groups:
                    g[GROUPS_KEY] = int(syn.groups)
                    weight = merge_groups(weight, syn.groups, groups)
                g["weight"] = weight.astype(np.int32)
                g["bias"] = _conv_bias(neu, syn.out_shape)
                src_conv = True
            _neuron_group(g, neu)
            index += 1


# ------------------------------------------------------------------------ reader

#: Keys each layer type may hold: what netx reads (netx/utils.py:45-51; hdf5.py:272-289, 346-461,
#: 500-525, 596-597) and what slayer's ``export_hdf5`` writes besides to describe it (inFeatures,
#: outFeatures, inChannels, outChannels, kernelSize: SP/lava/lib/dl/slayer/block/base.py:584-586,
#: 740-747). Any other key is reported in the notes as ignored: netx does not read it either.
_LAYER_KEYS = {
    "input": {"type", "shape"},
    "flatten": {"type", "shape"},
    "dense": {"type", "shape", "weight", "bias", "delay", "neuron", "inFeatures", "outFeatures"},
    "dense_rec": {"type", "shape", "weight", "weight_rec", "bias", "neuron", "inFeatures", "outFeatures"},
    "conv": {"type", "shape", "weight", "bias", "delay", "neuron", "stride", "padding", "dilation", "groups",
             "inChannels", "outChannels", "kernelSize", GROUPS_KEY},
}
#: Neuron keys read: the four netx maps for CUBA/LOIHI (hdf5.py:140-163) and what slayer's CUBA neuron
#: writes besides (SP/lava/lib/dl/slayer/neuron/cuba.py:263-272; ``weight_exp`` of a norm, block/base.py:622-627).
_NEURON_KEYS = {"type", "iDecay", "vDecay", "vThMant", "messageBits", "refDelay", "gradedSpike", "weight_exp"}


def _scalar(g: h5py.Group, key: str, where: str) -> int:
    v = _ints(g, key, where).reshape(-1)
    if v.size == 0:
        raise InputFileError(f"{where}: '{key}' is empty")
    return int(v[0])


def _text(g: h5py.Group, key: str) -> str:
    """A string dataset (slayer writes ``type`` as a 1-element S10 array), '?' if it holds none."""
    raw = np.asarray(dataset(g, key, f"{g.file.filename} {g.name}")[()]).reshape(-1)
    if raw.size == 0:
        return "?"
    x = raw[0]
    return x.decode("utf-8", errors="replace")[:80] if isinstance(x, bytes) else str(x)[:80]


def _ints(g: h5py.Group, key: str, where: str) -> np.ndarray:
    """An integer dataset as int64 (netx casts weight and bias with ``.astype(int)``, utils.py:67-68;
    we refuse what that would truncate)."""
    a = np.asarray(dataset(g, key, where)[()])
    if a.dtype.kind not in "iufb" or not np.all(np.isfinite(a)) or not np.all(a == np.round(a)):
        raise InputFileError(f"{where}: '{key}' is not an array of integers.")
    if a.size and (a.dtype.kind == "f" and np.abs(a).max() >= 2.0**63 or a.dtype == np.uint64 and a.max() >= 2**63):
        raise InputFileError(f"{where}: '{key}' holds integers beyond 64 bits.")
    return a.astype(np.int64)


def _pair_of(g: h5py.Group, key: str, where: str) -> tuple[int, int]:
    v = _ints(g, key, where).reshape(-1)
    if v.size not in (1, 2):
        raise InputFileError(f"{where}: '{key}' must be a scalar or an (h, w) pair, got {v.tolist()}")
    return (int(v[0]), int(v[-1]))


def _uniform(n: h5py.Group, key: str, where: str, kind: str) -> int:
    """One neuron parameter that must be the same for the whole layer: an snnc population has one
    du, dv and vth (compiler/ir.py QCubaLIF). slayer writes an array per neuron or channel when the
    block was built with ``shared_param=False`` (SP/lava/lib/dl/slayer/neuron/cuba.py:161-199)."""
    v = _ints(n, key, where).reshape(-1)
    if v.size == 0:
        raise InputFileError(f"{where}: neuron '{key}' is empty")
    if v.min() != v.max():
        raise UnsupportedLayerError(
            f"{where}: {kind} layer with per-neuron '{key}' ({v.size} values in [{v.min()}, {v.max()}]; slayer "
            f"writes these for a block built with shared_param=False) is not supported: an snnc population "
            f"has one {key} (compiler/ir.py QCubaLIF). Retrain with shared_param=True (supported: {SUPPORTED}).")
    return int(v[0])


def _neuron(g: h5py.Group, where: str, kind: str, notes: list[str]) -> tuple[int, int, int]:
    """(du, dv, vth) of a CUBA/LOIHI neuron group: netx maps exactly iDecay, vDecay and vThMant (and
    messageBits) to Lava's LIF (hdf5.py:140-163). Keys netx ignores but that change what slayer
    trained (gradedSpike, refDelay, weight_exp, per-neuron decays) are refused unless neutral."""
    if "neuron" not in g:
        if kind in ("dense", "dense_rec"):    # netx's default: a non-leaky integrator, never spikes (hdf5.py:348-357)
            notes.append(f"{where}: {kind} layer without a neuron group: netx's default non-leaky integrator "
                         f"(iDecay 0, vDecay 4096, vThMant 1 << 18 - 1 = 1 << 17, hdf5.py:348-357), which never "
                         f"spikes")
            return 0, 4096, 1 << 17   # netx writes 1 << 18 - 1, which is 1 << 17
        raise InputFileError(f"{where}: a {kind} layer without a 'neuron' group (netx needs one, hdf5.py:501)")
    n = group(g, "neuron", where)
    ntype = _text(n, "type") if "type" in n else "?"
    if ntype == "SDNN":
        raise UnsupportedLayerError(
            f"{where}: {kind} layer with 'SDNN' neurons is not supported: sigma-delta neurons send graded "
            f"messages (netx builds Lava's Sigma/Delta/SigmaDelta for them, hdf5.py:164-189); snnc compiles "
            f"CUBA-LIF networks with binary spikes only. Train with slayer.block.cuba blocks (supported: {SUPPORTED}).")
    if ntype not in ("CUBA", "LOIHI"):
        raise UnsupportedLayerError(f"{where}: {kind} layer with '{ntype}' neurons is not supported: snnc "
                                    f"compiles CUBA-LIF neurons only (netx maps CUBA/LOIHI to Lava's LIF, "
                                    f"hdf5.py:144-163). Train with slayer.block.cuba blocks (supported: {SUPPORTED}).")
    if "messageBits" in n and _uniform(n, "messageBits", where, kind) != 0:
        raise UnsupportedLayerError(f"{where}: {kind} layer with graded output spikes (messageBits "
                                    f"{_scalar(n, 'messageBits', where)}) is not supported: snnc's populations send "
                                    f"binary spikes (supported: {SUPPORTED}).")
    if "gradedSpike" in n and _uniform(n, "gradedSpike", where, kind) != 0:
        raise UnsupportedLayerError(
            f"{where}: {kind} layer with graded spikes (gradedSpike = True: slayer's graded_spike=True) is not "
            f"supported: slayer trained it sending a spike's voltage as its value, but netx reads only messageBits "
            f"(hdf5.py:140-163) and its Lava LIF sends binary spikes, so neither netx nor snnc would run what was "
            f"trained. Retrain with graded_spike=False (supported: {SUPPORTED}).")
    if "refDelay" in n and (ref := _uniform(n, "refDelay", where, kind)) != 1:
        raise UnsupportedLayerError(
            f"{where}: {kind} layer with refractory delay refDelay = {ref} is not supported: netx never reads "
            f"refDelay (it builds Lava's LIF, which has no refractory period, hdf5.py:144-163), so the network would "
            f"not run as specified; only refDelay = 1 (what slayer writes, neuron/cuba.py:250-254) is read "
            f"(supported: {SUPPORTED}).")
    if "weight_exp" in n and (wexp := _uniform(n, "weight_exp", where, kind)) != 0:
        raise UnsupportedLayerError(
            f"{where}: {kind} layer with a normalisation exponent neuron/weight_exp = {wexp} (slayer's "
            f"WgtScaleBatchNorm, block/base.py:622-627) is not supported: slayer divides the layer's input by "
            f"2**{wexp} (neuron/norm.py:166-183), netx ignores the key (hdf5.py:140-163), so netx would not run "
            f"what was trained. Train with MeanOnlyBatchNorm (exported as a bias) or without norm "
            f"(supported: {SUPPORTED}).")
    du = _uniform(n, "iDecay", where, kind)
    dv = _uniform(n, "vDecay", where, kind)
    vth = _uniform(n, "vThMant", where, kind)
    if vth > LOIHI_FIXED_POINT.vth_max:
        notes.append(f"{where}: vThMant {vth} is above the 17-bit threshold ({LOIHI_FIXED_POINT.vth_max}; slayer's "
                     f"Affine block writes (1 << 18) - 1, block/base.py:394-398): these neurons never spike "
                     f"(v holds 24 bits, v > vThMant << 6 never holds), in netx as in snnc")
    extra = sorted(set(n.keys()) - _NEURON_KEYS)
    if extra:
        notes.append(f"{where}: neuron keys {extra} ignored (netx reads only type, iDecay, vDecay, vThMant and "
                     f"messageBits of a CUBA neuron, hdf5.py:140-163)")
    return du, dv, vth


def _delay(g: h5py.Group, where: str, kind: str, weight_shape: tuple[int, ...], notes: list[str]
           ) -> np.ndarray | None:
    """A dense layer's ``delay`` dataset as netx runs it: the (out, in) integer delays of the layer's own
    input synapses (on top of their one step), or None for none.

    netx (SP/lava/lib/dl/netx/hdf5.py:425-448) clamps values above 62 to [0, 62] with a warning, expands a
    scalar to every synapse, a 1-D array of ``out`` values per output neuron (checked first, so when
    out == in a 1-D delay is per output neuron), of ``in`` values per input line, and hands a 2-D array
    as it is to Lava's DelayDense, which truncates it to integers (``delays.astype(int)``,
    netx/blocks/process.py:175) and delivers a spike ``d`` steps after the Dense's one
    (SP/lava/proc/dense/models.py:340-360). snnc reads exactly that (compiler/ir.py ``QDense.delay``); a
    clamped value is named in the notes (netx only warns). Delays on zero weights are kept as written:
    netx zeroes them only for ``sparse_fc_layer=True`` (process.py:165-170), and they move no spike.

    slayer's ``delay=True`` blocks export ``floor(delay)`` of an *axonal* delay on the block's output
    spikes (block/base.py:550-551, 614-617), one per output neuron; netx applies that array to the same
    layer's *input* synapses, per output neuron (hdf5.py:436-438): the same per-neuron delay before the
    neuron instead of after it. snnc follows netx (netx on Lava is what the file means) and says so.
    A conv layer's delay is ignored by netx (hdf5.py:527-530), so a nonzero one is refused."""
    if "delay" not in g:
        return None
    d = np.asarray(dataset(g, "delay", where)[()])
    if d.dtype.kind not in "iufb" or not np.all(np.isfinite(d)):
        raise InputFileError(f"{where}: 'delay' is not an array of finite numbers.")
    if kind == "conv":
        eff = np.trunc(d).astype(np.int64)          # netx: delays=delay.astype(int) (netx/blocks/process.py:175)
        if eff.any():
            raise UnsupportedLayerError(
                f"{where}: conv layer with synaptic delays (up to {int(eff.max())} steps; slayer's delay=True) is "
                f"not supported: netx ignores a conv layer's delay (hdf5.py:527-530), so netx would not run what "
                f"slayer trained, and snnc delays dense synapses only (compiler/ir.py). Retrain without "
                f"delay=True on conv blocks (supported: {SUPPORTED}).")
        notes.append(f"{where}: conv 'delay' is all zero ({d.size} values): the same as no delay (netx ignores "
                     f"a conv layer's delay, hdf5.py:527-530)")
        return None
    out, inp = weight_shape
    if not (d.ndim == 0 or (d.ndim == 1 and d.size in (out, inp)) or d.shape == (out, inp)):
        raise InputFileError(f"{where}: 'delay' of shape {d.shape} fits neither the layer's {out} outputs nor "
                             f"its {inp} inputs (netx raises RuntimeError for it, hdf5.py:432-446)")
    d = d.astype(np.float64)
    if d.size and d.max() > MAX_DELAY:              # netx: np.clip(delay, 0, 62) with a warning (hdf5.py:427-430)
        over = int((d > MAX_DELAY).sum())
        notes.append(f"{where}: {over} delay value(s) above {MAX_DELAY} (up to {d.max():g}) clamped to {MAX_DELAY} "
                     f"steps, as netx does (it warns and clips to [0, 62], hdf5.py:427-430; Loihi 2 holds 6 bits): "
                     f"the network runs with the clamped delays, not the trained ones")
        d = np.clip(d, 0, MAX_DELAY)
    eff = np.trunc(d).astype(np.int64)              # DelayDense gets delay.astype(int) (process.py:175)
    if eff.size and eff.min() < 0:
        raise UnsupportedLayerError(f"{where}: negative synaptic delay {int(eff.min())}: netx hands it to Lava's "
                                    f"DelayDense, which has no negative delays (0..63 steps, "
                                    f"SP/lava/proc/dense/models.py:326-334) (supported: {SUPPORTED}).")
    if d.ndim == 0:
        full = np.full((out, inp), int(eff))
        shape_txt = "one delay for every synapse"
    elif d.ndim == 1 and d.size == out:
        full = np.repeat(eff.reshape(-1, 1), inp, axis=1)
        shape_txt = f"{out} delays, one per output neuron (netx's reading of a 1-D delay of the layer's size)"
    elif d.ndim == 1:
        full = np.repeat(eff.reshape(1, -1), out, axis=0)
        shape_txt = f"{inp} delays, one per input line"
    else:
        full = eff
        shape_txt = f"({out}, {inp}) per-synapse delays"
    if not full.any():
        notes.append(f"{where}: dense 'delay' is all zero ({d.size} values; slayer's delay=True block whose delays "
                     f"floor to 0): read as no delay; netx builds a DelayDense with zero delays for it "
                     f"(hdf5.py:425-448), which runs like a Dense, one step per synapse")
        return None
    notes.append(f"{where}: dense synaptic delays read as netx runs them: {shape_txt}, "
                 f"{int(full.min())}..{int(full.max())} steps on top of the synapse's one step (Lava DelayDense, "
                 f"hdf5.py:425-448). A slayer delay=True export trained these as axonal delays on this layer's "
                 f"output spikes (block/base.py:550-551); netx applies them to this layer's input synapses, per "
                 f"output neuron, and snnc does the same")
    return full.astype(np.uint8)


def _extra_keys(g: h5py.Group, kind: str, where: str, notes: list[str]) -> None:
    extra = sorted(set(g.keys()) - _LAYER_KEYS[kind])
    if extra:
        notes.append(f"{where}: {kind} layer keys {extra} ignored (netx does not read them either)")


def _origin(f: h5py.File, layer: h5py.Group, keys: list[str]) -> str:
    """Who wrote the file, as far as the file says: snnc marks its own; slayer's ``export_hdf5`` writes
    every ``type`` as a fixed 10-byte string (``create_dataset('type', (1,), 'S10', ...)``,
    SP/lava/lib/dl/slayer/block/base.py:153-155, 204-206, 580-582, 737-739)."""
    if f.attrs.get(WRITER_ATTR) is not None:
        w = f.attrs[WRITER_ATTR]
        return w.decode() if isinstance(w, bytes) else str(w)
    types = [layer[k]["type"] for k in keys if "type" in layer[k]]   # every layer[k] is a group (checked)
    if types and all(isinstance(t, h5py.Dataset) and t.dtype == np.dtype("S10") for t in types):
        return "lava-dl (SLAYER export_hdf5)"
    return "an unknown writer (not snnc, not SLAYER's export_hdf5)"


def _given_conv_input(shape: tuple[int, ...], w: np.ndarray, g: h5py.Group, where: str) -> tuple[int, ...]:
    """``--input-shape`` for a first conv layer: (C, H, W) with C = the weight's input channels x groups."""
    if len(shape) != 3:
        raise SnncError(f"--input-shape {_shape_arg(shape)}: the first layer ({where}) is a conv layer, which "
                        f"reads an image; give C,H,W.")
    groups = _scalar(g, "groups", where) if "groups" in g else 1     # as written: C = in-per-group x groups
    per_group = int(w.shape[1]) if w.ndim >= 2 else 0
    want = per_group * groups
    if shape[0] != want:
        raise SnncError(f"--input-shape {_shape_arg(shape)}: the first layer ({where}, conv, weight "
                        f"{tuple(int(d) for d in w.shape)}, groups {groups}) reads {want} input channel(s), not "
                        f"{shape[0]}; give {want},H,W.")
    return shape


def _weight_rec(g: h5py.Group, where: str, n_out: int) -> np.ndarray:
    """A ``dense_rec`` layer's recurrent matrix (n, n): slayer's ``cuba.Recurrent`` exports it as ``weight_rec``
    (SP/lava/lib/dl/slayer/block/base.py:1529-1531); netx reshapes a flat one to (n, -1) (hdf5.py:396-399).
    A ``delay`` is refused: netx's RecurrentDense with delays gives the recurrent synapse the feed-forward
    delays and no weight_exp (netx/blocks/process.py:264-287), and slayer's Recurrent exports none."""
    if "weight_rec" not in g or isinstance(g["weight_rec"], h5py.Group):
        raise InputFileError(f"{where}: dense_rec layer without a real 'weight_rec' array (netx reads "
                             f"layer_config['weight_rec'], hdf5.py:394-395)")
    if "delay" in g:
        raise UnsupportedLayerError(
            f"{where}: dense_rec layer with a 'delay' is not supported: netx's RecurrentDense with delays gives "
            f"its recurrent synapse the feed-forward delay matrix and drops the weight exponent "
            f"(netx/blocks/process.py:264-287), so netx would not run it as written (slayer's cuba.Recurrent "
            f"exports no delay). Export it without delay (supported: {SUPPORTED}).")
    wr = _ints(g, "weight_rec", where)
    if wr.ndim == 1 and wr.size % n_out == 0 and wr.size:
        wr = wr.reshape(n_out, -1)
    if wr.shape != (n_out, n_out):
        raise InputFileError(f"{where}: dense_rec 'weight_rec' of shape {wr.shape} is not ({n_out}, {n_out}): "
                             f"it feeds the layer's {n_out} neurons back into themselves (netx connects "
                             f"neuron.s_out to it, netx/blocks/process.py:302-304)")
    return wr


def _rec_first(g: h5py.Group, where: str) -> bool:
    """The ``snncRecurrentFirst`` attribute :func:`write_netx` sets (absent: False)."""
    try:
        v = g.attrs.get(REC_FIRST_ATTR, False)
    except (OSError, TypeError, ValueError, KeyError, RuntimeError):
        raise InputFileError(f"{where}: attribute '{REC_FIRST_ATTR}' cannot be read") from None
    a = np.asarray(v)
    if a.size != 1 or a.dtype.kind not in "biu":
        raise InputFileError(f"{where}: attribute '{REC_FIRST_ATTR}' must be a boolean, got {str(v)[:40]}")
    return bool(a.reshape(-1)[0])


def _chain_with_loops(nodes: list, loops: dict[str, tuple[QDense, bool]], meta: dict) -> Graph:
    """``Graph.chain(nodes)`` plus each population's recurrent synapse (population -> rec -> population),
    the rec node right after its population, its edge into the population after the feed-forward one
    (before it where the file says so, ``snncRecurrentFirst``)."""
    order: list = []
    edges: list[tuple[str, str]] = []
    for a, b in zip(nodes[:-1], nodes[1:]):
        loop = loops.get(b.name)
        if loop is not None and loop[1]:
            edges.append((loop[0].name, b.name))
        edges.append((a.name, b.name))
        if loop is not None:
            if not loop[1]:
                edges.append((loop[0].name, b.name))
            edges.append((b.name, loop[0].name))
    for n in nodes:
        order.append(n)
        if n.name in loops:
            order.append(loops[n.name][0])
    return Graph.build(order, edges, meta)


@dataclass(frozen=True)
class NetxImport:
    """A netx file read into a graph, and what was read: ``notes[0]`` summarises the network, the rest
    name what was accepted with a remark (zero delays, ignored keys, neurons that never spike)."""

    graph: Graph
    notes: tuple[str, ...]
    writer: str
    ts: int | None
    tsample: int | None


def _shape_arg(shape: tuple[int, ...]) -> str:
    return ",".join(str(d) for d in shape)


def read_netx(path: Path, input_shape: tuple[int, ...] | None = None) -> Graph:
    """Read a netx HDF5 file (ours, or lava-dl's slayer ``export_hdf5`` of CUBA Dense/Conv/Flatten/Recurrent
    blocks; a ``dense_rec`` layer becomes a population with a self-loop ``rec<k>``) back into a fixed-point
    graph that computes what netx's Lava network computes.
    ``input_shape`` ((C, H, W) or (F,)) is the input for a file without an input layer (netx's
    ``Network(input_shape=...)``); where the file has one, it must say the same."""
    return read_netx_file(path, input_shape).graph


def read_netx_file(path: Path, input_shape: tuple[int, ...] | None = None) -> NetxImport:
    """:func:`read_netx`, with notes on what was read (``snn-compile`` prints them)."""
    path = Path(path)
    shape = None if input_shape is None else tuple(int(d) for d in input_shape)
    if shape is not None and (len(shape) not in (1, 3) or any(d < 1 for d in shape)):
        raise SnncError(f"--input-shape {_shape_arg(shape)}: expected C,H,W or F, positive integers.")
    return isolated(path, "HDF5", _read_netx_checked, path, shape)   # libhdf5 can loop on a damaged file


def _read_netx_checked(path: Path, input_shape: tuple[int, ...] | None = None) -> NetxImport:
    try:
        return _read_netx_file(path, input_shape)
    except GraphError as e:   # a node the file describes is invalid (compiler/ir.py checks every node)
        raise InputFileError(f"{path}: {e}") from None


def _read_netx_file(path: Path, input_shape: tuple[int, ...] | None = None) -> NetxImport:
    notes: list[str] = []
    with damaged_hdf5(path), open_hdf5(path) as f:
        if "layer" not in f:
            raise InputFileError(f"{path}: no 'layer' group: not a lava-dl netx network file.")
        layer = group(f, "layer", str(path))
        try:
            keys = sorted(layer.keys(), key=int)
        except ValueError:
            raise InputFileError(f"{path}: layer names must be 0, 1, 2, ... (netx reads layer[i], "
                                 f"hdf5.py:580-581), got {sorted(layer.keys())}") from None
        if [int(k) for k in keys] != list(range(len(keys))):
            raise InputFileError(f"{path}: layers must be numbered 0..{len(keys) - 1} without gaps "
                                 f"(netx reads layer[i] for i in range(n), hdf5.py:580-581), got {keys}")
        nodes: list = []
        cur: tuple[int, ...] | None = None     # layout feeding the next layer (Input's or last population's)
        prev = "none"                          # kind of the netx block before: none, input, conv, dense
        flatten = False
        npop = 0
        summary: list[str] = []
        loops: dict[str, tuple[QDense, bool]] = {}   # population -> (its dense_rec weight_rec, listed first)
        for k in keys:
            where = f"{path} layer {k}"
            g = group(layer, k, where)
            kind = _text(g, "type") if "type" in g else "?"
            if kind == "input":
                if prev != "none":
                    raise UnsupportedLayerError(f"{where}: an input layer after other layers is not "
                                                f"supported (supported: {SUPPORTED}).")
                if "neuron" in g:
                    ng = group(g, "neuron", where)
                    ntype = _text(ng, "type") if "type" in ng else "?"
                    if ntype == "SDNN":
                        raise UnsupportedLayerError(
                            f"{where}: input layer with 'SDNN' neurons (slayer's sigma_delta.Input) is not "
                            f"supported: netx makes it a Delta encoder sending graded messages (hdf5.py:170-177); "
                            f"snnc compiles CUBA-LIF networks with binary spikes only. Train with slayer.block.cuba "
                            f"blocks (supported: {SUPPORTED}).")
                    raise UnsupportedLayerError(
                        f"{where}: input layer with neurons (slayer's Input block with neuron parameters, "
                        f"'{ntype}') is not supported: netx makes it a separate neuron layer that it never connects "
                        f"to the network input (netx/blocks/process.py:97-108); export the network without it, or "
                        f"with slayer.block.cuba.Input(None, delay_shift=False) (supported: {SUPPORTED}).")
                _extra_keys(g, kind, where, notes)
                cur = tuple(int(s) for s in _ints(g, "shape", where).reshape(-1))
                if input_shape is not None and cur != input_shape:
                    raise SnncError(f"--input-shape {_shape_arg(input_shape)}: {where} is an input layer of shape "
                                    f"{cur}; the file carries its input shape, leave --input-shape out.")
                nodes.append(Input("input", cur))
                prev = "input"
                continue
            if kind == "flatten":
                if prev == "dense":
                    raise UnsupportedLayerError(f"{where}: a flatten layer after a dense layer: netx would "
                                                f"transpose a flat port (hdf5.py:655-659) (supported: {SUPPORTED}).")
                _extra_keys(g, kind, where, notes)
                flatten = True
                continue
            if kind in ("pool", "average", "concat", "convT", "unpool"):
                raise UnsupportedLayerError(
                    f"{where}: layer type '{kind}' is not supported: netx itself cannot load it (it raises "
                    f"NotImplementedError, hdf5.py:546-564, 625-633, 679-683). "
                    + ("Pool with a strided cuba.Conv block instead " if kind == "pool" else "")
                    + f"(supported: {SUPPORTED}).")
            if kind not in ("dense", "dense_rec", "conv"):
                raise UnsupportedLayerError(f"{where}: layer type '{kind}' is not supported by this reader "
                                            f"(supported: {SUPPORTED}).")
            if "weight" not in g or isinstance(g["weight"], h5py.Group):
                raise UnsupportedLayerError(f"{where}: {kind} layer without a real 'weight' array (complex "
                                            f"weight/real, weight/imag) is not supported (supported: {SUPPORTED}).")
            w = _ints(g, "weight", where)
            du, dv, vth = _neuron(g, where, kind, notes)
            _extra_keys(g, kind, where, notes)
            npop += 1
            if kind == "conv":
                _delay(g, where, kind, w.shape, notes)
                if flatten:
                    raise UnsupportedLayerError(f"{where}: a conv layer after a flatten layer is not "
                                                f"supported (supported: {SUPPORTED}).")
                if cur is None and input_shape is None:
                    raise InputFileError(f"{where}: the first conv layer needs an input layer with the "
                                         f"(C, H, W) shape (without it netx needs Network(input_shape=...), "
                                         f"hdf5.py:602-608); pass the shape: snn-compile --input-shape C,H,W.")
                flag = ""
                if cur is None:
                    cur = _given_conv_input(input_shape, w[..., 0] if w.ndim == 5 and w.shape[4] == 1 else w, g, where)
                    nodes.append(Input("input", cur))
                    flag = f"--input-shape {_shape_arg(cur)}: "
                if prev == "dense" or len(cur) != 3:
                    raise UnsupportedLayerError(
                        f"{where}: a conv layer reading {'a dense layer' if prev == 'dense' else f'shape {cur}'}: "
                        f"netx builds conv blocks on the previous block's (W, H, C) shape (hdf5.py:600-601) "
                        f"(supported: {SUPPORTED}).")
                if w.ndim == 5 and w.shape[4] == 1:      # slayer's Conv3d kernel (netx: hdf5.py:506)
                    w = w[..., 0]
                if w.ndim != 4:
                    raise InputFileError(f"{where}: conv weight must be (out, in/groups, kh, kw), got {w.shape}")
                if "groups" not in g:
                    raise InputFileError(f"{where}: missing 'groups'")
                if np.asarray(dataset(g, "groups", where)[()]).ndim != 0:
                    raise InputFileError(f"{where}: 'groups' must be a scalar (Lava's Conv rejects an array, "
                                         f"SP/lava/proc/conv/process.py:124-130)")
                groups = _scalar(g, "groups", where)
                geo = dict(stride=_pair_of(g, "stride", where), padding=_pair_of(g, "padding", where),
                           dilation=_pair_of(g, "dilation", where))
                flat = [*w.shape[2:], *geo["stride"], *geo["padding"], *geo["dilation"], groups]
                if max(flat) > CONV_GEOMETRY_MAX:
                    raise UnsupportedLayerError(
                        f"{where}: conv layer with kernel/stride/padding/dilation/groups {flat} above "
                        f"{CONV_GEOMETRY_MAX}: netx cannot run it, Lava's Conv model holds them as int8 "
                        f"(SP/lava/proc/conv/models.py:25-29) (supported: {SUPPORTED}).")
                if GROUPS_KEY in g:        # we merged groups for Lava's int8 Var: restore them
                    orig = _scalar(g, GROUPS_KEY, where)
                    split = split_groups(w, groups, orig) if orig >= 1 else None
                    if split is None:
                        raise InputFileError(f"{where}: '{GROUPS_KEY}' {orig} does not match the "
                                             f"{groups}-group weight {w.shape} (not block-diagonal).")
                    w, groups = split, orig
                try:
                    syn = QConv(f"conv{npop}", w, cur, groups=groups, **geo)
                except GraphError as e:   # the geometry does not fit
                    raise (SnncError if flag else InputFileError)(f"{flag}{where}: {e}") from None
                out = syn.out_shape
                shape = tuple(int(s) for s in _ints(g, "shape", where).reshape(-1))
                if shape != out:
                    raise (SnncError if flag else InputFileError)(f"{flag}{where}: shape {shape} is not the conv "
                                         f"output {out} "
                                         f"(netx checks it, netx/blocks/process.py:461-465)")
                size = int(np.prod(out))
                bias = np.zeros(size, dtype=np.int64)
                if "bias" in g:
                    b = _ints(g, "bias", where)
                    whc = (out[2], out[1], out[0])
                    if b.shape == whc:
                        bias = b.transpose(2, 1, 0).reshape(-1)
                    elif b.ndim == 1 and b.shape[0] == out[0]:
                        bias = np.repeat(b, out[1] * out[2])
                    else:
                        raise InputFileError(f"{where}: conv bias of shape {b.shape} is neither per channel "
                                             f"({out[0]},) nor per neuron {whc} (W, H, C); netx cannot "
                                             f"broadcast it (netx/blocks/process.py:53-69)")
                nodes.append(syn)
                nodes.append(QCubaLIF(f"lif{npop}", size, du, dv, vth, bias, shape=out))
                k_h, k_w = syn.kernel
                summary.append(f"conv {k_h}x{k_w}/{syn.stride[0]},{syn.stride[1]} -> {out}")
                cur, prev = out, "conv"
                continue
            # dense, dense_rec
            if prev == "conv" and not flatten:
                raise UnsupportedLayerError(f"{where}: a dense layer right after a conv layer needs a flatten "
                                            f"layer between them (netx connects the conv block's (W, H, C) "
                                            f"port otherwise, hdf5.py:661-663) (supported: {SUPPORTED}).")
            flattened, flatten = flatten, False
            if w.ndim == 0 or w.size == 0:
                raise InputFileError(f"{where}: dense weight of shape {w.shape} holds no matrix")
            n_out = math.prod(int(d) for d in _ints(g, "shape", where).reshape(-1)) if "shape" in g else int(w.shape[0])
            if n_out < 1:
                raise InputFileError(f"{where}: dense layer shape gives {n_out} neurons")
            if w.ndim == 1:
                if w.size % n_out:
                    raise InputFileError(f"{where}: a flat dense weight of {w.size} values does not split into "
                                         f"{n_out} rows")
                w = w.reshape(n_out, -1)          # as netx does (hdf5.py:396-397)
            if w.ndim != 2 or w.shape[0] != n_out:
                raise InputFileError(f"{where}: dense weight {w.shape} does not fit shape ({n_out},)")
            w_rec = _weight_rec(g, where, n_out) if kind == "dense_rec" else None
            delay = _delay(g, where, kind, w.shape, notes) if w_rec is None else None
            if cur is None:
                if input_shape is not None and math.prod(input_shape) != w.shape[1]:
                    raise SnncError(f"--input-shape {_shape_arg(input_shape)}: {math.prod(input_shape)} values, but "
                                    f"the first layer ({where}, dense) reads {int(w.shape[1])} inputs; give a shape "
                                    f"of {int(w.shape[1])} values.")
                cur = input_shape or (int(w.shape[1]),)
                nodes.append(Input("input", cur))
            if int(np.prod(cur)) != w.shape[1]:
                raise InputFileError(f"{where}: dense weight reads {w.shape[1]} inputs, the layer before "
                                     f"has {int(np.prod(cur))}")
            why = _dense_problem(w, weight_rec=w_rec)
            if why:
                raise UnsupportedLayerError(f"{where}: {kind} layer that netx does not run as written: {why}"
                                            + (" (netx scales weight and weight_rec together, hdf5.py:401-407)"
                                               if w_rec is not None else "")
                                            + f". Export the weights as slayer's quantize_8bit writes them (even "
                                              f"integers in [-256, 254]) (supported: {SUPPORTED}).")
            bias = np.zeros(n_out, dtype=np.int64)
            if "bias" in g:
                b = _ints(g, "bias", where)
                if b.size not in (1, n_out):
                    raise InputFileError(f"{where}: dense bias of shape {b.shape} does not fit ({n_out},)")
                bias = np.broadcast_to(b.reshape(-1), (n_out,)).copy()
            nodes.append(QDense(f"fc{npop}", w, 0, delay=delay))
            nodes.append(QCubaLIF(f"lif{npop}", n_out, du, dv, vth, bias))
            if w_rec is not None:
                loops[f"lif{npop}"] = (QDense(f"rec{npop}", w_rec, 0), _rec_first(g, where))
            summary.append(f"{'flatten + ' if flattened else ''}{kind} {int(w.shape[1])}->{n_out}"
                           + (f" (+ recurrent {n_out}->{n_out})" if w_rec is not None else "")
                           + (f" (delays up to {int(delay.max())})" if delay is not None else ""))
            cur, prev = (n_out,), "dense"
        if npop == 0:
            raise InputFileError(f"{path}: the file has no conv or dense layer.")
        nodes.append(Output("output"))
        sim = f["simulation"] if "simulation" in f and isinstance(f["simulation"], h5py.Group) else None
        ts = _scalar(sim, "Ts", f"{path} /simulation") if sim is not None and "Ts" in sim else None
        tsample = _scalar(sim, "tSample", f"{path} /simulation") if sim is not None and "tSample" in sim else None
        writer = _origin(f, layer, keys)
    for what, value in (("Ts", ts), ("tSample", tsample)):
        if value is not None and not 1 <= value <= MAX_TIMESTEPS:
            raise InputFileError(f"{path}: /simulation/{what} = {value}; expected a number of steps in "
                                 f"[1, {MAX_TIMESTEPS}].")
    try:
        graph = _chain_with_loops(nodes, loops, meta={"source": str(path), "timesteps": tsample})
    except GraphError as e:
        raise InputFileError(f"{path}: the layers do not form a valid network: {e}") from None
    why = sample_size_problem(tsample, graph.input.size) if tsample is not None else None
    if why:
        raise InputFileError(f"{path}: /simulation/tSample: {why}.")
    neurons = ", ".join(f"{p.name} ({p.neuron.du}, {p.neuron.dv}, {p.neuron.vth})"  # type: ignore[union-attr]
                        for p in graph.populations())
    if tsample is None:
        timing = ("no /simulation/tSample (lava-dl's export_hdf5 writes none): the sample length comes from "
                  "snn-compile --timesteps")
    else:
        timing = f"Ts={ts if ts is not None else '-'}, tSample={tsample}"
        if ts not in (None, 1):
            notes.append(f"{path}: /simulation/Ts = {ts}: netx does not read /simulation; one Lava step per time bin")
    head = (f"netx: {npop} layer{'s' if npop > 1 else ''} from {writer}, {timing}; "
            f"input {graph.input.shape} -> " + " -> ".join(summary)
            + f"; neurons (iDecay, vDecay, vThMant): {neurons}")
    return NetxImport(graph, (head, *notes), writer, ts, tsample)


__all__ = ["netx_delay",
           "netx_limitation", "netx_layers", "netx_dense_weights", "netx_dense_rec_weights", "write_netx", "read_netx",
           "read_netx_file", "NetxImport", "SUPPORTED", "GROUPS_KEY", "WRITER_ATTR", "REC_FIRST_ATTR"]

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
See docs/netx.md.
"""
from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from snnc.compiler.graph_file import open_hdf5
from snnc.compiler.lowering import CONV_GEOMETRY_MAX, lava_groups, merge_groups, split_groups
from snnc.compiler.ir import Graph, Input, Output, QConv, QCubaLIF, QDense, dims
from snnc.errors import InputFileError, UnsupportedLayerError
from snnc.models.quant import LOIHI_FIXED_POINT, FixedPointFormat

#: What :func:`read_netx` reads (named in every refusal).
SUPPORTED = "input (without neuron), conv, flatten and dense layers with CUBA/LOIHI neurons"


# ------------------------------------------------------------------------ what netx runs

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
    w = np.asarray(weight).astype(np.int64)
    if w.size == 0:
        return None, 0, "it has no weights"
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
            return None, 0, ("netx's optimize_weight_bits fails on an all-zero weight matrix "
                             "(255 / 0, then int(inf) shift; netx/utils.py:131-151)")
        signed, scale = 0, 255 / mx
    else:
        signed = 1
        scale = min(127 / mx if mx > 0 else np.inf, -128 / mn)
    scale_bits = int(np.floor(np.log2(scale))) + signed
    if scale_bits < 0:
        return None, 0, f"weights in [{mn}, {mx}] exceed the 8-bit range netx scales to (netx/utils.py:124-151)"
    n = 8
    while n > 0 and np.abs(w / 2 ** n - np.round(w / 2 ** n)).sum() != 0:
        n -= 1
    n -= signed
    num_weight_bits = 8 - scale_bits - n
    w2 = np.left_shift(w.astype(np.int32), scale_bits)
    # Lava's Dense (fixed_pt): determine_sign_mode (min >= 0 / max <= 0), clip_weights(num_bits=8),
    # truncate_weights(num_weight_bits), exactly as SP/lava/utils/weightutils.py computes them.
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
    return w3.astype(np.int64), -scale_bits, None


def _dense_problem(weight: np.ndarray, fmt: FixedPointFormat = LOIHI_FIXED_POINT) -> str | None:
    """Why netx and snnc's engines would not run this dense matrix alike (None if they would)."""
    w = np.asarray(weight, dtype=np.int64)
    off = (w % fmt.weight_step != 0) | (w < fmt.weight_min) | (w > fmt.weight_max)
    if off.any():
        i, j = (int(x) for x in np.argwhere(off)[0])
        return (f"weight[{i}, {j}] = {int(w[i, j])} is not a {fmt.name} dense weight (multiples of "
                f"{fmt.weight_step} in [{fmt.weight_min}, {fmt.weight_max}], models/quant.py): snnc's engines "
                f"clip and floor it as Lava's 8-bit mixed-sign Dense does, netx rescales and runs it as written")
    w_lava, exp, why = netx_dense_weights(weight)
    if why is not None:
        return why
    bad = np.argwhere(w_lava != np.asarray(weight, dtype=np.int64) << -exp)
    if len(bad):
        i, j = (int(x) for x in bad[0])
        return (f"netx would run weight[{i}, {j}] = {int(weight[i, j])} as {w_lava[i, j] / 2 ** -exp:g} "
                f"({len(bad)} weights change: netx's optimize_weight_bits and Lava's Dense disagree on "
                f"the sign mode or clip, netx/utils.py:114-151, SP/lava/utils/weightutils.py:21-43, 250-295)")
    return None


def netx_limitation(graph: Graph) -> str | None:
    """Why netx cannot run ``graph`` exactly (None if it can): netx networks are chains of
    binary-spike conv and dense blocks; a conv block must read the input or another conv block."""
    if not graph.is_chain:
        return "netx holds chains of layers only; this graph has populations with several inputs or outputs"
    if graph.input.bits:
        return (f"netx has no graded ({graph.input.bits}-bit) input layer (input_message_bits is a "
                f"Network() argument, not part of the file, netx/hdf5.py:64-76)")
    prev = "input"
    for syn, neu in graph.layers():
        if not isinstance(neu, QCubaLIF) or not isinstance(syn, (QDense, QConv)):
            return f"'{syn.name}' -> '{neu.name}' is not a fixed-point layer (quantize the graph first)"
        if neu.bias_exp != 6 or neu.fmt != LOIHI_FIXED_POINT:
            return (f"'{neu.name}': netx fixes bias_exp = 6 and Lava's Loihi LIF encoding "
                    f"(netx/hdf5.py:151-159), this population has bias_exp {neu.bias_exp}, format {neu.fmt.name}")
        if isinstance(syn, QDense):
            if syn.weight_exp != 0:
                return f"netx cannot carry weight_exp {syn.weight_exp} of '{syn.name}' (netx computes its own)"
            why = _dense_problem(syn.weight, neu.fmt)
            if why:
                return f"dense layer '{syn.name}': {why}"
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


# ------------------------------------------------------------------------ writer

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


def write_netx(graph: Graph, path: Path, timesteps: int) -> None:
    """Write a fixed-point chain of dense and conv layers as a netx HDF5 file."""
    why = netx_limitation(graph)
    if why is not None:
        raise UnsupportedLayerError(f"{path}: cannot write a netx network: {why}.")
    with h5py.File(path, "w") as f:
        sim = f.create_group("simulation")
        sim["Ts"] = 1
        sim["tSample"] = int(timesteps)
        layers = f.create_group("layer")
        inp = layers.create_group("0")
        inp["type"] = np.array([b"input"])
        inp["shape"] = np.array(graph.input.shape, dtype=np.int64)
        index, src_conv = 1, False
        for syn, neu in graph.layers():
            assert isinstance(neu, QCubaLIF)
            if isinstance(syn, QDense):
                if src_conv:    # netx flattens a conv block's (W, H, C) output in torch order
                    fl = layers.create_group(str(index))
                    fl["type"] = np.array([b"flatten"])
                    fl["shape"] = np.array([syn.in_size, 1, 1], dtype=np.int64)
                    index += 1
                g = layers.create_group(str(index))
                g["type"] = np.array([b"dense"])
                g["shape"] = np.array([neu.size], dtype=np.int64)
                g["inFeatures"] = syn.in_size
                g["outFeatures"] = syn.out_size
                g["weight"] = syn.weight.astype(np.int32)
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

def _scalar(g: h5py.Group, key: str, where: str) -> int:
    if key not in g:
        raise InputFileError(f"{where}: missing '{key}'")
    return int(np.asarray(g[key][()]).reshape(-1)[0])


def _text(g: h5py.Group, key: str) -> str:
    raw = np.asarray(g[key][()]).reshape(-1)[0]
    return raw.decode() if isinstance(raw, bytes) else str(raw)


def _ints(g: h5py.Group, key: str, where: str) -> np.ndarray:
    """An integer dataset as int64 (netx casts weight and bias with ``.astype(int)``, utils.py:67-68;
    we refuse what that would truncate)."""
    if key not in g:
        raise InputFileError(f"{where}: missing '{key}'")
    a = np.asarray(g[key][()])
    if a.dtype.kind not in "iufb" or not np.all(np.isfinite(a)) or not np.all(a == np.round(a)):
        raise InputFileError(f"{where}: '{key}' is not an array of integers.")
    return a.astype(np.int64)


def _pair_of(g: h5py.Group, key: str, where: str) -> tuple[int, int]:
    v = _ints(g, key, where).reshape(-1)
    if v.size not in (1, 2):
        raise InputFileError(f"{where}: '{key}' must be a scalar or an (h, w) pair, got {v.tolist()}")
    return (int(v[0]), int(v[-1]))


def _neuron(g: h5py.Group, where: str, kind: str) -> tuple[int, int, int]:
    """(du, dv, vth) of a CUBA/LOIHI neuron group (netx maps exactly these, hdf5.py:144-163)."""
    if "neuron" not in g:
        if kind == "dense":    # netx's default: a non-leaky integrator that never spikes (hdf5.py:348-357)
            return 0, 4096, 1 << 17   # netx writes 1 << 18 - 1, which is 1 << 17
        raise InputFileError(f"{where}: a {kind} layer without a 'neuron' group (netx needs one, hdf5.py:501)")
    n = g["neuron"]
    ntype = _text(n, "type") if "type" in n else "?"
    if ntype not in ("CUBA", "LOIHI"):
        raise UnsupportedLayerError(f"{where}: {kind} layer with '{ntype}' neurons is not supported "
                                    f"(supported: {SUPPORTED}).")
    if "messageBits" in n and _scalar(n, "messageBits", where) != 0:
        raise UnsupportedLayerError(f"{where}: {kind} layer with graded output spikes (messageBits "
                                    f"{_scalar(n, 'messageBits', where)}) is not supported (supported: {SUPPORTED}).")
    return _scalar(n, "iDecay", where), _scalar(n, "vDecay", where), _scalar(n, "vThMant", where)


def read_netx(path: Path) -> Graph:
    """Read a netx HDF5 file (ours, or lava-dl's slayer ``export_hdf5`` of CUBA Dense/Conv/Flatten
    blocks) back into a fixed-point graph that computes what netx's Lava network computes."""
    with open_hdf5(path) as f:
        if "layer" not in f:
            raise InputFileError(f"{path}: no 'layer' group: not a lava-dl netx network file.")
        layer = f["layer"]
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
        for k in keys:
            g, where = layer[k], f"{path} layer {k}"
            kind = _text(g, "type") if "type" in g else "?"
            if kind == "input":
                if prev != "none":
                    raise UnsupportedLayerError(f"{where}: an input layer after other layers is not "
                                                f"supported (supported: {SUPPORTED}).")
                if "neuron" in g:
                    raise UnsupportedLayerError(
                        f"{where}: input layer with neurons (slayer's Input block) is not supported: netx "
                        f"makes it a separate neuron layer that it never connects to the network input "
                        f"(netx/blocks/process.py:97-108); export without it (supported: {SUPPORTED}).")
                cur = tuple(int(s) for s in _ints(g, "shape", where).reshape(-1))
                nodes.append(Input("input", cur))
                prev = "input"
                continue
            if kind == "flatten":
                if prev == "dense":
                    raise UnsupportedLayerError(f"{where}: a flatten layer after a dense layer: netx would "
                                                f"transpose a flat port (hdf5.py:655-659) (supported: {SUPPORTED}).")
                flatten = True
                continue
            if kind not in ("dense", "conv"):
                raise UnsupportedLayerError(f"{where}: layer type '{kind}' is not supported by this reader "
                                            f"(supported: {SUPPORTED}).")
            if "delay" in g:
                raise UnsupportedLayerError(f"{where}: {kind} layer with synaptic delays is not supported "
                                            f"(supported: {SUPPORTED}, without 'delay').")
            if "weight" not in g or isinstance(g["weight"], h5py.Group):
                raise UnsupportedLayerError(f"{where}: {kind} layer without a real 'weight' array (complex "
                                            f"weight/real, weight/imag) is not supported (supported: {SUPPORTED}).")
            w = _ints(g, "weight", where)
            du, dv, vth = _neuron(g, where, kind)
            npop += 1
            if kind == "conv":
                if flatten:
                    raise UnsupportedLayerError(f"{where}: a conv layer after a flatten layer is not "
                                                f"supported (supported: {SUPPORTED}).")
                if cur is None:
                    raise InputFileError(f"{where}: the first conv layer needs an input layer with the "
                                         f"(C, H, W) shape (without it netx needs Network(input_shape=...), "
                                         f"hdf5.py:602-608; this reader takes the shape from the file only).")
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
                if np.asarray(g["groups"][()]).ndim != 0:
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
                except Exception as e:   # GraphError: geometry does not fit
                    raise InputFileError(f"{where}: {e}") from None
                out = syn.out_shape
                shape = tuple(int(s) for s in _ints(g, "shape", where).reshape(-1))
                if shape != out:
                    raise InputFileError(f"{where}: shape {shape} is not the conv output {out} "
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
                cur, prev = out, "conv"
                continue
            # dense
            if prev == "conv" and not flatten:
                raise UnsupportedLayerError(f"{where}: a dense layer right after a conv layer needs a flatten "
                                            f"layer between them (netx connects the conv block's (W, H, C) "
                                            f"port otherwise, hdf5.py:661-663) (supported: {SUPPORTED}).")
            flatten = False
            n_out = int(np.prod(_ints(g, "shape", where))) if "shape" in g else int(w.shape[0])
            if w.ndim == 1:
                w = w.reshape(n_out, -1)          # as netx does (hdf5.py:396-397)
            if w.ndim != 2 or w.shape[0] != n_out:
                raise InputFileError(f"{where}: dense weight {w.shape} does not fit shape ({n_out},)")
            if cur is None:
                cur = (int(w.shape[1]),)
                nodes.append(Input("input", cur))
            if int(np.prod(cur)) != w.shape[1]:
                raise InputFileError(f"{where}: dense weight reads {w.shape[1]} inputs, the layer before "
                                     f"has {int(np.prod(cur))}")
            why = _dense_problem(w)
            if why:
                raise UnsupportedLayerError(f"{where}: dense layer that netx does not run as written: {why}.")
            bias = np.zeros(n_out, dtype=np.int64)
            if "bias" in g:
                b = _ints(g, "bias", where)
                if b.size not in (1, n_out):
                    raise InputFileError(f"{where}: dense bias of shape {b.shape} does not fit ({n_out},)")
                bias = np.broadcast_to(b.reshape(-1), (n_out,)).copy()
            nodes.append(QDense(f"fc{npop}", w, 0))
            nodes.append(QCubaLIF(f"lif{npop}", n_out, du, dv, vth, bias))
            cur, prev = (n_out,), "dense"
        if npop == 0:
            raise InputFileError(f"{path}: the file has no conv or dense layer.")
        nodes.append(Output("output"))
        tsample = int(np.asarray(f["simulation/tSample"][()]).reshape(-1)[0]) if "simulation/tSample" in f else None
    try:
        return Graph.chain(nodes, meta={"source": str(path), "timesteps": tsample})
    except Exception as e:
        raise InputFileError(f"{path}: the layers do not form a valid network: {e}") from None


__all__ = ["netx_limitation", "netx_dense_weights", "write_netx",
           "read_netx", "SUPPORTED", "GROUPS_KEY"]

"""Run a netx file on lava-dl's own loader (``lava.lib.dl.netx.hdf5.Network``) and Lava's fixed-point
simulator: the reference that snnc's reading of a ``.net`` file is compared with.

Shared by tests/test_netx_interop.py (files snnc writes) and tests/test_netx_in.py (files SLAYER
exports). Not a test module: pytest collects only ``test_*.py``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np


def slayer_forward_and_export(blocks: list, x, path: Path):  # type: ignore[no-untyped-def]
    """SLAYER's own forward of ``x`` through ``blocks`` (no grad), and the blocks written to ``path``
    the lava-dl way (``layer/<i>`` groups, each block's ``export_hdf5``). Returns the forward's output."""
    import h5py
    import torch

    with torch.no_grad():
        y = x
        for b in blocks:
            y = b(y)
    with h5py.File(path, "w") as f:
        for i, b in enumerate(blocks):
            b.export_hdf5(f.create_group(f"layer/{i}"))
    return y


def run_netx(path: Path, x: np.ndarray, in_shape: tuple[int, ...]) -> list[np.ndarray]:
    """Load ``path`` with netx, feed ``x`` and return every block's spikes in torch flat order.

    ``x`` is one sample (T, n) or a batch (B, T, n) in torch flat order (C, H, W); the result is one
    bool array per netx block, (T, n) or (B, T, n) alike. netx's ports are Lava's (W, H, C): the input
    is transposed into it and every conv block's output back out of it.

    A batch runs in one Lava network, ``T`` steps per sample, and between samples every block's ``u``,
    ``v`` (LIF) and synapse buffers (Dense/DelayDense ``a_buff``, Conv ``a_buf``, a RecurrentDense's
    ``synapse_rec.a_buff``: the last step's recurrent spikes) are set back to 0, as
    snnc's runtime does (runtime/lava_backend.py ``_reset``), so each sample starts from zero state
    like hwsim's. Lava's ring buffers index with ``(time_step - 1) % buffer``
    (SP/lava/proc/io/source.py:40-44, sink.py:48-52), so sample k reads and writes columns k*T..k*T+T-1.
    """
    from snnc.runtime.lava_backend import lava_api
    from snnc.runtime.netx import load_netx

    lava_api()   # before any lava import (load_netx applies it too)
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.io.sink import RingBuffer as Sink
    from lava.proc.io.source import RingBuffer as Source

    single = x.ndim == 2
    xb = x[None] if single else x
    batch, steps = xb.shape[:2]
    net = load_netx(path)   # with Lava's patches: ReshapePort on NumPy >= 2.4, Conv >= 128 channels
    data = xb.reshape(batch, steps, *in_shape)
    if len(net.inp.shape) == 3:   # (B, T, C, H, W) -> (W, H, C, B*T)
        data = data.transpose(4, 3, 2, 0, 1).reshape(*data.shape[4:1:-1], batch * steps)
    else:                         # (B, T, n) -> (n, B*T)
        data = data.reshape(batch * steps, -1).T
    assert data.shape[:-1] == tuple(net.inp.shape)
    src = Source(data=data.astype(np.int32))
    src.s_out.connect(net.inp)
    sinks = []
    for block in net.layers:
        sink = Sink(shape=block.out.shape, buffer=batch * steps)
        block.out.connect(sink.a_in)
        sinks.append(sink)
    cfg = Loihi2SimCfg(select_tag="fixed_pt")
    try:
        for k in range(batch):
            if k:
                for block in net.layers:
                    block.neuron.u.set(np.zeros(block.neuron.u.shape))
                    block.neuron.v.set(np.zeros(block.neuron.v.shape))
                    buf = block.synapse.a_buff if hasattr(block.synapse, "a_buff") else block.synapse.a_buf
                    buf.set(np.zeros(buf.shape))
                    if hasattr(block, "synapse_rec"):   # RecurrentDense (dense_rec): its own Dense's buffer
                        block.synapse_rec.a_buff.set(np.zeros(block.synapse_rec.a_buff.shape))
            net.run(condition=RunSteps(num_steps=steps), run_cfg=cfg)
        got = [s.data.get() for s in sinks]
    finally:
        net.stop()
    out = []
    for d in got:                                         # (W, H, C, B*T) or (n, B*T)
        d = np.moveaxis(d, -1, 0)
        if d.ndim == 4:
            d = d.transpose(0, 3, 2, 1)                   # -> (B*T, C, H, W)
        d = d.reshape(batch, steps, -1).astype(bool)
        out.append(d[0] if single else d)
    return out


def netx_blocks(path: Path, **kwargs) -> list[dict]:  # type: ignore[no-untyped-def, type-arg]
    """What lava-dl's netx builds from ``path`` (``Network(net_config=path, **kwargs)``, e.g.
    ``input_message_bits=0``), block by block, before anything runs: the block's and its synapse's
    process class names, the message bits the synapse reads (``num_message_bits``: what a Loihi 2 compiler
    programs), the block's ``input_message_bits`` and ``output_message_bits``, the synapse's delays as an
    (out, in) int array (None for a Dense without delays), and its neuron's class name."""
    from snnc.runtime.netx import load_netx

    net = load_netx(path, **kwargs)
    out = []
    for block in net.layers:
        syn = block.synapse
        delays = getattr(syn, "delays", None)
        out.append({"block": type(block).__name__, "synapse": type(syn).__name__,
                    "num_message_bits": int(np.asarray(syn.num_message_bits.init).reshape(-1)[0])
                    if hasattr(syn, "num_message_bits") else None,
                    "input_message_bits": int(block.input_message_bits or 0),
                    "output_message_bits": int(block.output_message_bits or 0),
                    "delays": None if delays is None else np.asarray(delays.init).astype(np.int64),
                    "neuron": type(block.neuron).__name__})
    return out

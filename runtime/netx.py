"""lava-dl's netx on this environment in one call: ``load_netx("build/network.net")``.

netx (``lava.lib.dl.netx.hdf5.Network``) needs three things before it works with lava-nc 0.10 /
lava-dl 0.6 on Python 3.11 and NumPy >= 2.4, each explained in docs/netx.md: Lava's ``var_model``
import patched (``lava_compat.ensure_lava_importable``), Lava's ``ReshapePort`` made NumPy-2.4 safe
(``patch_reshape_ports``: netx's flatten connections) and Lava's Conv geometry fixed for 128 or more
channels (``patch_conv_geometry``). :func:`snnc.runtime.lava_backend.lava_api` applies all three; this
module gives a user the network with them applied, and with the recurrent link of a ``dense_rec`` layer
given the message bits of the spikes it carries (:func:`patch_recurrent_message_bits`, lava-dl #372).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from snnc.errors import InputFileError


def patch_recurrent_message_bits() -> None:
    """lava-dl issue #372 ("NetX converter is setting num_message_bits incorrectly for recurrent
    connections"), fixed where it happens.

    netx's ``RecurrentDense`` block (a ``dense_rec`` layer) builds its recurrent Dense with
    ``num_message_bits=self.input_message_bits`` (SP/lava/lib/dl/netx/blocks/process.py:256-262 without
    delays, 280-286 with), the bits of the spikes *entering* the block: ``Network(input_message_bits=...)``
    for the first layer, the previous block's ``output_message_bits`` after it (netx/hdf5.py:567, 645,
    654). But that Dense carries the block's *own* spikes, ``neuron.s_out -> synapse_rec.s_in``
    (process.py:302-304), whose bits are the block's ``output_message_bits`` (its neuron's
    ``messageBits``, 0 = binary for CUBA, process.py:44-47, hdf5.py:140-160). So a dense_rec layer fed
    graded input gets a graded recurrent link for its binary spikes; on Loihi that link then reads a
    payload the LIF never sends (the issue's 0% accuracy). On the CPU ``fixed_pt`` models the wrong
    bits change no number: a graded Dense computes ``weights.dot(s_in)`` and a binary one
    ``weights[:, s_in].sum(axis=1)`` (SP/lava/proc/dense/models.py:97-102), equal for 0/1 spikes.

    The patch sets the recurrent Dense's ``num_message_bits`` Var (its value before compilation, and
    the process parameter) to the block's ``output_message_bits`` after netx built it. Files snnc
    writes never hit the bug (binary input and binary neurons, so both values are 0); it matters for a
    user who runs them, or a slayer export, with ``input_message_bits > 0``. Idempotent."""
    from lava.lib.dl.netx.blocks.process import RecurrentDense

    if getattr(RecurrentDense.__init__, "_snnc_recurrent_bits", False):
        return
    original = RecurrentDense.__init__

    def __init__(self: Any, **kwargs: Any) -> None:
        original(self, **kwargs)
        bits = int(self.output_message_bits or 0)
        rec = self.synapse_rec
        rec.num_message_bits.init = bits
        if rec.proc_params.get("num_message_bits") is not None:
            rec.proc_params.overwrite("num_message_bits", bits)

    __init__._snnc_recurrent_bits = True  # type: ignore[attr-defined]
    __init__._snnc_original = original  # type: ignore[attr-defined]  (lava-dl as shipped, for tests)
    __init__.__doc__ = original.__doc__
    RecurrentDense.__init__ = __init__  # type: ignore[method-assign]


def load_netx(path: str | os.PathLike, **kwargs: Any) -> Any:
    """``lava.lib.dl.netx.hdf5.Network(net_config=path, **kwargs)`` with Lava made usable here first
    (e.g. ``reset_interval=T`` to run several samples of T steps in one Lava run; ``input_message_bits=0``
    for snnc's files, whose input is binary spikes: netx takes the input's message bits from this argument,
    not from the file, docs/netx.md "Taking a netx file to a Loihi 2 system"; dense layers with a ``delay``
    become Lava ``DelayDense`` synapses), and each
    ``dense_rec`` layer's recurrent link given binary (its neurons') message bits
    (:func:`patch_recurrent_message_bits`)."""
    from snnc.runtime.lava_backend import lava_api

    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"{path}: no such netx file (snn-compile writes ARTIFACT/network.net).")
    lava_api()
    patch_recurrent_message_bits()
    from lava.lib.dl import netx

    return netx.hdf5.Network(net_config=str(path), **kwargs)

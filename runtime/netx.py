"""lava-dl's netx on this environment in one call: ``load_netx("build/network.net")``.

netx (``lava.lib.dl.netx.hdf5.Network``) needs three things before it works with lava-nc 0.10 /
lava-dl 0.6 on Python 3.11 and NumPy >= 2.4, each explained in docs/netx.md: Lava's ``var_model``
import patched (``lava_compat.ensure_lava_importable``), Lava's ``ReshapePort`` made NumPy-2.4 safe
(``patch_reshape_ports``: netx's flatten connections) and Lava's Conv geometry fixed for 128 or more
channels (``patch_conv_geometry``). :func:`snnc.runtime.lava_backend.lava_api` applies all three; this
module gives a user the network with them applied.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from snnc.errors import InputFileError


def load_netx(path: str | os.PathLike, **kwargs: Any) -> Any:
    """``lava.lib.dl.netx.hdf5.Network(net_config=path, **kwargs)`` with Lava made usable here first
    (e.g. ``reset_interval=T`` to run several samples of T steps in one Lava run)."""
    from snnc.runtime.lava_backend import lava_api

    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"{path}: no such netx file (snn-compile writes ARTIFACT/network.net).")
    lava_api()
    from lava.lib.dl import netx

    return netx.hdf5.Network(net_config=str(path), **kwargs)

"""network.net is a real lava-dl netx file: netx loads it, and Lava runs it to hwsim's spikes."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from snnc.compiler.artifact import load_artifact
from snnc.hwsim.sim import HwSim
from snnc.pipeline import compile_model
from snnc.runtime.lava_compat import ensure_lava_importable


@pytest.mark.slow
def test_network_net_runs_in_netx_like_hwsim(model_path: Path, tmp_path: Path) -> None:
    art = load_artifact(compile_model(model_path, out=tmp_path / "build").out)
    steps = art.timesteps
    x = np.random.default_rng(7).random((1, steps, art.graph.input.size)) < 0.4
    expected = HwSim.from_graph(art.graph).run(x).output[0]
    assert expected.sum() > 0  # the comparison is not vacuous

    ensure_lava_importable()
    from lava.lib.dl import netx
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.io.sink import RingBuffer as Sink
    from lava.proc.io.source import RingBuffer as Source

    net = netx.hdf5.Network(net_config=str(art.path / "network.net"))
    src = Source(data=x[0].T.astype(np.int32))
    sink = Sink(shape=net.out.shape, buffer=steps)
    src.s_out.connect(net.inp)
    net.out.connect(sink.a_in)
    try:
        net.run(condition=RunSteps(num_steps=steps), run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
        got = sink.data.get().T.astype(bool)
    finally:
        net.stop()
    assert got.shape == expected.shape
    assert np.array_equal(got, expected), f"first difference at (step, neuron) {np.argwhere(got != expected)[0]}"

"""Model -> graph -> every interchange format -> graph: equal, property-tested over the model zoo
and the rules' architectures; and every file an artifact holds compiles back to the same graph."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from snnc.compiler.artifact import GRAPH_FILE, NETWORK_FILE, NIR_FILE, ONNX_FILE, load_artifact
from snnc.compiler.frontend import graph_from_module
from snnc.compiler.graph_file import read_graph, write_graph
from snnc.compiler.netx_hdf5 import netx_limitation, read_netx, write_netx
from snnc.compiler.nir_io import read_nir, write_nir
from snnc.compiler.onnx_io import read_onnx, write_onnx
from snnc.compiler.passes import quantize
from snnc.compiler.targets import get_target
from snnc.models.network import ARCHS
from snnc.models.rules import make_rule
from snnc.pipeline import compile_model
from test_nir_io import assert_same_graph

FORMATS = {
    "graph.h5": (write_graph, read_graph),
    "graph.nir": (write_nir, lambda p: read_nir(p).graph),
    "graph.onnx": (write_onnx, read_onnx),
}


def _model(arch: str, rule: str, hw: bool, seed: int):  # type: ignore[no-untyped-def]
    torch.manual_seed(seed)
    if arch in ("mlp", "rmlp"):
        return ARCHS[arch](12, 3, (9,), rule=make_rule(rule), hardware_exact=hw)
    return ARCHS[arch](64, 10, input_shape=(1, 8, 8), rule=make_rule(rule), hardware_exact=hw)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(arch=st.sampled_from(["mlp", "rmlp", "lenet", "resnet11"]), rule=st.sampled_from(["stbp-rect", "neunorm", "lee", "bpsta"]),
       hw=st.booleans(), seed=st.integers(0, 1000))
def test_model_graph_round_trips_through_every_format(tmp_path_factory: pytest.TempPathFactory, arch: str, rule: str,
                                                       hw: bool, seed: int) -> None:
    if arch not in ("mlp", "rmlp") and rule in ("neunorm", "lee", "bpsta"):
        rule = "stbp-rect"   # conv archs refuse NeuNorm and graded/signed input (tests/test_conv.py)
    graph = quantize(graph_from_module(_model(arch, rule, hw, seed)), get_target("loihi"))
    where = tmp_path_factory.mktemp("formats")
    for name, (write, read) in FORMATS.items():
        write(graph, where / name)
        assert_same_graph(graph, read(where / name))
    if netx_limitation(graph) is None:   # netx holds chains of binary-input layers only; its meta is its own
        write_netx(graph, where / "network.net", 10)
        back = read_netx(where / "network.net")
        for a, b in zip(graph.populations(), back.populations()):
            assert (a.neuron.du, a.neuron.dv, a.neuron.vth) == (b.neuron.du, b.neuron.dv, b.neuron.vth)  # type: ignore[union-attr]
            for (s1, _), (s2, _) in zip(a.inputs, b.inputs):
                np.testing.assert_array_equal(s1.weight, s2.weight)
            assert len(a.recurrent) == len(b.recurrent)   # netx names its own nodes


def test_every_file_of_an_artifact_compiles_back_to_the_same_graph(model_path: Path, tmp_path: Path) -> None:
    """snn-compile on the artifact's graph.nir, graph.onnx and network.net (recognised by content,
    not suffix) gives the graph the artifact runs."""
    art = load_artifact(compile_model(model_path, out=tmp_path / "a").out)
    for name in (NIR_FILE, ONNX_FILE, NETWORK_FILE, GRAPH_FILE):
        again = load_artifact(compile_model(art.path / name, out=tmp_path / f"from-{name}").out)
        assert again.manifest["source"]["kind"] == {NIR_FILE: "nir", ONNX_FILE: "onnx", NETWORK_FILE: "netx",
                                                    GRAPH_FILE: "graph"}[name]
        for a, b in zip(art.graph.populations(), again.graph.populations()):
            assert (a.neuron.du, a.neuron.dv, a.neuron.vth) == (b.neuron.du, b.neuron.dv, b.neuron.vth)  # type: ignore[union-attr]
            np.testing.assert_array_equal(a.neuron.bias_mant, b.neuron.bias_mant)  # type: ignore[union-attr]
            for (s1, _), (s2, _) in zip(a.inputs, b.inputs):
                np.testing.assert_array_equal(s1.weight, s2.weight)
        if name != NETWORK_FILE:
            assert_same_graph(art.graph, again.graph)

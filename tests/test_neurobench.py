"""NeuroBench's metrics of compiled graphs (snnc.hwsim.neurobench), checked against NeuroBench's own harness.

Every metric snnc computes from hwsim's spikes (``neurobench_metrics``) is compared with what
``neurobench.benchmarks.Benchmark`` (neurobench 2.3.0) reports when it runs ``torch_equivalent(graph)``
over a DataLoader of the same inputs, in batches of uneven size: Footprint, ParameterCount and
Effective_MACs / Effective_ACs / Dense exactly (integers, and NeuroBench's own final division),
ConnectionSparsity exactly (NeuroBench's float32 ratio rounded to 4 decimals), ActivationSparsity up
to the harness's order of floating-point additions (rel 1e-12). The equivalent model's spikes equal
hwsim's on every population.

What the harness cannot check on the default model, and how it is checked instead:

* MembraneUpdates: NeuroBench reads membrane potentials only from ``snntorch.SpikingNeuron`` layers
  (hooks/neuron.py:38); on any other activation module it reports 0 (asserted below, so a NeuroBench
  that changes this fails the test). It is checked on ``torch_equivalent(graph, snntorch_neurons=True)``,
  whose neurons are also snnTorch SpikingNeurons; there Footprint is 16 bytes per population larger
  (snnTorch's threshold, graded_spikes_factor and reset_mechanism_val buffers), asserted exactly.
* NeuronOperations is not computed (NeuroBench prices only snnTorch's Leaky, Synaptic, Lapicque and
  Alpha classes) and not checked.
"""
from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from snnc.compiler.frontend import graph_from_module
from snnc.compiler.ir import Graph, Input, Output, QConv, QCubaLIF, QDense
from snnc.compiler.mapping import map_cores
from snnc.compiler.passes import quantize
from snnc.compiler.targets import LOIHI
from snnc.hwsim.neurobench import CubaLIFNeurons, neurobench_metrics, neurobench_model, torch_equivalent
from snnc.hwsim.sim import HwSim
from snnc.models.conv import CubaConv, Flatten, ResidualBlock, SumPool
from snnc.models.network import ARCHS, SpikingNet, mlp
from snnc.models.neurons import CubaDense
from conftest import make_model
from recurrent_graphs import inputs_for, self_loop, stacked, two_cycle

from neurobench.benchmarks import Benchmark  # noqa: E402
from neurobench.metrics.static import ConnectionSparsity, Footprint, ParameterCount  # noqa: E402
from neurobench.metrics.workload import ActivationSparsity, MembraneUpdates, SynapticOperations  # noqa: E402

METRICS = [[Footprint, ConnectionSparsity, ParameterCount], [ActivationSparsity, SynapticOperations, MembraneUpdates]]
SNNTORCH_BUFFER_BYTES = 4 + 4 + 8   # threshold, graded_spikes_factor (float32), reset_mechanism_val (int64)
DOC = Path(__file__).resolve().parents[1] / "docs" / "neurobench.md"


def harness(graph: Graph, x: np.ndarray, batch_size: int, *, snntorch_neurons: bool = False) -> dict[str, Any]:
    """NeuroBench's own Benchmark on the equivalent model over a DataLoader of ``x``."""
    data = TensorDataset(torch.as_tensor(np.asarray(x), dtype=torch.float32), torch.zeros(len(x)))
    model = neurobench_model(graph, snntorch_neurons=snntorch_neurons)
    return Benchmark(model, DataLoader(data, batch_size=batch_size), [], [], METRICS).run(quiet=True)


def assert_same(ours: dict[str, Any], theirs: dict[str, Any], footprint_extra: int = 0) -> None:
    assert theirs["Footprint"] == ours["Footprint"] + footprint_extra
    assert theirs["ParameterCount"] == ours["ParameterCount"]
    assert theirs["ConnectionSparsity"] == ours["ConnectionSparsity"]
    assert theirs["SynapticOperations"] == ours["SynapticOperations"]   # integers / samples: exactly
    assert theirs["ActivationSparsity"] == pytest.approx(ours["ActivationSparsity"], rel=1e-12, abs=0)


def check_graph(graph: Graph, x: np.ndarray, batch_size: int) -> dict[str, Any]:
    """hwsim -> neurobench_metrics == the harness on the equivalent model (both neuron kinds), and the
    equivalent model's spikes == hwsim's on every population. Returns snnc's section."""
    result = HwSim.from_graph(graph).run(x)
    for name, s in result.spikes.items():   # a silent or saturated layer would make the comparison weak
        assert 0 < s.mean() < 1, f"{name}: spike rate {s.mean()}"
    ours = neurobench_metrics(graph, result, x, batch_size=batch_size)
    spikes = torch_equivalent(graph).simulate(torch.as_tensor(np.asarray(x)))
    assert set(spikes) == set(result.spikes)
    for name, s in spikes.items():
        assert np.array_equal(s.numpy(), result.spikes[name]), name
    plain = harness(graph, x, batch_size)
    assert_same(ours["metrics"], plain)
    assert plain["MembraneUpdates"] == 0.0          # NeuroBench: membrane updates of snnTorch neurons only
    snn = harness(graph, x, batch_size, snntorch_neurons=True)
    assert_same(ours["metrics"], snn, footprint_extra=SNNTORCH_BUFFER_BYTES * len(graph.populations()))
    assert snn["MembraneUpdates"] == ours["metrics"]["MembraneUpdates"] > 0
    return ours


def hwsim_counts(graph: Graph, x: np.ndarray) -> tuple[float, float]:
    """hwsim's own synaptic ops per sample (every synapse, zero weights too) and synapses x T."""
    r = HwSim.from_graph(graph).run(x)
    return (sum(float(a.synops.sum()) for a in r.activity) / r.batch,
            float(sum(a.synapses for a in r.activity) * r.timesteps))


# ----------------------------------------------------------------------------- the networks
def demo_mlp() -> Graph:
    """The demo's 64-128-10 MLP (digits-sized), compiled by snnc's quantize pass."""
    return quantize(graph_from_module(make_model((64, 128, 10))), LOIHI)


def conv_net(seed: int = 0, gain: float = 2.5) -> Graph:
    """conv (padding 1) -> folded sum pool -> residual block (1x1 shortcut, stride 2) -> dense."""
    torch.manual_seed(seed)
    c1 = CubaConv((1, 8, 8), 4, 3, padding=1)
    pool = SumPool(c1.out_shape, 2)
    res = ResidualBlock(pool.out_shape, 6, stride=2)
    model = SpikingNet([c1, pool, res, Flatten(res.out_shape), CubaDense(res.out_features, 10)])
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(gain)
    return quantize(graph_from_module(model.eval()), LOIHI)


def lenet() -> Graph:
    """The zoo's LeNet layout (20C5p2-P2-50C5p2-P2-FC200) on an 8x8 input."""
    torch.manual_seed(0)
    model = ARCHS["lenet"](64, 10, input_shape=(1, 8, 8))
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(3.0)
    return quantize(graph_from_module(model), LOIHI)


def odd_conv(seed: int = 0) -> Graph:
    """A hand-built conv with groups, stride, dilation, asymmetric padding and 40% zero weights: what
    NeuroBench's binarised re-run does with zero weights and with padding taps is all visible."""
    rng = np.random.default_rng(seed)
    w = 2 * rng.integers(-30, 40, (6, 1, 3, 3))
    w[rng.random(w.shape) < 0.4] = 0
    conv = QConv("c1", w, (2, 9, 8), stride=(2, 1), padding=(2, 1), dilation=(1, 2), groups=2)
    lif = QCubaLIF("l1", conv.out_size, du=1024, dv=512, vth=20, bias_mant=np.zeros(conv.out_size, np.int64),
                   shape=conv.out_shape)
    wd = 2 * rng.integers(-20, 40, (5, conv.out_size))
    wd[rng.random(wd.shape) < 0.4] = 0
    out = QCubaLIF("o", 5, du=1024, dv=512, vth=60, bias_mant=rng.integers(-5, 5, 5))
    nodes = [Input("x", (2, 9, 8)), conv, lif, QDense("fc", wd, weight_exp=1), out, Output("out")]
    return Graph.build(nodes, [("x", "c1"), ("c1", "l1"), ("l1", "fc"), ("fc", "o"), ("o", "out")])


def rmlp() -> Graph:
    """``--arch rmlp`` (64-32-10, the hidden layer recurrent), compiled."""
    torch.manual_seed(0)
    model = mlp(64, 10, hidden=(32,), recurrent=True, hardware_exact=True)
    with torch.no_grad():
        for layer in model.layers:
            layer.weight.mul_(3.0)
    model.refit_formats()
    return quantize(graph_from_module(model), LOIHI)


def spikes(shape: tuple[int, ...], seed: int = 0, density: float = 0.3) -> np.ndarray:
    return np.random.default_rng(seed).random(shape) < density


# ----------------------------------------------------------------------------- tests
def test_demo_mlp_metrics_equal_neurobench_harness() -> None:
    graph = demo_mlp()
    x = spikes((20, 16, 64))
    ours = check_graph(graph, x, batch_size=7)            # batches of 7, 7, 6
    m, c = ours["metrics"], ours["counts"]
    assert m["ParameterCount"] == 64 * 128 + 128 * 10 + 128 + 10
    assert m["Footprint"] == 4 * m["ParameterCount"] + 4 * (2 * 4 + 2)   # float32; int32 registers
    assert m["SynapticOperations"]["Dense"] == 16 * (64 * 128 + 128 * 10)
    assert m["SynapticOperations"]["Effective_MACs"] == 0      # binary spikes: accumulates only
    assert 0 < c["zero_weights"] and c["acs"] == m["SynapticOperations"]["Effective_ACs"] * 20
    json.dumps(ours)                                           # report.json takes it as it is


def test_batching_does_not_change_binary_metrics() -> None:
    graph = demo_mlp()
    x = spikes((9, 10, 64), seed=3)
    r = HwSim.from_graph(graph).run(x)
    one, three = neurobench_metrics(graph, r, x), neurobench_metrics(graph, r, x, batch_size=3)
    assert one["metrics"] == three["metrics"]
    assert_same(one["metrics"], harness(graph, x, 9))


@pytest.mark.parametrize("build", [conv_net, lenet, odd_conv], ids=["residual", "lenet", "odd_conv"])
def test_conv_metrics_equal_neurobench_harness(build: Any) -> None:
    graph = build()
    x = spikes((6, 12, graph.input.size), seed=1, density=0.4)
    ours = check_graph(graph, x, batch_size=4)
    assert any(s["layer"] == "Conv2d" for lay in ours["layers"] for s in lay["synapses"])


def test_conv_padding_and_zero_weights_are_counted_as_neurobench_counts_them() -> None:
    """hwsim's synaptic ops count every real synapse (zero weights too, padding taps not): equal to
    NeuroBench's Effective_ACs once the zero weights are made non-zero, and larger before; Dense is
    T x hwsim's real synapse count (padding taps excluded), not T x every kernel tap."""
    graph = odd_conv()
    x = spikes((5, 10, graph.input.size), seed=2, density=0.5)
    ours = neurobench_metrics(graph, HwSim.from_graph(graph).run(x), x)["metrics"]["SynapticOperations"]
    synops, dense = hwsim_counts(graph, x)
    assert ours["Dense"] == dense
    conv = graph.nodes["c1"]
    assert dense < 10 * (conv.weight[0].size * conv.out_size + graph.nodes["fc"].weight.size)   # padding excluded
    assert ours["Effective_ACs"] < synops
    dense_graph = Graph.build([dataclasses.replace(n, weight=np.where(n.weight == 0, 2, n.weight))
                               if isinstance(n, (QConv, QDense)) else n for n in graph.nodes.values()],
                              list(graph.edges))
    full = neurobench_metrics(dense_graph, HwSim.from_graph(dense_graph).run(x), x)["metrics"]
    assert full["SynapticOperations"]["Effective_ACs"] == hwsim_counts(dense_graph, x)[0]
    assert full["ConnectionSparsity"] == 0.0


@pytest.mark.parametrize("build", [self_loop, two_cycle, stacked], ids=["self_loop", "two_cycle", "stacked"])
def test_recurrent_graph_metrics_equal_neurobench_harness(build: Any) -> None:
    graph = build(np.random.default_rng(3))
    x = inputs_for(graph, np.random.default_rng(4), batch=7, steps=12)
    ours = check_graph(graph, x, batch_size=3)
    rec = [s for lay in ours["layers"] for s in lay["synapses"] if s["recurrent"]]
    assert rec and all(s["layer"] == "Linear" and s["Effective_ACs"] > 0 for s in rec)


def test_compiled_rmlp_metrics_equal_neurobench_harness() -> None:
    graph = rmlp()
    ours = check_graph(graph, spikes((8, 16, 64), seed=5), batch_size=5)
    assert [s["name"] for s in ours["layers"][0]["synapses"] if s["recurrent"]] == ["lif1.rec"]


def test_graded_input_counts_macs_per_batch_and_step_as_neurobench() -> None:
    """Graded input (an encoding layer): NeuroBench counts a call as MACs when any value of the batch
    at that step is outside {-1, 0, 1}. Samples 3-6 are binary at odd steps: in batches of 3 those
    calls of the batches (3, 4, 5) and (6,) are ACs, in one batch of 7 sample 0-2's graded values
    make them MACs."""
    graph = self_loop(np.random.default_rng(3), bits=4)
    rng = np.random.default_rng(6)
    x = rng.integers(0, 16, (7, 12, graph.input.size)) * (rng.random((7, 12, graph.input.size)) < 0.3)
    x[3:, 1::2] = x[3:, 1::2] > 0
    ours = check_graph(graph, x, batch_size=3)
    first = ours["layers"][0]["synapses"][0]
    assert first["source"] == "x" and first["Effective_MACs"] > 0 and first["Effective_ACs"] > 0
    r = HwSim.from_graph(graph).run(x)
    assert neurobench_metrics(graph, r, x, batch_size=7)["metrics"] != ours["metrics"]   # batching matters here
    assert_same(neurobench_metrics(graph, r, x, batch_size=7)["metrics"], harness(graph, x, 7))


def test_equivalent_model_is_what_neurobench_recognises() -> None:
    graph = conv_net()
    net = torch_equivalent(graph)
    model = neurobench_model(graph)
    assert [type(m).__name__ for m in model.connection_layers()] == ["IntConv2d", "IntConv2d", "IntConv2d",
                                                                     "IntConv2d", "IntLinear"]
    assert all(isinstance(a["layer"], CubaLIFNeurons) for a in model.activation_layers())
    assert len(model.activation_layers()) == len(graph.populations())
    assert all(p.dtype == torch.float32 for p in net.parameters())
    x = torch.as_tensor(spikes((2, 6, 64)))
    out = net(x)
    assert out.shape == (2, 6, 10) and out.dtype == torch.float32


def test_metrics_refuse_spikes_that_are_not_this_graphs() -> None:
    graph = demo_mlp()
    x = spikes((4, 8, 64))
    r = HwSim.from_graph(graph).run(x)
    wrong = dict(r.spikes)
    wrong["lif2"] = ~wrong["lif2"]
    with pytest.raises(ValueError, match="not what this graph computes"):
        neurobench_metrics(graph, wrong, x)
    with pytest.raises(ValueError, match="missing"):
        neurobench_metrics(graph, HwSim.from_graph(graph).run(x, keep={"lif2"}), x)
    assert neurobench_metrics(graph, wrong, x, membrane_updates=False)["metrics"]["MembraneUpdates"] is None


@pytest.mark.parametrize("build", [demo_mlp, conv_net, rmlp, lambda: two_cycle(np.random.default_rng(3))],
                         ids=["mlp", "conv", "rmlp", "two_cycle"])
def test_report_json_has_the_neurobench_section(build: Any) -> None:
    """The report takes MembraneUpdates from the counting run's traced v (hwsim/counts.py): equal
    to recomputing v from the spikes, on feed-forward, conv and recurrent graphs."""
    from snnc.pipeline import build_report

    graph = build()
    x = spikes((6, 10, graph.input.size), seed=7)
    report, _ = build_report(graph, map_cores(graph, LOIHI), x, None, None, [])
    section = report["neurobench"]
    assert section["metrics"] == neurobench_metrics(graph, HwSim.from_graph(graph).run(x), x)["metrics"]
    # per sample: every neuron at the first step, and more later
    assert section["metrics"]["MembraneUpdates"] > sum(p.neuron.size for p in graph.populations())
    assert set(section) == {"metrics", "counts", "layers", "model", "per_sample", "definitions", "source",
                            "not_computed"}
    assert json.loads(json.dumps(section)) == section


def test_the_docs_snippet_runs_and_agrees() -> None:
    """docs/neurobench.md's harness snippet, run as written on ``graph`` and ``x``."""
    text = DOC.read_text()
    block = re.search(r"<!-- tested by tests/test_neurobench.py -->\s*```python\n(.*?)```", text, re.S)
    assert block, "docs/neurobench.md lost its tested snippet"
    graph = demo_mlp()
    x = spikes((12, 10, 64), seed=8)
    scope: dict[str, Any] = {"graph": graph, "x": x}
    exec(compile(block.group(1), str(DOC), "exec"), scope)
    ours = neurobench_metrics(graph, HwSim.from_graph(graph).run(x), x)["metrics"]
    assert_same(ours, scope["results"], footprint_extra=SNNTORCH_BUFFER_BYTES * 2)
    assert scope["results"]["MembraneUpdates"] == ours["MembraneUpdates"]

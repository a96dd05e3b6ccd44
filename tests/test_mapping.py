"""compiler/mapping.py without Lava: per-core counts against brute force from explicit connectivity
matrices, the partition search, design-rule errors, VGG9 at CIFAR scale, and the resource table."""
from __future__ import annotations

import json
import time
from dataclasses import replace

import numpy as np
import pytest
import torch
from rich.console import Console

from snnc.compiler.ir import Graph, Input, Output, QConv, QCubaLIF, QDense
from snnc.compiler.mapping import RESOURCES, conv_core_use, conv_synapses, map_cores, synapse_words, words_for
from snnc.compiler.targets import LOIHI, Target
from snnc.errors import TargetLimitError
from snnc.hwsim.sim import fan_out
from snnc.report import render, render_mapping


def lif(name: str, shape: tuple[int, ...]) -> QCubaLIF:
    n = int(np.prod(shape))
    return QCubaLIF(name, n, 1024, 128, 100, np.zeros(n, np.int64), shape=shape if len(shape) == 3 else None)


def conv(name: str, c_in: int, c_out: int, hw: tuple[int, int], k: tuple[int, int] | int = 3, stride: int = 1,
         padding: int = 1, dilation: int = 1, groups: int = 1) -> QConv:
    kh, kw = (k, k) if isinstance(k, int) else k
    return QConv(name, np.ones((c_out, c_in // groups, kh, kw), np.int8), (c_in, *hw), stride=stride,
                 padding=padding, dilation=dilation, groups=groups)


def connectivity(c: QConv) -> np.ndarray:
    """(out_size, in_size) synapse counts, by running torch's conv2d on every one-hot input."""
    eye = torch.eye(c.in_size, dtype=torch.float64).reshape(c.in_size, *c.in_shape)
    w = torch.ones(c.weight.shape, dtype=torch.float64)
    y = torch.nn.functional.conv2d(eye, w, stride=c.stride, padding=c.padding, dilation=c.dilation, groups=c.groups)
    return y.reshape(c.in_size, -1).T.round().numpy().astype(np.int64)


def brute_core_use(mats: list[np.ndarray], core_of: np.ndarray, target: Target) -> tuple[np.ndarray, np.ndarray]:
    """Input axons and words per core from explicit matrices: per synapse node, an axon is a source
    neuron with a synapse into the core; its words follow from its synapse count there."""
    cores = int(core_of.max()) + 1
    axons, words = np.zeros(cores, np.int64), np.zeros(cores, np.int64)
    for m in mats:
        for k in range(cores):
            per_axon = m[core_of == k].sum(axis=0)
            axons[k] += int((per_axon > 0).sum())
            words[k] += int(words_for(per_axon[per_axon > 0], target).sum())
    return axons, words


GEOMETRIES = [  # c_in, c_out, (h, w), kernel, stride, padding, dilation, groups
    (3, 4, (7, 6), 3, 1, 1, 1, 1),
    (4, 6, (9, 8), (3, 2), 2, 1, 1, 2),
    (2, 4, (10, 9), 3, 1, 2, 2, 1),
    (6, 6, (8, 8), 4, 2, 1, 1, 6),
    (3, 5, (11, 7), (2, 4), (2, 1), (0, 2), (1, 2), 1),
    (4, 4, (6, 6), 1, 2, 0, 1, 1),
]


@pytest.mark.parametrize("geom", GEOMETRIES)
def test_conv_axons_and_words_match_brute_force(geom: tuple) -> None:
    c_in, c_out, hw, k, s, p, d, g = geom
    c = QConv("c", np.ones((c_out, c_in // g, *((k, k) if isinstance(k, int) else k)), np.int8), (c_in, *hw),
              stride=s, padding=p, dilation=d, groups=g)
    m = connectivity(c)
    assert conv_synapses(c) == int(m.sum()) == int(fan_out(c).sum())
    rng = np.random.default_rng(hash(geom) % 2**32)
    blocks = {tuple(int(rng.integers(1, n + 1)) for n in c.out_shape) for _ in range(6)} | {c.out_shape, (1, 1, 1)}
    for block in blocks:
        axons, words, core_of = conv_core_use(c, block, LOIHI)
        want_axons, want_words = brute_core_use([m], core_of, LOIHI)
        assert axons.tolist() == want_axons.tolist(), block
        assert words.tolist() == want_words.tolist(), block


def test_dense_arithmetic_784_inputs_fit_142_neurons_per_core() -> None:
    assert synapse_words(784, 142, LOIHI) <= 16384 < synapse_words(784, 143, LOIHI)
    assert words_for(64, LOIHI) == 9 and words_for(65, LOIHI) == 10 and words_for(0, LOIHI) == 0
    g = Graph.chain([Input("in", (784,)), QDense("fc1", np.zeros((300, 784), np.int64)), lif("lif1", (300,)),
                     Output("out")])
    m = map_cores(g, LOIHI)
    assert m.layers[0].cores == 3 and m.layers[0].neurons_per_core == 100 and m.chips == 1
    # 100 neurons per core = a block of 64 (9 words) and one of 36 (5 words) per axon
    assert m.layers[0].input_axons_per_core == 784 and m.layers[0].synapse_words_per_core == 784 * (9 + 5)
    g143 = Graph.chain([Input("in", (784,)), QDense("fc1", np.zeros((143, 784), np.int64)), lif("lif1", (143,)),
                        Output("out")])
    assert map_cores(g143, LOIHI).layers[0].cores == 2


SMALL = replace(LOIHI, neurons_per_core=24, input_axons_per_core=120, output_axons_per_core=60,
                synapse_words_per_core=200)


def residual_graph() -> Graph:
    """in -> c1 -> a; a -> c2 (3x3) and a -> sc (1x1 stride 1) both drive b; b -> fc -> out."""
    c1 = conv("c1", 2, 4, (8, 8))
    c2 = conv("c2", 4, 6, (8, 8), k=3, stride=2, padding=1)
    sc = conv("sc", 4, 6, (8, 8), k=1, stride=2, padding=0)
    nodes = [Input("in", (2, 8, 8)), c1, lif("a", c1.out_shape), c2, sc, lif("b", c2.out_shape),
             QDense("fc", np.ones((5, c2.out_size), np.int8)), lif("o", (5,)), Output("out")]
    edges = [("in", "c1"), ("c1", "a"), ("a", "c2"), ("a", "sc"), ("c2", "b"), ("sc", "b"), ("b", "fc"),
             ("fc", "o"), ("o", "out")]
    return Graph.build(nodes, edges)


def test_every_core_within_limits_and_counts_match_brute_force() -> None:
    g = residual_graph()
    m = map_cores(g, SMALL)
    pops = {p.name: p for p in g.populations()}
    assert [lm.name for lm in m.layers] == list(pops)
    for lm in m.layers:
        use = m.per_core[lm.name]
        mats = [connectivity(s) if isinstance(s, QConv) else np.ones(s.weight.shape, np.int64)
                for s, _ in pops[lm.name].inputs]
        axons, words = brute_core_use(mats, use.core_of, SMALL)
        assert use.input_axons.tolist() == axons.tolist() and use.synapse_words.tolist() == words.tolist()
        assert np.bincount(use.core_of).tolist() == use.neurons.tolist()
        assert lm.synapses == sum(int(x.sum()) for x in mats)
        assert lm.fan_in == max(int(sum((x > 0).sum(axis=1)[i] for x in mats)) for i in range(lm.neurons))
        for r, limit in RESOURCES.items():
            assert getattr(use, r).max() <= getattr(SMALL, limit), (lm.name, r)
    assert m.layers[1].cores > 1 and m.layers[1].block is not None   # b is really split into blocks


def test_output_axons_match_brute_force() -> None:
    g = residual_graph()
    m = map_cores(g, SMALL)
    pops = {p.name: p for p in g.populations()}
    for src in ("a", "b"):
        slots = np.zeros(pops[src].neuron.size, np.int64)
        for p in pops.values():
            for syn, s in p.inputs:
                if s != src:
                    continue
                mat = connectivity(syn) if isinstance(syn, QConv) else np.ones(syn.weight.shape, np.int64)
                dest = m.per_core[p.name].core_of
                slots += np.array([np.unique(dest[mat[:, j] > 0]).size for j in range(mat.shape[1])])
        want = np.bincount(m.per_core[src].core_of, weights=slots).astype(np.int64)
        assert m.per_core[src].output_axons.tolist() == want.tolist()
        assert m.layers[list(pops).index(src)].fanout_cores == pytest.approx(slots.mean())
    assert m.per_core["o"].output_axons.tolist() == [0]


def test_output_axon_limit_refines_the_source() -> None:
    # 'a' fits one core on its inputs, but each of its neurons reaches every core of 'b'
    tgt = replace(LOIHI, output_axons_per_core=40)
    g = Graph.chain([Input("in", (8,)), QDense("fa", np.ones((16, 8), np.int8)), lif("a", (16,)),
                     QDense("fb", np.ones((3000, 16), np.int8)), lif("b", (3000,)), Output("out")])
    m = map_cores(g, tgt)
    assert m.layers[1].cores == 3 and m.layers[0].output_axons_per_core <= 40
    assert m.layers[0].cores == 2 and m.layers[0].fanout_cores == 3.0   # 16 neurons x 3 = 48 > 40 on one core


def test_oversized_layers_fail_early_with_one_message_naming_each() -> None:
    big = conv("conv_wide", 600, 200, (5, 5))
    g = Graph.chain([Input("in", (600, 5, 5)), big, lif("lif_wide", big.out_shape),
                     QDense("fc", np.zeros((4, 5000), np.int8)), lif("lif_fc", (4,)), Output("out")])
    with pytest.raises(TargetLimitError) as err:
        map_cores(g, LOIHI)
    msg = str(err.value)
    assert "2 design-rule violations" in msg
    assert "layer 'lif_wide': a neuron's fan-in 5400 exceeds loihi's 4096 input axons per core" in msg
    assert "600 input channels x 3x3 kernel taps" in msg and "fewer input channels" in msg
    assert "layer 'lif_fc': a neuron's fan-in 5000 exceeds loihi's 4096" in msg
    assert "cannot be split across cores" in msg


def test_too_many_chips_says_needed_and_available() -> None:
    c = conv("c", 64, 64, (32, 32))
    g = Graph.chain([Input("in", (64, 32, 32)), c, lif("l", c.out_shape), Output("out")])
    one_chip = replace(LOIHI, max_chips=1, system="one test chip")
    need = map_cores(g, LOIHI).cores
    with pytest.raises(TargetLimitError, match=rf"needs {need} cores = {-(-need // 128)} chips of 128 cores, "
                                               r"but the target system \(one test chip\) has 1 chips \(128 cores\)"):
        map_cores(g, one_chip)


def vgg9_cifar() -> Graph:
    """VGG9 geometry at 3x32x32: 2x2 sum-pools folded into the next conv as stride-2 4x4 kernels."""
    nodes: list = [Input("in", (3, 32, 32))]
    c, h = 3, 32
    for i, (c_out, s) in enumerate([(64, 1), (64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (256, 2)], 1):
        cv = conv(f"conv{i}", c, c_out, (h, h), k=3 if s == 1 else 4, stride=s, padding=1)
        nodes += [cv, lif(f"lif{i}", cv.out_shape)]
        c, h = c_out, cv.out_shape[1]
    nodes += [QDense("fc1", np.zeros((1024, c * h * h), np.int8)), lif("lif8", (1024,)),
              QDense("fc2", np.zeros((10, 1024), np.int8)), lif("lif9", (10,)), Output("out")]
    return Graph.chain(nodes)


def test_vgg9_at_cifar_maps_fast_and_fits_the_target_system() -> None:
    g = vgg9_cifar()
    t0 = time.perf_counter()
    m = map_cores(g, LOIHI)
    assert time.perf_counter() - t0 < 10
    assert m.chips <= LOIHI.max_chips and m.cores == sum(lm.cores for lm in m.layers)
    assert [lm.fan_in for lm in m.layers] == [27, 576, 1024, 1152, 2048, 2304, 4096, 4096, 1024]
    assert m.layers[6].block is not None and m.layers[7].block is None and m.layers[7].neurons_per_core == 30
    for lm in m.layers:
        assert lm.neurons_per_core <= 1024 and lm.input_axons_per_core <= 4096
        assert lm.output_axons_per_core <= 4096 and lm.synapse_words_per_core <= 16384


def test_to_json_is_serialisable_and_agrees_with_the_limits() -> None:
    m = map_cores(residual_graph(), SMALL)
    doc = json.loads(json.dumps(m.to_json()))
    assert doc["cores"] == m.cores and doc["chips"] == m.chips == 1
    assert doc["target"]["limits"]["neurons_per_core"] == 24 and "neurons_per_core" in doc["target"]["sources"]
    for layer, lm in zip(doc["layers"], m.layers):
        assert layer["name"] == lm.name and layer["cores"] == lm.cores
        assert layer["kind"] == ("dense" if lm.block is None else "conv")
        for r, limit in RESOURCES.items():
            u = layer["use"][r]
            assert u["limit"] == getattr(SMALL, limit) and u["max"] <= u["limit"] and 0 <= u["mean"] <= u["max"]
            assert u["max_fraction"] == pytest.approx(u["max"] / u["limit"]) and u["max_fraction"] <= 1
            assert u["max"] == int(getattr(m.per_core[lm.name], r).max())
        assert layer["use"]["neurons"]["max"] == lm.neurons_per_core
        assert layer["use"]["synapse_words"]["max"] == lm.synapse_words_per_core
    totals = doc["totals"]
    assert totals["cores"] == sum(x["cores"] for x in doc["layers"])
    assert totals["use"]["neurons"]["total"] == totals["neurons"] == sum(lm.neurons for lm in m.layers)


def test_render_prints_the_resource_table() -> None:
    m = map_cores(residual_graph(), SMALL)
    mapping = m.to_json()
    con = Console(record=True, width=200)
    render_mapping(mapping, con)
    text = con.export_text()
    assert "synaptic words/core" in text and "input axons/core" in text and "block (c,h,w)" in text
    b = mapping["layers"][1]
    assert f"{b['use']['synapse_words']['max']} ({b['use']['synapse_words']['max_fraction']:.0%})" in text
    assert "x".join(map(str, b["block"])) in text and "dense" in text

    names = [lm.name for lm in m.layers]
    zero = {"samples": 1, "timesteps": 2, "synops": 0, "neuron_updates": 0, "spikes": 0,
            "layers": [{"name": n, "neurons": 1, "synapses": 1, "synops": 0, "neuron_updates": 0, "spikes": 0}
                       for n in names]}
    report = {"activity": zero, "mapping": mapping, "latency": {"per_step_s": 1e-6, "per_inference_s": 2e-6,
                                                                "timesteps": 2},
              "energy": {"layers": [{"name": n, "total_j": 0.0} for n in names], "total_j": 0.0, "model": "m",
                         "source": "s", "caveats": []},
              "verification": {"samples": 0}}
    con = Console(record=True, width=200)
    render(report, con)
    text = con.export_text()
    assert "Mapping onto loihi" in text and "Per inference" in text and "synaptic words/core" in text

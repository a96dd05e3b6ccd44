"""Fixed-point recurrent graphs for the tests of every engine and format, and a naive reference.

``naive_run`` is written independently of the engines: one loop over time, every population
(in any order) reads every source's spikes of the previous step, one neuron at a time in Python
integers with Lava's arithmetic (SP/lava/proc/lif/models.py:138-216, SP/lava/proc/dense/models.py
``run_spk``: the Dense sends the previous step's sum, so every synapse delays one step).
"""
from __future__ import annotations

import numpy as np

from snnc.compiler.ir import Graph, Input, Output, QCubaLIF, QDense

STATE_MAX = 2**23


def _pop(name: str, n: int, rng: np.random.Generator, *, spiking_bias: bool = False) -> QCubaLIF:
    bias = rng.integers(-20, 60, n) if spiking_bias else np.zeros(n, np.int64)
    return QCubaLIF(name, n, du=int(rng.integers(200, 2000)), dv=int(rng.integers(200, 2000)),
                    vth=int(rng.integers(40, 200)), bias_mant=bias.astype(np.int64), bias_exp=6)


def _dense(name: str, out: int, inp: int, rng: np.random.Generator, lo: int = -120, hi: int = 200,
           exp: int = 0) -> QDense:
    w = 2 * rng.integers(lo // 2, hi // 2, (out, inp)).astype(np.int64)   # Lava's mixed-sign step: even weights
    w[rng.random(w.shape) < 0.3] = 0
    return QDense(name, w, weight_exp=exp)


def self_loop(rng: np.random.Generator, n_in: int = 12, hidden: int = 10, n_out: int = 4, bits: int = 0) -> Graph:
    """input -> fc -> h (with h -> rec -> h) -> out_fc -> out."""
    nodes = [Input("x", (n_in,), bits), _dense("fc", hidden, n_in, rng, exp=-bits if bits else 0),
             _pop("h", hidden, rng, spiking_bias=True), _dense("rec", hidden, hidden, rng),
             _dense("out_fc", n_out, hidden, rng), _pop("o", n_out, rng), Output("out")]
    edges = [("x", "fc"), ("fc", "h"), ("h", "rec"), ("rec", "h"), ("h", "out_fc"), ("out_fc", "o"), ("o", "out")]
    return Graph.build(nodes, edges, {"source": "tests/recurrent_graphs.py self_loop"})


def two_cycle(rng: np.random.Generator, n_in: int = 10) -> Graph:
    """input -> a -> b -> a (a 2-population cycle), b also has a self-loop; b -> o."""
    nodes = [Input("x", (n_in,)), _dense("fa", 8, n_in, rng), _pop("a", 8, rng), _dense("ab", 6, 8, rng),
             _pop("b", 6, rng, spiking_bias=True), _dense("ba", 8, 6, rng), _dense("bb", 6, 6, rng),
             _dense("bo", 3, 6, rng), _pop("o", 3, rng), Output("out")]
    edges = [("x", "fa"), ("fa", "a"), ("a", "ab"), ("ab", "b"), ("b", "ba"), ("ba", "a"), ("b", "bb"),
             ("bb", "b"), ("b", "bo"), ("bo", "o"), ("o", "out")]
    return Graph.build(nodes, edges, {"source": "tests/recurrent_graphs.py two_cycle"})


def stacked(rng: np.random.Generator, n_in: int = 16) -> Graph:
    """Two recurrent layers in a row, then a readout: the rmlp shape."""
    nodes = [Input("x", (n_in,)), _dense("f1", 12, n_in, rng), _pop("h1", 12, rng), _dense("r1", 12, 12, rng),
             _dense("f2", 9, 12, rng), _pop("h2", 9, rng), _dense("r2", 9, 9, rng, exp=1),
             _dense("f3", 5, 9, rng), _pop("o", 5, rng), Output("out")]
    edges = [("x", "f1"), ("f1", "h1"), ("h1", "r1"), ("r1", "h1"), ("h1", "f2"), ("f2", "h2"), ("h2", "r2"),
             ("r2", "h2"), ("h2", "f3"), ("f3", "o"), ("o", "out")]
    return Graph.build(nodes, edges, {"source": "tests/recurrent_graphs.py stacked"})


RECURRENT_GRAPHS = {"self_loop": self_loop, "two_cycle": two_cycle, "stacked": stacked}


def inputs_for(graph: Graph, rng: np.random.Generator, batch: int = 3, steps: int = 12) -> np.ndarray:
    inp = graph.input
    if inp.bits:
        return rng.integers(0, 2**inp.bits, (batch, steps, inp.size))
    return rng.random((batch, steps, inp.size)) < 0.4


def _decay(x: int, d: int) -> int:
    p = x * (4096 - d)
    return (abs(p) >> 12) * (1 if p >= 0 else -1)


def naive_run(graph: Graph, x: np.ndarray) -> dict[str, np.ndarray]:
    """Spikes (batch, T, n) bool per population, one neuron at a time (slow; small graphs only)."""
    x = np.asarray(x).astype(np.int64)
    batch, steps, _ = x.shape
    pops = graph.populations()
    out = {p.name: np.zeros((batch, steps, p.neuron.size), bool) for p in pops}
    for b in range(batch):
        u = {p.name: [0] * p.neuron.size for p in pops}
        v = {p.name: [0] * p.neuron.size for p in pops}
        for t in range(steps):
            prev = {graph.input.name: x[b, t - 1] if t else np.zeros(x.shape[2], np.int64)}
            prev.update({p.name: out[p.name][b, t - 1].astype(np.int64) if t else
                         np.zeros(p.neuron.size, np.int64) for p in pops})
            for p in reversed(pops):          # any order: every read is of step t - 1
                neu = p.neuron
                a = np.zeros(neu.size, np.int64)
                for syn, src in p.inputs:
                    w = syn.weight.astype(np.int64)
                    s = w @ prev[src]
                    a += s << syn.weight_exp if syn.weight_exp >= 0 else s >> -syn.weight_exp
                bias = neu.bias_mant.astype(np.int64) << neu.bias_exp
                for i in range(neu.size):
                    uu = _decay(u[p.name][i], neu.du) + (int(a[i]) << 6)
                    uu = uu - 2**24 if uu > STATE_MAX else (uu + 2**24 if uu <= -STATE_MAX else uu)
                    vv = _decay(v[p.name][i], neu.dv) + uu + int(bias[i])
                    vv = max(-(STATE_MAX - 1), min(STATE_MAX - 1, vv))
                    spike = vv > neu.vth << 6
                    out[p.name][b, t, i] = spike
                    u[p.name][i], v[p.name][i] = uu, 0 if spike else vv
    return out

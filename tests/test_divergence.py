"""Silicon divergence (snnc.hwsim.divergence): every regime where Lava's fixed-point models and the
silicon-tested Loihi 1 semantics (nengo-loihi's emulator) compute different values is found at exactly
the (sample, timestep, neuron) the integer arithmetic says, not one unit below its boundary, and
``--strict`` refuses a network that enters one.

The expected events come from :func:`reference`: both semantics in Python integers, one neuron and
step at a time (Lava: SP/lava/proc/dense/models.py:96-107, SP/lava/proc/lif/models.py:138-216;
silicon: SP/nengo_loihi/emulator/interface.py:309-334, builder/discretize.py:50-91, 473-490), events
where their values differ."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from recurrent_graphs import RECURRENT_GRAPHS, inputs_for
from snnc.compiler.graph_file import write_graph
from snnc.compiler.ir import Graph, Input, Output, QConv, QCubaLIF, QDense
from snnc.compiler.numerics import numeric_findings
from snnc.compiler.targets import get_target
from snnc.errors import StrictModeError
from snnc.hwsim.divergence import REGIMES, observe_silicon, silicon_summary
from snnc.hwsim.headroom import observe
from snnc.hwsim.sim import HwSim
from snnc.models.quant import LOIHI_FIXED_POINT as FP
from snnc.pipeline import compile_model

TOP = 2**23
VTH = FP.vth_max           # v > (2**17 - 1) << 6 = 2**23 - 64: spikes only near the top
COUNTED = ("q0_wrap", "u_wrap", "u_bias_wrap", "weight_exp", "conv_wrap")


# ------------------------------------------------------------------ both semantics, in Python integers

def _twos(x: int, bits: int) -> int:
    half = 2 ** (bits - 1)
    return (x + half) % (2 * half) - half


def _shift(x: int, exp: int) -> int:
    return x << exp if exp >= 0 else x >> -exp


def _trunc(x: int, keep: int) -> int:
    p = x * keep
    return (1 if p >= 0 else -1) * (abs(p) >> 12)


def _lava_weight(w: int) -> int:
    """Lava's mixed-sign 8-bit Dense: clip to [-256, 255], floor to even (weightutils.py:204-295)."""
    return (min(max(w, -256), 255) // 2) * 2


def reference(w: np.ndarray, exp: int, du: int, dv: int, vth: int, bias: np.ndarray, spikes: np.ndarray
              ) -> dict[str, set[tuple[int, int, int]]]:
    """(sample, 1-based timestep, neuron) per regime for one Dense(weight_exp) -> LIF population on binary
    ``spikes``, run on Lava's values; ``bias`` is the effective bias (bias_mant << bias_exp)."""
    batch, steps, n_in = spikes.shape
    out: dict[str, set[tuple[int, int, int]]] = {r: set() for r in COUNTED}
    for b in range(batch):
        for i in range(w.shape[0]):
            wl = [_lava_weight(int(x)) for x in w[i]]
            u = v = 0
            for t in range(steps):
                act = [j for j in range(n_in) if t > 0 and spikes[b, t - 1, j]]
                a_lava = _shift(sum(wl[j] for j in act), exp)          # Lava: the exponent shifts the sum
                a_hw = sum(_shift(wl[j], exp) for j in act)             # silicon: each synapse
                if _twos(a_lava << 6, 32) != _twos(a_hw << 6, 22):      # what u receives differs
                    if not -(2**21) <= a_hw << 6 < 2**21:
                        out["q0_wrap"].add((b, t + 1, i))
                    if a_hw != a_lava:
                        out["weight_exp"].add((b, t + 1, i))
                exact = _trunc(u, 4096 - du) + (a_lava << 6)
                lava_u = _twos(_trunc(u, 4096 - du) + _twos(a_lava << 6, 32), 32)
                lava_u = lava_u - 2 * TOP if lava_u > TOP else lava_u      # Lava's single fold
                lava_u = lava_u + 2 * TOP if lava_u <= -TOP else lava_u
                if lava_u != _twos(exact, 24):                            # silicon: two's complement
                    out["u_wrap"].add((b, t + 1, i))
                if -TOP <= lava_u < TOP and not -TOP <= lava_u + int(bias[i]) < TOP:
                    out["u_bias_wrap"].add((b, t + 1, i))                 # silicon wraps u + bias
                v = max(-(TOP - 1), min(TOP - 1, _twos(_trunc(v, 4096 - dv) + lava_u + int(bias[i]), 32)))
                v = 0 if v > vth << 6 else v
                u = lava_u
    return out


def _first(events: set[tuple[int, int, int]]) -> dict[str, int] | None:
    if not events:
        return None
    b, t, i = min(events, key=lambda e: (e[1], e[0], e[2]))
    return {"sample": b, "timestep": t, "neuron": i}


def _layer(w: np.ndarray, exp: int = 0, du: int = 4096, dv: int = 4096, vth: int = VTH,
           bias_mant: np.ndarray | int = 0, bias_exp: int = 6, bits: int = 0) -> Graph:
    n_out, n_in = w.shape
    bias = np.broadcast_to(np.asarray(bias_mant, dtype=np.int64), (n_out,)).copy()
    return Graph.chain([Input("input", (n_in,), bits), QDense("fc1", np.asarray(w, dtype=np.int64), exp),
                        QCubaLIF("lif1", n_out, du, dv, vth, bias, bias_exp, FP), Output("output")])


def _check(graph: Graph, spikes: np.ndarray) -> dict:
    return observe_silicon(graph, spikes)["lif1"].to_json()


def _agrees_with_reference(got: dict, want: dict[str, set]) -> None:
    assert got["events"] == {r: len(want[r]) for r in COUNTED}
    assert got["first_by_regime"] == {r: _first(want[r]) for r in COUNTED if want[r]}


# ------------------------------------------------------------------ (1) the 22-bit input accumulator

def _q0_volley() -> tuple[np.ndarray, np.ndarray]:
    """Weights onto 4 neurons summing to 32766, 32768, -32768 and -32770 for one volley of all 130
    inputs; the volley at input step 4 in sample 0 and step 2 in sample 1."""
    w = np.zeros((4, 130), dtype=np.int64)
    w[0, :129] = 254
    w[1, :129], w[1, 129] = 254, 2
    w[2, :128] = -256
    w[3, :128], w[3, 128] = -256, -2
    x = np.zeros((2, 6, 130), dtype=bool)
    x[0, 4], x[1, 2] = True, True
    return w, x


def test_q0_wraps_exactly_beyond_22_bits() -> None:
    """a << 6 must stay in [-2**21, 2**21 - 1]: a in [-32768, 32767]. Neuron 0 gets 32766 (129 x 254),
    neuron 1 32768 (one more weight of 2), neuron 2 -32768 (128 x -256: the bound itself), neuron 3
    -32770. Sample 0 sends the volley at input step 4, sample 1 at step 2 (arriving one step later:
    timestep 4, 1-based), so the first event is sample 1, timestep 4, neuron 1."""
    w, x = _q0_volley()
    got = _check(_layer(w), x)
    assert got["events"]["q0_wrap"] == 4 and got["verdict"] == "diverges" and got["regimes"] == ["q0_wrap"]
    assert got["first"] == {"sample": 1, "timestep": 4, "neuron": 1, "regime": "q0_wrap"}
    assert got["peak_input"] == 32770
    _agrees_with_reference(got, reference(w, 0, 4096, 4096, VTH, np.zeros(4), x))


def test_q0_at_the_bounds_agrees() -> None:
    """32766 and -32768 are inside the accumulator: no event, the verdict says what was checked."""
    w = np.zeros((2, 129), dtype=np.int64)
    w[0] = 254
    w[1, :128] = -256
    got = _check(_layer(w), np.ones((3, 5, 129), dtype=bool))
    assert got["verdict"] == "agrees" and got["event_total"] == 0 and got["first"] is None
    assert got["peak_input"] == 32768 and got["input_range"] == [-32768, 32767]
    assert got["checked"].startswith("3 samples x 5 timesteps x 2 neurons: q0 22-bit wrap")


# ------------------------------------------------------------------ (2) u: Lava's fold vs two's complement

def test_u_wrap_diverges_exactly_at_the_bounds() -> None:
    """No decay (du = 0), v without memory (dv = 4096). Group A (128 lines) spikes at input steps 0..6,
    group B (128 lines) at step 7 only; u after timestep 9 is 64 x (7 a_A + a_B):
    neuron 0: 128 x 128 per step -> exactly 2**23: Lava keeps +2**23, silicon wraps to -2**23 (event);
    neuron 1: the last volley 2 short -> 2**23 - 128: both hold it (no event);
    neuron 2: -2**23: Lava folds it to +2**23, silicon holds it (event);
    neuron 3: -2**23 + 128: no event;
    neuron 4: 2**23 + 128: both wrap to -2**23 + 128 (no divergence, though u wrapped)."""
    w = np.zeros((5, 256), dtype=np.int64)
    w[0] = 128
    w[1], w[1, 255] = 128, 126
    w[2] = -128
    w[3], w[3, 255] = -128, -126
    w[4], w[4, 255] = 128, 130          # 130 is even and < 254: a_B = 16386
    x = np.zeros((1, 9, 256), dtype=bool)
    x[0, :7, :128] = True
    x[0, 7, 128:] = True
    graph = _layer(w, du=0)
    state, silicon = observe(graph, x)
    got = silicon["lif1"].to_json()
    assert got["events"] == {"q0_wrap": 0, "u_wrap": 2, "u_bias_wrap": 0, "weight_exp": 0, "conv_wrap": 0}
    assert got["first"] == {"sample": 0, "timestep": 9, "neuron": 0, "regime": "u_wrap"}
    _agrees_with_reference(got, reference(w, 0, 0, 4096, VTH, np.zeros(5), x))
    # the state pass counts neurons 2 and 4 (Lava changed their u); neuron 0's +2**23 Lava holds as it is
    assert state["lif1"].u_wrapped == 2


# ------------------------------------------------------------------ (3) u + bias

def test_u_plus_bias_wraps_exactly_beyond_24_bits() -> None:
    """Eight volleys of 128 x 128 and one of -64 (or -62) on a last line, no decay: u = 2**23 - 4096 with
    bias 4095 (bias_exp 0) gives u + bias = 2**23 - 1, inside (neuron 0); u = 2**23 - 3968 with bias 3968
    gives 2**23 exactly (neuron 1: silicon wraps it, Lava does not); on the negative side -2**23 is
    inside (neuron 2), -2**23 - 1 is not (neuron 3). u is constant after the last volley (timestep 9),
    so every later step counts too."""
    w = np.zeros((4, 257), dtype=np.int64)
    w[:, 256] = [-64, -62, 64, 62]      # the last input line: one volley, fine-tuning u (-64 x 64 = -4096)
    w[0, :128] = w[1, :128] = 128
    w[2, :128] = w[3, :128] = -128
    bias = np.array([4095, 3968, -4096, -3969])
    x = np.zeros((1, 12, 257), dtype=bool)
    x[0, :8, :128] = True               # u = 8 x 16384 x 64 = 2**23 ... after timestep 9
    x[0, 0, 256] = True                 # ... less 64 x 64 (or 62 x 64) from timestep 2
    graph = _layer(w, du=0, bias_mant=bias, bias_exp=0)
    got = _check(graph, x)
    want = reference(w, 0, 0, 4096, VTH, bias, x)
    assert want["u_bias_wrap"] == {(0, t, i) for t in (9, 10, 11, 12) for i in (1, 3)}
    _agrees_with_reference(got, want)
    assert got["first"] == {"sample": 0, "timestep": 9, "neuron": 1, "regime": "u_bias_wrap"}
    assert got["events"]["u_wrap"] == 0


# ------------------------------------------------------------------ (5) weight exponent

def test_weight_exponent_rounds_per_synapse_on_silicon() -> None:
    """weight_exp = -2: Lava computes floor(sum W / 4), silicon sum floor(W / 4). Weights 6 (6 mod 4 =
    2): one active -> both 1 (no event); two active -> Lava floor(12 / 4) = 3, silicon 1 + 1 = 2."""
    w = np.array([[6, 0], [6, 6], [4, 4]], dtype=np.int64)
    x = np.zeros((2, 4, 2), dtype=bool)
    x[0, 2] = True                       # sample 0: both lines at input step 2 -> timestep 4
    x[1, 1, 0] = True                    # sample 1: one line -> no event for any neuron
    got = _check(_layer(w, exp=-2), x)
    assert got["events"]["weight_exp"] == 1 and got["regimes"] == ["weight_exp"]
    assert got["first"] == {"sample": 0, "timestep": 4, "neuron": 1, "regime": "weight_exp"}
    _agrees_with_reference(got, reference(w, -2, 4096, 4096, VTH, np.zeros(3), x))


def test_weight_exponent_rounds_per_delay_group_in_lava() -> None:
    """With synaptic delays Lava floors each delay group's sum (PyDelayDenseModelBitAcc), silicon each
    synapse. Weights 6, 6 at weight_exp -2: two spikes arriving together in one delay group give Lava
    floor(12 / 4) = 3 against silicon's 2 (an event); the same arrival split over delays 0 and 2 gives
    1 + 1 on both (no event)."""
    w = np.array([[6, 6]], dtype=np.int64)
    same = np.zeros((1, 6, 2), dtype=bool)
    same[0, 1] = True                       # both lines at input step 1, both with delay 2: arrive at 1+1+2
    split = np.zeros((1, 6, 2), dtype=bool)
    split[0, 3, 0] = split[0, 1, 1] = True  # line 0 (delay 0) at step 3, line 1 (delay 2) at step 1: both at 4
    g_same = Graph.chain([Input("input", (2,)), QDense("fc1", w, -2, 2),
                          QCubaLIF("lif1", 1, 4096, 4096, VTH, np.zeros(1, np.int64), 6, FP), Output("output")])
    g_split = Graph.chain([Input("input", (2,)), QDense("fc1", w, -2, np.array([[0, 2]])),
                           QCubaLIF("lif1", 1, 4096, 4096, VTH, np.zeros(1, np.int64), 6, FP), Output("output")])
    got = _check(g_same, same)
    assert got["events"]["weight_exp"] == 1
    assert got["first"] == {"sample": 0, "timestep": 5, "neuron": 0, "regime": "weight_exp"}
    assert _check(g_split, split)["events"]["weight_exp"] == 0


def test_weight_exponent_minus_one_with_even_weights_agrees() -> None:
    """At weight_exp = -1 even weights shift exactly on both; Lava floors odd graph weights to even
    first (every engine and the chip use those), so an odd weight changes nothing either."""
    rng = np.random.default_rng(0)
    w = rng.integers(-256, 255, (6, 40))            # odd ones included
    x = rng.random((2, 6, 40)) < 0.7
    got = _check(_layer(w, exp=-1), x)
    assert got["events"]["weight_exp"] == 0 and got["structural"] == []
    assert "per-synapse weight exponent of fc1 (weight_exp -1)" in got["checked"]


def test_q0_wrap_under_a_negative_exponent_is_not_a_rounding_event() -> None:
    """weight_exp = -2 with 600 weights of 252 (multiples of 4) and one of 6: silicon's accumulator
    gets 600 x 63 = 37800 > 32767 (q0 wraps), but the roundings agree (one remainder of 2 < 4): q0 only,
    computed from the whole trains (a synapse with a remainder exists)."""
    w = np.full((1, 601), 252, dtype=np.int64)
    w[0, 600] = 6
    x = np.ones((1, 3, 601), dtype=bool)
    got = _check(_layer(w, exp=-2), x)
    assert got["events"] == {"q0_wrap": 2, "u_wrap": 0, "u_bias_wrap": 0, "weight_exp": 0, "conv_wrap": 0}
    assert got["peak_input"] == 37801
    _agrees_with_reference(got, reference(w, -2, 4096, 4096, VTH, np.zeros(1), x))


def test_weight_exponent_minus_three_boundary() -> None:
    """weight_exp = -3: remainders W mod 8 of the active weights must sum to 8 for the roundings to
    differ: 6 + 2 = 8 (event) but 6 + 0 and 4 + 2 (no event)."""
    w = np.array([[6, 2], [6, 8], [4, 2]], dtype=np.int64)
    x = np.ones((1, 3, 2), dtype=bool)
    got = _check(_layer(w, exp=-3), x)
    want = reference(w, -3, 4096, 4096, VTH, np.zeros(3), x)
    assert want["weight_exp"] == {(0, 2, 0), (0, 3, 0)}
    _agrees_with_reference(got, want)


# ------------------------------------------------------------------ random layers against the reference

@settings(max_examples=25, deadline=None, derandomize=True)
@given(seed=st.integers(0, 2**31), n_in=st.integers(1, 300), exp=st.integers(-3, 1),
       du=st.sampled_from([0, 1, 300, 4096]), dv=st.sampled_from([0, 100, 4096]),
       bias=st.integers(FP.bias_mant_min, FP.bias_mant_max), rate=st.floats(0.1, 1.0),
       sign=st.sampled_from([-1, 0, 1]))
def test_random_layers_equal_the_reference(seed: int, n_in: int, exp: int, du: int, dv: int, bias: int,
                                           rate: float, sign: int) -> None:
    """Counts and first events of every regime equal both semantics run in Python integers, on random
    single layers that reach the accumulator's and u's bounds (large same-sign fan-ins, no decay)."""
    rng = np.random.default_rng(seed)
    grid = np.arange(-256, 255)
    w = rng.choice(grid if sign == 0 else grid[grid * sign > 0], size=(3, n_in))
    x = rng.random((2, 8, n_in)) < rate
    got = _check(_layer(w, exp=exp, du=du, dv=dv, bias_mant=bias, bias_exp=6), x)
    _agrees_with_reference(got, reference(w, exp, du, dv, VTH, np.full(3, bias << 6), x))


# ------------------------------------------------------------------ (6) Conv and its weights

def _conv_layer(w: np.ndarray) -> Graph:
    c_out, c_in = w.shape[:2]
    return Graph.chain([Input("input", (c_in, 1, 1)), QConv("c1", w, (c_in, 1, 1)),
                        QCubaLIF("lif1", c_out, 4096, 4096, VTH, np.zeros(c_out, np.int64), shape=(c_out, 1, 1)),
                        Output("output")])


def test_conv_output_wrap_diverges_exactly_beyond_24_bits() -> None:
    """1x1 convolution over 33027 channels: channel 0 sums 33026 x 254 + 4 = 2**23 (Lava wraps it to
    -2**23 before the << 6, silicon accumulates it in q0), channel 1 sums 2**23 - 2 (Lava's wrap is the
    identity). Both leave silicon's 22-bit accumulator (q0_wrap), only channel 0 Lava's 24 bits."""
    n = 33027
    w = np.full((2, n, 1, 1), 254, dtype=np.int64)
    w[0, -1], w[1, -1] = 4, 2
    x = np.zeros((1, 4, n), dtype=bool)
    x[0, 1] = True
    got = _check(_conv_layer(w), x)
    assert got["events"]["conv_wrap"] == 1 and got["events"]["q0_wrap"] == 2
    assert got["first_by_regime"]["conv_wrap"] == {"sample": 0, "timestep": 3, "neuron": 0}
    assert got["peak_input"] == 2**23 and got["structural"] == []


@pytest.mark.parametrize("kernel, bad", [([-256, 254, 0, 2], 0), ([-3, 254, 0, 2], 1), ([0, 255, 7, 1], 0),
                                         ([0, -255, -7], 0), ([256, -2, 3], 2), ([-256, -1], 1)])
def test_conv_weights_the_synapses_cannot_hold_are_structural(kernel: list[int], bad: int) -> None:
    """Lava's Conv runs its integers raw; Loihi's 8-bit synapses hold even [-256, 254] in a mixed-sign
    kernel, [0, 255] or [-255, 0] in a same-sign one. Structural: flagged with no input at all."""
    w = np.array(kernel, dtype=np.int64).reshape(1, -1, 1, 1)
    got = _check(_conv_layer(w), np.zeros((1, 3, w.shape[1]), dtype=bool))
    assert [s["count"] for s in got["structural"]] == ([bad] if bad else [])
    assert got["verdict"] == ("diverges" if bad else "agrees")
    assert ("conv_weights" in got["regimes"]) == bool(bad) and got["event_total"] == 0


# ------------------------------------------------------------------ recurrence and graded input

def test_recurrent_weight_exponent_is_found_on_the_loop() -> None:
    """A self-loop with weight_exp = -2 and weights 6: the per-synapse rounding differs wherever two
    or more of the population's spikes of the previous step meet one neuron; computed from hwsim's
    spikes (Lava's run) independently of the check."""
    rng = np.random.default_rng(3)
    n = 6
    rec = np.full((n, n), 6, dtype=np.int64)
    nodes = [Input("x", (8,)), QDense("fc", np.full((n, 8), 120, dtype=np.int64)),
             QCubaLIF("h", n, 3000, 3000, 100, np.zeros(n, np.int64)), QDense("rec", rec, -2), Output("out")]
    graph = Graph.build(nodes, [("x", "fc"), ("fc", "h"), ("h", "rec"), ("rec", "h"), ("h", "out")])
    x = rng.random((2, 10, 8)) < 0.5
    spikes = HwSim.from_graph(graph).run(x, engine="torch").spikes["h"]
    active = np.zeros_like(spikes, dtype=np.int64)
    active[:, 1:] = spikes[:, :-1].sum(axis=2, keepdims=True)    # spikes of h at t-1 reaching each neuron
    want = {(b, t + 1, i) for b, t, i in zip(*np.nonzero(active * 2 >= 4))}   # sum of remainders 2 >= 4
    got = observe_silicon(graph, x)["h"].to_json()
    assert want and got["events"]["weight_exp"] == len(want)
    assert got["first_by_regime"]["weight_exp"] == _first(want)


@pytest.mark.parametrize("name", sorted(RECURRENT_GRAPHS))
def test_recurrent_graphs_are_checked_and_agree(name: str) -> None:
    """The tests' recurrent graphs (moderate weights): every population checked, nothing flagged; the
    self-loop graph's graded input is named as unchecked only where it has a negative exponent."""
    rng = np.random.default_rng(2)
    graph = RECURRENT_GRAPHS[name](rng, **({"bits": 8} if name == "self_loop" else {}))
    checks = observe_silicon(graph, inputs_for(graph, rng))
    assert set(checks) == {p.name for p in graph.populations()}
    assert all(c.verdict == "agrees" and c.peak_input > 0 for c in checks.values())
    unchecked = {n: c.unchecked for n, c in checks.items() if c.unchecked}
    assert list(unchecked) == (["h"] if name == "self_loop" else [])


def test_graded_input_says_what_it_did_not_check() -> None:
    """Loihi 1 has binary spikes only: a graded input's per-synapse exponent has no silicon-tested
    semantics; the verdict names it instead of counting it."""
    w = np.full((2, 4), 6, dtype=np.int64)
    x = np.full((1, 4, 4), 255, dtype=np.int64)
    got = _check(_layer(w, exp=-8, bits=8), x)
    assert got["events"]["weight_exp"] == 0
    assert len(got["unchecked"]) == 1 and "fc1: graded input" in got["unchecked"][0]


# ------------------------------------------------------------------ findings, report and --strict

def test_finding_names_layer_regime_counts_and_first_event() -> None:
    w = np.zeros((2, 130), dtype=np.int64)
    w[1] = 254
    x = np.ones((3, 4, 130), dtype=bool)
    state, silicon = observe(_layer(w), x)
    sil = {k: c.to_json() for k, c in silicon.items()}
    found = numeric_findings({}, {k: s.to_json() for k, s in state.items()}, None, get_target("loihi"), sil)
    assert [f.rule for f in found] == ["silicon_divergence"] and found[0].numerical and found[0].node == "lif1"
    msg = found[0].message
    assert msg.startswith("layer 'lif1': Lava's fixed-point model")
    assert "on the 3 observed input samples (4 timesteps), 9 (sample, timestep, neuron) events" in msg
    assert "peak |a| 33020 weight units, q0 holds -32768..32767" in msg
    assert "the first at sample 0, timestep 2, neuron 1 (q0_wrap)" in msg and "What to do: q0_wrap: lower" in msg
    summary = silicon_summary(silicon)
    assert summary["verdict"] == "diverges" and summary["layers_diverging"] == ["lif1"]
    assert [r["id"] for r in summary["regimes"]] == [r.id for r in REGIMES]
    assert all(r["lava"] and r["hardware"] and r["evidence"] for r in summary["regimes"])


def test_state_overflow_and_divergence_name_each_other() -> None:
    """u wraps by 128 past 2**23 (both semantics wrap alike: state_overflow only, saying silicon agrees);
    a q0 wrap in another layer makes both findings there, each naming the other."""
    w = np.zeros((1, 256), dtype=np.int64)
    w[0], w[0, 255] = 128, 130
    x = np.zeros((1, 9, 256), dtype=bool)
    x[0, :7, :128] = True
    x[0, 7, 128:] = True
    state, silicon = observe(_layer(w, du=0), x)
    found = numeric_findings({}, {k: s.to_json() for k, s in state.items()}, None, get_target("loihi"),
                             {k: c.to_json() for k, c in silicon.items()})
    assert [f.rule for f in found] == ["state_overflow"]
    assert "Silicon would compute the same at these points" in found[0].message
    w2 = np.full((1, 3000), 254, dtype=np.int64)    # q0 wraps and u leaves 24 bits in the first step
    state, silicon = observe(_layer(w2), np.ones((1, 3, 3000), dtype=bool))
    found = numeric_findings({}, {k: s.to_json() for k, s in state.items()}, None, get_target("loihi"),
                             {k: c.to_json() for k, c in silicon.items()})
    assert [f.rule for f in found] == ["state_overflow", "silicon_divergence"]
    assert "this layer's silicon_divergence finding" in found[0].message
    assert "This layer's state_overflow finding is the other question" in found[1].message


def test_strict_refuses_a_network_that_diverges_on_silicon(tmp_path: Path) -> None:
    """A fixed-point graph whose only problem is silicon's 22-bit accumulator: 1000 inputs of 254 at the
    random report inputs' rate (0.2, snnc/inputs.py) sum to ~50800 > 32767 per step, but u and v stay
    inside their registers: --strict refuses it naming the layer and regime and writes nothing; without
    --strict the report carries the verdicts."""
    w = np.full((3, 1000), 254, dtype=np.int64)
    path = tmp_path / "graph.h5"
    write_graph(_layer(w), path)
    out = tmp_path / "out"
    with pytest.raises(StrictModeError, match=r"\[silicon_divergence\] layer 'lif1': .*q0 wraps at 22 bits") as err:
        compile_model(path, out=out, report_samples=4, strict=True)
    assert "[state_overflow]" not in str(err.value)
    assert not out.exists()
    loose = compile_model(path, out=tmp_path / "loose", report_samples=4)
    num = loose.report["numerics"]
    assert num["silicon"]["verdict"] == "diverges" and num["silicon"]["layers_diverging"] == ["lif1"]
    assert num["layers"]["lif1"]["silicon"]["events"]["q0_wrap"] > 0
    assert num["layers"]["lif1"]["state"]["events"] == 0


def test_a_normal_network_passes_strict_and_agrees(model_path: Path, tmp_path: Path) -> None:
    res = compile_model(model_path, out=tmp_path / "out", report_samples=4, strict=True)
    num = res.report["numerics"]
    assert num["silicon"]["verdict"] == "agrees" and num["silicon"]["layers_diverging"] == []
    for layer in num["layers"].values():
        s = layer["silicon"]
        assert s["verdict"] == "agrees" and s["event_total"] == 0 and 0 < s["peak_input"] <= 32767


# ------------------------------------------------------------------ against nengo-loihi's emulator


def _first_difference(graph: Graph, x: np.ndarray) -> tuple[int | None, bool]:
    """The first 1-based timestep at which any population's spikes differ between nengo-loihi's
    emulator and hwsim (None: never), and whether every final v is equal."""
    from snnc.runtime.emulator import run_on_emulator

    spikes, final_v = run_on_emulator(graph, x)
    hw = HwSim.from_graph(graph).run(x, engine="torch")
    steps = [int(np.nonzero((spikes[n] != hw.spikes[n]).any(axis=(0, 2)))[0][0]) + 1
             for n in hw.spikes if (spikes[n] != hw.spikes[n]).any()]
    return (min(steps) if steps else None), all(np.array_equal(final_v[n], hw.final_v[n]) for n in hw.final_v)


def _first_flag(graph: Graph, x: np.ndarray) -> int:
    firsts = [c.earliest() for c in observe_silicon(graph, x).values()]
    return min(f["timestep"] for f in firsts if f is not None)


def _q0_net() -> tuple[Graph, np.ndarray]:
    """test_q0_wraps_exactly_beyond_22_bits' layer with vth << 6 just below 2**21: 32766 and 32768
    spike on Lava, and 32768 (wrapped to -2**21) does not on silicon."""
    w, x = _q0_volley()
    return _layer(w, vth=2**15 - 100), x


def _u_net() -> tuple[Graph, np.ndarray]:
    """test_u_wrap_diverges_exactly_at_the_bounds' layer: Lava's +2**23 spikes, silicon's -2**23 not."""
    w = np.zeros((5, 256), dtype=np.int64)
    w[0] = 128
    w[1], w[1, 255] = 128, 126
    w[2] = -128
    w[3], w[3, 255] = -128, -126
    w[4], w[4, 255] = 128, 130
    x = np.zeros((1, 11, 256), dtype=bool)
    x[0, :7, :128] = True
    x[0, 7, 128:] = True
    return _layer(w, du=0), x


def _bias_net() -> tuple[Graph, np.ndarray]:
    """test_u_plus_bias_wraps_exactly_beyond_24_bits' layer: u + bias = 2**23 clips to a spike on Lava
    and wraps to -2**23 on silicon; -2**23 - 1 clips on Lava and wraps to 2**23 - 1 (a spike) on silicon."""
    w = np.zeros((4, 257), dtype=np.int64)
    w[:, 256] = [-64, -62, 64, 62]
    w[0, :128] = w[1, :128] = 128
    w[2, :128] = w[3, :128] = -128
    x = np.zeros((1, 12, 257), dtype=bool)
    x[0, :8, :128] = True
    x[0, 0, 256] = True
    return _layer(w, du=0, bias_mant=np.array([4095, 3968, -4096, -3969]), bias_exp=0), x


def _exp_net() -> tuple[Graph, np.ndarray]:
    """test_weight_exponent_rounds_per_synapse_on_silicon's layer with vth << 6 = 128: Lava's a = 3
    spikes, silicon's 2 does not."""
    w = np.array([[6, 0], [6, 6], [4, 4]], dtype=np.int64)
    x = np.zeros((2, 4, 2), dtype=bool)
    x[0, 2] = True
    x[1, 1, 0] = True
    return _layer(w, exp=-2, vth=2), x


@pytest.mark.parametrize("build", [_q0_net, _u_net, _bias_net, _exp_net], ids=["q0", "u", "u_bias", "weight_exp"])
def test_emulator_parts_from_hwsim_no_earlier_than_flagged(build) -> None:
    """On each regime's network nengo-loihi's emulator (silicon-tested semantics) and hwsim (Lava's)
    produce different spikes, and not before the first event the check flags (these networks are built
    so that the first event changes a spike: exactly there)."""
    graph, x = build()
    first_flag = _first_flag(graph, x)
    first_diff, _ = _first_difference(graph, x)
    assert first_diff == first_flag


def test_random_layers_against_the_emulator() -> None:
    """Random single layers near the bounds (large same-sign fan-ins, weight_exp -3..1, no or some
    decay, biases): where the check flags nothing the emulator equals hwsim exactly (spikes and final
    v); where it flags, they first differ no earlier than the first flagged timestep (and they do
    differ, in spikes or final v, on some)."""
    rng = np.random.default_rng(11)
    flagged = agreed = parted = 0
    for _ in range(10):
        n_in = int(rng.integers(20, 400))
        sign = int(rng.choice([-1, 1, 1]))
        w = sign * 2 * rng.integers(0, 128, (4, n_in))
        w[rng.random(w.shape) < 0.3] *= -1
        graph = _layer(w, exp=int(rng.integers(-3, 2)), du=int(rng.choice([0, 100, 4096])),
                       dv=int(rng.choice([0, 500, 4096])), vth=int(rng.integers(100, 2**17)),
                       bias_mant=rng.integers(-4096, 4096, 4), bias_exp=int(rng.integers(0, 8)))
        x = rng.random((2, 10, n_in)) < rng.uniform(0.1, 0.9)
        checks = observe_silicon(graph, x)
        first_diff, same_v = _first_difference(graph, x)
        if all(c.verdict == "agrees" for c in checks.values()):
            agreed += 1
            assert first_diff is None and same_v
        else:
            flagged += 1
            parted += first_diff is not None or not same_v
            assert first_diff is None or first_diff >= _first_flag(graph, x)
    assert flagged and agreed and parted


def test_emulator_equals_hwsim_where_nothing_is_flagged() -> None:
    """Unflagged networks (a random layer at moderate weights with weight_exp -1, a recurrent graph, a
    layer at the accumulator's bounds): the emulator's spikes and final v equal hwsim's exactly."""
    rng = np.random.default_rng(4)
    w = np.zeros((2, 129), dtype=np.int64)
    w[0] = 254
    w[1, :128] = -256
    nets = [(_layer(2 * rng.integers(-60, 100, (8, 50)), exp=-1, du=300, dv=200, vth=60), rng.random((3, 12, 50)) < 0.5),
            (_layer(w, vth=2**15 - 100), np.ones((2, 5, 129), dtype=bool))]
    g = RECURRENT_GRAPHS["two_cycle"](rng)
    nets.append((g, inputs_for(g, rng)))
    for graph, x in nets:
        assert all(c.verdict == "agrees" for c in observe_silicon(graph, x).values())
        first_diff, same_v = _first_difference(graph, x)
        assert first_diff is None and same_v
        assert HwSim.from_graph(graph).run(x).output.any()      # not trivially equal: something spikes

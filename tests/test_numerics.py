"""Numerical honesty: quantization effects, observed state overflow (against a brute-force Python
model of Lava's arithmetic) and ``--strict``."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import example, given, settings, strategies as st

from conftest import make_model
from snnc.compiler.ir import CubaLIF, Dense, Graph, Input, Output, QCubaLIF, QDense
from snnc.compiler.numerics import numeric_findings, quantization_effects
from snnc.compiler.passes import quantize
from snnc.compiler.targets import get_target
from snnc.errors import StrictModeError
from snnc.hwsim.headroom import observe_state
from snnc.models.checkpoint import save
from snnc.models.quant import LOIHI_FIXED_POINT as FP
from snnc.pipeline import compile_model

TOP = 2**23


def _wrap32(x: int) -> int:
    return (x + 2**31) % 2**32 - 2**31


def _trunc_decay(x: int, keep: int) -> int:
    p = x * keep
    return (1 if p >= 0 else -1) * (abs(p) >> 12)


def brute_force_events(w: np.ndarray, spikes: np.ndarray, du: int, dv: int, vth: int, bias: int
                       ) -> tuple[int, int, int, int]:
    """u wraps, outcome-changing v clips, peak |u| and peak |v| of one Dense -> LIF population, with
    Python integers, one neuron and step at a time (the equations of snnc.compiler.ir; Lava's
    PyLifModelBitAcc)."""
    batch, steps, _ = spikes.shape
    u_events = v_events = peak_u = peak_v = 0
    for b in range(batch):
        for i in range(w.shape[0]):
            u = v = 0
            for t in range(steps):
                a = int(w[i] @ spikes[b, t - 1].astype(np.int64)) if t > 0 else 0
                exact_u = _trunc_decay(u, 4096 - du) + (a << 6)
                u = _wrap32(_trunc_decay(u, 4096 - du) + _wrap32(a << 6))
                u = u - 2**24 if u > TOP else u
                u = u + 2**24 if u <= -TOP else u
                exact_v = _trunc_decay(v, 4096 - dv) + u + (bias << 6)
                v = max(-(TOP - 1), min(TOP - 1, _wrap32(exact_v)))
                u_events += exact_u != u
                v_events += exact_v != v and not (exact_v > vth << 6 and v > vth << 6)
                peak_u, peak_v = max(peak_u, abs(exact_u)), max(peak_v, abs(exact_v))
                if v > vth << 6:
                    v = 0
    return u_events, v_events, peak_u, peak_v


def _one_layer(w: np.ndarray, du: int, dv: int, vth: int, bias: int) -> Graph:
    n_out, n_in = w.shape
    nodes = [Input("input", (n_in,)), QDense("fc1", w, 0),
             QCubaLIF("lif1", n_out, du, dv, vth, np.full(n_out, bias, dtype=np.int64), 6, FP), Output("output")]
    return Graph.build(nodes, [("input", "fc1"), ("fc1", "lif1"), ("lif1", "output")])


_DECAY = st.one_of(st.integers(0, 64), st.integers(0, 4096))


@settings(max_examples=40, deadline=None, derandomize=True)
@given(seed=st.integers(0, 2**31), n_in=st.integers(1, 600), du=_DECAY, dv=_DECAY,
       vth=st.integers(1, FP.vth_max), bias=st.integers(FP.bias_mant_min, FP.bias_mant_max),
       rate=st.floats(0.05, 1.0), sign=st.sampled_from([-1, 0, 1]))
@example(seed=1, n_in=600, du=0, dv=0, vth=FP.vth_max, bias=0, rate=0.9, sign=1)      # u wraps
@example(seed=2, n_in=600, du=0, dv=0, vth=FP.vth_max, bias=0, rate=0.9, sign=-1)     # u wraps negative
@example(seed=3, n_in=40, du=4096, dv=0, vth=FP.vth_max, bias=0, rate=0.9, sign=-1)   # v saturates low
def test_observed_overflow_equals_brute_force(seed: int, n_in: int, du: int, dv: int, vth: int, bias: int,
                                              rate: float, sign: int) -> None:
    """Every u wrap and every v clip that changes the outcome, counted by hwsim.headroom, equals a
    scalar Python model of Lava's arithmetic; same-sign weights over large fan-ins with little decay
    make them happen (``sign`` 0: mixed signs)."""
    rng = np.random.default_rng(seed)
    grid = np.arange(FP.weight_min, FP.weight_max + 1, FP.weight_step)
    w = rng.choice(grid if sign == 0 else grid[grid * sign > 0], size=(3, n_in))
    spikes = rng.random((2, 8, n_in)) < rate
    got = observe_state(_one_layer(w, du, dv, vth, bias), spikes)["lif1"]
    want = brute_force_events(w, spikes, du, dv, vth, bias)
    assert (got.u_wrapped, got.v_clipped, got.peak_u, got.peak_v) == want
    assert (got.first is None) == (want[0] + want[1] == 0)


def test_overflow_is_found_with_the_first_event() -> None:
    """A fan-in of 2000 weights of 254, all active: u leaves 24 bits in the first step it sees input."""
    w = np.full((2, 2000), 254, dtype=np.int64)
    state = observe_state(_one_layer(w, 0, 0, FP.vth_max, 0), np.ones((1, 4, 2000), dtype=bool))["lif1"]
    assert state.u_wrapped > 0 and state.peak_input == 254 * 2000 << 6
    assert state.first == {"sample": 0, "timestep": 2, "neuron": 0, "what": "u wrapped"}
    found = numeric_findings({}, {"lif1": state.to_json()}, None, get_target("loihi"))
    assert [f.rule for f in found] == ["state_overflow"] and found[0].numerical
    assert f"peak |u| {state.peak_u}" in found[0].message and "timestep 2" in found[0].message


def test_quantization_effects_have_exact_numbers() -> None:
    """A float layer whose scale is set by its largest weight (254 / 2.0 = 127): the weight 1.0 lands
    on 127, rounded to the even 128; -0.3 -> -38.1 -> -38; the threshold 1.0 -> 127 exactly; the
    current decay 0.1 -> 409.6/4096 -> 410."""
    w = np.array([[2.0, 1.0, -0.3]])
    nodes = [Input("input", (3,)), Dense("fc1", w), CubaLIF("lif1", 1, 0.1, 0.25, 1.0, None), Output("output")]
    graph = Graph.build(nodes, [("input", "fc1"), ("fc1", "lif1"), ("lif1", "output")], meta={})
    target = get_target("loihi")
    e = quantization_effects(graph, quantize(graph, target), target)["lif1"]
    assert e["scale"] == pytest.approx(127.0)
    assert (e["weights"]["clipped"], e["weights"]["rounded"]) == (0, 2)
    assert e["weights"]["max_error"] == pytest.approx(1.0)
    assert e["threshold"] == {"exact": pytest.approx(127.0), "stored": 127, "error": pytest.approx(0.0),
                              "rounded": False}
    assert (e["current_decay"]["stored"], e["current_decay"]["rounded"]) == (410, True)
    assert (e["voltage_decay"]["stored"], e["voltage_decay"]["rounded"]) == (1024, False)
    rules = sorted(f.rule for f in numeric_findings({"lif1": e}, {}, None, target))
    assert rules == ["decay_rounded", "weights_rounded"]


def test_hardware_exact_model_passes_strict(model_path: Path, tmp_path: Path) -> None:
    """A model trained with the chip's integers: its quantization is its own, nothing overflows, so
    --strict compiles it, and the report says so per layer."""
    res = compile_model(model_path, out=tmp_path / "out", report_samples=4, strict=True)
    assert not [f for f in res.report["findings"] if f["numerical"]]
    layers = res.report["numerics"]["layers"]
    assert set(layers) == {"lif1", "lif2"}
    assert all(layer["quantization"]["in_model"] and layer["state"]["events"] == 0 for layer in layers.values())


def _no_artifact(out: Path) -> None:
    assert not out.exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")]


def test_strict_refuses_a_float_model_and_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "float.pt"
    save(make_model(hardware_exact=False), path, metadata={"dataset": "digits", "timesteps": 12})
    out = tmp_path / "out"
    loose = compile_model(path, out=tmp_path / "loose", report_samples=4)
    rules = {f["rule"] for f in loose.report["findings"] if f["numerical"]}
    assert {"weights_rounded", "threshold_rounded", "spikes_differ_from_float"} <= rules
    agree = loose.report["quantization"]["float_agreement"]
    assert all(0.9 < share <= 1.0 for share in agree.values())
    with pytest.raises(StrictModeError, match=r"--strict.*nothing was written") as err:
        compile_model(path, out=out, report_samples=4, strict=True)
    assert "[weights_rounded] layer 'lif1'" in str(err.value) and str(path) in str(err.value)
    _no_artifact(out)


def test_strict_refuses_state_overflow(tmp_path: Path) -> None:
    """Hardware-exact, but without decay and with a huge threshold v saturates on digits inputs
    (within 24 steps on any draw of the input code; at 12 it depended on the draw)."""
    path = tmp_path / "hot.pt"
    save(make_model(gain=40.0, current_decay=0.0, voltage_decay=0.0, threshold=2000.0, weight_scale=64.0), path,
         metadata={"dataset": "digits", "timesteps": 24})
    out = tmp_path / "out"
    with pytest.raises(StrictModeError, match=r"\[state_overflow\] layer 'lif1'.*v saturations"):
        compile_model(path, out=out, report_samples=4, strict=True)
    _no_artifact(out)

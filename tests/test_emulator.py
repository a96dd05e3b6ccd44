"""nengo-loihi's Loihi 1 emulator as a second reference engine (bridges/, snnc.runtime.emulator).

(a) Where no regime of docs/emulator.md is entered, the emulator equals hwsim (and so Lava) spike for
spike and in every final v: MLPs, conv nets, recurrent graphs, a readout integrator, biases, decays.
(b) Graphs that enter each regime where Lava's model and the silicon-tested semantics differ make
the emulator disagree, first at the step where the regime is entered, computed here from the
integer arithmetic. (c) Without nengo-loihi, verification runs without it and says why.
(d) The licence arrangement holds: no snnc module imports nengo, the bridge never imports snnc.
(e) A failing or hung bridge is one SnncError line, and leaves no process and no file behind.
"""
from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import make_model
from recurrent_graphs import RECURRENT_GRAPHS, inputs_for
from snnc.compiler.frontend import graph_from_module
from snnc.compiler.ir import Graph, Input, Output, QCubaLIF, QDense
from snnc.compiler.passes import quantize
from snnc.compiler.targets import LOIHI
from snnc.errors import SnncError
from snnc.hwsim.sim import HwSim
from snnc.models.network import ARCHS
from snnc.models.readout import Readout
from snnc.runtime import emulator
from snnc.runtime.emulator import (EmulatorError, emulator_spec, emulator_status, emulator_support_problem,
                                   run_on_emulator, run_on_emulator_full)
from snnc.verify import compare

ROOT = Path(__file__).resolve().parent.parent
STATE_MAX = 2**23


def test_the_test_environment_has_the_emulator() -> None:
    """`make test` installs nengo-loihi (pyproject's test extra), so these tests run, never skip."""
    assert emulator_status() is None, f"{emulator_status()} (make test installs it: pip install -e '.[test]')"


# ------------------------------------------------------------------------------------------ helpers

def compiled(model: torch.nn.Module) -> Graph:
    return quantize(graph_from_module(model), LOIHI)


def assert_emulator_equals_hwsim(graph: Graph, x: np.ndarray, *, active: bool = True) -> emulator.EmulatorResult:
    """Both engines on ``x``: every population's spikes and final v equal, and (``active``) real activity."""
    hw = HwSim.from_graph(graph).run(x)
    emu = run_on_emulator_full(graph, x)
    assert list(emu.spikes) == list(hw.spikes)
    for name in hw.spikes:
        diff = np.argwhere(hw.spikes[name] != emu.spikes[name])
        assert not len(diff), f"{name}: first spike mismatch (sample, step, neuron) {diff[0].tolist()}"
        assert np.array_equal(hw.final_v[name], emu.final_v[name]), f"{name}: final v differs"
    assert not active or sum(int(s.sum()) for s in hw.spikes.values()) > 0, "compare real activity"
    assert all(not steps.any() for steps in emu.overflow_steps.values()), emu.overflow_steps
    return emu


def _trunc_decay(x: np.ndarray, d: int) -> np.ndarray:
    """trunc0(x * (4096 - d) / 4096): both engines' decay (lif/models.py:145-152, discretize.py:120-133)."""
    p = x * (4096 - d)
    return np.sign(p) * (np.abs(p) >> 12)


def _shift(x: np.ndarray, e: int) -> np.ndarray:
    return x << e if e >= 0 else x >> -e


def regime_entry(graph: Graph, x: np.ndarray) -> dict[str, int | None]:
    """The first 1-based step at which Lava's run of a graph whose populations all read the Input
    enters each regime where the silicon-tested semantics compute otherwise (None: never):

    * weight_exp: the floor shift of the summed input (Lava, dense/models.py:102-107) differs from
      the sum of per-synapse floor shifts (the chip, discretize.py:473-488);
    * q0: the summed input of a step leaves 16 bits in weight units (22 bits after << 6, Q_BITS = 21);
    * u_fold: Lava's single fold of u (lif/models.py:158-170) differs from the 24-bit wrap;
    * u_bias: u + bias leaves 24 bits (wrapped by the chip, interface.py:317-319; not by Lava).
    """
    s = np.zeros(x.shape, dtype=np.int64)
    s[:, 1:] = x[:, :-1]                                   # every synapse delays one step
    first: dict[str, int | None] = {"weight_exp": None, "q0": None, "u_fold": None, "u_bias": None}
    for pop in graph.populations():
        neu = pop.neuron
        assert all(src == graph.input.name for _, src in pop.inputs)
        lava = sum(_shift(s @ syn.weight.T.astype(np.int64), syn.weight_exp) for syn, _ in pop.inputs)
        chip = sum(s @ _shift(syn.weight.astype(np.int64), syn.weight_exp).T for syn, _ in pop.inputs)
        bias = _shift(neu.bias_mant.astype(np.int64), neu.bias_exp)
        u = np.zeros(lava[:, 0].shape, dtype=np.int64)
        for t in range(x.shape[1]):
            a = lava[:, t]
            pre = _trunc_decay(u, neu.du) + (a << 6)
            fold = np.where(pre > STATE_MAX, pre - 2 * STATE_MAX, np.where(pre <= -STATE_MAX, pre + 2 * STATE_MAX, pre))
            wrap = ((pre + STATE_MAX) & (2 * STATE_MAX - 1)) - STATE_MAX
            entered = {"weight_exp": a != chip[:, t], "q0": (a < -(2**15)) | (a >= 2**15), "u_fold": fold != wrap,
                       "u_bias": (fold + bias < -STATE_MAX) | (fold + bias >= STATE_MAX)}
            for kind, where in entered.items():
                if where.any() and (first[kind] is None or t + 1 < first[kind]):   # type: ignore[operator]
                    first[kind] = t + 1
            u = fold
    return first


def first_difference(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> int | None:
    """The earliest 1-based step at which any population's spikes differ."""
    steps = [int(np.argwhere(a[k] != b[k])[:, 1].min()) + 1 for k in a if (a[k] != b[k]).any()]
    return min(steps) if steps else None


def one_layer(weights: np.ndarray, *, weight_exp: int = 0, du: int = 4096, dv: int = 4095, vth: int = 10,
              bias_mant: int = 0, bias_exp: int = 6) -> Graph:
    """Input -> Dense -> one population (Lava's du + 1 = ``du``; 4095 and 4096 are the largest the
    registers hold, nengo_loihi/builder/discretize.py:269-272)."""
    n, n_in = weights.shape
    return Graph.chain([Input("x", (n_in,)), QDense("fc", weights.astype(np.int64), weight_exp),
                        QCubaLIF("lif", n, du=du, dv=dv, vth=vth, bias_mant=np.full(n, bias_mant, np.int64),
                                 bias_exp=bias_exp), Output("out")])


def volleys(n_in: int, steps: int, at: dict[int, list[int]]) -> np.ndarray:
    """One sample: input neurons ``at[t]`` spike at step t (0-based)."""
    x = np.zeros((1, steps, n_in), dtype=bool)
    for t, idx in at.items():
        x[0, t, idx] = True
    return x


# --------------------------------------------------------------- (a) no regime entered: exact agreement

@pytest.mark.parametrize("sizes", [(64, 32, 10), (40, 24, 16, 6)])
def test_mlp_fixtures_equal_hwsim(sizes: tuple[int, ...]) -> None:
    graph = compiled(make_model(sizes, seed=len(sizes)))
    assert all(s.weight_exp >= -1 for p in graph.populations() for s, _ in p.inputs)
    x = np.random.default_rng(0).random((3, 16, sizes[0])) < 0.3
    assert_emulator_equals_hwsim(graph, x)


def test_synapses_without_a_weight_equal_hwsim() -> None:
    """A dead network (every weight 0, biases only): nengo-loihi cannot size an empty synapse
    (block.py:665), so the bridge leaves it out; it would add nothing."""
    graph = compiled(make_model((64, 32, 32, 10), gain=0.0))
    assert not any(s.weight.any() for p in graph.populations() for s, _ in p.inputs)
    x = np.random.default_rng(0).random((2, 12, 64)) < 0.3
    emu = assert_emulator_equals_hwsim(graph, x, active=False)
    assert any(np.abs(v).max() > 0 for v in emu.final_v.values())     # the biases moved v: not a blank run


def test_membrane_readout_integrator_equals_hwsim() -> None:
    """A non-spiking output (the largest threshold, slow leak): its final v, the decision, is equal."""
    graph = compiled(make_model((48, 20, 5), readout=Readout("membrane"), seed=3))
    out = graph.output.name
    x = np.random.default_rng(1).random((4, 14, 48)) < 0.3
    spec = emulator_spec(graph, x)
    assert spec["pop_spiking"].tolist() == [True, False]          # labelled, run like any population
    assert int(spec["pop_vth"][-1]) == LOIHI.fixed_point.vth_max
    emu = assert_emulator_equals_hwsim(graph, x)
    assert np.abs(emu.final_v[out]).max() > 0 and not emu.spikes[out].any()


@pytest.mark.parametrize("arch, shape", [("lenet", (1, 10, 10)), ("resnet11", (1, 8, 8))])
def test_conv_nets_equal_hwsim(arch: str, shape: tuple[int, ...]) -> None:
    """Model-zoo conv nets (conv, pooling folded, residual shortcuts summed into one population),
    each conv lowered to the sparse matrix of its taps."""
    torch.manual_seed(0)
    model = ARCHS[arch](int(np.prod(shape)), 10, input_shape=shape)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(3.0)
    model.refit_formats()
    graph = compiled(model)
    kinds = {type(s).__name__ for p in graph.populations() for s, _ in p.inputs}
    assert kinds == {"QConv", "QDense"}
    x = np.random.default_rng(2).random((2, 8, graph.input.size)) < 0.3
    emu = assert_emulator_equals_hwsim(graph, x)
    assert sum(int(s.sum()) > 0 for s in emu.spikes.values()) >= 3


@pytest.mark.parametrize("name", sorted(RECURRENT_GRAPHS))
def test_recurrent_graphs_equal_hwsim(name: str) -> None:
    """Self-loops, a 2-population cycle, stacked recurrent layers: the emulator's axons deliver the
    previous step's spikes whatever their direction, as Lava's Dense does."""
    rng = np.random.default_rng(7)
    graph = RECURRENT_GRAPHS[name](rng)
    assert graph.is_recurrent
    spec = emulator_spec(graph, inputs_for(graph, rng, batch=1, steps=2))
    assert spec["syn_recurrent"].any() and not spec["syn_recurrent"].all()
    assert_emulator_equals_hwsim(graph, inputs_for(graph, rng, batch=3, steps=20))


def test_biases_decays_and_exponents_equal_hwsim() -> None:
    """Parallel one-layer populations over the corners of the registers: no current decay (du 0,
    Lava's register -1), both decays at their largest, negative and large bias exponents, weight
    exponents -1, 0 and 2, odd biases; the reference confirms that no regime is entered."""
    rng = np.random.default_rng(11)
    n_in = 12
    configs = [dict(du=0, dv=0, bias_exp=6, weight_exp=-1), dict(du=1, dv=4096, bias_exp=-2, weight_exp=0),
               dict(du=4096, dv=4095, bias_exp=7, weight_exp=0), dict(du=1000, dv=123, bias_exp=3, weight_exp=2),
               dict(du=2048, dv=1, bias_exp=0, weight_exp=-1), dict(du=4095, dv=2000, bias_exp=6, weight_exp=1)]
    nodes: list = [Input("x", (n_in,))]
    edges = []
    for k, c in enumerate(configs):
        w = 2 * rng.integers(-60, 100, (5, n_in))
        bias = rng.integers(-300, 300, 5) | 1
        nodes += [QDense(f"fc{k}", w.astype(np.int64), c["weight_exp"]),
                  QCubaLIF(f"lif{k}", 5, du=c["du"], dv=c["dv"], vth=int(rng.integers(20, 200)),
                           bias_mant=bias.astype(np.int64), bias_exp=c["bias_exp"])]
        edges += [("x", f"fc{k}"), (f"fc{k}", f"lif{k}")]
    graph = Graph.build(nodes + [Output("out")], edges + [(f"lif{len(configs) - 1}", "out")])
    x = rng.random((3, 24, n_in)) < 0.35
    assert all(step is None for step in regime_entry(graph, x).values()), regime_entry(graph, x)
    emu = assert_emulator_equals_hwsim(graph, x)
    assert all(emu.spikes[f"lif{k}"].any() for k in range(len(configs)))


def test_input_timing_is_one_step_per_synapse() -> None:
    """An input spike at step t (0-based) reaches layer k at step t + k: the emulator's SpikeInput
    step t + 1 arrives one step later (interface.py:491-498), and each axon adds one more."""
    graph = Graph.chain([Input("x", (1,)), QDense("f1", np.array([[200]])), QCubaLIF("a", 1, 4096, 4096, 100, np.zeros(1, np.int64)),
                         QDense("f2", np.array([[200]])), QCubaLIF("b", 1, 4096, 4096, 100, np.zeros(1, np.int64)),
                         Output("out")])
    x = volleys(1, 6, {1: [0]})
    spikes, _ = run_on_emulator(graph, x)
    assert spikes["a"][0, :, 0].tolist() == [False, False, True, False, False, False]
    assert spikes["b"][0, :, 0].tolist() == [False, False, False, True, False, False]


# ----------------------------------------------------------------- (b) each divergent regime

def _diverges_at_entry(graph: Graph, x: np.ndarray, regime: str) -> emulator.EmulatorResult:
    """The emulator differs from hwsim (= Lava) first exactly where ``regime`` is first entered, and no
    other regime is entered earlier."""
    entry = regime_entry(graph, x)
    assert entry[regime] is not None, entry
    assert all(step is None or step >= entry[regime] for step in entry.values()), entry   # type: ignore[operator]
    hw = HwSim.from_graph(graph).run(x)
    emu = run_on_emulator_full(graph, x)
    assert first_difference(hw.spikes, emu.spikes) == entry[regime]
    return emu


def test_q0_wraps_at_22_bits() -> None:
    """200 inputs x 254 in one step: a = 50800 >= 2**15. Lava adds 50800 << 6 = 3251200 to u and fires;
    the chip's 22-bit accumulator holds -943104 (nengo_loihi/emulator/tests/test_interface.py
    test_uv_overflow's 200 x 16256 on silicon), and stays silent."""
    graph = one_layer(np.full((1, 200), 254))
    x = volleys(200, 2, {0: list(range(200))})
    emu = _diverges_at_entry(graph, x, "q0")
    assert int(emu.final_v["lif"][0, 0]) == 200 * 254 * 64 - 2**22 == -943104
    assert int(emu.overflow_steps["q0"][0]) == 2 and not emu.spikes["lif"].any()


def test_u_reaching_minus_2_pow_23_folds_in_lava_only() -> None:
    """u driven to exactly -2**23 (du 1: the register 0, no q0 overflow: 128 x -256 = -2**15 per step).
    Lava's fold turns it into +2**23 and the neuron fires; the chip holds -2**23 (no overflow reported)."""
    du, n = 1, 128
    u = 0
    for _ in range(4):                                     # four volleys of -2**15 (q0 = -2**21: in range)
        u = int(_trunc_decay(np.int64(u), du)) - 2**21
    need = (-(2**23) - int(_trunc_decay(np.int64(u), du))) // 64   # the last volley's input, weight units
    assert (-(2**23) - int(_trunc_decay(np.int64(u), du))) % 64 == 0 and need % 2 == 0 and -256 <= need <= 254
    weights = np.array([[-256] * n + [need]])
    graph = one_layer(weights, du=du, dv=4095, vth=10)
    x = volleys(n + 1, 8, {0: list(range(n)), 1: list(range(n)), 2: list(range(n)), 3: list(range(n)), 4: [n]})
    emu = _diverges_at_entry(graph, x, "u_fold")
    assert regime_entry(graph, x)["u_fold"] == 6 and regime_entry(graph, x)["q0"] is None
    assert not emu.spikes["lif"].any() and int(emu.overflow_steps["current"][0]) == 0


def test_u_plus_bias_wraps_on_the_chip_only() -> None:
    """u pushed to 8385024 < 2**23 (four volleys of 129 x 254 = 32766 < 2**15) plus a bias of 100 << 6:
    u + bias = 8391424 leaves 24 bits. Lava clips v and fires; the chip wraps u + bias negative."""
    graph = one_layer(np.full((1, 129), 254), du=1, dv=4095, vth=10, bias_mant=100, bias_exp=6)
    x = volleys(129, 7, {t: list(range(129)) for t in range(4)})
    emu = _diverges_at_entry(graph, x, "u_bias")
    assert regime_entry(graph, x)["u_bias"] == 5
    assert int(emu.overflow_steps["u2"][0]) == 5 and int(emu.overflow_steps["current"][0]) == 0


def test_weight_exp_below_minus_1_shifts_each_synapse() -> None:
    """weight 2, weight_exp -2, four inputs at once: Lava shifts the sum (8 >> 2 = 2) and fires; the
    chip shifts each weight (2 >> 2 = 0) and sees nothing. One input alone: both see 0."""
    graph = one_layer(np.full((1, 4), 2), weight_exp=-2, vth=1)
    x = volleys(4, 6, {0: [0], 2: [0, 1, 2, 3]})
    emu = _diverges_at_entry(graph, x, "weight_exp")
    assert regime_entry(graph, x)["weight_exp"] == 4 and not emu.spikes["lif"].any()


# ------------------------------------------------------------------------- verification policy

def _fake_lava(monkeypatch: pytest.MonkeyPatch) -> None:
    """Lava replaced by hwsim (bit-exact to it, tests/test_hwsim_vs_lava.py) to keep these tests fast."""
    from snnc.runtime import lava_backend

    def hwsim_as_lava(graph: Graph, inputs: np.ndarray, **_: object) -> lava_backend.LavaResult:
        r = HwSim.from_graph(graph).run(inputs)
        return lava_backend.LavaResult(r.spikes, r.final_v, lava_backend.LavaRunStats(*inputs.shape[:2]))
    monkeypatch.setattr(lava_backend, "run_on_lava_full", hwsim_as_lava)


def test_verify_fails_on_an_emulator_mismatch_unless_it_is_expected(monkeypatch: pytest.MonkeyPatch) -> None:
    from snnc.pipeline import verify_engines

    _fake_lava(monkeypatch)
    graph = one_layer(np.full((1, 200), 254))
    x = volleys(200, 3, {0: list(range(200))})
    res = verify_engines(None, graph, x)
    assert res.engines == ["hwsim", "lava", "emulator"] and not res.passed
    assert res.failing_pairs == ["hwsim-emulator", "lava-emulator"]
    assert res.mismatches["hwsim-lava"] == {"lif": 0} and res.mismatches["hwsim-emulator"]["lif"] > 0
    assert "Only nengo-loihi's Loihi emulator disagrees" in res.describe_failure()
    assert "timestep 2" in res.describe_failure() and "\n" not in res.describe_failure()
    why = "q0 overflow in 'lif' from step 2 (hwsim/divergence.py)"
    ok = verify_engines(None, graph, x, emulator_expected=why)
    assert ok.passed and ok.mismatches == res.mismatches
    j = ok.to_json()
    assert j["passed"] is True and j["expected_mismatches"]["emulator"]["reason"] == why
    assert j["expected_mismatches"]["emulator"]["mismatches"] == sum(
        sum(per.values()) for pair, per in res.mismatches.items() if "emulator" in pair) > 0


def test_an_expected_engine_does_not_excuse_the_others() -> None:
    rng = np.random.default_rng(0)
    a = {"l": rng.random((2, 5, 3)) < 0.5}
    lava = {"l": a["l"].copy()}
    lava["l"][1, 3, 2] ^= True                  # a real (hwsim-lava) mismatch at step 4
    emu = {"l": a["l"].copy()}
    emu["l"][0, 1, 0] ^= True                   # an earlier, expected emulator mismatch at step 2
    res = compare({"hwsim": a, "lava": lava, "emulator": emu}, ["l"])
    res.expected["emulator"] = "u wrap"
    assert not res.passed and res.failing_pairs == ["hwsim-lava"]
    assert res.first is not None and res.first.pair == "hwsim-emulator"     # the earliest of all
    assert "engines hwsim-lava, layer 'l', sample 1, timestep 4" in res.describe_failure()
    assert "This is a bug in snnc" in res.describe_failure()


# ----------------------------------------------------------------------- (c) the emulator is absent

def _python_without_nengo(where: Path) -> str:
    """An interpreter that cannot import nengo_loihi: this Python, with a package of that name first
    on its path that refuses to import (what a Python without the extra answers)."""
    block = where / "block" / "nengo_loihi"
    block.mkdir(parents=True)
    (block / "__init__.py").write_text('raise ModuleNotFoundError("No module named \'nengo_loihi\'")\n')
    py = where / "python-without-nengo"
    py.write_text(f'#!/bin/sh\nPYTHONPATH={where / "block"} exec {sys.executable} "$@"\n')
    py.chmod(0o755)
    return str(py)


def test_status_names_an_interpreter_without_nengo_loihi(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    py = _python_without_nengo(tmp_path)
    monkeypatch.setenv("SNNC_EMULATOR_PYTHON", py)
    status = emulator_status()
    assert status is not None and f"SNNC_EMULATOR_PYTHON={py} cannot run the emulator" in status
    assert "pip install" in status and "\n" not in status
    monkeypatch.setenv("SNNC_EMULATOR_PYTHON", "/nonexistent/python")
    assert emulator_status() == "SNNC_EMULATOR_PYTHON=/nonexistent/python is not an executable Python"
    graph = one_layer(np.full((1, 4), 2))
    with pytest.raises(EmulatorError, match="is not available: SNNC_EMULATOR_PYTHON"):
        run_on_emulator(graph, volleys(4, 3, {0: [0]}))


def test_status_with_this_python_named_explicitly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SNNC_EMULATOR_PYTHON", sys.executable)
    assert emulator_status() is None


def test_status_when_nengo_loihi_is_not_installed_here(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.delenv("SNNC_EMULATOR_PYTHON", raising=False)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name.startswith("nengo") else real(name, *a))
    assert emulator_status() == ("nengo-loihi is not installed: pip install 'snnc[emulator]' (or set "
                                 "SNNC_EMULATOR_PYTHON to a Python that has it)")


def test_status_when_the_bridge_is_missing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SNNC_BRIDGES_DIR", str(tmp_path))
    status = emulator_status()
    assert status is not None and str(tmp_path / "nengo_loihi_emulator.py") in status and "SNNC_BRIDGES_DIR" in status


def test_verify_runs_without_the_emulator_and_says_why(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from snnc.pipeline import verify_engines

    monkeypatch.setenv("SNNC_EMULATOR_PYTHON", _python_without_nengo(tmp_path))
    _fake_lava(monkeypatch)
    heard: list[str] = []
    graph = compiled(make_model((16, 8, 4)))
    res = verify_engines(None, graph, np.random.default_rng(0).random((2, 10, 16)) < 0.4, say=heard.append)
    assert res.passed and res.engines == ["hwsim", "lava"]
    assert set(res.not_run) == {"emulator"} and "cannot run the emulator" in res.not_run["emulator"]
    assert res.to_json()["not_run"] == res.not_run
    assert heard == [f"emulator not run: {res.not_run['emulator']}"]


def test_graded_input_is_not_for_the_emulator(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loihi 1 has binary spikes only: an encoding layer's graded input is refused in plain words."""
    from snnc.pipeline import verify_engines

    rng = np.random.default_rng(0)
    graph = RECURRENT_GRAPHS["self_loop"](rng, bits=4)
    problem = emulator_support_problem(graph)
    assert problem is not None and "graded 4-bit values" in problem and "binary spikes only" in problem
    assert emulator_support_problem(RECURRENT_GRAPHS["self_loop"](rng)) is None
    if emulator_status() is None:
        with pytest.raises(EmulatorError, match="cannot run this network: the input 'x' carries graded"):
            run_on_emulator(graph, inputs_for(graph, rng, batch=1, steps=3))
    _fake_lava(monkeypatch)
    res = verify_engines(None, graph, inputs_for(graph, rng, batch=1, steps=6))
    assert "emulator" not in res.engines and res.not_run["emulator"] == (emulator_status() or problem)


def test_other_fixed_point_formats_are_not_loihi_1() -> None:
    from dataclasses import replace

    from snnc.models.quant import LOIHI_FIXED_POINT

    fmt = replace(LOIHI_FIXED_POINT, name="wide", state_bits=32)
    graph = Graph.chain([Input("x", (2,)), QDense("fc", np.full((1, 2), 2)),
                         QCubaLIF("lif", 1, 100, 100, 10, np.zeros(1, np.int64), fmt=fmt), Output("out")])
    assert emulator_support_problem(graph) == ("population 'lif' uses the fixed-point format 'wide' (state_bits 32), "
                                               "and the emulator computes Loihi 1's only (decay_unity 4096, "
                                               "current_decay_offset 1, act_shift 6, vth_shift 6, state_bits 24)")


# ---------------------------------------------------------------------- (d) the licence arrangement

GPL_MODULES = ("nengo", "nengo_loihi", "sanafe")


def _imports(path: Path) -> set[str]:
    """Top-level modules a file imports: import statements, and importlib.import_module / __import__
    of a literal name."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant) \
                and isinstance(node.args[0].value, str) and getattr(node.func, "attr", getattr(node.func, "id", "")) \
                in ("import_module", "__import__"):
            found.add(node.args[0].value.split(".")[0])
    return found


def test_no_snnc_module_imports_gpl_code() -> None:
    files = [p for d in ("snnc", "compiler", "runtime", "hwsim", "models") for p in sorted((ROOT / d).rglob("*.py"))]
    assert len(files) > 40 and ROOT / "runtime" / "emulator.py" in files
    bad = {str(p.relative_to(ROOT)): sorted(_imports(p) & set(GPL_MODULES)) for p in files}
    assert {k: v for k, v in bad.items() if v} == {}


def test_the_scan_sees_every_way_of_importing(tmp_path: Path) -> None:
    f = tmp_path / "m.py"
    f.write_text("import nengo.dists\nfrom nengo_loihi.block import Axon\nimport importlib\n"
                 "importlib.import_module('sanafe')\n__import__('os')\nfrom . import x\n")
    assert _imports(f) == {"nengo", "nengo_loihi", "importlib", "sanafe", "os"}


def test_bridges_never_import_snnc_and_ours_imports_only_numpy_and_nengo_loihi() -> None:
    bridges = sorted((ROOT / "bridges").glob("*.py"))
    ours = ROOT / "bridges" / "nengo_loihi_emulator.py"
    assert ours in bridges
    assert all("snnc" not in _imports(path) for path in bridges)
    assert _imports(ours) - set(sys.stdlib_module_names) == {"numpy", "nengo_loihi"}


def test_verifying_with_the_emulator_never_loads_nengo_into_snnc() -> None:
    """In a fresh interpreter (no other test's imports): a verification that ran the emulator leaves
    nengo and nengo_loihi out of sys.modules."""
    code = textwrap.dedent("""
        import sys
        import numpy as np
        sys.path.insert(0, "tests")
        from conftest import make_model
        from snnc.compiler.frontend import graph_from_module
        from snnc.compiler.passes import quantize
        from snnc.compiler.targets import LOIHI
        from snnc.hwsim.sim import HwSim
        from snnc.pipeline import verify_engines
        from snnc.runtime import lava_backend

        def hwsim_as_lava(graph, inputs, **_):   # Lava is not the subject here: hwsim equals it
            r = HwSim.from_graph(graph).run(inputs)
            return lava_backend.LavaResult(r.spikes, r.final_v, lava_backend.LavaRunStats(*inputs.shape[:2]))
        lava_backend.run_on_lava_full = hwsim_as_lava
        graph = quantize(graph_from_module(make_model((12, 6, 3))), LOIHI)
        res = verify_engines(None, graph, np.random.default_rng(0).random((1, 8, 12)) < 0.5)
        assert res.engines == ["hwsim", "lava", "emulator"] and res.passed, res.to_json()
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("nengo", "nengo_loihi"))
        print("LOADED", loaded)
    """)
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "LOADED []" in r.stdout


# --------------------------------------------------------------------- (e) a failing or hung bridge

def _fake_bridge(folder: Path, body: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "nengo_loihi_emulator.py").write_text("import os, subprocess, sys, time\n" + textwrap.dedent(body))


@pytest.fixture
def private_tmp(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """tempfile's folder for this test only, to see that nothing is left in it."""
    import tempfile

    where = tmp_path / "tmp"
    where.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(where))
    return where


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_a_crashing_bridge_is_one_clear_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, private_tmp: Path) -> None:
    _fake_bridge(tmp_path / "b", """
        print("Traceback (most recent call last):", file=sys.stderr)
        print("  File 'x', line 1", file=sys.stderr)
        print("RuntimeError: the emulator fell over", file=sys.stderr)
        sys.exit(1)
    """)
    monkeypatch.setenv("SNNC_BRIDGES_DIR", str(tmp_path / "b"))
    with pytest.raises(SnncError) as err:
        run_on_emulator(one_layer(np.full((1, 4), 2)), volleys(4, 3, {0: [0]}))
    msg = str(err.value)
    assert isinstance(err.value, EmulatorError) and "\n" not in msg
    assert msg == (f"nengo-loihi's emulator bridge ({tmp_path / 'b' / 'nengo_loihi_emulator.py'}) failed (exit 1): "
                   f"RuntimeError: the emulator fell over. Please report it with the model file; snn-compile "
                   f"--no-emulator verifies on the other engines")
    assert list(private_tmp.iterdir()) == []


def test_a_hung_bridge_is_stopped_with_its_children(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                   private_tmp: Path) -> None:
    pids = tmp_path / "pids"
    _fake_bridge(tmp_path / "b", f"""
        child = subprocess.Popen(["sleep", "60"])
        open({str(pids)!r}, "w").write(f"{{os.getpid()}} {{child.pid}}")
        time.sleep(60)
    """)
    monkeypatch.setenv("SNNC_BRIDGES_DIR", str(tmp_path / "b"))
    start = time.monotonic()
    with pytest.raises(EmulatorError, match=r"did not finish within 3 s and was stopped"):
        run_on_emulator(one_layer(np.full((1, 4), 2)), volleys(4, 3, {0: [0]}), timeout_s=3)
    assert time.monotonic() - start < 20
    bridge, child = (int(p) for p in pids.read_text().split())
    deadline = time.monotonic() + 5
    while (_alive(bridge) or _alive(child)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(bridge) and not _alive(child)
    assert list(private_tmp.iterdir()) == []


def test_a_bridge_that_writes_nonsense_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _fake_bridge(tmp_path / "b", """
        import numpy as np
        with open(sys.argv[2], "wb") as f:
            np.savez(f, protocol=np.int64(99))
    """)
    monkeypatch.setenv("SNNC_BRIDGES_DIR", str(tmp_path / "b"))
    with pytest.raises(EmulatorError, match=r"wrote an unexpected result .*protocol 1"):
        run_on_emulator(one_layer(np.full((1, 4), 2)), volleys(4, 3, {0: [0]}))


def test_the_bridge_refuses_a_bad_input_file(tmp_path: Path) -> None:
    bad = tmp_path / "in.npz"
    np.savez(bad, protocol=np.int64(1))
    r = subprocess.run([sys.executable, str(ROOT / "bridges" / "nengo_loihi_emulator.py"), str(bad),
                        str(tmp_path / "out.npz")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "missing input_name" in r.stderr.strip().splitlines()[-1]


def test_empty_inputs_need_no_bridge(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _fake_bridge(tmp_path / "b", "sys.exit(1)\n")
    monkeypatch.setenv("SNNC_BRIDGES_DIR", str(tmp_path / "b"))
    spikes, v = run_on_emulator(one_layer(np.full((3, 4), 2)), np.zeros((0, 5, 4), bool))
    assert spikes["lif"].shape == (0, 5, 3) and v["lif"].shape == (0, 3)


# -------------------------------------------------------------------------------- Lava, once

@pytest.mark.slow
def test_hwsim_lava_and_emulator_agree_and_lava_differs_where_the_regimes_say() -> None:
    """Lava itself: equal to hwsim and the emulator on a compiled MLP; on each regime's graph equal to
    hwsim and different from the emulator."""
    from snnc.runtime.lava_backend import run_on_lava_full

    graph = compiled(make_model((16, 8, 4)))
    x = np.random.default_rng(5).random((2, 10, 16)) < 0.4
    emu = assert_emulator_equals_hwsim(graph, x)
    lava = run_on_lava_full(graph, x, read_v=("lif1", "lif2"), timeout_s=120)
    for name in emu.spikes:
        assert np.array_equal(lava.spikes[name], emu.spikes[name])
        assert np.array_equal(lava.final_v[name], emu.final_v[name])
    regimes = [(one_layer(np.full((1, 200), 254)), volleys(200, 2, {0: list(range(200))})),
               (one_layer(np.full((1, 4), 2), weight_exp=-2, vth=1), volleys(4, 6, {2: [0, 1, 2, 3]}))]
    for g, xr in regimes:
        lava_spikes = run_on_lava_full(g, xr, timeout_s=120).spikes
        assert np.array_equal(lava_spikes["lif"], HwSim.from_graph(g).run(xr).spikes["lif"])
        assert first_difference(lava_spikes, run_on_emulator(g, xr)[0]) is not None

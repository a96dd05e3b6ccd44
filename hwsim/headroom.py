"""Where the chip's integer state leaves its range on given inputs: u's 24-bit wrap, v's clip, the
Conv output wrap and Lava's int32 sums; and the one observation pass (:func:`run_watched`) that also
feeds snnc.hwsim.divergence's silicon check.

Lava's LIF wraps u once at 24 bits, saturates v at +-(2**23 - 1) and sums both in int32
(SP/lava/proc/lif/models.py:145-186); its Conv wraps its output at 24 bits
(SP/lava/proc/conv/utils.py:67-84). hwsim reproduces all of it, so its spikes still equal Lava's,
but each such event is a point where the network stops computing the model's equations: a float
model has no wrap (and where silicon's arithmetic differs from Lava's there is
snnc.hwsim.divergence's question: e.g. u's true 24-bit wrap equals Lava's fold except at the
bounds). This pass runs a graph as hwsim's torch engine does and, at every step, compares the state
the chip holds with the unbounded integer result from the same previous state (one-step deviations,
so one overflow is counted once, not again in every step that inherits it).

All observation runs through :func:`run_watched`: one pass over the graph, block by block through
``simulate_block`` (snnc.hwsim.sim), every population fed to one watch per factory, every step
(``step``), and each watch's ``finish`` called once its block has run (when whole trains are needed).
:func:`observe` gives the state ranges and the silicon checks from one pass.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Callable, Sequence

import numpy as np
import torch

from snnc.compiler.ir import Graph, Population, QConv, QCubaLIF
from snnc.hwsim.divergence import SiliconCheck, silicon_watch
from snnc.hwsim.sim import HwSim, _conv, _exact_float_math, _top, conv_bound, delayed_train, simulate_block

STATE_LIMIT = 2**23   # |u| and |v| the 24-bit registers hold (u wraps above, v clips at 2**23 - 1)


@dataclass
class StateRange:
    """One population's observed range (integer units of u and v) and its overflow events, each a
    (sample, step, neuron) where the chip's value differs from the unbounded integer one."""

    name: str
    samples: int
    steps: int
    peak_input: int = 0        # max |a << 6|, what u receives in one step
    peak_u: int = 0            # max |u| of the unbounded update
    peak_v: int = 0            # max |v| of the unbounded update (before the spike reset)
    u_wrapped: int = 0         # u left its 24 bits (Lava's single wrap, or the int32 sum)
    v_clipped: int = 0         # v saturated (or its int32 sum wrapped) and that changed the outcome
    conv_wrapped: int = 0      # a Conv synapse's output left 24 bits and was wrapped
    first: dict[str, Any] | None = None   # the first event: sample, timestep (1-based), neuron, what

    @property
    def events(self) -> int:
        return self.u_wrapped + self.v_clipped + self.conv_wrapped

    def bits_used(self) -> int:
        """Bits (with sign) the largest observed |u| or |v| needs, of the registers' 24."""
        return int(max(self.peak_u, self.peak_v)).bit_length() + 1

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "events": self.events, "bits_used": self.bits_used(), "limit": STATE_LIMIT}

    def note(self, what: str, mask: torch.Tensor, step: int | None) -> None:
        """Remember the first (sample, step, neuron) of ``mask``: (batch, n) at 0-based ``step``, or
        (batch, T, n) with ``step`` None."""
        if self.first is not None or not bool(mask.any()):
            return
        idx = [int(i) for i in torch.nonzero(mask)[0]]
        sample, t, neuron = (idx[0], step, idx[1]) if step is not None else tuple(idx)
        self.first = {"sample": sample, "timestep": t + 1, "neuron": neuron, "what": what}  # 1-based, as Lava


def _absmax(x: torch.Tensor) -> int:
    return int(x.abs().max()) if x.numel() else 0


class StateWatch:
    """Fed by ``HwSim._neurons`` every step; accumulates a :class:`StateRange`."""

    def __init__(self, state: StateRange):
        self.state = state

    def step(self, t: int, a_in: torch.Tensor, u_exact: torch.Tensor, u: torch.Tensor,
             v_exact: torch.Tensor, v: torch.Tensor, vth: int) -> None:
        """``a_in`` = a << 6; ``*_exact`` from unbounded int64 arithmetic; ``u``, ``v`` the chip's values
        (v after the clip, before the reset; the spike test is ``v > vth``)."""
        st = self.state
        st.peak_input = max(st.peak_input, _absmax(a_in))
        st.peak_u = max(st.peak_u, _absmax(u_exact))
        st.peak_v = max(st.peak_v, _absmax(v_exact))
        u_bad = u_exact != u
        # a clip of a v that spikes anyway changes nothing: both spike and reset to 0
        v_bad = (v_exact != v) & ~((v_exact > vth) & (v > vth))
        st.u_wrapped += int(u_bad.sum())
        st.v_clipped += int(v_bad.sum())
        st.note("u wrapped", u_bad, t)
        st.note("v clipped", v_bad, t)


#: A watch factory: (population, the trains that have run, batch, steps) -> an object with
#: ``step(t, a_in, u_exact, u, v_exact, v, vth)`` and, optionally, ``finish(population, trains)``.
WatchFactory = Callable[[Population, "dict[str, torch.Tensor]", int, int], Any]


class _Tee:
    """Several watches of one population fed the same step (simulate_block takes one per population)."""

    def __init__(self, watches: list[Any]):
        self.watches = watches

    def step(self, *args: Any) -> None:
        for w in self.watches:
            w.step(*args)


def run_watched(graph: Graph, inputs: np.ndarray, factories: Sequence[WatchFactory]) -> list[dict[str, Any]]:
    """Run ``inputs`` (batch, T, n_in) through ``graph`` (fixed point) as hwsim's torch engine does,
    each population watched by one watch per factory; returns, per factory, the watches by population."""
    HwSim.from_graph(graph)     # refuses a float graph
    x = graph.input.check_values(inputs)
    batch, steps = x.shape[:2]
    trains: dict[str, torch.Tensor] = {graph.input.name: torch.from_numpy(x)}
    out: list[dict[str, Any]] = [{} for _ in factories]
    with _exact_float_math():
        for block in graph.blocks():
            made = {pop.name: [f(pop, trains, batch, steps) for f in factories] for pop in block}
            simulate_block(block, trains, (batch, steps),
                           watches={name: ws[0] if len(ws) == 1 else _Tee(ws) for name, ws in made.items()})
            for pop in block:
                for i, w in enumerate(made[pop.name]):
                    if hasattr(w, "finish"):
                        w.finish(pop, trains)
                    out[i][pop.name] = w
    return out


def observe_state(graph: Graph, inputs: np.ndarray) -> dict[str, StateRange]:
    """Run ``inputs`` (batch, T, n_in) through ``graph`` (fixed point) and report, per population,
    the range its state reached and every point where the chip's arithmetic left its bounds."""
    (watches,) = run_watched(graph, inputs, [_conv_watch])
    return {name: w.state for name, w in watches.items()}


def observe(graph: Graph, inputs: np.ndarray) -> tuple[dict[str, StateRange], dict[str, SiliconCheck]]:
    """:func:`observe_state` and snnc.hwsim.divergence's silicon check, per population, in one pass."""
    state, silicon = run_watched(graph, inputs, [_conv_watch, silicon_watch])
    return ({name: w.state for name, w in state.items()}, {name: w.check for name, w in silicon.items()})


def _conv_watch(pop: Population, trains: dict[str, torch.Tensor], batch: int, steps: int) -> StateWatch:
    """A watch for ``pop`` that already holds its convolutions' wraps (their sources have run:
    convolutions are never on a cycle)."""
    neu = pop.neuron
    assert isinstance(neu, QCubaLIF)
    state = StateRange(neu.name, batch, steps)
    for syn, src in pop.feedforward_inputs:
        if isinstance(syn, QConv):
            delayed = delayed_train(trains[src])
            if conv_bound(syn, _top(delayed)) >= STATE_LIMIT:   # below, the wrap is the identity
                exact = _conv(delayed, syn, wrap=False)
                bad = (exact >= STATE_LIMIT) | (exact < -STATE_LIMIT)
                state.conv_wrapped += int(bad.sum())
                state.note(f"{syn.name} output wrapped", bad, None)
    return StateWatch(state)

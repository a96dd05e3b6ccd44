"""NeuroBench's metrics of a compiled fixed-point graph, as NeuroBench 2.3.0 defines them.

NeuroBench (Yik et al., Nature Communications 2025; PyPI ``neurobench``, Apache-2.0) is how the field
reports what a spiking network costs. Its harness (``neurobench.benchmarks.Benchmark``) measures a
PyTorch module through forward hooks: it recognises connection layers by class (``nn.Linear``,
``nn.Conv1d/2d/3d``, RNN layers and cells: ``neurobench/blocks/layer.py``) and activation layers by
class (``nn.ReLU``, ``nn.Sigmoid``, snnTorch neurons, or a class registered with
``NeuroBenchModel.add_activation_module``). snnc's graphs are not PyTorch modules, so this module
gives both sides of a like-for-like comparison:

* :func:`torch_equivalent`: a ``torch.nn.Module`` built from the compiled integers (one ``nn.Linear``
  or ``nn.Conv2d`` per synapse node, holding the integer weights, and one :class:`CubaLIFNeurons` per
  population that steps hwsim's own ``_LifStepper``). Its spikes equal hwsim's on every population
  (tests/test_neurobench.py), so NeuroBench's harness can be run on it unchanged.
* :func:`neurobench_metrics`: the same numbers computed from the graph and hwsim's spike trains,
  vectorised and exact (integer counts; the only floats are NeuroBench's own final divisions), for
  report.json, without PyTorch hooks or the ``neurobench`` package. The tests assert they equal
  what the harness reports on the equivalent model.

Timing of the equivalent model (the chip's, compiler/ir.py): every synapse delays one step, so at
step ``t`` every connection layer is called on its source's spikes of step ``t - 1`` (zeros at
``t = 0``; the input's ``x[t - 1]``), for every population at once (lock-step; a recurrent synapse is
no different from a feed-forward one), and then every population steps. Each connection layer is
therefore called ``T`` times per batch, on (batch, n_in) tensors, as an snnTorch model stepped by
``neurobench.models.SNNTorchModel`` would be. A Dense with synaptic delays (compiler/ir.py) is called
the same way (its ops counted when the spike is received, as hwsim counts them) and holds its delayed
sums in a buffer until they arrive (``TorchEquivalent._deliver``); its delays are a uint8 buffer.
"""
from __future__ import annotations

import dataclasses
import re
from typing import Any, Mapping

import numpy as np
import torch
from torch import nn

from snnc.compiler.ir import Graph, QConv, QCubaLIF, QDense
from snnc.hwsim.sim import (HwSimResult, _exact_dtype, _exact_float_math, _LifStepper, chunk_size, conv_bound,
                            delayed_train, fan_out, lava_weights, shift_signed, synaptic_input, wrap24)

NEUROBENCH_VERSION = "2.3.0"
CHUNK_VALUES = 2**23      # input values per chunk when counting ops (64 MiB of float64)
#: NeuroBench's files, relative to the installed package, that each figure follows.
SOURCE = {
    "package": f"neurobench {NEUROBENCH_VERSION} (Yik et al., Nature Communications 2025; Apache-2.0)",
    "Footprint": "neurobench/metrics/static/footprint.py:17-25",
    "ParameterCount": "neurobench/metrics/static/parameter_count.py:17",
    "ConnectionSparsity": "neurobench/metrics/static/connection_sparsity.py:46-49,105-116; blocks/layer.py:3-8",
    "ActivationSparsity": "neurobench/metrics/workload/activation_sparsity.py:36-55; "
                          "metrics/manager/workload_manager.py:145-149; models/neurobench_model.py:59-89",
    "SynapticOperations": "neurobench/metrics/workload/synaptic_operations.py:55-72,92-95; "
                          "metrics/utils/layers/macs.py:7-21,178-198; metrics/utils/layers/input.py:31-60; "
                          "metrics/utils/layers/binary_copy.py:6-41; models/neurobench_model.py:91-112",
    "MembraneUpdates": "neurobench/metrics/workload/membrane_updates.py:38-59,70-75; hooks/neuron.py:38,40-83",
}
DEFINITIONS = {
    "Footprint": "bytes of every parameter and buffer of the equivalent torch model (numel x element size): "
                 "float32 weights and neuron biases (float64 for a synapse whose exact sum could reach 2**24), "
                 "int32 registers du, dv, vth, bias_exp per population and weight_exp per Dense synapse, "
                 "and a uint8 delay per synapse of a Dense with synaptic delays. "
                 "Not the chip's synaptic memory (report['mapping']).",
    "ParameterCount": "parameters of the equivalent model: every synapse weight (zeros included) plus one bias "
                      "per neuron; registers are buffers, not parameters.",
    "ConnectionSparsity": "zero weights / all weights of the connection layers (nn.Linear, nn.Conv2d: every "
                          "synapse node, recurrent ones included; biases not counted), computed as NeuroBench "
                          "does: a float32 ratio rounded to 4 decimals.",
    "ActivationSparsity": "1 - non-zero / all activation outputs, over every population (activation layer), "
                          "timestep and sample; the input is not an activation layer and is excluded.",
    "SynapticOperations": "for every call of a connection layer (each synapse, each timestep, each batch): its "
                          "input and weights binarised (non-zero -> 1) and re-run, summed: an op per non-zero "
                          "input per non-zero weight of its fan-out (conv padding taps are zeros and count "
                          "nothing). A call whose input is all in {-1, 0, 1} counts as ACs, any other (graded "
                          "input) as MACs. Dense: the same with input and weights all ones (zero weights "
                          "counted; conv taps that land in the padding not). Totals / samples.",
    "MembraneUpdates": "per population and batch: all neurons at the first timestep, then the neurons whose "
                       "membrane state v (held after the step, reset included) differs from the step before; "
                       "total / samples. NeuroBench's harness measures it on snnTorch neurons only "
                       "(hooks/neuron.py:38); torch_equivalent(graph, snntorch_neurons=True) makes the "
                       "harness measure it on snnc's neurons.",
}
NOT_COMPUTED = {
    "NeuronOperations": "NeuroBench prices neuron updates from a per-class table of snnTorch neuron types (Leaky, "
                        "Synaptic, Lapicque, Alpha; metrics/workload/neuron_operations.py:6-23,110-117); snnc's "
                        "integer CUBA-LIF is none of them, and choosing a row would be an invented number.",
}
PER_SAMPLE = ("A sample is one input sequence of T timesteps (one row of the DataLoader's batch). "
              "SynapticOperations and MembraneUpdates are totals over every timestep, layer and sample "
              "divided by the number of samples (AccumulatedMetric.compute); ActivationSparsity is the "
              "batch-size-weighted mean of per-batch ratios, which with equal T is the ratio over all "
              "samples, timesteps and layers; the static metrics describe the model.")


# ----------------------------------------------------------------------------- the equivalent model
def _input_top(graph: Graph) -> int:
    """The largest value the input delivers: 1 for spikes, 2**bits - 1 for graded input."""
    return 2 ** graph.input.bits - 1 if graph.input.bits else 1


def _tops(graph: Graph) -> dict[str, int]:
    tops = {p.name: 1 for p in graph.populations()}
    tops[graph.input.name] = _input_top(graph)
    return tops


def synapse_dtype(syn: QDense | QConv, top: int) -> torch.dtype:
    """The float type a connection layer holds its integer weights in: float32 (what a PyTorch user's
    model holds, and what NeuroBench's Footprint then sees), float64 where an exact sum could reach
    2**24 (hwsim's own rule, ``_exact_dtype``), so that the module's arithmetic stays exact."""
    if isinstance(syn, QConv):
        return _exact_dtype(conv_bound(syn, top))
    return _exact_dtype(int(np.abs(syn.weight).max(initial=0)) * syn.in_size * top)


def chip_weights(syn: QDense | QConv, neuron: QCubaLIF) -> np.ndarray:
    """The integer weights the chip uses: Lava's Dense clip-and-floor (the identity for compiled
    graphs), a Conv's weights as they are (compiler/ir.py)."""
    return syn.weight if isinstance(syn, QConv) else lava_weights(syn.weight, neuron.fmt)


class IntLinear(nn.Linear):
    """A Dense synapse node as ``nn.Linear`` (no bias: the bias is the neuron's), holding the compiled
    integer weights in a float type; ``weight_exp`` is a buffer the caller applies after the layer, so
    NeuroBench's binarised re-run of the layer counts synapses, not shifted sums."""

    def __init__(self, syn: QDense, weight: np.ndarray, dtype: torch.dtype):
        super().__init__(syn.in_size, syn.out_size, bias=False, dtype=dtype)
        with torch.no_grad():
            self.weight.copy_(torch.from_numpy(weight.astype(np.float64)))
        self.weight.requires_grad_(False)
        self.register_buffer("weight_exp", torch.tensor(syn.weight_exp, dtype=torch.int32))
        if syn.delay is not None:   # synaptic delays (compiler/ir.py): uint8 (out, in), applied by the caller
            self.register_buffer("delay", torch.from_numpy(syn.delay.copy()))
        else:
            self.delay = None

    def delay_groups(self) -> list[tuple[int, torch.Tensor]]:
        """[(d, W_d)] of this layer's current weights: the synapses of delay ``d`` (empty without delays)."""
        if self.delay is None:
            return []
        return [(int(d), torch.where(self.delay == d, self.weight, torch.zeros((), dtype=self.weight.dtype)))
                for d in torch.unique(self.delay).tolist()]


class IntConv2d(nn.Conv2d):
    """A Conv synapse node as ``nn.Conv2d`` (PyTorch's cross-correlation and layout, as compiler/ir.py
    defines it); the caller wraps the output to 24 bits as Lava's Conv does."""

    def __init__(self, syn: QConv, dtype: torch.dtype):
        super().__init__(syn.in_shape[0], syn.out_shape[0], syn.kernel, stride=syn.stride, padding=syn.padding,
                         dilation=syn.dilation, groups=syn.groups, bias=False, dtype=dtype)
        with torch.no_grad():
            self.weight.copy_(torch.from_numpy(syn.weight.astype(np.float64)))
        self.weight.requires_grad_(False)
        self.in_shape = tuple(syn.in_shape)


class CubaLIFNeurons(nn.Module):
    """One population of snnc's integer CUBA-LIF neurons, one timestep per call: hwsim's
    ``_LifStepper`` (the same code hwsim runs, so the same spikes). ``bias`` (the bias mantissas) is a
    parameter, the compartment registers ``du``, ``dv``, ``vth``, ``bias_exp`` are int32 buffers; the
    state is not a buffer (it depends on the batch). ``mem`` is v after the last step (reset included),
    what NeuroBench's MembraneUpdates reads from an snnTorch neuron."""

    def __init__(self, neuron: QCubaLIF):
        super().__init__()
        self._build(neuron)

    def _build(self, neuron: QCubaLIF) -> None:
        self.node = neuron
        self.bias = nn.Parameter(torch.from_numpy(neuron.bias_mant.astype(np.float32)), requires_grad=False)
        for reg in ("du", "dv", "vth", "bias_exp"):
            self.register_buffer(reg, torch.tensor(getattr(neuron, reg), dtype=torch.int32))
        self._lif: _LifStepper | None = None
        self._t = 0
        self.mem: torch.Tensor | None = None

    def begin(self, batch: int, steps: int, device: torch.device) -> None:
        """Zero state for a batch of ``steps`` timesteps (every sample starts from zero, compiler/ir.py),
        from the module's own parameters and registers."""
        node = dataclasses.replace(
            self.node, bias_mant=self.bias.detach().round().to(torch.int64).cpu().numpy(),
            du=int(self.du), dv=int(self.dv), vth=int(self.vth), bias_exp=int(self.bias_exp))
        self._lif = _LifStepper(node, batch, steps, device)
        self._t = 0
        self.mem = self._lif.v

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        """Synaptic input ``a`` (batch, n) int64 of this step -> spikes (batch, n) float32."""
        lif = self._lif
        if lif is None or self._t >= lif.out.shape[1]:
            raise RuntimeError("CubaLIFNeurons: call begin(batch, steps, device) before each sequence")
        lif.step(self._t, a)
        self._t += 1
        self.mem = lif.v
        return lif.out[:, self._t - 1].to(torch.float32)

    @property
    def spikes(self) -> torch.Tensor:
        """(batch, T, n) bool spikes of the sequence run so far."""
        assert self._lif is not None
        return self._lif.out


def _key(name: str, taken: set[str]) -> str:
    """A ModuleDict key for a node name (no dots), unique."""
    key = re.sub(r"[^0-9A-Za-z_]", "_", name) or "_"
    base, i = key, 1
    while key in taken:
        key, i = f"{base}_{i}", i + 1
    taken.add(key)
    return key


class TorchEquivalent(nn.Module):
    """A compiled graph as a torch module (see :func:`torch_equivalent`). ``forward`` maps input
    (batch, T, n_in), binary spikes or graded integers, to the output population's spikes
    (batch, T, n_out) float32; :meth:`simulate` returns every population's spikes."""

    def __init__(self, graph: Graph, *, snntorch_neurons: bool = False):
        super().__init__()
        if not graph.is_fixed_point:
            raise ValueError("torch_equivalent needs a fixed-point graph: quantize the graph first")
        tops, taken = _tops(graph), set()
        lif_cls = _snntorch_lif_class() if snntorch_neurons else CubaLIFNeurons
        self.synapses = nn.ModuleDict()
        self.neurons = nn.ModuleDict()
        self.input_name, self.input_size = graph.input.name, graph.input.size
        self.output_name = graph.output.name
        self.sizes = {p.name: p.neuron.size for p in graph.populations()}
        self.wiring: list[tuple[str, str, list[tuple[str, str]]]] = []   # (population, key, [(synapse key, source)])
        for pop in graph.populations():
            neu = pop.neuron
            assert isinstance(neu, QCubaLIF)
            wires = []
            for syn, src in pop.inputs:
                key = _key(syn.name, taken)
                dtype = synapse_dtype(syn, tops[src])  # type: ignore[arg-type]
                self.synapses[key] = (IntConv2d(syn, dtype) if isinstance(syn, QConv)
                                      else IntLinear(syn, chip_weights(syn, neu), dtype))  # type: ignore[arg-type]
                wires.append((key, src))
            nkey = _key(neu.name, taken)
            self.neurons[nkey] = lif_cls(neu)
            self.wiring.append((neu.name, nkey, wires))

    def _deliver(self, key: str, s: torch.Tensor, pending: dict[str, Any]) -> torch.Tensor:
        """One synapse's input to its population this step from its source's previous step:
        ``(W @ s) << weight_exp`` (Dense) or ``wrap24(conv(W, s))`` (Conv), int64 (batch, n_out).

        A Dense with synaptic delays is still called once per step on ``s`` (NeuroBench's hooks count
        its synaptic ops at receipt, as hwsim does); each delay group's sum ``d`` is then shifted on its
        own (Lava's DelayDense, SP/lava/proc/dense/models.py:339-352) into ``pending[key]`` (the groups
        and a (batch, max_delay + 1, n_out) buffer, like Lava's ``a_buff``), whose first slot is
        delivered now and the rest move one step closer."""
        layer = self.synapses[key]
        if isinstance(layer, IntConv2d):
            y = layer(s.to(layer.weight.dtype).reshape(len(s), *layer.in_shape))
            return wrap24(y.reshape(len(s), -1).to(torch.int64))
        assert isinstance(layer, IntLinear)
        y = layer(s.to(layer.weight.dtype))
        if key not in pending:
            return shift_signed(y.to(torch.int64), int(layer.weight_exp))
        groups, buf = pending[key]
        for d, w_d in groups:
            buf[:, d] += shift_signed(nn.functional.linear(s.to(w_d.dtype), w_d).to(torch.int64), int(layer.weight_exp))
        now = buf[:, 0].clone()
        buf[:, :-1] = buf[:, 1:].clone()
        buf[:, -1] = 0
        return now

    def simulate(self, x: torch.Tensor | np.ndarray) -> dict[str, torch.Tensor]:
        """Every population's spikes (batch, T, n) bool for input ``x`` (batch, T, n_in)."""
        x = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x)
        if x.ndim != 3 or x.shape[2] != self.input_size:
            raise ValueError(f"input must have shape (batch, T, {self.input_size}), got {tuple(x.shape)}")
        batch, steps = int(x.shape[0]), int(x.shape[1])
        dev = next(iter(self.neurons.values())).bias.device
        x = x.to(dev)
        for lif in self.neurons.values():
            lif.begin(batch, steps, dev)
        prev = {name: torch.zeros((batch, n), dtype=torch.float32, device=dev) for name, n in self.sizes.items()}
        prev[self.input_name] = torch.zeros((batch, self.input_size), dtype=x.dtype, device=dev)
        pending: dict[str, Any] = {}           # delayed Dense: its delay groups and the sums on their way
        for key, layer in self.synapses.items():
            if isinstance(layer, IntLinear) and layer.delay is not None:
                groups = layer.delay_groups()
                pending[key] = (groups, torch.zeros((batch, max(d for d, _ in groups) + 1, layer.out_features),
                                                    dtype=torch.int64, device=dev))
        with torch.no_grad(), _exact_float_math():
            for t in range(steps):
                acts = []
                for name, _, wires in self.wiring:   # every synapse reads step t - 1: order is free
                    a = torch.zeros((batch, self.sizes[name]), dtype=torch.int64, device=dev)
                    for key, src in wires:
                        a += self._deliver(key, prev[src], pending)
                    acts.append(a)
                now = {name: self.neurons[nkey](a) for (name, nkey, _), a in zip(self.wiring, acts)}
                now[self.input_name] = x[:, t]
                prev = now
        return {name: self.neurons[nkey].spikes for name, nkey, _ in self.wiring}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.simulate(x)[self.output_name].to(torch.float32)


def torch_equivalent(graph: Graph, *, snntorch_neurons: bool = False) -> TorchEquivalent:
    """A ``torch.nn.Module`` computing exactly what hwsim computes for ``graph``, built from the
    compiled integers so that NeuroBench's harness recognises its layers: ``nn.Linear`` /
    ``nn.Conv2d`` connection layers (float32 weights holding the integers, see
    :func:`synapse_dtype`) and :class:`CubaLIFNeurons` activation layers (register the class with
    ``NeuroBenchModel.add_activation_module``, or use :func:`neurobench_model`).

    ``snntorch_neurons``: the neurons are also ``snntorch.SpikingNeuron`` instances (snnTorch must
    be installed), which is what NeuroBench's MembraneUpdates hook requires (hooks/neuron.py:38).
    snnTorch adds three buffers per population (threshold and graded_spikes_factor, float32;
    reset_mechanism_val, int64: 16 bytes), so Footprint differs from the default model; every other
    figure is the same.
    """
    return TorchEquivalent(graph, snntorch_neurons=snntorch_neurons)


_SNNTORCH_CLASS: type | None = None


def _snntorch_lif_class() -> type:
    """:class:`CubaLIFNeurons` as an ``snntorch.SpikingNeuron`` (created once, on first use):
    ``init_hidden=True, output=False`` makes NeuroBench record the returned spikes as they are
    (hooks/neuron.py:69-75), and ``mem`` is read before and after every call."""
    global _SNNTORCH_CLASS
    if _SNNTORCH_CLASS is None:
        import snntorch

        class SnnTorchCubaLIF(CubaLIFNeurons, snntorch.SpikingNeuron):
            def __init__(self, neuron: QCubaLIF):
                snntorch.SpikingNeuron.__init__(self, threshold=float(neuron.vth << neuron.fmt.vth_shift),
                                                init_hidden=True, reset_mechanism="zero", output=False)
                snntorch.SpikingNeuron.instances.remove(self)   # snnTorch's global registry would keep it alive
                self._build(neuron)

        _SNNTORCH_CLASS = SnnTorchCubaLIF
    return _SNNTORCH_CLASS


def neurobench_model(graph: Graph, *, snntorch_neurons: bool = False) -> Any:
    """``neurobench.models.TorchModel`` around :func:`torch_equivalent` with the neuron class
    registered as an activation module: what ``neurobench.benchmarks.Benchmark`` takes."""
    from neurobench.models import TorchModel

    net = torch_equivalent(graph, snntorch_neurons=snntorch_neurons)
    model = TorchModel(net)
    model.add_activation_module(CubaLIFNeurons)
    return model


# ----------------------------------------------------------------------------- the metrics from hwsim's spikes
def _trains(graph: Graph, result_or_spikes: HwSimResult | Mapping[str, np.ndarray],
            x: np.ndarray) -> dict[str, torch.Tensor]:
    spikes = result_or_spikes.spikes if isinstance(result_or_spikes, HwSimResult) else result_or_spikes
    pops = graph.populations()
    missing = [p.name for p in pops if p.name not in spikes]
    if missing:
        raise ValueError(f"NeuroBench's metrics need every population's spikes; missing {missing} "
                         f"(run hwsim without keep=)")
    trains = {graph.input.name: torch.from_numpy(x)}
    for p in pops:
        s = np.asarray(spikes[p.name])
        if s.shape != (*x.shape[:2], p.neuron.size):
            raise ValueError(f"{p.name}: spikes of shape {s.shape}, expected {(*x.shape[:2], p.neuron.size)}")
        trains[p.name] = torch.from_numpy(s.astype(bool))
    return trains


def nonzero_fan_out(syn: QDense | QConv, weight: np.ndarray) -> torch.Tensor:
    """Per input neuron, its synapses with a non-zero weight (float64 (n_in,), exact integers): what
    NeuroBench's binarised layer counts for one non-zero input. For a conv, the gradient of the
    summed binarised convolution with respect to its input, so taps that land in the padding (or
    past the last stride) count nothing, exactly as in the zero-padded forward pass."""
    nz = torch.from_numpy((weight != 0).astype(np.float64))
    if isinstance(syn, QDense):
        return nz.sum(dim=0)
    ones = torch.ones((1, *syn.out_shape), dtype=torch.float64)
    g = torch.nn.grad.conv2d_input((1, *syn.in_shape), nz, ones, stride=syn.stride, padding=syn.padding,
                                   dilation=syn.dilation, groups=syn.groups)
    return g.reshape(-1)


def dense_synapses(syn: QDense | QConv) -> int:
    """The synapses NeuroBench's Dense counts for one sample and one call: all weights of a Linear;
    for a Conv, the kernel taps that land inside the input (its all-ones input is zero-padded)."""
    return int(fan_out(syn).sum()) if isinstance(syn, QConv) else int(syn.weight.size)


def _ops_per_call(train: torch.Tensor, fan: torch.Tensor) -> torch.Tensor:
    """(batch, T) float64 (exact integers): a synapse's effective ops for each sample at each step,
    its non-zero inputs of step t - 1 times their non-zero fan-out; in row chunks of about
    CHUNK_VALUES input values, so a long run does not hold a float64 copy of a whole spike train."""
    rows = max(1, CHUNK_VALUES // max(1, train.shape[1] * train.shape[2]))
    return torch.cat([(delayed_train(train[i:i + rows]) != 0).to(torch.float64) @ fan
                      for i in range(0, len(train), rows)])


def _graded_calls(x: torch.Tensor, batch_size: int) -> torch.Tensor:
    """(calls, T) bool: whether the connection-layer call of batch ``c`` at step ``t`` gets an input
    outside {-1, 0, 1} (NeuroBench's test for MACs rather than ACs, utils/layers/input.py:54-55);
    the input of step ``t`` is x[t - 1]."""
    d = delayed_train(x)
    per_sample = ((d != 0) & (d != 1) & (d != -1)).any(dim=2)                 # (batch, T)
    return torch.stack([per_sample[i:i + batch_size].any(dim=0) for i in range(0, len(x), batch_size)])


def _membrane_updates(graph: Graph, trains: dict[str, torch.Tensor], x: np.ndarray) -> dict[str, int]:
    """Per population: batch x n for the first step plus the (sample, neuron, step >= 1) whose v
    changed in the step, summed over samples. v is recomputed by hwsim's ``_LifStepper`` from the
    synaptic input of the known spike trains (a recurrent synapse's source train is known too), and
    the recomputed spikes must equal the given ones."""
    batch, steps = x.shape[:2]
    step = chunk_size(graph, steps, 1024)
    out: dict[str, int] = {}
    with _exact_float_math():
        for pop in graph.populations():
            neu = pop.neuron
            assert isinstance(neu, QCubaLIF)
            total = 0
            for i in range(0, batch, step):
                part = {k: v[i:i + step] for k, v in trains.items()}
                shape = (len(part[graph.input.name]), steps)
                a = synaptic_input(pop, part, shape)[0]
                lif = _LifStepper(neu, shape[0], steps, a.device)
                for t in range(steps):
                    before = lif.v
                    lif.step(t, a[:, t])
                    total += shape[0] * neu.size if t == 0 else int((lif.v != before).sum())
                if not torch.equal(lif.out, part[pop.name]):
                    raise ValueError(f"{pop.name}: the spikes given are not what this graph computes from these "
                                     f"inputs (hwsim's neuron update disagrees)")
            out[pop.name] = total
    return out


def _round_like_neurobench(zeros: int, weights: int) -> float:
    """``round((count_zeros / count_weights).item(), 4)`` with NeuroBench's types: an int64 tensor over
    an int, which torch divides in float32 (connection_sparsity.py:116)."""
    return round((torch.tensor(zeros) / weights).item(), 4)


def neurobench_metrics(graph: Graph, result_or_spikes: HwSimResult | Mapping[str, np.ndarray], inputs: np.ndarray,
                       *, batch_size: int | None = None,
                       membrane_updates: bool | Mapping[str, int] = True) -> dict[str, Any]:
    """NeuroBench 2.3.0's metrics of ``graph`` run on ``inputs`` (batch, T, n_in), from hwsim's spikes
    (an ``HwSimResult`` of ``HwSim.from_graph(graph).run(inputs)`` with every population kept, or
    a dict population -> (batch, T, n) spikes). Equal to what ``neurobench.benchmarks.Benchmark``
    reports for :func:`neurobench_model` (graph) over a DataLoader of ``inputs`` in batches of
    ``batch_size`` (default: one batch; it changes nothing unless the input is graded, where
    NeuroBench decides ACs or MACs per batch and step).

    Returns a JSON-ready dict: ``metrics`` shaped as ``Benchmark.run()``'s result, ``counts`` (the
    exact integers behind them), ``layers`` (per population and synapse), and notes saying what is
    counted. ``membrane_updates=False`` skips MembraneUpdates; True recomputes v from the spikes
    (about one more run of the torch engine); a mapping population -> count takes the counts already
    made from the same run (``snnc.hwsim.counts.count``'s ``LayerCounts.membrane_updates``).
    """
    x = graph.input.check_values(inputs)
    samples, steps = int(x.shape[0]), int(x.shape[1])
    if samples == 0:
        raise ValueError("NeuroBench's metrics need at least one sample")
    bs = samples if batch_size is None else int(batch_size)
    if bs < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    trains = _trains(graph, result_or_spikes, x)
    tops = _tops(graph)
    graded = _graded_calls(trains[graph.input.name], bs) if graph.input.bits else None
    n_calls = -(-samples // bs)
    call_of = torch.arange(samples) // bs

    params = weights = zeros = 0
    param_bytes = buffer_bytes = 0
    macs = acs = dense = 0
    spikes_nz = activations = 0
    layers: list[dict[str, Any]] = []
    for pop in graph.populations():
        neu = pop.neuron
        assert isinstance(neu, QCubaLIF)
        syn_rows = []
        for syn, src in pop.inputs:
            w = chip_weights(syn, neu)  # type: ignore[arg-type]
            dtype = synapse_dtype(syn, tops[src])  # type: ignore[arg-type]
            itemsize = torch.empty((), dtype=dtype).element_size()
            params += w.size
            param_bytes += w.size * itemsize
            buffer_bytes += 4 if isinstance(syn, QDense) else 0       # weight_exp (int32)
            if isinstance(syn, QDense) and syn.delay is not None:
                buffer_bytes += int(syn.delay.size)                    # delays (uint8 per synapse)
            z = int((w == 0).sum())
            weights, zeros = weights + int(w.size), zeros + z
            fan = nonzero_fan_out(syn, w)  # type: ignore[arg-type]
            per = _ops_per_call(trains[src], fan)                      # (batch, T) ops of each sample and call
            if graded is not None and src == graph.input.name:
                per_call = torch.zeros((n_calls, steps), dtype=torch.float64).index_add_(0, call_of, per)
                mac = int(per_call[graded].sum().round())
                ac = int(per_call[~graded].sum().round())
            else:
                mac, ac = 0, int(per.sum().round())
            d = dense_synapses(syn) * steps * samples  # type: ignore[arg-type]
            macs, acs, dense = macs + mac, acs + ac, dense + d
            syn_rows.append({"name": syn.name, "source": src, "layer": "Conv2d" if isinstance(syn, QConv) else "Linear",
                             "recurrent": syn.name in pop.recurrent, "dtype": str(dtype).replace("torch.", ""),
                             "weights": int(w.size), "zero_weights": z,
                             "Effective_MACs": mac / samples, "Effective_ACs": ac / samples, "Dense": d / samples})
        params += neu.size
        param_bytes += 4 * neu.size                                    # bias (float32)
        buffer_bytes += 4 * 4                                          # du, dv, vth, bias_exp (int32)
        s = trains[pop.name]
        nnz, numel = int(s.sum()), int(s.numel())
        spikes_nz, activations = spikes_nz + nnz, activations + numel
        layers.append({"name": pop.name, "neurons": neu.size, "synapses": syn_rows,
                       "ActivationSparsity": (numel - nnz) / numel})

    if isinstance(membrane_updates, Mapping):
        mem: dict[str, int] | None = {p.name: int(membrane_updates[p.name]) for p in graph.populations()}
    else:
        mem = _membrane_updates(graph, trains, x) if membrane_updates else None
    if mem is not None:
        for row in layers:
            row["MembraneUpdates"] = mem[row["name"]] / samples
    metrics = {
        "Footprint": param_bytes + buffer_bytes,
        "ParameterCount": params,
        "ConnectionSparsity": _round_like_neurobench(zeros, weights),
        "ActivationSparsity": (activations - spikes_nz) / activations,
        "SynapticOperations": {"Effective_MACs": macs / samples, "Effective_ACs": acs / samples,
                               "Dense": dense / samples},
        "MembraneUpdates": None if mem is None else sum(mem.values()) / samples,
    }
    return {
        "metrics": metrics,
        "counts": {"samples": samples, "timesteps": steps, "batch_size": bs,
                   "parameter_bytes": param_bytes, "buffer_bytes": buffer_bytes,
                   "weights": weights, "zero_weights": zeros,
                   "activations": activations, "nonzero_activations": spikes_nz,
                   "macs": macs, "acs": acs, "dense_ops": dense,
                   "membrane_updates": None if mem is None else sum(mem.values())},
        "layers": layers,
        "model": {"builder": "snnc.hwsim.neurobench.torch_equivalent",
                  "weight_dtype": sorted({r["dtype"] for lay in layers for r in lay["synapses"]}),
                  "note": "the equivalent torch model holds the compiled integer weights as float32 parameters "
                          "(4 bytes each; the chip holds 8-bit weights: see report['mapping'] for its memory)"},
        "per_sample": PER_SAMPLE,
        "definitions": DEFINITIONS,
        "source": SOURCE,
        "not_computed": NOT_COMPUTED,
    }

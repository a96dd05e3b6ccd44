"""A spiking network as a chain of deployable layers, built from (and described by) plain data.

Layers are population layers (:class:`CubaDense`, :class:`CubaConv`, :class:`ResidualBlock`, each
with its own neurons) and transforms without neurons (:class:`SumPool`, :class:`Flatten`,
:class:`SpikeDropout`). Populations are named in order ``lif1, lif2, ...`` (NeuNorm's auxiliary
population of ``lifK`` is ``auxK``); the compiler's graph uses the same names.
"""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn

from snnc.errors import UnsupportedLayerError
from snnc.models.conv import CubaConv, Flatten, ResidualBlock, SpikeDropout, SpikingPool, SumPool
from snnc.models.neurons import CubaDense, CubaNeurons, CubaRecurrentDense
from snnc.models.readout import Readout
from snnc.models.rules import Rule, STBPRect, make_rule
from snnc.models.zoo import LAYOUTS, build_layers

#: layer ``kind`` in a spec -> constructor. The compiler's frontend has the matching table.
LAYER_KINDS: dict[str, Callable[..., nn.Module]] = {
    "cuba_dense": CubaDense, "cuba_recurrent_dense": CubaRecurrentDense, "cuba_conv": CubaConv, "residual": ResidualBlock, "sum_pool": SumPool,
    "flatten": Flatten, "dropout": SpikeDropout, "spiking_pool": SpikingPool}
POPULATION_LAYERS = (CubaDense, CubaConv, ResidualBlock)
TRANSFORMS = (SumPool, Flatten, SpikeDropout)
#: What snnc layers are, in one line (errors of SpikingNet and of the compiler's frontend quote it).
SUPPORTED_LAYERS = ("CubaDense (Linear synapses + CUBA-LIF neurons), CubaRecurrentDense (CubaDense plus recurrent "
                    "synapses onto itself), CubaConv (Conv2d + CUBA-LIF, optional "
                    "BatchNorm), ResidualBlock, SumPool, SpikingPool, Flatten, SpikeDropout (all importable from "
                    "snnc.models), and torch's nn.Flatten / nn.Dropout / nn.Identity (converted)")
#: torch layer -> the snnc layer that does its job on the chip
LAYER_ADVICE = {
    "MaxPool2d": "max pooling of spikes has no exact linear form on Loihi; use snnc.models.SumPool (sum pooling, "
                 "folded into the next layer) or SpikingPool (pooling neurons)",
    "AvgPool2d": "use snnc.models.SumPool: average pooling is sum pooling with 1/k^2 in the next layer's weights",
    "AdaptiveAvgPool2d": "use snnc.models.SumPool with a fixed kernel",
    "Conv2d": "use snnc.models.CubaConv (a Conv2d with its CUBA-LIF neurons)",
    "Linear": "use snnc.models.CubaDense (a Linear layer with its CUBA-LIF neurons)",
    "BatchNorm2d": "use CubaConv(..., batch_norm=True): snnc folds it into the weights and bias",
    "ReLU": "a spiking layer needs no activation: CubaDense / CubaConv hold their neurons",
    "Leaky": "snnTorch's Leaky neurons belong to the layer before them: use snnc.models.CubaDense or CubaConv "
             "(current_decay=1.0, voltage_decay=1-beta), or export the snnTorch model to NIR (docs/from-snntorch.md)",
    "LIFNode": "SpikingJelly's LIF neurons belong to the layer before them: use snnc.models.CubaDense or CubaConv "
               "(current_decay=1.0, voltage_decay=1/tau)",
}


#: torch layers SpikingNet takes in place of its own (converted by :func:`adopt_torch_layers`)
TORCH_SHAPE_LAYERS = (nn.Flatten, nn.Dropout, nn.Identity)


def adopt_torch_layers(layers: list[nn.Module]) -> list[nn.Module]:
    """torch's shape-only layers as their snnc counterparts: ``nn.Flatten`` -> :class:`Flatten` of the
    previous layer's shape (dropped in first place: snnc's input is already flat), ``nn.Dropout`` ->
    :class:`SpikeDropout`, ``nn.Identity`` dropped. Anything else is left for the chain check."""
    out: list[nn.Module] = []
    for layer in layers:
        prev = out[-1] if out else None
        shape = getattr(prev, "out_shape", None) or ((prev.out_features,) if hasattr(prev, "out_features") else None)
        if isinstance(layer, nn.Identity) or (isinstance(layer, nn.Flatten) and prev is None):
            continue
        if isinstance(layer, nn.Flatten) and shape is not None:
            layer = Flatten(shape)
        elif isinstance(layer, nn.Dropout) and shape is not None:
            layer = SpikeDropout(shape, p=layer.p)
        out.append(layer)
    return out


def layer_populations(layer: nn.Module) -> list[CubaNeurons]:
    """The neuron populations a layer owns, in order (NeuNorm's auxiliary one first)."""
    if isinstance(layer, ResidualBlock):
        return layer.populations()
    if isinstance(layer, CubaDense):
        return [layer.aux, layer] if layer.aux is not None else [layer]
    if isinstance(layer, CubaConv):
        return [layer]
    return []


#: What a layer constructor raises for parameter values it cannot use (a spec from a damaged or hand-edited
#: file: wrong types, empty or absurd sizes, zero fan-in, sizes torch cannot allocate even on the meta device).
_BAD_PARAMETERS = (TypeError, ValueError, KeyError, IndexError, ZeroDivisionError, OverflowError, RuntimeError)


def layer_from_spec(index: int, spec: dict[str, Any]) -> nn.Module:
    """Build one layer from its spec, with an error that names the layer and what is supported."""
    if not isinstance(spec, dict):
        raise UnsupportedLayerError(f"layer {index} is a {type(spec).__name__}, not a layer spec (a mapping with "
                                    f"'kind' and its parameters)")
    kind = spec.get("kind")
    if not isinstance(kind, str) or kind not in LAYER_KINDS:
        raise UnsupportedLayerError(
            f"layer {index} has kind '{str(kind)[:80]}', which snnc cannot build or compile. Supported layer "
            f"kinds: {', '.join(sorted(LAYER_KINDS))}. Convolution, pooling and other layers come "
            f"in later versions; remove the layer or replace it with a supported one.")
    params = {k: v for k, v in spec.items() if k != "kind"}
    if not all(isinstance(k, str) for k in params):
        raise UnsupportedLayerError(f"layer {index} ({kind}): parameter names must be strings")
    if "weight_scale" in params:   # checkpoints from before per-layer formats: the format they trained with, fixed
        params.setdefault("auto_scale", False)
    try:
        return LAYER_KINDS[kind](**params)
    except _BAD_PARAMETERS as e:
        raise UnsupportedLayerError(f"layer {index} ({kind}): bad parameters {_short(params)}: "
                                    f"{type(e).__name__}: {_short(e)}") from None


def _short(x: object, limit: int = 300) -> str:
    """``x`` in one short line (a spec from a file may hold huge values)."""
    text = " ".join(str(x).split())
    return text if len(text) <= limit else text[:limit] + "..."


class SpikingNet(nn.Module):
    """Feed-forward chain of CUBA-LIF layers; ``forward`` returns every layer's output trace.

    ``readout`` says how the last layer's activity becomes a class (``snnc.models.readout``).
    """

    def __init__(self, layers: "list[nn.Module] | nn.Sequential", *, hardware_exact: bool = True, rule: Rule | None = None,
                 readout: Readout | None = None):
        super().__init__()
        if isinstance(layers, nn.Module):
            layers = list(layers.children()) if isinstance(layers, nn.Sequential) else [layers]
        layers = adopt_torch_layers(list(layers))
        if not layers:
            raise UnsupportedLayerError(f"a SpikingNet needs at least one layer. Supported: {SUPPORTED_LAYERS}.")
        self.layers = nn.ModuleList(layers)
        self.hardware_exact = bool(hardware_exact)
        self.rule: Rule = rule or STBPRect()
        self.readout = readout or Readout()
        self._check_chain()
        last = self.layers[-1]
        if not isinstance(last, POPULATION_LAYERS):
            raise UnsupportedLayerError(f"the last layer is a {type(last).__name__}; a network ends in a layer "
                                        f"with neurons (CubaDense or CubaConv)")
        if last.spiking != self.readout.spiking:  # type: ignore[union-attr]
            raise UnsupportedLayerError(
                f"readout '{self.readout.kind}' needs a {'spiking' if self.readout.spiking else 'non-spiking'} "
                f"output layer, but the last layer has spiking={last.spiking}")  # type: ignore[union-attr]
        try:
            self.readout.classes(last.out_features)  # type: ignore[union-attr]
        except ValueError as e:
            raise UnsupportedLayerError(f"readout '{self.readout.kind}': {e}") from None
        if self.rule.custom_layer_backward:
            for i, layer in enumerate(self.layers):
                what = layer.elements() if hasattr(layer, "elements") else [type(layer).__name__]  # type: ignore[operator]
                if isinstance(layer, CubaRecurrentDense):
                    raise UnsupportedLayerError(
                        f"rule '{self.rule.name}' forms each layer's gradient from whole spike trains and has no "
                        f"gradient through recurrent synapses, so it cannot train layer {i} (CubaRecurrentDense): "
                        f"use a surrogate-gradient rule (e.g. --rule stbp-rect) with --arch rmlp, or --arch mlp.")
                if what:
                    raise UnsupportedLayerError(
                        f"rule '{self.rule.name}' computes its gradient from spike trains and cannot train layer "
                        f"{i} ({', '.join(what)}): use spiking layers with rate or event input (--readout rate "
                        f"or voting, --encoding rate).")

    def _check_chain(self) -> None:
        """Every layer takes what the previous one emits (sizes, and shapes where a layer needs them)."""
        kinds = (*POPULATION_LAYERS, *TRANSFORMS)
        for i, layer in enumerate(self.layers):
            if not isinstance(layer, kinds):
                kind = type(layer).__name__
                hint = LAYER_ADVICE.get(kind, "replace it with an snnc layer")
                raise UnsupportedLayerError(f"layer {i} is a {kind}, which snnc cannot deploy: {hint}. "
                                            f"Supported: {SUPPORTED_LAYERS}.")
        for i, (a, b) in enumerate(zip(self.layers[:-1], self.layers[1:]), start=1):
            if a.out_features != b.in_features:  # type: ignore[union-attr]
                raise UnsupportedLayerError(f"layer {i - 1} emits {a.out_features} values but layer {i} "  # type: ignore[union-attr]
                                            f"({type(b).__name__}) takes {b.in_features}")  # type: ignore[union-attr]
            want = getattr(b, "in_shape", None)
            have = getattr(a, "out_shape", None)
            if want is not None and not isinstance(b, (Flatten, SpikeDropout)) and have is not None \
                    and tuple(have) != tuple(want):
                raise UnsupportedLayerError(f"layer {i} ({type(b).__name__}) takes shape {tuple(want)} but layer "
                                            f"{i - 1} emits {tuple(have)}")

    def refit_formats(self) -> None:
        """Re-choose every automatic per-layer fixed-point format from the current weights (after each
        optimiser step of hardware-exact training; float models are calibrated by the compiler)."""
        if self.hardware_exact:
            for layer in self.layers:
                if isinstance(layer, POPULATION_LAYERS):
                    layer.refit_format()

    def named_populations(self) -> list[tuple[str, CubaNeurons]]:
        """(graph name, layer holding its neuron parameters) for every population, in order."""
        out: list[tuple[str, CubaNeurons]] = []
        k = 0
        for layer in self.layers:
            for pop in layer_populations(layer):
                if isinstance(layer, CubaDense) and pop is layer.aux:
                    out.append((f"aux{k + 1}", pop))
                else:
                    k += 1
                    out.append((f"lif{k}", pop))
        return out

    @property
    def input_size(self) -> int:
        return self.layers[0].in_features  # type: ignore[union-attr]

    @property
    def input_shape(self) -> tuple[int, ...]:
        """(C, H, W) when the first layer is convolutional (or pools), else (features,)."""
        shape = getattr(self.layers[0], "in_shape", None)
        return tuple(shape) if shape is not None else (self.input_size,)

    @property
    def input_encoding(self) -> str | None:
        """'analog' (encoding layer) or 'signed' when the first layer needs that code; None: the
        dataset's own ('rate' spikes, or 'events')."""
        first = self.layers[0]
        if not isinstance(first, CubaDense):
            return None
        return "analog" if first.input_bits else "signed" if first.signed_input else None

    @property
    def num_outputs(self) -> int:
        return self.readout.classes(self.layers[-1].out_features)  # type: ignore[union-attr]

    def spec(self) -> dict[str, Any]:
        return {"type": "chain", "hardware_exact": self.hardware_exact, "rule": self.rule.describe(),
                "readout": self.readout.to_json(), "layers": [layer.spec() for layer in self.layers]}  # type: ignore[operator]

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> "SpikingNet":
        """The network a spec describes; UnsupportedLayerError (or the rule's SnncError) for a spec of
        the wrong shape, so that a damaged checkpoint is reported, never a KeyError or TypeError."""
        if not isinstance(spec, dict):
            raise UnsupportedLayerError(f"the model spec is a {type(spec).__name__}, not a mapping")
        layer_specs = spec.get("layers", [])
        if not isinstance(layer_specs, list):
            raise UnsupportedLayerError(f"the model spec's 'layers' is a {type(layer_specs).__name__}, not a list")
        layers = [layer_from_spec(i, ls) for i, ls in enumerate(layer_specs)]
        if not layers:
            raise UnsupportedLayerError("the model spec has no layers")
        rule_spec = spec.get("rule") or {"name": "stbp-rect", "params": {}}
        if (not isinstance(rule_spec, dict) or not isinstance(rule_spec.get("name"), str)
                or not isinstance(rule_spec.get("params", {}), dict)
                or not all(isinstance(k, str) for k in rule_spec.get("params", {}))):
            raise UnsupportedLayerError(f"bad rule {_short(rule_spec)}: expected {{'name': str, 'params': {{...}}}}")
        hardware_exact = spec.get("hardware_exact", True)
        if not isinstance(hardware_exact, bool):
            raise UnsupportedLayerError(f"'hardware_exact' must be true or false, got {_short(hardware_exact)}")
        readout_spec = spec.get("readout")
        if readout_spec is not None and (not isinstance(readout_spec, dict)
                                         or not all(isinstance(k, str) for k in readout_spec)):
            raise UnsupportedLayerError(f"bad readout {_short(readout_spec)}: expected a mapping")
        try:
            readout = Readout.from_json(readout_spec)
        except (TypeError, ValueError) as e:
            raise UnsupportedLayerError(f"bad readout {_short(readout_spec)}: {_short(e)}") from None
        return cls(layers, hardware_exact=hardware_exact,
                   rule=make_rule(rule_spec["name"], **rule_spec.get("params", {})), readout=readout)

    def traces(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every population's trace by its graph name (lif1, lif2, ...; NeuNorm's aux1, ...)."""
        out: dict[str, torch.Tensor] = {}
        names = iter(name for name, _ in self.named_populations())
        for layer in self.layers:
            if isinstance(layer, TRANSFORMS):
                x = layer(x)
                continue
            mask = self.rule.input_mask(x.shape) if self.training else None
            if mask is not None:  # e.g. Lee et al.'s time-shared dropout; never at inference
                x = x * mask.to(x.device, x.dtype)
            got = layer.traces(x, self.rule, self.hardware_exact)  # type: ignore[operator]
            for trace in got:
                out[next(names)] = trace
            x = got[-1]
        return out

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Input (batch, T, n_in) -> list of output traces (batch, T, n) per layer (spikes, or the
        readout integrator's membrane potential)."""
        return [t for name, t in self.traces(x).items() if name.startswith("lif")]

    def scores(self, out: torch.Tensor) -> torch.Tensor:
        """(batch, classes) scores of the last layer's trace, as the readout defines them."""
        return self.readout.scores(out)


#: voltage decay of a membrane readout (Lee et al. 2020's output integrator, lambda = 0.99)
READOUT_VOLTAGE_DECAY = 0.01


def _architecture(neuron: dict[str, Any]) -> tuple[bool, Rule, dict[str, Any], Readout]:
    """Pop (hardware_exact, rule) from builder kwargs; the rule's architecture elements, overridden
    by explicit ``readout`` / ``encoding``; and the readout."""
    hw = neuron.pop("hardware_exact", True)
    rule = neuron.pop("rule", None) or STBPRect()
    neuron.pop("input_shape", None)
    arch = {**rule.architecture(), **{k: neuron.pop(k) for k in ("readout", "encoding") if k in neuron}}
    return hw, rule, arch, arch.get("readout") or Readout()


def _output_params(neuron: dict[str, Any], arch: dict[str, Any], readout: Readout) -> dict[str, Any]:
    """The output layer's neuron parameters: a slow-leak integrator for a membrane readout."""
    params = dict(neuron)
    if not readout.spiking:
        params["spiking"] = False   # a slow leak, so v[T] sums the whole window (Lee et al.: lambda 0.99)
        params["voltage_decay"] = arch.get("readout_voltage_decay", READOUT_VOLTAGE_DECAY)
    return params


def mlp(input_size: int, num_classes: int, hidden: tuple[int, ...] = (128,), *, recurrent: bool = False,
        **neuron: Any) -> SpikingNet:
    """The ``--arch mlp`` network: input -> hidden CUBA-LIF layers -> output layer (``recurrent``: the
    hidden layers are :class:`CubaRecurrentDense`, ``--arch rmlp``).

    The rule's architecture elements (``Rule.architecture``) shape it: the readout (and so the output
    layer's size and kind), an encoding first layer, signed input, NeuNorm on the hidden layers' inputs.
    """
    hw, rule, arch, readout = _architecture(neuron)
    if recurrent and rule.custom_layer_backward:
        raise UnsupportedLayerError(rmlp_rule_problem(rule.name))
    if recurrent and not hidden:
        raise UnsupportedLayerError("--arch rmlp needs at least one hidden layer (--hidden N): the hidden layers "
                                    "are the recurrent ones")
    encoding = arch.get("encoding", "rate")
    sizes = [input_size, *hidden, readout.neurons(num_classes)]
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        extra: dict[str, Any] = {}
        if i == 0 and encoding == "analog":
            extra["input_bits"] = 8
        if i == 0 and encoding == "signed":
            extra["signed_input"] = True
        if i > 0 and arch.get("neunorm_decay") is not None:
            extra["neunorm_decay"] = arch["neunorm_decay"]
        last = i == len(sizes) - 2
        params = _output_params(neuron, arch, readout) if last else dict(neuron)
        layers.append((CubaRecurrentDense if recurrent and not last else CubaDense)(a, b, **params, **extra))
    return SpikingNet(layers, hardware_exact=hw, rule=rule, readout=readout)


def rmlp_rule_problem(rule: str) -> str:
    """Why ``--arch rmlp`` cannot be trained by ``rule`` (one whose gradient is a whole-layer backward)."""
    return (f"--arch rmlp: rule '{rule}' forms each layer's gradient from whole spike trains and has no "
            f"gradient through recurrent synapses: use a surrogate-gradient rule (e.g. --rule stbp-rect), or "
            f"--arch mlp.")


def rmlp(input_size: int, num_classes: int, hidden: tuple[int, ...] = (128,), **neuron: Any) -> SpikingNet:
    """The ``--arch rmlp`` network: :func:`mlp` with every hidden layer recurrent
    (:class:`CubaRecurrentDense`: its neurons also receive their own spikes of the step before); the
    output layer stays feed-forward. Rules whose gradient cannot pass recurrent synapses (HM2-BP) are
    refused."""
    return mlp(input_size, num_classes, hidden, recurrent=True, **neuron)


def conv_arch(name: str) -> Callable[..., SpikingNet]:
    """The ``--arch NAME`` builder of a model-zoo layout (``snnc.models.zoo.LAYOUTS``)."""

    def build(input_size: int, num_classes: int, hidden: tuple[int, ...] = (), *,
              input_shape: tuple[int, ...] | None = None, **neuron: Any) -> SpikingNet:
        shape = tuple(input_shape) if input_shape is not None else (input_size,)
        hw, rule, arch, readout = _architecture(neuron)
        unsupported = [what for what, present in (
            ("NeuNorm", arch.get("neunorm_decay") is not None),
            (f"'{arch.get('encoding')}' input coding", arch.get("encoding", "rate") != "rate")) if present]
        if unsupported:
            raise UnsupportedLayerError(
                f"--arch {name}: rule '{rule.name}' brings {' and '.join(unsupported)}, which snnc deploys for "
                f"dense layers only (Lava's Conv has no weight exponent for graded input, and NeuNorm per "
                f"spatial position is not built yet). Use --arch mlp, or --encoding rate with another rule.")
        layers = build_layers(LAYOUTS[name], shape, **neuron)
        layers.append(CubaDense(layers[-1].out_features, readout.neurons(num_classes),  # type: ignore[arg-type]
                                **_output_params(neuron, arch, readout)))
        return SpikingNet(layers, hardware_exact=hw, rule=rule, readout=readout)

    build.__doc__ = f"``--arch {name}``: {LAYOUTS[name]} -> output layer (snnc.models.zoo)."
    return build


def delays_problem(arch: str) -> str | None:
    """Why ``snn-train --arch ARCH --delays`` cannot be built, or None (mlp and rmlp can)."""
    if arch in ("mlp", "rmlp"):
        return None
    return (f"--delays: --arch {arch} is convolutional; synaptic delays are built for Dense synapses only "
            f"(Lava's DelayDense): use --arch mlp or rmlp, or leave --delays out.")


def random_delays(model: SpikingNet, max_delay: int, seed: int) -> list[str]:
    """Give every hidden layer's feed-forward Dense synapses (``fc{k}`` into ``lif{k}``, all but the output
    layer; a recurrent layer's own synapses stay undelayed) fixed per-synapse delays drawn uniformly from
    0..``max_delay`` steps by a generator of their own seeded with ``seed`` (``snn-train --delays``), so
    the initial weights, data order and spikes are those of the same run without delays. Returns the
    names of the delayed populations; ``max_delay`` 0 changes nothing. UnsupportedLayerError for a
    network with convolutional populations."""
    from snnc.models.neurons import MAX_DELAY

    if not 0 <= int(max_delay) <= MAX_DELAY:
        raise ValueError(f"max_delay must be in [0, {MAX_DELAY}], got {max_delay}")
    if max_delay == 0:
        return []
    if any(isinstance(layer, (CubaConv, ResidualBlock)) for layer in model.layers):
        raise UnsupportedLayerError("synaptic delays are built for Dense synapses only (Lava's DelayDense), and "
                                    "this network has convolutional layers: give delays to an mlp or rmlp")
    g = torch.Generator().manual_seed(int(seed))
    names = {id(pop): name for name, pop in model.named_populations()}
    delayed = []
    for layer in model.layers[:-1]:
        if isinstance(layer, CubaDense):
            layer.set_delay(torch.randint(0, int(max_delay) + 1, (layer.out_features, layer.in_features),
                                          generator=g))
            delayed.append(names[id(layer)])
    return delayed


ARCHS: dict[str, Callable[..., SpikingNet]] = {"mlp": mlp, "rmlp": rmlp, **{name: conv_arch(name) for name in LAYOUTS}}

"""A spiking network as a chain of deployable layers, built from (and described by) plain data."""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn

from snnc.errors import UnsupportedLayerError
from snnc.models.neurons import CubaDense
from snnc.models.readout import Readout
from snnc.models.rules import Rule, STBPRect, make_rule

#: layer ``kind`` in a spec -> constructor. The compiler's frontend has the matching table.
LAYER_KINDS: dict[str, Callable[..., nn.Module]] = {"cuba_dense": CubaDense}


def layer_from_spec(index: int, spec: dict[str, Any]) -> nn.Module:
    """Build one layer from its spec, with an error that names the layer and what is supported."""
    kind = spec.get("kind")
    if kind not in LAYER_KINDS:
        raise UnsupportedLayerError(
            f"layer {index} has kind '{kind}', which snnc cannot build or compile. Supported layer "
            f"kinds: {', '.join(sorted(LAYER_KINDS))}. Convolution, pooling and other layers come "
            f"in later versions; remove the layer or replace it with a supported one.")
    params = {k: v for k, v in spec.items() if k != "kind"}
    try:
        return LAYER_KINDS[kind](**params)
    except (TypeError, ValueError) as e:
        raise UnsupportedLayerError(f"layer {index} ({kind}): bad parameters {params}: {e}") from None


class SpikingNet(nn.Module):
    """Feed-forward chain of CUBA-LIF layers; ``forward`` returns every layer's output trace.

    ``readout`` says how the last layer's activity becomes a class (``snnc.models.readout``).
    """

    def __init__(self, layers: list[nn.Module], *, hardware_exact: bool = True, rule: Rule | None = None,
                 readout: Readout | None = None):
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.hardware_exact = bool(hardware_exact)
        self.rule: Rule = rule or STBPRect()
        self.readout = readout or Readout()
        last = self.layers[-1]
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
                what = layer.elements()  # type: ignore[operator]
                if what:
                    raise UnsupportedLayerError(
                        f"rule '{self.rule.name}' computes its gradient from spike trains and cannot train layer "
                        f"{i} ({', '.join(what)}): use spiking layers with rate or event input (--readout rate "
                        f"or voting, --encoding rate).")

    @property
    def input_size(self) -> int:
        return self.layers[0].in_features  # type: ignore[union-attr]

    @property
    def input_encoding(self) -> str | None:
        """'analog' (encoding layer) or 'signed' when the first layer needs that code; None: the
        dataset's own ('rate' spikes, or 'events')."""
        first = self.layers[0]
        return "analog" if first.input_bits else "signed" if first.signed_input else None  # type: ignore[union-attr]

    @property
    def num_outputs(self) -> int:
        return self.readout.classes(self.layers[-1].out_features)  # type: ignore[union-attr]

    def spec(self) -> dict[str, Any]:
        return {"type": "chain", "hardware_exact": self.hardware_exact, "rule": self.rule.describe(),
                "readout": self.readout.to_json(), "layers": [layer.spec() for layer in self.layers]}  # type: ignore[operator]

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> "SpikingNet":
        layers = [layer_from_spec(i, ls) for i, ls in enumerate(spec.get("layers", []))]
        if not layers:
            raise UnsupportedLayerError("the model spec has no layers")
        rule_spec = spec.get("rule") or {"name": "stbp-rect", "params": {}}
        try:
            readout = Readout.from_json(spec.get("readout"))
        except (TypeError, ValueError) as e:
            raise UnsupportedLayerError(f"bad readout {spec.get('readout')}: {e}") from None
        return cls(layers, hardware_exact=spec.get("hardware_exact", True),
                   rule=make_rule(rule_spec["name"], **rule_spec.get("params", {})), readout=readout)

    def traces(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every population's trace by its graph name (lif1, lif2, ...; NeuNorm's aux1, ...)."""
        out: dict[str, torch.Tensor] = {}
        for i, layer in enumerate(self.layers, start=1):
            mask = self.rule.input_mask(x.shape) if self.training else None
            if mask is not None:  # e.g. Lee et al.'s time-shared dropout; never at inference
                x = x * mask.to(x.device, x.dtype)
            *aux, x = layer.traces(x, self.rule, self.hardware_exact)  # type: ignore[operator]
            if aux:
                out[f"aux{i}"] = aux[0]
            out[f"lif{i}"] = x
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


def mlp(input_size: int, num_classes: int, hidden: tuple[int, ...] = (128,), **neuron: Any) -> SpikingNet:
    """The ``--arch mlp`` network: input -> hidden CUBA-LIF layers -> output layer.

    The rule's architecture elements (``Rule.architecture``) shape it: the readout (and so the output
    layer's size and kind), an encoding first layer, signed input, NeuNorm on the hidden layers' inputs.
    """
    hw = neuron.pop("hardware_exact", True)
    rule = neuron.pop("rule", None) or STBPRect()
    arch = {**rule.architecture(), **{k: neuron.pop(k) for k in ("readout", "encoding") if k in neuron}}
    readout = arch.get("readout") or Readout()
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
        params = dict(neuron)
        if i == len(sizes) - 2 and not readout.spiking:
            extra["spiking"] = False   # a slow leak, so v[T] sums the whole window (Lee et al.: lambda 0.99)
            params["voltage_decay"] = arch.get("readout_voltage_decay", READOUT_VOLTAGE_DECAY)
        layers.append(CubaDense(a, b, **params, **extra))
    return SpikingNet(layers, hardware_exact=hw, rule=rule, readout=readout)


ARCHS: dict[str, Callable[..., SpikingNet]] = {"mlp": mlp}

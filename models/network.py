"""A spiking network as a chain of deployable layers, built from (and described by) plain data."""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn

from snnc.errors import UnsupportedLayerError
from snnc.models.neurons import CubaDense
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
    """Feed-forward chain of CUBA-LIF layers; ``forward`` returns every layer's spikes."""

    def __init__(self, layers: list[nn.Module], *, hardware_exact: bool = True, rule: Rule | None = None):
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.hardware_exact = bool(hardware_exact)
        self.rule: Rule = rule or STBPRect()

    @property
    def input_size(self) -> int:
        return self.layers[0].in_features  # type: ignore[union-attr]

    @property
    def num_outputs(self) -> int:
        return self.layers[-1].out_features  # type: ignore[union-attr]

    def spec(self) -> dict[str, Any]:
        return {"type": "chain", "hardware_exact": self.hardware_exact, "rule": self.rule.describe(),
                "layers": [layer.spec() for layer in self.layers]}  # type: ignore[operator]

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> "SpikingNet":
        layers = [layer_from_spec(i, ls) for i, ls in enumerate(spec.get("layers", []))]
        if not layers:
            raise UnsupportedLayerError("the model spec has no layers")
        rule_spec = spec.get("rule") or {"name": "stbp-rect", "params": {}}
        return cls(layers, hardware_exact=spec.get("hardware_exact", True),
                   rule=make_rule(rule_spec["name"], **rule_spec.get("params", {})))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Input spikes (batch, T, n_in) -> list of spikes (batch, T, n) per layer."""
        out = []
        for layer in self.layers:
            mask = self.rule.input_mask(x.shape) if self.training else None
            if mask is not None:  # e.g. Lee et al.'s time-shared dropout; never at inference
                x = x * mask.to(x.device, x.dtype)
            x = layer(x, self.rule, self.hardware_exact)
            out.append(x)
        return out


def mlp(input_size: int, num_classes: int, hidden: tuple[int, ...] = (128,), **neuron: Any) -> SpikingNet:
    """The ``--arch mlp`` network: input -> hidden CUBA-LIF layers -> output CUBA-LIF layer."""
    sizes = [input_size, *hidden, num_classes]
    hw = neuron.pop("hardware_exact", True)
    rule = neuron.pop("rule", None)
    return SpikingNet([CubaDense(a, b, **neuron) for a, b in zip(sizes[:-1], sizes[1:])],
                      hardware_exact=hw, rule=rule)


ARCHS: dict[str, Callable[..., SpikingNet]] = {"mlp": mlp}

"""Frontend: a PyTorch model (checkpoint or module) -> the float intermediate graph."""
from __future__ import annotations

from typing import Any

import numpy as np
from torch import nn

from snnc.compiler.ir import CubaLIF, Dense, Graph, Input, Output
from snnc.errors import UnsupportedLayerError
from snnc.models.checkpoint import Checkpoint
from snnc.models.network import SpikingNet
from snnc.models.neurons import CubaDense

SUPPORTED = "CubaDense (snnc.models.neurons.CubaDense: Linear synapses + CUBA-LIF neurons)"


def as_spiking_net(module: nn.Module, source: str) -> SpikingNet:
    """Accept a SpikingNet, or an nn.Sequential of supported layers; name the first unsupported layer."""
    if isinstance(module, SpikingNet):
        layers: list[tuple[str, nn.Module]] = [(f"layers.{i}", m) for i, m in enumerate(module.layers)]
    elif isinstance(module, nn.Sequential):
        layers = list(module.named_children())
    else:
        raise UnsupportedLayerError(
            f"{source}: the model is a {type(module).__name__}; snnc compiles an snnc SpikingNet or an "
            f"nn.Sequential of supported layers. Supported layers: {SUPPORTED}.")
    for name, layer in layers:
        if not isinstance(layer, CubaDense):
            raise UnsupportedLayerError(
                f"{source}: layer '{name}' is a {type(layer).__name__}, which snnc cannot compile for "
                f"this target yet. Supported layers: {SUPPORTED}. Convolution and pooling come in a "
                f"later version; for now replace the layer or train with snnc.models.")
    if isinstance(module, SpikingNet):
        return module
    return SpikingNet([m for _, m in layers], hardware_exact=False)


def graph_from_module(model: SpikingNet, meta: dict[str, Any] | None = None) -> Graph:
    """One (Dense, CubaLIF) pair per layer, named fc1/lif1, fc2/lif2, ..."""
    nodes: list[Any] = [Input("input", (model.input_size,))]
    for i, layer in enumerate(model.layers, start=1):
        assert isinstance(layer, CubaDense)
        nodes.append(Dense(f"fc{i}", layer.weight.detach().cpu().numpy().astype(np.float64)))
        bias = layer.bias.detach().cpu().numpy().astype(np.float64) if layer.bias is not None else None
        nodes.append(CubaLIF(f"lif{i}", layer.out_features, layer.current_decay, layer.voltage_decay,
                             layer.threshold, bias,
                             int_scale=layer.weight_scale if model.hardware_exact else None))
    nodes.append(Output("output"))
    return Graph.chain(nodes, meta={**(meta or {}), "hardware_exact": model.hardware_exact})


def graph_from_checkpoint(ckpt: Checkpoint) -> tuple[Graph, SpikingNet]:
    """The float graph of a checkpoint, and the module it was read from."""
    model = as_spiking_net(ckpt.build(), str(ckpt.path))
    return graph_from_module(model, {"source": str(ckpt.path), "metadata": ckpt.metadata}), model

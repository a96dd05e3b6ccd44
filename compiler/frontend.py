"""Frontend: a PyTorch model (checkpoint or module) -> the float intermediate graph."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
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


def _population(name: str, layer: CubaDense, hardware_exact: bool) -> CubaLIF:
    bias = layer.bias.detach().cpu().numpy().astype(np.float64) if layer.bias is not None else None
    return CubaLIF(name, layer.out_features, layer.current_decay, layer.voltage_decay, layer.threshold, bias,
                   int_scale=layer.weight_scale if hardware_exact else None, spiking=layer.spiking)


def _weights(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy().astype(np.float64)


def graph_from_module(model: SpikingNet, meta: dict[str, Any] | None = None) -> Graph:
    """Layer ``i`` becomes Dense ``fc{i}`` -> CubaLIF ``lif{i}``; its architecture elements become
    real nodes: NeuNorm's auxiliary population ``aux{i}`` (``nn{i}.in`` from the layer's source,
    ``nn{i}.inh`` into ``lif{i}``), signed input as two input channels with weights ``[W, -W]``,
    an encoding layer as graded input (``Input.bits``)."""
    first = model.layers[0]
    assert isinstance(first, CubaDense)
    n_in = model.input_size * (2 if first.signed_input else 1)
    nodes: list[Any] = [Input("input", (n_in,), bits=first.input_bits)]
    edges: list[tuple[str, str]] = []
    src = "input"
    for i, layer in enumerate(model.layers, start=1):
        assert isinstance(layer, CubaDense)
        w = _weights(layer.weight)
        if layer.signed_input:
            w = np.concatenate([w, -w], axis=1)
        fc, lif = Dense(f"fc{i}", w), _population(f"lif{i}", layer, model.hardware_exact)
        nodes += [fc, lif]
        edges += [(src, fc.name), (fc.name, lif.name)]
        if layer.aux is not None:
            aux_in = Dense(f"nn{i}.in", _weights(layer.aux.weight))
            aux_out = Dense(f"nn{i}.inh", _weights(layer.inhibition()))
            aux = _population(f"aux{i}", layer.aux, model.hardware_exact)
            nodes += [aux_in, aux, aux_out]
            edges += [(src, aux_in.name), (aux_in.name, aux.name), (aux.name, aux_out.name), (aux_out.name, lif.name)]
        src = lif.name
    nodes.append(Output("output"))
    edges.append((src, "output"))
    extra = {"hardware_exact": model.hardware_exact, "readout": model.readout.to_json(),
             "signed_input": first.signed_input}
    return Graph.build(nodes, edges, meta={**(meta or {}), **extra})


def graph_from_checkpoint(ckpt: Checkpoint) -> tuple[Graph, SpikingNet]:
    """The float graph of a checkpoint, and the module it was read from."""
    model = as_spiking_net(ckpt.build(), str(ckpt.path))
    return graph_from_module(model, {"source": str(ckpt.path), "metadata": ckpt.metadata}), model

"""Frontend: a PyTorch model (checkpoint or module) -> the float intermediate graph."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from snnc.compiler.ir import Conv, CubaLIF, Dense, Graph, Input, LayerSizeError, Output
from snnc.compiler.lowering import fuse_pool_into_conv, fuse_pool_into_dense
from snnc.errors import GraphError, InputFileError, TargetLimitError, UnsupportedLayerError
from snnc.models.checkpoint import Checkpoint
from snnc.models.datasets import DEFAULT_TIMESTEPS, sample_size_problem
from snnc.models.conv import ConvSynapses, CubaConv, Flatten, ResidualBlock, SpikeDropout, SumPool
from snnc.models.network import (LAYER_ADVICE, POPULATION_LAYERS, SUPPORTED_LAYERS, TORCH_SHAPE_LAYERS, TRANSFORMS,
                                  SpikingNet)
from snnc.models.neurons import CubaDense, CubaNeurons, CubaRecurrentDense


def as_spiking_net(module: nn.Module, source: str) -> SpikingNet:
    """Accept a SpikingNet, or an nn.Sequential of supported layers; name the first unsupported layer."""
    if isinstance(module, SpikingNet):
        layers: list[tuple[str, nn.Module]] = [(f"layers.{i}", m) for i, m in enumerate(module.layers)]
    elif isinstance(module, nn.Sequential):
        layers = list(module.named_children())   # torch's shape-only layers: SpikingNet converts them
    else:
        raise UnsupportedLayerError(
            f"{source}: the model is a {type(module).__name__}; snnc compiles an snnc SpikingNet or an "
            f"nn.Sequential of supported layers. Supported layers: {SUPPORTED_LAYERS}.")
    for name, layer in layers:
        if not isinstance(layer, (*POPULATION_LAYERS, *TRANSFORMS, *TORCH_SHAPE_LAYERS)):
            kind = type(layer).__name__
            hint = LAYER_ADVICE.get(kind, "replace the layer or train with snnc.models")
            model = "" if isinstance(module, SpikingNet) else f"the model is a {type(module).__module__}." \
                                                                   f"{type(module).__name__}; "
            raise UnsupportedLayerError(
                f"{source}: {model}layer '{name}' is a {kind}, which snnc cannot compile for this target: {hint}. "
                f"Supported layers: {SUPPORTED_LAYERS}.")
    if isinstance(module, SpikingNet):
        return module
    return SpikingNet([m for _, m in layers], hardware_exact=False)


def _population(name: str, layer: CubaNeurons, bias: np.ndarray | None, hardware_exact: bool,
                shape: tuple[int, ...] | None = None) -> CubaLIF:
    return CubaLIF(name, layer.out_features, layer.current_decay, layer.voltage_decay, layer.threshold, bias,
                   int_scale=layer.weight_scale if hardware_exact else None, spiking=layer.spiking, shape=shape)


def _weights(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy().astype(np.float64)


@dataclass(frozen=True)
class _Source:
    """What the next synapses read: a node's spikes (of ``shape``), sum-pooled ``pool`` x ``pool``."""

    name: str
    shape: tuple[int, ...]
    pool: int = 1

    @property
    def pooled_shape(self) -> tuple[int, ...]:
        if self.pool == 1:
            return self.shape
        c, h, w = self.shape
        return c, h // self.pool, w // self.pool


class _Builder:
    """Collects nodes and edges while walking the model's layers in order."""

    def __init__(self, model: SpikingNet):
        self.model = model
        self.nodes: list[Any] = []
        self.edges: list[tuple[str, str]] = []
        self.notes: list[str] = []
        self.names = iter(name for name, _ in model.named_populations())

    def add(self, node: Any, *sources: str) -> None:
        self.nodes.append(node)
        self.edges += [(src, node.name) for src in sources]

    def dense(self, name: str, weight: np.ndarray, src: _Source, delay: np.ndarray | None = None) -> Dense:
        """A Dense reading ``src`` (pooling folded into its columns, and into the delays' columns alike)."""
        if src.pool > 1:
            if delay is not None:
                delay = fuse_pool_into_dense(np.broadcast_to(delay, weight.shape).astype(np.int64),
                                             src.pooled_shape, src.pool, src.shape)
            weight = fuse_pool_into_dense(weight, src.pooled_shape, src.pool, src.shape)
            self.notes.append(f"{name}: {src.pool}x{src.pool} sum pooling of '{src.name}' folded into its "
                              f"weights ({weight.shape[1]} inputs)")
        return Dense(name, weight, delay=delay)

    def conv(self, name: str, geom: ConvSynapses, weight: np.ndarray, src: _Source) -> Conv:
        """A Conv reading ``src`` (pooling folded in as a strided conv with the kernel repeated)."""
        g = {"stride": geom.stride, "padding": geom.padding, "dilation": geom.dilation}
        if src.pool > 1:
            weight, g = fuse_pool_into_conv(weight, src.pooled_shape, src.pool, geom.stride, geom.padding,
                                            geom.dilation, src.shape, f"layer '{name}'")
            self.notes.append(f"{name}: {src.pool}x{src.pool} sum pooling of '{src.name}' folded in: a "
                              f"{weight.shape[2]}x{weight.shape[3]} conv with stride {g['stride'][0]}")
        return Conv(name, weight, src.shape, groups=geom.groups, **g)  # type: ignore[arg-type]

    def dense_layer(self, layer: CubaDense, src: _Source) -> _Source:
        """fc{k} -> lif{k}, with NeuNorm's auxiliary population and signed input as real nodes; a
        recurrent layer's synapses onto itself as the Dense self-loop lif{k} -> lif{k}.rec -> lif{k}."""
        aux_name = next(self.names) if layer.aux is not None else None
        name = next(self.names)
        k = name[3:]
        w = _weights(layer.weight)
        delay = (np.broadcast_to(layer.delay.cpu().numpy().astype(np.int64), w.shape)
                 if layer.delay is not None else None)
        if layer.signed_input:
            w = np.concatenate([w, -w], axis=1)
            delay = np.concatenate([delay, delay], axis=1) if delay is not None else None
        bias = _weights(layer.bias) if layer.bias is not None else None
        lif = _population(name, layer, bias, self.model.hardware_exact)
        self.add(self.dense(f"fc{k}", w, src, delay), src.name)
        self.add(lif, f"fc{k}")
        if layer.aux is not None and aux_name is not None:
            self.add(self.dense(f"nn{k}.in", _weights(layer.aux.weight), src), src.name)
            self.add(_population(aux_name, layer.aux, None, self.model.hardware_exact), f"nn{k}.in")
            self.add(Dense(f"nn{k}.inh", _weights(layer.inhibition())), aux_name)
            self.edges.append((f"nn{k}.inh", name))
        if isinstance(layer, CubaRecurrentDense):
            self.add(Dense(f"{name}.rec", _weights(layer.recurrent_weight)), name)
            self.edges.append((f"{name}.rec", name))
        return _Source(name, (layer.out_features,))

    def conv_layer(self, layer: CubaConv, src: _Source,
                   extra: tuple[tuple[str, ConvSynapses, np.ndarray, _Source], ...] = ()) -> _Source:
        """conv{k} (+ extra synapses, e.g. skip{k}) -> lif{k} of shape (C, H, W); BatchNorm folded."""
        name = next(self.names)
        k = name[3:]
        w, b = layer.effective()
        if layer.bn is not None:
            self.notes.append(f"conv{k}: BatchNorm folded (scale into the weights, shift into the bias of {name})")
        hw = layer.out_shape[1] * layer.out_shape[2]
        bias = np.repeat(_weights(b), hw)
        self.add(self.conv(f"conv{k}", layer.geom, _weights(w), src), src.name)
        syn_names = [f"conv{k}"]
        for prefix, geom, weight, source in extra:
            self.add(self.conv(f"{prefix}{k}", geom, weight, source), source.name)
            syn_names.append(f"{prefix}{k}")
        self.add(_population(name, layer, bias, self.model.hardware_exact, layer.out_shape), *syn_names)
        return _Source(name, layer.out_shape)


def graph_from_module(model: SpikingNet, meta: dict[str, Any] | None = None) -> Graph:
    """Every population becomes ``lif{k}`` fed by ``fc{k}`` (Dense) or ``conv{k}`` (Conv); a residual
    block's shortcut is ``skip{k}`` into the block's second population; NeuNorm's auxiliary population
    is ``aux{k}`` (``nn{k}.in`` from the layer's source, ``nn{k}.inh`` into ``lif{k}``); a recurrent
    layer's own synapses are the Dense ``lif{k}.rec`` from ``lif{k}`` back into it; a layer's synaptic
    delays are ``fc{k}``'s ``delay`` (per synapse, uint8; all zero: None); signed input is
    two input channels with weights ``[W, -W]``; an encoding layer is graded input (``Input.bits``).
    Sum pooling is folded into the synapses after it, BatchNorm into its layer, dropout removed; what
    was lowered is listed in ``meta['lowered']``."""
    model.eval()
    first = model.layers[0]
    b = _Builder(model)
    if isinstance(first, CubaDense):
        inp = Input("input", (model.input_size * (2 if first.signed_input else 1),), bits=first.input_bits)
    else:
        inp = Input("input", model.input_shape)
    b.add(inp)
    src = _Source("input", tuple(inp.shape))
    for i, layer in enumerate(model.layers):
        if isinstance(layer, SumPool):
            src = _Source(src.name, src.shape, src.pool * layer.kernel)
        elif isinstance(layer, SpikeDropout):
            b.notes.append(f"layers.{i}: dropout (p={layer.p}) removed: it acts only in training")
        elif isinstance(layer, Flatten):
            continue
        elif isinstance(layer, CubaDense):
            src = b.dense_layer(layer, src)
        elif isinstance(layer, CubaConv):
            src = b.conv_layer(layer, src)
        elif isinstance(layer, ResidualBlock):
            mid = b.conv_layer(layer.conv_a, src)
            skip = ("skip", layer.shortcut, _weights(layer.shortcut_weight), src)
            src = b.conv_layer(layer.conv_b, mid, extra=(skip,))
    if src.pool > 1:
        raise UnsupportedLayerError("the model ends in pooling; a network ends in a layer with neurons")
    b.add(Output("output"), src.name)
    extra = {"hardware_exact": model.hardware_exact, "readout": model.readout.to_json(),
             "signed_input": bool(getattr(first, "signed_input", False)), "lowered": b.notes}
    return Graph.build(b.nodes, b.edges, meta={**(meta or {}), **extra})


def graph_from_checkpoint(ckpt: Checkpoint) -> tuple[Graph, SpikingNet]:
    """The float graph of a checkpoint, and the module it was read from."""
    model = as_spiking_net(ckpt.build(), str(ckpt.path))
    try:
        graph = graph_from_module(model, {"source": str(ckpt.path), "metadata": ckpt.metadata})
    except LayerSizeError as e:   # a layer larger than snnc maps: a design rule, not a damaged file
        raise TargetLimitError(f"{ckpt.path}: {e}") from None
    except GraphError as e:   # e.g. non-finite weights or thresholds in the state dict (compiler/ir.py checks)
        raise InputFileError(f"{ckpt.path}: the model does not make a valid graph: {e}. The file is damaged "
                             f"or the model was trained into NaN/inf; retrain or re-save it.") from None
    except UnsupportedLayerError as e:
        raise UnsupportedLayerError(f"{ckpt.path}: {e}") from None
    why = sample_size_problem(int(ckpt.metadata.get("timesteps") or DEFAULT_TIMESTEPS), graph.input.size)
    if why:
        raise InputFileError(f"{ckpt.path}: metadata timesteps: {why}.")
    return graph, model

"""Write an snnTorch model as a NIR file snn-compile reads, avoiding the traps of snnTorch 1.0's exporter.

``snntorch.export_nir.export_to_nir`` fails inside NIR's type inference on the idiomatic model
(``snn.Leaky(beta=0.9)``: a scalar ``beta`` exports 0-d parameters, "type mismatch: 0.output: [[10]] ->
1.input: []") and on a batched sample. :func:`export_snntorch` exports a copy of the model whose scalar
neuron parameters are expanded to one value per neuron (the neuron counts come from one forward pass),
with an unbatched sample, and writes the graph with ``nir.write``. The user's model is not touched.

It warns about what NIR cannot carry: snnTorch's default ``reset_mechanism="subtract"`` is not
recorded by the exporter (snnc reads reset to zero, docs/nir.md), so such a network's spikes differ;
nor is its default ``reset_delay=True``, which zeroes the membrane in the step *after* a spike (the
input of that step is lost) where Loihi zeroes it in the spike step (snntorch/_neurons/leaky.py
``reset_delay``; measured in docs/nir.md: 67-80% of spikes agree for RLeaky, 100% with
``reset_delay=False``). Recurrent ``RLeaky`` / ``RSynaptic`` layers export as a Dense self-loop.
snnTorch is the user's library, imported only when this is called.
"""
from __future__ import annotations

import copy
import os
import warnings
from pathlib import Path
from typing import Any

import torch

from snnc.errors import SnncError

#: the neuron parameters snnTorch's exporter reads (``snntorch/export_nir.py``, _extract_snntorch_module)
NEURON_PARAMETERS = ("beta", "alpha", "threshold")


def _neuron_shapes(net: torch.nn.Module, sample: torch.Tensor, kinds: tuple[type, ...]) -> dict[str, tuple[int, ...]]:
    """Neurons per snnTorch layer: the shape of the current each one receives for one sample ((n,) after a
    Linear, (C, H, W) after a Conv2d)."""
    sizes: dict[str, tuple[int, ...]] = {}
    hooks = []
    for name, module in net.named_modules():
        if isinstance(module, kinds):
            def hook(_m: Any, args: tuple[Any, ...], name: str = name) -> None:
                sizes[name] = tuple(args[0].shape[1:])     # per sample (a batch of one)
            hooks.append(module.register_forward_pre_hook(hook))
    try:
        with torch.no_grad():
            for module in net.modules():     # init_hidden layers keep state between calls
                if hasattr(module, "reset_hidden"):
                    module.reset_hidden()
            net(sample[None])
    except Exception as e:  # the user's model on their sample: anything it raises
        raise SnncError(f"export_snntorch: the model does not run on a sample of shape {tuple(sample.shape)} "
                        f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); give the shape of "
                        f"one unbatched input, e.g. (784,) or (2, 34, 34).") from None
    finally:
        for h in hooks:
            h.remove()
    return sizes


def export_snntorch(net: torch.nn.Module, path: str | os.PathLike, input_shape: tuple[int, ...] | int) -> Path:
    """Export snnTorch model ``net`` (an ``nn.Sequential`` of ``nn.Linear`` layers and snnTorch neurons,
    ``Leaky``, ``Synaptic``, ``RLeaky`` or ``RSynaptic``, with ``init_hidden=True``) to the NIR file ``path``, for ``snn-compile path --target loihi``. Conv
    networks are refused: snnTorch 1.0's exporter cannot write them readably (docs/nir.md).

    ``input_shape``: one sample's shape without batch or time, e.g. ``784`` or ``(2, 34, 34)``.
    """
    try:
        import snntorch as snn
        from snntorch.export_nir import export_to_nir
    except ImportError:
        raise SnncError("export_snntorch needs snnTorch: pip install snntorch") from None
    import nir

    shape = (int(input_shape),) if isinstance(input_shape, int) else tuple(int(s) for s in input_shape)
    if not shape or any(s < 1 for s in shape):
        raise SnncError(f"export_snntorch: input_shape {input_shape}: give positive sizes, e.g. 784 or (2, 34, 34).")
    kinds = (snn.Leaky, snn.Synaptic, snn.RLeaky, snn.RSynaptic)
    convs = [name for name, m in net.named_modules() if isinstance(m, torch.nn.Conv2d)]
    if convs:
        raise SnncError(f"export_snntorch: layer '{convs[0]}' is an nn.Conv2d, and snnTorch 1.0's exporter cannot "
                        f"write conv networks that snnc can read (an unbatched sample breaks nn.Flatten, a batched "
                        f"one NIR's type inference; docs/nir.md). Rebuild the network with snnc.models.CubaConv "
                        f"and train it with snnc.train (docs/from-snntorch.md).")
    model = copy.deepcopy(net).cpu().eval()
    sample = torch.zeros(shape)
    shapes = _neuron_shapes(model, sample, kinds)
    for name, module in model.named_modules():
        if not isinstance(module, kinds):
            continue
        if getattr(module, "reset_mechanism", "zero") != "zero":
            warnings.warn(f"snnTorch layer '{name}' resets by '{module.reset_mechanism}'; NIR records no reset "
                          f"mechanism and Loihi (and snnc) reset to zero, so its spikes will differ from snnTorch's. "
                          f"Train with reset_mechanism='zero' (docs/from-snntorch.md).", stacklevel=2)
        elif getattr(module, "reset_delay", False):
            fix = ("snnTorch 1.0's RSynaptic cannot (its reset_delay=False path raises); use RLeaky or Synaptic"
                   if isinstance(module, snn.RSynaptic) else "build it with reset_delay=False")
            warnings.warn(f"snnTorch layer '{name}' resets one step after it spikes (reset_delay=True, snnTorch's "
                          f"default): the input of that step is lost, while Loihi (and snnc) zero v in the spike "
                          f"step and integrate the next input, so spikes differ after the layer's first spike "
                          f"(docs/nir.md, 'Where they cannot coincide'). To match: {fix}.", stacklevel=2)
        rec = getattr(module, "recurrent", None)
        if isinstance(module, snn.RSynaptic) and getattr(rec, "bias", None) is not None and bool(rec.bias.any()):
            raise SnncError(f"export_snntorch: snnTorch layer '{name}' (RSynaptic) has a non-zero recurrent bias, "
                            f"which enters its decaying synaptic current; Loihi's bias enters v. Zero and freeze "
                            f"it before training ({name}.recurrent.bias.data.zero_(); "
                            f"{name}.recurrent.bias.requires_grad_(False)), or use RLeaky.")
        shape_n = shapes.get(name)
        if shape_n is None:
            raise SnncError(f"export_snntorch: snnTorch layer '{name}' did not run on the sample; the model must "
                            f"be an nn.Sequential whose neuron layers use init_hidden=True.")
        for param in NEURON_PARAMETERS:
            value = getattr(module, param, None)
            if isinstance(value, torch.Tensor) and value.numel() == 1:
                full = torch.full(shape_n, float(value), dtype=value.dtype)
                if isinstance(value, torch.nn.Parameter):
                    setattr(module, param, torch.nn.Parameter(full, requires_grad=value.requires_grad))
                elif param in module._buffers:
                    module._buffers[param] = full
                else:
                    setattr(module, param, full)
    for module in model.modules():
        if hasattr(module, "reset_hidden"):
            module.reset_hidden()
    try:
        graph = export_to_nir(model, sample)
    except Exception as e:  # snnTorch's exporter on the user's model
        raise SnncError(f"export_snntorch: snnTorch's exporter failed ({type(e).__name__}: "
                        f"{str(e).splitlines()[0] if str(e) else ''}). Supported: an nn.Sequential of nn.Linear "
                        f"layers and snn.Leaky / Synaptic / RLeaky / RSynaptic neurons with init_hidden=True.") from None
    out = Path(path)
    nir.write(str(out), graph)
    return out

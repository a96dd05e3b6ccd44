"""snnc: compile PyTorch-trained spiking networks to Loihi-style hardware, verified spike for spike.

Public API (the CLI commands are thin shells over these)::

    snnc.save(model, "model.pt")                      # checkpoint: spec + state dict + metadata
    ckpt = snnc.load("model.pt")                      # never unpickles code unless allowed
    artifact = snnc.compile("model.pt", target="loihi", out="build/", verify=32)
"""
from __future__ import annotations

__version__ = "0.1.0"

from snnc.errors import SnncError  # noqa: E402


def save(model, path, metadata=None):  # type: ignore[no-untyped-def]
    """Write ``model`` as an snnc checkpoint (see :func:`snnc.models.checkpoint.save`)."""
    from snnc.models.checkpoint import save as _save

    return _save(model, path, metadata=metadata)


def load(path, *, allow_unsafe_pickle: bool = False):  # type: ignore[no-untyped-def]
    """Read an snnc checkpoint (see :func:`snnc.models.checkpoint.load`)."""
    from snnc.models.checkpoint import load as _load

    return _load(path, allow_unsafe_pickle=allow_unsafe_pickle)


def compile(model_path, *, target: str = "loihi", out=None, verify: int = 0, **kw):  # type: ignore[no-untyped-def]
    """Compile a model file into an artifact directory (see :func:`snnc.pipeline.compile_model`)."""
    from snnc.pipeline import compile_model

    return compile_model(model_path, target=target, out=out, verify=verify, **kw)


__all__ = ["SnncError", "__version__", "compile", "load", "save"]

"""A module imported on its first use, for the commands whose start-up users wait on.

``torch = LazyModule("torch")`` at the top of a module costs nothing until an attribute of ``torch``
is read; then torch is imported (~1.7 s here) and every attribute read is cached on the proxy. hwsim's
numba engine needs torch only for large int8 GEMMs and convolutions, so ``snn-run`` of a small
dense network never imports it (docs/performance.md, "Start-up").
"""
from __future__ import annotations

import importlib
import sys
from typing import Any


class LazyModule:
    """Stands for the module ``name``; imports it when an attribute is first read."""

    def __init__(self, name: str):
        object.__setattr__(self, "_lazy_name", name)

    def __getattr__(self, attr: str) -> Any:
        value = getattr(importlib.import_module(self._lazy_name), attr)
        object.__setattr__(self, attr, value)      # the next read is a plain attribute
        return value

    def __repr__(self) -> str:
        state = "imported" if self._lazy_name in sys.modules else "not imported yet"
        return f"<lazy module '{self._lazy_name}' ({state})>"


def imported(name: str) -> bool:
    """Whether ``name`` is imported in this process already (so that using it costs nothing more)."""
    return name in sys.modules

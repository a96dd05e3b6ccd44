"""User-facing errors: each one a paragraph that says what, where, what is supported, what to do.

The CLI prints ``str(error)`` and exits non-zero; nothing below a ``SnncError`` is shown as a traceback.
"""
from __future__ import annotations


class SnncError(Exception):
    """Base of every error snnc reports to a user."""

    exit_code = 2


class InputFileError(SnncError):
    """A file is missing, unreadable, or not what it claims to be."""


class UnsupportedLayerError(SnncError):
    """A model contains a layer the compiler cannot lower."""


class TargetLimitError(SnncError):
    """A parameter or a layer does not fit the target hardware."""


class GraphError(SnncError):
    """The intermediate graph is malformed (an internal or frontend error)."""


class StrictModeError(SnncError):
    """``--strict``: quantization or the chip's arithmetic changes what the network computes."""


class VerificationError(SnncError):
    """Engines disagree: at least one spike differs."""

    exit_code = 3


class LavaRunError(SnncError):
    """Lava could not be imported, built or run."""

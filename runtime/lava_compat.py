"""Make lava-nc 0.10.0 importable on Python >= 3.11 (and its reshape ports work on NumPy >= 2.4),
without touching anything on disk (the second fix: :func:`patch_reshape_ports`).

Why: lava-nc 0.10.0 (the newest release) declares ``Requires-Python <3.11`` and, on 3.11, fails
at import in exactly one place. ``SP/lava/magma/compiler/var_model.py:219-238`` (SP = the
site-packages folder) declares dataclass fields whose default is an *instance* of another
dataclass::

    @dataclass
    class CoreEncoder:
        x: ByteEncoder = ByteEncoder()

Python 3.11 treats every unhashable default as mutable (dataclasses checks ``__hash__ is None``,
and ``@dataclass`` with ``eq=True`` sets that on ``ByteEncoder``), so class creation raises
``ValueError: mutable default <class '...ByteEncoder'> for field x is not allowed: use
default_factory``. Python 3.10 only rejected list/dict/set and accepted this.

How: :func:`ensure_lava_importable` puts a meta-path finder in front of ``sys.meta_path``. For the
one module ``lava.magma.compiler.var_model`` it returns the normal spec (found by
``importlib.machinery.PathFinder``) with a loader that rewrites ``= ByteEncoder()`` defaults to
``= field(default_factory=ByteEncoder)`` in memory and compiles that. The rewrite gives every
instance its own ``ByteEncoder`` (under 3.10 they shared one object; the encoder classes are
used nowhere else in lava-nc 0.10.0, so the difference is invisible).
The patched code is never written as bytecode, so a ``.pyc`` in ``__pycache__`` always reflects
the file on disk and an interpreter without the hook still sees the original error.

Lava's simulator starts its worker processes with ``fork`` (SP/lava/magma/runtime/
message_infrastructure/multiprocessing.py:46-47), so the workers inherit the already-imported
module and need no hook of their own.
"""
from __future__ import annotations

import functools
import importlib.abc
import importlib.machinery
import importlib.util
import re
import sys
import threading
from types import CodeType, ModuleType
from typing import Sequence

import numpy as np

#: The only module the hook touches.
TARGET_MODULE = "lava.magma.compiler.var_model"
#: The lava-nc release whose source the transform was written against.
EXPECTED_LAVA_VERSION = "0.10.0"

# ``    x: ByteEncoder = ByteEncoder()`` -> ``    x: ByteEncoder = field(default_factory=ByteEncoder)``
_DEFAULT_RE = re.compile(r"^([ \t]+\w+[ \t]*:[ \t]*ByteEncoder[ \t]*=[ \t]*)ByteEncoder\(\)[ \t]*$",
                         re.MULTILINE)
_FUTURE_RE = re.compile(r"^from __future__ import annotations[ \t]*$", re.MULTILINE)
# Appended to the __future__ line (same physical line, so tracebacks keep the file's line numbers).
_FIELD_IMPORT = "; from dataclasses import field"

_install_lock = threading.Lock()


def patch_var_model_source(source: str, filename: str = "var_model.py") -> str:
    """Return ``source`` with every ``ByteEncoder()`` field default turned into a default_factory.

    Raises ImportError if the text this was written for is not there (another lava-nc version).
    """
    patched, count = _DEFAULT_RE.subn(r"\1field(default_factory=ByteEncoder)", source)
    if count == 0 or not _FUTURE_RE.search(patched):
        raise ImportError(
            f"snnc's Python 3.11 compatibility patch for lava-nc did not find the text it fixes in "
            f"{filename} (expected dataclass fields 'x: ByteEncoder = ByteEncoder()' after a "
            f"'from __future__ import annotations' line, as in lava-nc {EXPECTED_LAVA_VERSION}). "
            f"Install lava-nc=={EXPECTED_LAVA_VERSION}, or update snnc.runtime.lava_compat for "
            f"the installed version.")
    return _FUTURE_RE.sub(lambda m: m.group(0) + _FIELD_IMPORT, patched, count=1)


class _PatchedSourceLoader(importlib.machinery.SourceFileLoader):
    """SourceFileLoader that compiles the patched source and never reads or writes bytecode."""

    def get_code(self, fullname: str) -> CodeType:
        """Compile from the transformed source; skips the .pyc cache in both directions."""
        path = self.get_filename(fullname)
        source = importlib.util.decode_source(self.get_data(path))
        patched = patch_var_model_source(source, path)
        return compile(patched, path, "exec", dont_inherit=True)

    def set_data(self, path: str, data: bytes, *, _mode: int = 0o666) -> None:
        """Never write bytecode (belt and braces: get_code above never calls this)."""


class _VarModelFinder(importlib.abc.MetaPathFinder):
    """Meta-path finder that only answers for :data:`TARGET_MODULE`."""

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        """Give the normal spec of var_model a patching loader; defer for every other module."""
        if fullname != TARGET_MODULE:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or not isinstance(spec.loader, importlib.machinery.SourceFileLoader):
            return spec  # not a plain source file (e.g. a frozen build): leave it alone
        # spec.cached (-> __cached__) still names the usual .pyc path, but get_code never touches it.
        spec.loader = _PatchedSourceLoader(fullname, spec.origin)
        return spec


def needs_patch() -> bool:
    """True on Python >= 3.11, where dataclasses reject unhashable instance defaults."""
    return sys.version_info >= (3, 11)


def hook_installed() -> bool:
    """True if this module's finder is on ``sys.meta_path``."""
    return any(isinstance(f, _VarModelFinder) for f in sys.meta_path)


def ensure_lava_importable() -> None:
    """Install the var_model import hook once (Python >= 3.11 only); call before importing lava.

    Idempotent and thread-safe: the finder goes in once, at the front of ``sys.meta_path``, and
    stays (it only ever answers for one module, so leaving it there costs one string compare per
    import).
    """
    if not needs_patch():
        return
    with _install_lock:
        if not hook_installed():
            sys.meta_path.insert(0, _VarModelFinder())


def uninstall() -> None:
    """Remove the hook (for tests); an already imported var_model stays imported."""
    with _install_lock:
        sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _VarModelFinder)]


def _reshape_to(data: "np.ndarray", shape: tuple[int, ...]) -> "np.ndarray":
    return np.reshape(data, shape)


def patch_reshape_ports() -> None:
    """Make Lava's ReshapePort (``OutPort.flatten()`` / ``.reshape()``) work on NumPy >= 2.4.

    lava-nc 0.10.0 builds its transforms as ``ft.partial(np.reshape, newshape=...)``
    (SP/lava/magma/core/process/ports/ports.py:920, 931); NumPy 2.4 removed the ``newshape``
    keyword, so every message through such a port raises TypeError inside a Lava process (and the
    run fails). The replacement passes the shape positionally, which every NumPy accepts, and stays
    a picklable partial of a module-level function. Idempotent.
    """
    from lava.magma.core.process.ports.ports import ReshapePort

    if getattr(ReshapePort, "_snnc_patched", False):
        return
    ReshapePort.get_transform_func_fwd = lambda self: functools.partial(_reshape_to, shape=tuple(self.shape))
    ReshapePort.get_transform_func_bwd = lambda self: functools.partial(_reshape_to, shape=tuple(self.old_shape))
    ReshapePort._snnc_patched = True


def patch_conv_geometry() -> None:
    """Make Lava's fixed-point Conv work with 128 or more channels, or maps 128 or more wide, on NumPy 2.

    Lava's Conv model passes its int8 geometry Vars (SP/lava/proc/conv/models.py:25-29, 45-49) into
    ``conv_scipy``, which mixes them with Python ints (``input_.shape[-1] % groups``,
    ``input_shape[0] + 2 * padding[0]``, SP/lava/proc/conv/utils.py:253-286). Under NumPy 2's promotion
    rules (NEP 50) that raises ``OverflowError: Python integer 128 out of bounds for int8`` inside the
    Lava process. The wrapper passes the same values on as int64. Idempotent; Lava forks its workers
    after this runs, so they inherit it.
    """
    import lava.proc.conv.utils as conv_utils

    if getattr(conv_utils.conv, "_snnc_int64_geometry", False):
        return
    original = conv_utils.conv

    def conv(input_, weight, kernel_size, stride, padding, dilation, groups):  # type: ignore[no-untyped-def]
        i64 = functools.partial(np.asarray, dtype=np.int64)
        return original(input_, weight, i64(kernel_size), i64(stride), i64(padding), i64(dilation), int(groups))

    conv._snnc_int64_geometry = True  # type: ignore[attr-defined]
    conv_utils.conv = conv   # PyConvModelFixed calls utils.conv(...) through the module attribute


__all__ = ["ensure_lava_importable", "patch_reshape_ports", "patch_conv_geometry", "patch_var_model_source",
           "hook_installed", "needs_patch",
           "uninstall", "TARGET_MODULE", "EXPECTED_LAVA_VERSION"]

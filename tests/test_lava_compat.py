"""The lava-nc 0.10.0 import hook for Python >= 3.11: installs once, fixes var_model, writes nothing."""
from __future__ import annotations

import hashlib
import importlib.util
import subprocess
import sys
import textwrap
from pathlib import Path
from types import ModuleType

import pytest

from snnc.runtime import lava_compat
from snnc.runtime.lava_compat import TARGET_MODULE, ensure_lava_importable, patch_var_model_source

SAMPLE = textwrap.dedent('''\
    from __future__ import annotations

    from dataclasses import dataclass


    @dataclass
    class ByteEncoder:
        base: int = 0


    @dataclass
    class CoreEncoder:
        x: ByteEncoder = ByteEncoder()
        y: ByteEncoder = ByteEncoder()


    @dataclass
    class Other:
        n: int = 0
    ''')


def _var_model_path() -> Path:
    """Where the installed var_model.py is, found without importing (and so without executing) it."""
    spec = importlib.util.find_spec("lava.magma.compiler")
    assert spec is not None and spec.submodule_search_locations, "lava-nc is not installed"
    return Path(next(iter(spec.submodule_search_locations))) / "var_model.py"


def _digest(path: Path) -> str:
    """sha256 of a file's bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _cache_state(src: Path) -> dict[str, tuple[str, int]]:
    """Hash and mtime of every cached var_model*.pyc next to ``src``."""
    cache = src.parent / "__pycache__"
    return {p.name: (_digest(p), p.stat().st_mtime_ns) for p in sorted(cache.glob("var_model*.pyc"))}


def _python(code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter (nothing imported, no hook), so import tests are honest."""
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=120)


# ------------------------------------------------------------------------------ the source transform

def _exec_as_module(source: str, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """Exec ``source`` as a registered module (dataclasses looks string annotations up in sys.modules)."""
    module = ModuleType("snnc_test_sample")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    exec(compile(source, "sample.py", "exec"), module.__dict__)
    return module


def test_transform_turns_instance_defaults_into_factories(monkeypatch: pytest.MonkeyPatch) -> None:
    """The sample fails to exec on 3.11 as is and execs after the transform, one encoder per instance."""
    if sys.version_info >= (3, 11):
        with pytest.raises(ValueError, match="mutable default"):
            _exec_as_module(SAMPLE, monkeypatch)
    patched = patch_var_model_source(SAMPLE, "sample.py")
    assert "ByteEncoder()" not in patched
    assert patched.count("field(default_factory=ByteEncoder)") == 2
    assert patched.count("\n") == SAMPLE.count("\n"), "line numbers must not move (tracebacks)"
    module = _exec_as_module(patched, monkeypatch)
    a, b = module.CoreEncoder(), module.CoreEncoder()
    assert a.x == module.ByteEncoder() and a.x is not b.x


def test_transform_rejects_other_source_with_a_clear_error() -> None:
    """A var_model.py without the expected text (another lava-nc) is an ImportError naming file and version."""
    with pytest.raises(ImportError, match=r"var_model_v2\.py.*lava-nc 0\.10\.0"):
        patch_var_model_source("from __future__ import annotations\nx = 1\n", "var_model_v2.py")
    with pytest.raises(ImportError):  # the defaults, but not the __future__ line the import goes after
        patch_var_model_source("class A:\n    x: ByteEncoder = ByteEncoder()\n", "var_model.py")


def test_transform_of_the_installed_file_compiles() -> None:
    """The installed lava-nc 0.10.0 file has its 8 defaults rewritten and still compiles."""
    src = _var_model_path()
    patched = patch_var_model_source(src.read_text(), str(src))
    assert patched.count("field(default_factory=ByteEncoder)") == 8
    compile(patched, str(src), "exec", dont_inherit=True)


# ------------------------------------------------------------------------------------- the hook

def test_hook_is_installed_once_at_the_front(monkeypatch: pytest.MonkeyPatch) -> None:
    """Repeated calls leave exactly one finder, first on sys.meta_path."""
    without = [f for f in sys.meta_path if not isinstance(f, lava_compat._VarModelFinder)]
    monkeypatch.setattr(sys, "meta_path", without)
    for _ in range(3):
        ensure_lava_importable()
    finders = [f for f in sys.meta_path if isinstance(f, lava_compat._VarModelFinder)]
    assert len(finders) == 1 and sys.meta_path[0] is finders[0]
    assert finders[0].find_spec("json", None) is None  # answers for var_model only


def test_hook_does_nothing_on_python_3_10(monkeypatch: pytest.MonkeyPatch) -> None:
    """On 3.10 lava-nc imports as is: no hook."""
    without = [f for f in sys.meta_path if not isinstance(f, lava_compat._VarModelFinder)]
    monkeypatch.setattr(sys, "meta_path", without)
    monkeypatch.setattr(sys, "version_info", (3, 10, 13, "final", 0))
    ensure_lava_importable()
    assert not lava_compat.hook_installed()


@pytest.mark.skipif(sys.version_info < (3, 11), reason="the hook only exists on Python >= 3.11")
def test_fresh_interpreter_imports_lava_with_hook_and_disk_is_untouched() -> None:
    """With the hook a fresh interpreter imports var_model and Lava's processes; nothing on disk changes."""
    src = _var_model_path()
    before_src, before_cache = _digest(src), _cache_state(src)
    done = _python(f"""
        from snnc.runtime.lava_compat import ensure_lava_importable
        ensure_lava_importable(); ensure_lava_importable()
        import {TARGET_MODULE} as vm
        a, b = vm.CoreEncoder(), vm.CoreEncoder()
        assert isinstance(a.x, vm.ByteEncoder) and a.x is not b.x
        from lava.proc.lif.process import LIF
        from lava.magma.core.run_configs import Loihi2SimCfg
        print("imported")
        """)
    assert done.returncode == 0 and "imported" in done.stdout, done.stderr[-2000:]
    assert _digest(src) == before_src, "var_model.py was modified on disk"
    after_cache = _cache_state(src)
    assert after_cache == before_cache, "a var_model .pyc was written or rewritten"
    for name in after_cache:
        assert b"default_factory" not in (src.parent / "__pycache__" / name).read_bytes(), name


@pytest.mark.skipif(sys.version_info < (3, 11), reason="lava-nc 0.10.0 imports as is on 3.10")
def test_fresh_interpreter_without_hook_still_fails_as_lava_does() -> None:
    """Without the hook the original ValueError comes back: no patched bytecode is lying around."""
    done = _python(f"import {TARGET_MODULE}")
    assert done.returncode != 0
    assert "ValueError: mutable default" in done.stderr and "ByteEncoder" in done.stderr, done.stderr[-2000:]

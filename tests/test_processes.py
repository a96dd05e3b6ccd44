"""No process outlives the program that started it: a run killed mid-way (SIGKILL: no clean-up of
its own at all; SIGTERM and Ctrl-C: the CLIs' handlers unwind) takes Lava's worker and processes,
and hwsim's pool workers, with it."""
from __future__ import annotations

import signal
from pathlib import Path

import pytest

from processes import kill_mid_run

_GUARDED = """
import sys
import numpy as np
from snnc.cli import _guard
from snnc.compiler.ir import Graph, Input, Output, QCubaLIF, QDense
from snnc.models.quant import LOIHI_FIXED_POINT as FP


def graph() -> Graph:
    rng = np.random.default_rng(0)
    nodes = [Input("input", (8,)), QDense("fc0", rng.integers(-64, 64, (6, 8)) * 2, 0),
             QCubaLIF("lif0", 6, 1024, 128, 20, np.zeros(6, np.int64), 6, FP), Output("output")]
    return Graph.build(nodes, [("input", "fc0"), ("fc0", "lif0"), ("lif0", "output")])


def main() -> int:
    x = np.random.default_rng(1).random((%(samples)d, 10, 8)) < 0.4
    print("running", flush=True)
    %(run)s            # minutes: it is killed long before
    return 0


if __name__ == "__main__":
    sys.exit(_guard("long-run", main))   # the CLIs' handling of Ctrl-C and SIGTERM
"""
LAVA = _GUARDED % {"samples": 20000, "run": "from snnc.runtime.lava_backend import run_on_lava; "
                                            "run_on_lava(graph(), x)"}
POOL = _GUARDED % {"samples": 200000, "run": "from snnc.hwsim.parallel import HwSimPool\n"
                                             "    with HwSimPool(graph(), workers=2) as pool:\n"
                                             "        for _ in range(10000):\n"
                                             "            pool.run(x)"}
EXIT = {signal.SIGTERM: 143, signal.SIGINT: 130}


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM, signal.SIGINT], ids=lambda s: s.name)
def test_killing_a_lava_run_leaves_no_process(sig: signal.Signals, tmp_path: Path) -> None:
    """The worker, Lava's process models and its runtime service are all gone after the caller."""
    left, code, err = kill_mid_run(LAVA, tmp_path, sig, children=4)
    assert not left, f"left behind after {sig.name}: {left}"
    if sig in EXIT:
        assert code == EXIT[sig] and "Traceback" not in err, err


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=lambda s: s.name)
def test_killing_an_hwsim_pool_run_leaves_no_process(sig: signal.Signals, tmp_path: Path) -> None:
    """hwsim's two pool workers (and multiprocessing's resource tracker) go with their parent."""
    left, code, err = kill_mid_run(POOL, tmp_path, sig, children=3)
    assert not left, f"left behind after {sig.name}: {left}"
    if sig in EXIT:
        assert code == EXIT[sig] and "Traceback" not in err, err


COMPILE = """
import sys
sys.path.insert(0, %(tests)r)
from conftest import make_model
from snnc.cli import compile_main
from snnc.models.checkpoint import save

if __name__ == "__main__":
    save(make_model(), %(model)r, metadata={"dataset": "digits", "timesteps": 12})
    print("running", flush=True)
    sys.exit(compile_main([%(model)r, "--out", %(out)r, "--verify", "5000"]))   # Lava: minutes
"""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=lambda s: s.name)
def test_stopping_a_compile_leaves_no_artifact_and_no_process(sig: signal.Signals, tmp_path: Path) -> None:
    """snn-compile stopped while it verifies on Lava: no artifact, no staged directory, no process."""
    out = tmp_path / "build"
    script = COMPILE % {"tests": str(Path(__file__).parent), "model": str(tmp_path / "model.pt"), "out": str(out)}
    left, code, err = kill_mid_run(script, tmp_path, sig, children=4)
    assert not left, f"left behind after {sig.name}: {left}"
    assert code == EXIT[sig] and "Traceback" not in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["long_run.py", "model.pt", "stderr.txt"]

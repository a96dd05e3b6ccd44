"""The benchmark scripts keep working (they are run by `make bench`, not timed here): the Lava check
compares every layer and finds a planted difference, the limit measurement covers every synapse,
the MNIST-format files they write are read by snnc's own MNIST loader."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import common  # noqa: E402
import hwsim_scaling  # noqa: E402
import hwsim_vs_lava  # noqa: E402

from snnc.models.checkpoint import save  # noqa: E402
from snnc.models.datasets import load_dataset  # noqa: E402
from snnc.pipeline import compile_model  # noqa: E402

from conftest import make_model  # noqa: E402


def test_mnist_like_files_are_read_by_the_mnist_loader(tmp_path: Path) -> None:
    root = common.mnist_like(tmp_path, test_size=50)
    train, test = load_dataset("mnist", "train", data_dir=root), load_dataset("mnist", "test", data_dir=root)
    assert train.x.shape == (1437, 784) and test.x.shape == (50, 784) and train.input_shape == (1, 28, 28)
    assert 0.05 < float(train.x.mean()) < 0.4 and set(np.unique(train.y)) == set(range(10))


@pytest.mark.slow
def test_lava_check_compares_every_layer_and_limit_covers_every_synapse(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    root = common.mnist_like(tmp_path / "data", test_size=20)
    save(make_model((784, 16, 10), gain=1.0), tmp_path / "m.pt", metadata={"dataset": "mnist", "timesteps": 10,
                                                                     "data_dir": str(root)})
    art = compile_model(tmp_path / "m.pt", out=tmp_path / "build").out
    ok = hwsim_vs_lava.lava_check(art, 2, root)
    assert ok["equal"] and ok["mismatches"] == 0 and ok["samples"] == 2
    assert ok["compared_spikes"] == 2 * 10 * (16 + 10) and ok["samples_per_s"] > 0

    import snnc.hwsim.sim as sim    # a planted hwsim bug (threshold off by one) must be caught
    real = sim.HwSim._neurons

    def off_by_one(a, p):  # type: ignore[no-untyped-def]
        import dataclasses
        return real(a, dataclasses.replace(p, vth=max(0, p.vth - 1)))
    monkeypatch.setattr(sim.HwSim, "_neurons", staticmethod(off_by_one))
    monkeypatch.setattr(sim.HwSim, "run", lambda self, x, **kw: self._run_torch(self.input.check_values(x),
                                                                              sim.torch.device("cpu")))
    bad = hwsim_vs_lava.lava_check(art, 2, root)
    assert not bad["equal"] and bad["mismatches"] > 0

    limit = hwsim_vs_lava.arithmetic_limit(art)
    assert limit["dense_ops_per_sample"] == 2 * 10 * (784 * 16 + 16 * 10)
    assert limit["float32_samples_per_s"] > 0 and limit["int8_samples_per_s"] > 0


def test_scaling_point_reports_rates_and_both_throughputs() -> None:
    r = hwsim_scaling.point((64, 32, 10), 20, 16, 0.1)
    assert r["hwsim_samples_per_s"] > 0 and r["float32_gemm_samples_per_s"] > 0
    assert set(r["spike_rates"]) == {"lif1", "lif2"} and all(0 <= v <= 1 for v in r["spike_rates"].values())

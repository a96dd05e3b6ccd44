"""The benchmark scripts keep working (they are run by `make bench`, not timed here): the Lava check
compares every layer and finds a planted difference, the limit measurement covers every synapse,
the MNIST-format files they write are read by snnc's own MNIST loader."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import accuracy  # noqa: E402
import common  # noqa: E402
import hwsim_scaling  # noqa: E402
import peers  # noqa: E402
import startup  # noqa: E402
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
    # the fixed format (vth 64): a threshold off by one is 1/64 of it, which 2 samples show (at vth 2048 they may not)
    save(make_model((784, 16, 10), gain=1.0, weight_scale=64.0), tmp_path / "m.pt", metadata={"dataset": "mnist", "timesteps": 10,
                                                                     "data_dir": str(root)})
    art = compile_model(tmp_path / "m.pt", out=tmp_path / "build").out
    ok = hwsim_vs_lava.lava_check(art, 2, root)
    assert ok["equal"] and ok["mismatches"] == 0 and ok["samples"] == 2
    assert ok["compared_spikes"] == 2 * 10 * (16 + 10) and ok["samples_per_s"] > 0

    import snnc.hwsim.sim as sim    # a planted hwsim bug (threshold off by one) must be caught
    real = sim.HwSim._neurons

    def off_by_one(a, p, *rest):  # type: ignore[no-untyped-def]
        import dataclasses
        return real(a, dataclasses.replace(p, vth=max(0, p.vth - 1)), *rest)
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


def test_nmnist_like_recordings_are_read_by_the_nmnist_loader(tmp_path: Path) -> None:
    """Digits seen by a simulated DVS over three saccades, in N-MNIST's files: thousands of events each,
    both polarities, and the training digits' labels (mnist_like's order)."""
    root = common.nmnist_like(tmp_path, n_train=12, test_size=6)
    train = load_dataset("nmnist", "train", timesteps=10, data_dir=root)
    test = load_dataset("nmnist", "test", timesteps=10, data_dir=root)
    assert train.x.shape == (12, 10, 2312) and test.x.shape == (6, 10, 2312) and train.input_shape == (2, 34, 34)
    counts = train.x.reshape(12, 10, 2, -1).sum(axis=(1, 3))   # active (bin, pixel) per polarity
    assert (counts > 100).all()
    digits = load_dataset("mnist", "train", data_dir=common.mnist_like(tmp_path / "m", test_size=6))
    assert sorted(train.y.tolist()) == sorted(digits.y[:12].tolist())


@pytest.mark.parametrize("library", peers.LIBRARIES)
def test_peers_train_on_snnc_data_and_report(library: str) -> None:
    data = load_dataset("digits", "train")
    small = type(data)(data.name, data.x[:64], data.y[:64], data.num_classes, data.encoding)
    train = getattr(peers, f"train_{library}")
    got = train(small, small, (64, 16, 10), timesteps=4, epochs=1, batch_size=16, lr=5e-3, seed=0)
    assert got["library"] == library and 0.0 <= got["test_accuracy"] <= 1.0 and got["seconds"] > 0


def test_snntorch_recurrent_peer_uses_rleaky_and_its_recurrent_weights_learn() -> None:
    import snntorch

    data = load_dataset("digits", "train")
    small = type(data)(data.name, data.x[:64], data.y[:64], data.num_classes, data.encoding)
    torch.manual_seed(0)
    net = peers._SnnTorchMLP((64, 16, 10), 0.95, snntorch.surrogate.fast_sigmoid(), recurrent=True)
    assert isinstance(net.lifs[0], snntorch.RLeaky) and isinstance(net.lifs[1], snntorch.Leaky)
    before = net.lifs[0].recurrent.weight.detach().clone()
    x = peers._time_first(small, slice(0, 16), 6, torch.Generator().manual_seed(0))
    loss = net(x).sum()
    loss.backward()
    assert net.lifs[0].recurrent.weight.grad is not None and net.lifs[0].recurrent.weight.grad.abs().sum() > 0
    assert torch.equal(before, net.lifs[0].recurrent.weight)
    got = peers.train_snntorch(small, small, (64, 16, 10), timesteps=4, epochs=1, batch_size=16, lr=5e-3, seed=0,
                               recurrent=True)
    assert "RLeaky" in got["config"]["neuron"] and 0.0 <= got["test_accuracy"] <= 1.0


def test_accuracy_table_compares_each_rule_with_the_best_peer() -> None:
    row = {"dataset": "mnist", "rule": "stbp-rect", "chip_accuracy": 0.80, "verified_samples": 4, "mismatches": 0,
           "weight_scales": {"lif1": 2048.0, "lif2": 1024.0}}
    result = {"snnc": [{**row, "mode": "hardware-exact"}, {**row, "mode": "float", "chip_accuracy": 0.79}],
              "peers": [{"library": "snntorch", "dataset": "mnist", "test_accuracy": 0.81, "lr": 1e-3},
                        {"library": "spikingjelly", "dataset": "mnist", "test_accuracy": 0.78, "lr": 5e-3}]}
    line = next(x for x in accuracy.table(result).splitlines() if x.startswith("| stbp-rect"))
    assert line == "| stbp-rect | 80.0% | 79.0% | +1.0 | -1.0 | 4, 0; 4, 0 | 2048 1024 |"


def test_startup_table_puts_each_figure_beside_its_goal() -> None:
    """benchmarks/startup.py's table (make bench prints it): median, every run, goal and ratio; no timing is
    asserted, only the arithmetic and the verdict."""
    fig = {"snn_run": [2.0, 3.0, 2.2], "snn_compile": [4.5, 4.0, 5.0], "first_run_cold": [12.0, 11.0, 13.0],
           "train_help": [0.05, 0.06, 0.07]}
    result = {"runs": 3, "cpus": 2, "load_average": {"before": [1.0, 1.0, 1.0], "after": [1.5, 1.0, 1.0]},
              "figures": {k: {"median_s": sorted(v)[1], "runs_s": v, "goal_s": startup.GOALS.get(k)}
                          for k, v in fig.items()}}
    result["figures"]["snn_compile"]["cpu_median_s"] = 4.1
    rows = {line.split(" | ")[0].lstrip("| "): line for line in startup.table(result).splitlines()
            if line.startswith("| ") and not line.startswith("| what")}
    assert rows[startup.LABELS["snn_run"]] == f"| {startup.LABELS['snn_run']} | 2.20 | 2.00, 3.00, 2.20 |  | 2.5 | 0.88 | yes |"
    assert rows[startup.LABELS["snn_compile"]].endswith("| 4.50 | 4.50, 4.00, 5.00 | 4.10 | 3 | 1.50 | **no** |")
    assert rows[startup.LABELS["first_run_cold"]].endswith("| 12.00 | 12.00, 11.00, 13.00 |  |  |  |  |")   # no goal
    assert startup.LABELS["first_run_after_install"] not in rows          # not measured: no row
    assert "median of 3 run(s)" in startup.table(result)


def test_digits_without_scikit_learn_equals_scikit_learns_split() -> None:
    """snn-run and snn-compile read digits without importing scikit-learn (start-up): the same arrays and
    the same stratified split as load_digits + train_test_split, for any seed."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    from snnc.models.datasets import _digits, digits_arrays

    d = load_digits()
    x, y = digits_arrays()
    assert x.dtype == d.data.dtype and y.dtype == d.target.dtype
    np.testing.assert_array_equal(x, d.data)
    np.testing.assert_array_equal(y, d.target)
    xs, ys = (d.data / 16.0).astype(np.float32), d.target.astype(np.int64)
    for seed in (0, 1, 7, 2024, 2**32 - 1):
        xtr, xte, ytr, yte = train_test_split(xs, ys, test_size=0.2, random_state=seed, stratify=ys)
        for split, (xe, ye) in (("train", (xtr, ytr)), ("test", (xte, yte))):
            got = _digits(split, seed)
            assert got.x.dtype == xe.dtype and got.y.dtype == ye.dtype
            np.testing.assert_array_equal(got.x, xe)
            np.testing.assert_array_equal(got.y, ye)


def test_report_counting_run_is_hwsims_result() -> None:
    """build_report takes hwsim's result from the counting run (no second simulation, no numba in
    snn-compile): it equals what HwSim.run returns on either engine, array for array."""
    from snnc.compiler.frontend import graph_from_module
    from snnc.compiler.mapping import map_cores
    from snnc.compiler.passes import quantize
    from snnc.compiler.placement import place
    from snnc.compiler.targets import get_target
    from snnc.hwsim.counts import count
    from snnc.hwsim.sim import HwSim

    from test_hwsim_engines import assert_same_result

    tgt = get_target("loihi")
    graph = quantize(graph_from_module(make_model((40, 24, 10))), tgt)
    mapping = map_cores(graph, tgt)
    x = np.random.default_rng(0).random((5, 9, 40)) < 0.3
    counted = count(graph, mapping, place(mapping, tgt), x).result
    assert counted is not None
    for engine in ("numba", "torch"):
        ran = HwSim.from_graph(graph).run(x, engine=engine)
        assert_same_result(counted, ran)
        assert list(counted.spikes) == list(ran.spikes) and [a.name for a in counted.activity] == [a.name for a in ran.activity]
        for name in ran.final_v:
            assert counted.final_v[name].dtype == ran.final_v[name].dtype, name
        for a, b in zip(counted.activity, ran.activity):
            for field in ("synops", "spikes", "updates", "active_updates"):
                assert getattr(a, field).dtype == getattr(b, field).dtype, (a.name, field)

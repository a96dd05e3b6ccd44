"""Verification must fail, and say where, when engines disagree."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import snnc.pipeline as pipeline
from snnc.errors import VerificationError
from snnc.verify import compare


def _runs(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"lif1": rng.random((3, 6, 5)) < 0.3, "lif2": rng.random((3, 6, 2)) < 0.3}


def test_identical_runs_pass() -> None:
    a = _runs()
    res = compare({"x": a, "y": {k: v.copy() for k, v in a.items()}}, ["lif1", "lif2"])
    assert res.passed and res.first is None and res.mismatches == {"x-y": {"lif1": 0, "lif2": 0}}


def test_first_mismatch_is_the_earliest_timestep_then_layer() -> None:
    a = _runs()
    b = {k: v.copy() for k, v in a.items()}
    b["lif2"][1, 2, 1] ^= True     # step 3 (1-based), layer 2
    b["lif1"][2, 4, 3] ^= True     # step 5, layer 1
    b["lif1"][0, 2, 0] ^= True     # step 3, layer 1: earliest step, earlier layer
    c = {k: v.copy() for k, v in a.items()}
    res = compare({"torch": a, "hwsim": b, "lava": c}, ["lif1", "lif2"])
    assert not res.passed
    assert res.mismatches["torch-hwsim"] == {"lif1": 2, "lif2": 1}
    assert res.mismatches["torch-lava"] == {"lif1": 0, "lif2": 0}
    f = res.first
    assert (f.layer, f.sample, f.timestep, f.neuron) == ("lif1", 0, 3, 0)
    assert "layer 'lif1', sample 0, timestep 3, neuron 0" in res.describe_failure()


def test_a_mismatch_fails_the_compile_and_leaves_no_artifact(model_path: Path, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Break one engine on purpose: the compile must fail naming the place, and write nothing."""
    def off_by_one_spike(graph, x):  # type: ignore[no-untyped-def]
        spikes = pipeline.HwSim.from_graph(graph).run(x).spikes
        spikes["lif2"][0, -1, 0] ^= True
        return spikes

    # only the verification's hwsim run is broken (the report's own run stays honest)
    monkeypatch.setattr(pipeline, "verify_engines",
                        lambda model, graph, x, code, lava_timeout=None, **_: compare({"torch": pipeline.run_torch(
                            pipeline.hardware_exact_model(model, graph), graph, x, code),
                            "hwsim": off_by_one_spike(graph, x)}, ["lif1", "lif2"]))
    out = tmp_path / "build"
    with pytest.raises(VerificationError, match=r"layer 'lif2', sample 0, timestep 12, neuron 0"):
        pipeline.compile_model(model_path, out=out, verify=2)
    assert not out.exists()

"""Every file reader answers truncated, corrupted and adversarial files with a clean SnncError.

Hypothesis draws a mutator (byte-level or structural, tests/fuzzing.py) and its random seed; the oracle
(``fuzzing.check_case``) fails the test on any other exception, a timeout, an error message without the
file's path or with a traceback, or a partial artifact directory. ``SNNC_FUZZ_EXAMPLES`` scales the
number of examples per test (``make fuzz`` runs a much larger campaign: tests/fuzzing.py).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fuzzing
from fuzzing import ACCEPTED, CLEAN, FAILURE

EXAMPLES = int(os.environ.get("SNNC_FUZZ_EXAMPLES", "30"))
ROOT = Path(__file__).resolve().parents[1]


def _settings(n: int) -> settings:
    return settings(max_examples=n, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def seeds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Path]]:
    """Seed files of a dense and of a conv network, made once for the module."""
    root = tmp_path_factory.mktemp("fuzz-seeds")
    return {"dense": fuzzing.make_seeds(root / "dense"), "conv": fuzzing.make_seeds(root / "conv", conv=True)}


def _case(kind: str, seeds: dict[str, dict[str, Path]], net: str, mutator: str, seed: int) -> fuzzing.Outcome:
    outcome = fuzzing.run_case(kind, seeds[net], mutator, seed)
    assert outcome.status in (ACCEPTED, CLEAN), f"{kind} {mutator} seed={seed} ({net}): {outcome.detail}"
    return outcome


@pytest.mark.parametrize("kind", ["checkpoint", "nir", "onnx", "netx", "graph", "cost_model"])
def test_seed_files_are_accepted(seeds: dict[str, dict[str, Path]], kind: str) -> None:
    """The oracle is meaningful: every unmutated seed file reads."""
    for net in seeds:
        assert fuzzing.check_case(kind, seeds[net][kind]).status == ACCEPTED
        if kind == "cost_model":
            assert fuzzing.check_case(kind, seeds[net]["cost_model_yaml"]).status == ACCEPTED
    assert fuzzing.check_case("manifest", seeds["dense"]["artifact"]).status == ACCEPTED


def test_oracle_flags_failures(tmp_path: Path) -> None:
    """A library exception, a message without the path and a hang are all FAILURE."""
    bad = tmp_path / "x.json"
    bad.write_text("{}")
    assert fuzzing.check_case("nope", bad).status == FAILURE        # ValueError from the oracle's dispatch
    with pytest.raises(fuzzing.CaseTimeout), fuzzing.time_limit(0.05):
        while True:
            pass


def _reader_test(kind: str):  # type: ignore[no-untyped-def]
    @_settings(EXAMPLES)
    @given(net=st.sampled_from(["dense", "conv"]), mutator=st.sampled_from(fuzzing.mutators(kind)),
           seed=st.integers(0, 2**31 - 1))
    def test(seeds: dict[str, dict[str, Path]], net: str, mutator: str, seed: int) -> None:
        _case(kind, seeds, net, mutator, seed)

    test.__name__ = f"test_fuzz_{kind}_reader"
    test.__doc__ = f"The {kind} reader: accepts a mutant or refuses it with a clean SnncError naming the file."
    return test


test_fuzz_checkpoint_reader = _reader_test("checkpoint")
test_fuzz_nir_reader = _reader_test("nir")
test_fuzz_onnx_reader = _reader_test("onnx")
test_fuzz_netx_reader = _reader_test("netx")
test_fuzz_graph_reader = _reader_test("graph")
test_fuzz_manifest_reader = _reader_test("manifest")
test_fuzz_cost_model_reader = _reader_test("cost_model")


@_settings(max(4, EXAMPLES // 3))
@given(net=st.sampled_from(["dense", "conv"]), source=st.sampled_from(fuzzing.MODEL_KINDS),
       mutator=st.sampled_from(fuzzing.mutators("compile")), seed=st.integers(0, 2**31 - 1))
def test_fuzz_compile_path(seeds: dict[str, dict[str, Path]], net: str, source: str, mutator: str,
                           seed: int) -> None:
    """compile_model on a mutant its reader accepted: succeeds, or a clean error and no out/partial dirs."""
    outcome = fuzzing.run_case("compile", seeds[net], mutator, seed, source_kind=source)
    assert outcome.status in (ACCEPTED, CLEAN), f"compile {source} {mutator} seed={seed} ({net}): {outcome.detail}"


@_settings(max(4, EXAMPLES // 3))
@given(net=st.sampled_from(["dense", "conv"]), mutator=st.sampled_from(fuzzing.mutators("run")),
       seed=st.integers(0, 2**31 - 1))
def test_fuzz_run_and_report_paths(seeds: dict[str, dict[str, Path]], net: str, mutator: str, seed: int) -> None:
    """snn-run (hwsim) and snn-report on a mutated artifact directory."""
    _case("run", seeds, net, mutator, seed)


def test_onnx_external_data_is_refused_and_never_read(seeds: dict[str, dict[str, Path]], tmp_path: Path) -> None:
    """A tensor pointing at another file ('../../etc/passwd', or a real file beside it) is refused by name."""
    import onnx
    from onnx import TensorProto

    from snnc.compiler.onnx_io import read_onnx
    from snnc.errors import InputFileError

    (tmp_path / "weights.bin").write_bytes(b"\x00" * 4096)
    for location in ("../../etc/passwd", "/etc/passwd", "weights.bin"):
        m = onnx.load_model(str(seeds["dense"]["onnx"]))
        t = m.graph.initializer[0]
        t.ClearField("raw_data")
        t.data_location = TensorProto.EXTERNAL
        for k, v in (("location", location), ("offset", "0"), ("length", "8")):
            e = t.external_data.add()
            e.key, e.value = k, v
        path = tmp_path / "graph.onnx"
        path.write_bytes(m.SerializeToString())
        with pytest.raises(InputFileError, match="another file") as err:
            read_onnx(path)
        assert str(path) in str(err.value) and location in str(err.value)


def test_checkpoint_spec_claiming_huge_layers_allocates_nothing(seeds: dict[str, dict[str, Path]],
                                                                tmp_path: Path) -> None:
    """A spec of 6 x 10**9 weights (24 GB) is compared with the file's tensors before anything is allocated."""
    import torch

    from snnc.compiler.sources import load_source
    from snnc.errors import InputFileError

    obj = torch.load(seeds["dense"]["checkpoint"], weights_only=True)
    obj["spec"]["layers"][0]["in_features"] = 10**9
    path = tmp_path / "huge.pt"
    torch.save(obj, path)
    with fuzzing.time_limit(10), pytest.raises(InputFileError, match="state dict"):
        load_source(path)


@pytest.mark.parametrize("name", ["../x", "/etc/passwd", "report.json"])
def test_manifest_file_names_must_be_artifact_files(seeds: dict[str, dict[str, Path]], tmp_path: Path,
                                                    name: str) -> None:
    """'files' may name only the artifact's own files: no traversal, no absolute paths."""
    import shutil

    from snnc.compiler.artifact import load_artifact
    from snnc.errors import InputFileError

    art = Path(shutil.copytree(seeds["dense"]["artifact"], tmp_path / "art"))
    man = json.loads((art / "manifest.json").read_text())
    man["files"][name] = "0" * 64
    (art / "manifest.json").write_text(json.dumps(man))
    with pytest.raises(InputFileError, match="not an artifact file"):
        load_artifact(art)


@pytest.mark.parametrize("mutator,seed", [("truncate", 3), ("structural", 11), ("overwrite_ff", 5)])
def test_cli_compile_of_a_mutant_exits_2_without_traceback(seeds: dict[str, dict[str, Path]], tmp_path: Path,
                                                           mutator: str, seed: int) -> None:
    """``snn-compile`` on a damaged file: exit code 2, the file named on stderr, no traceback."""
    kinds = ["checkpoint", "netx", "onnx"]
    kind = kinds[seed % len(kinds)]
    path = fuzzing.mutate_file(kind, seeds["dense"][kind], tmp_path / seeds["dense"][kind].name, mutator, seed)
    if fuzzing.check_case(kind, path).status == ACCEPTED:
        pytest.skip("this mutant reads (the oracle's test covers it)")
    exe = Path(sys.executable).with_name("snn-compile")
    proc = subprocess.run([str(exe), str(path), "--out", str(tmp_path / "out")], capture_output=True, text=True,
                          timeout=120, cwd=ROOT)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and str(path) in proc.stderr
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out.*.partial"))


def test_cli_run_of_a_damaged_manifest_exits_2(seeds: dict[str, dict[str, Path]], tmp_path: Path) -> None:
    """``snn-run`` on an artifact whose manifest has the wrong types: exit code 2, no traceback."""
    import shutil

    art = Path(shutil.copytree(seeds["dense"]["artifact"], tmp_path / "art"))
    man = json.loads((art / "manifest.json").read_text())
    man["input"]["timesteps"] = "twenty"
    (art / "manifest.json").write_text(json.dumps(man))
    exe = Path(sys.executable).with_name("snn-run")
    proc = subprocess.run([str(exe), str(art), "--backend", "hwsim", "--samples", "2"], capture_output=True,
                          text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and "timesteps" in proc.stderr


def test_hdf5_file_on_which_libhdf5_loops_is_refused_in_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """A graph.h5 found by fuzzing (bit flips) on which libhdf5 1.14 never returns from reading an attribute:
    every HDF5 reader runs it in a child with a deadline (snnc.compiler.isolation) and names the file."""
    from snnc.compiler.graph_file import read_graph
    from snnc.compiler.sources import load_source
    from snnc.errors import InputFileError

    monkeypatch.setenv("SNNC_READ_DEADLINE_S", "2")
    path = Path(__file__).parent / "data" / "hdf5_loops_forever.h5"
    for read in (read_graph, load_source):
        with fuzzing.time_limit(30), pytest.raises(InputFileError) as err:
            read(path)
        assert str(path) in str(err.value)
